"""The brain-rot benchmark's data and report, without training: the mixtures hold what they claim,
and the report says whether g rises with the junk share from the scores it is given."""

import random

import pytest

from bench.brainrot import RATIOS, _section, dose_response, ordinary_verdicts
from bench.brainrot_data import control_text, junk_text, mixture
from eval.data_screen import junk_ratio
from eval.panel import PANEL_SUITES


def _words(text: str) -> int:
    return len(text.split())


@pytest.mark.parametrize("ratio", RATIOS)
def test_a_mixture_holds_the_budget_with_the_asked_share_of_junk(ratio: float) -> None:
    rows = mixture(ratio, budget=3000, seed=0, count_tokens=_words)
    junk = sum(_words(row["text"]) for row in rows if "#" in row["text"])  # every post has a hashtag
    total = sum(_words(row["text"]) for row in rows)
    assert 3000 <= total < 3000 + 2 * 60  # past the budget by at most one row of each kind
    assert junk / total == pytest.approx(ratio, abs=0.03)
    assert mixture(ratio, 3000, 0, _words) == rows  # the same seed, the same file


def test_junk_is_what_the_upload_screen_calls_junk_and_control_is_not() -> None:
    rng = random.Random(0)
    assert junk_ratio({"text": junk_text(rng)} for _ in range(200)) > 0.9
    assert junk_ratio({"text": control_text(rng)} for _ in range(200)) == 0.0


def _panel(worse_by: float) -> dict:
    """Panel results whose items are `worse_by` below the base's, on every suite."""
    scores = [0.5 + 0.1 * (i % 5) - worse_by for i in range(40)]
    return {suite: {"scores": scores, "details": {}} for suite in PANEL_SUITES}


def test_the_report_finds_a_dose_response_only_where_there_is_one() -> None:
    base = _panel(0.0)
    rising = [{str(ratio): _panel(0.2 * ratio * (1 + seed / 10)) for ratio in RATIOS} for seed in range(3)]
    ordinary = ordinary_verdicts(base, [{"lora, 5 epochs": _panel(0.01)} for _ in range(3)])
    table = dose_response(base, rising)
    assert [round(table["reasoning"][str(r)]["g"], 2) for r in RATIOS] == sorted(
        round(table["reasoning"][str(r)]["g"], 2) for r in RATIOS
    )
    assert table["reasoning"]["1.0"]["verdicts"] == ["rot"] * 3  # above the gate's default rot of 1.0
    args = type("Args", (), {"base": "small", "budget": 3000})()
    section = _section(table, rising, ordinary, args, "python -m bench.brainrot")
    assert "g rises with the junk share" in section
    assert "| **versions rejected** | | **0/3** |" in section and section.count("**3/3**") >= 1
    assert "| lora, 5 epochs |" in section and "| 0/3 |" in section  # the fact-learning job passes
    flat = [{str(ratio): _panel(0.0) for ratio in RATIOS} for _ in range(3)]
    assert "no suite's g rises" in _section(
        dose_response(base, flat), flat, ordinary, args, "python -m bench.brainrot"
    )
