"""The Makefile's first step: it finds a supported Python or stops with a clear message, and never
reuses a broken venv or one made with another interpreter.

Each test runs make on a copy of the Makefile in a scratch folder, with fake interpreters on a PATH
that holds nothing else; `make -n` prints what `make install` would run.
"""

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MAKE = shutil.which("make")

pytestmark = pytest.mark.skipif(MAKE is None, reason="no make on this machine")


@pytest.fixture
def project(tmp_path: Path) -> Path:
    shutil.copy(ROOT / "Makefile", tmp_path / "Makefile")
    (tmp_path / "pyproject.toml").write_text("[project]\n")
    (tmp_path / "bin").mkdir()
    return tmp_path


def _interpreter(path: Path, real_path: str, version: str) -> None:
    """A fake interpreter that answers the Makefile's question (its real path and X.Y) and nothing else."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"#!/bin/sh\necho {real_path} {version}\n")
    path.chmod(0o755)


def _venvs(project: Path, real_path: str, version: str) -> None:
    """Both venvs, installed (stamps newer than pyproject.toml), made with `real_path`."""
    for venv in (".venv", ".venv-vllm"):
        _interpreter(project / venv / "bin" / "python", real_path, version)
        (project / venv / ".installed-stamp").touch()


def _make(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [MAKE or "make", "--no-print-directory", *args],
        cwd=project,
        env={"PATH": str(project / "bin")},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_without_a_supported_python_make_stops_and_says_what_to_install(project: Path) -> None:
    _interpreter(project / "bin" / "python3", "/usr/bin/python3.10", "3.10")

    result = _make(project, "install")

    assert result.returncode != 0
    assert "error: Neuroplast needs Python 3.11" in result.stderr
    assert "found: " in result.stderr and "(Python 3.10)" in result.stderr
    assert "apt-get install python3.11" in result.stderr
    assert not (project / ".venv").exists()


def test_the_supported_version_on_path_is_preferred_over_python3(project: Path) -> None:
    _interpreter(project / "bin" / "python3", "/usr/bin/python3.10", "3.10")
    _interpreter(project / "bin" / "python3.11", "/usr/bin/python3.11", "3.11")

    planned = _make(project, "-n", "install").stdout

    assert f"{project}/bin/python3.11 -m venv .venv" in planned
    assert "rm -rf" not in planned  # nothing to throw away yet


def test_a_working_venv_is_kept(project: Path) -> None:
    _interpreter(project / "bin" / "python3.11", "/usr/bin/python3.11", "3.11")
    _venvs(project, "/usr/bin/python3.11", "3.11")

    assert "Nothing to be done" in _make(project, "-n", "install").stdout


def test_a_broken_venv_is_made_anew(project: Path) -> None:
    _interpreter(project / "bin" / "python3.11", "/usr/bin/python3.11", "3.11")
    _venvs(project, "/usr/bin/python3.11", "3.11")
    (project / ".venv" / "bin" / "python").write_text("#!/bin/sh\nexit 1\n")  # its interpreter is gone

    planned = _make(project, "-n", "install").stdout.splitlines()

    assert "rm -rf .venv" in planned and "rm -rf .venv-vllm" not in planned
    assert planned.index("rm -rf .venv") < planned.index(
        f"test -x .venv/bin/python || {project}/bin/python3.11 -m venv .venv"
    )


def test_a_venv_of_an_unsupported_or_another_chosen_interpreter_is_made_anew(project: Path) -> None:
    _interpreter(project / "bin" / "python3.11", "/usr/bin/python3.11", "3.11")
    _venvs(project, "/usr/bin/python3.10", "3.10")
    assert "rm -rf .venv" in _make(project, "-n", "install").stdout.splitlines()

    _venvs(project, "/usr/bin/python3.11", "3.11")
    other = project / "opt" / "python3.11"
    _interpreter(other, "/opt/python3.11", "3.11")
    planned = _make(project, "-n", "install", f"PYTHON={other}").stdout.splitlines()
    assert "rm -rf .venv" in planned and "rm -rf .venv-vllm" in planned
    assert f"test -x .venv/bin/python || {other} -m venv .venv" in planned
