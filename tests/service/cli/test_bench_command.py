"""`neuroplast bench cl` runs `python -m bench.cl` in the checkout with its arguments and exits as it does."""

import subprocess
import sys
from pathlib import Path


def _neuroplast(*arguments: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "service.cli", *arguments],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=120,
    )


def test_its_help_is_the_benchmarks_own(tmp_path: Path) -> None:
    result = _neuroplast("bench", "cl", "--help", cwd=tmp_path)  # from any folder: it runs in the checkout
    assert result.returncode == 0, result.stderr
    assert "--variants" in result.stdout and "--family {dev,test,both}" in result.stdout


def test_a_bad_variant_is_a_usage_error(tmp_path: Path) -> None:
    result = _neuroplast("bench", "cl", "--variants", "lora,magic", cwd=tmp_path)
    assert result.returncode == 2
    assert "unknown variants ['magic']" in result.stderr.strip().splitlines()[-1]
    assert "Traceback" not in result.stderr
