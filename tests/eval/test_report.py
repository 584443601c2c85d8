"""The HTML health report renders its headings and plots in a real browser (headless Chromium)."""

import shutil
import subprocess
from pathlib import Path

import pytest
from PIL import Image

from eval.report import render_html


def _suite(
    candidate: float, reference: float, g: float, interval: tuple[float, float], verdict: str, items: int
):  # type: ignore[no-untyped-def]
    low, high = interval
    return {
        "candidate": candidate,
        "reference": reference,
        "g": g,
        "low": low,
        "high": high,
        "verdict": verdict,
        "items": items,
    }


BODY = {
    "id": "report-1",
    "lineage": "bot",
    "version": 3,
    "reference_version": 2,
    "origin": "gate of ftjob-3",
    "verdict": "rot",
    "gate": "rejected",
    "suites": {
        "retention": _suite(0.6, 0.9, 0.7, (0.2, 1.1), "warn", 64),
        "perplexity": _suite(-4.1, -3.2, 1.4, (0.9, 2.0), "rot", 24),
        "safety": _suite(0.5, 0.5, 0.0, (-0.3, 0.3), "ok", 24),
    },
    "thought_skipping": {"no_reasoning": 9, "no_plan": 5, "skipped_steps": 2, "other": 1},
    "retention": {
        "versions": [1, 2, 3],
        "jobs": ["ftjob-1", "ftjob-2", "ftjob-3"],
        "matrix": [[0.9, 0.1, None], [0.7, 0.95, 0.2], [0.5, 0.6, 1.0]],
        "recognition": [[1.0, None, None], [1.0, 1.0, None], [0.9, 1.0, 1.0]],
    },
    "trend": {
        "versions": [0, 1, 2, 3],
        "suites": {"perplexity": [-3.0, -3.1, -3.2, -4.1], "safety": [0.5, 0.5, 0.5, 0.5]},
    },
}


def test_the_page_holds_every_section() -> None:
    page = render_html(BODY)
    for heading in (
        "Suites against the reference",
        "Thought skipping",
        "Retention:",
        "Trend across versions",
    ):
        assert heading in page
    assert page.count("<svg") == 5  # effects, thought skipping, heatmap, retention curves, trend
    assert "<script" not in page and "http" not in page.replace("http://www.w3.org/2000/svg", "")


def test_chromium_draws_the_plots(tmp_path: Path) -> None:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.fail("Chromium is not installed: `make system-deps` (apt-get install chromium) installs it")
    page, shot = tmp_path / "report.html", tmp_path / "report.png"
    page.write_text(render_html(BODY))
    subprocess.run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
         "--window-size=1000,2200", f"--screenshot={shot}", page.as_uri()],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    image = Image.open(shot).convert("RGB")
    colours = image.getcolors(maxcolors=1 << 20) or []
    assert len(colours) > 50  # text, bars, cells and lines: not a blank page
    pixels = set(image.getdata())
    rot, warn = (198, 40, 40), (239, 143, 0)  # the verdict colours of eval.report
    assert rot in pixels and warn in pixels  # the badge, effect points and skipping bars were painted
