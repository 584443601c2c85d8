"""`neuroplast` fails as a person can read: one line on stderr, a documented exit code, no traceback.

Exit codes (`service.cli.errors`): 1 the API answered with an error, 2 usage, 3 the API unreachable.
"""

import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from service.cli import app
from service.cli.server import BASE_PRESETS
from service.local import free_port


def _one_line_error(result: object, code: int) -> str:
    """Assert the failure a user sees; returns the line."""
    assert result.exit_code == code, result.output  # type: ignore[attr-defined]
    stderr = result.stderr  # type: ignore[attr-defined]
    assert "Traceback" not in result.output and "Traceback" not in stderr  # type: ignore[attr-defined]
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    return lines[0]


def test_no_server_is_one_line_and_exit_code_3(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    result = CliRunner().invoke(app, ["jobs", "list", "--url", url, "--data-dir", str(tmp_path)])
    line = _one_line_error(result, 3)
    assert f"cannot reach the API at {url}" in line and "Connection refused" in line


@pytest.mark.parametrize(
    ("options", "names"),
    [
        (["--config", "{r:16}"], ["--config", "not JSON"]),
        (["--config", "[1, 2]"], ["--config", "must be a JSON object"]),
        (["--method", "magic"], ["--method", "'magic' is not one of", "lora"]),
    ],
)
def test_a_bad_option_value_is_one_line_and_exit_code_2(options: list[str], names: list[str]) -> None:
    command = ["lineages", "create", "bot", "--base-model", "base", *options]
    line = _one_line_error(CliRunner().invoke(app, command), 2)
    assert all(name in line for name in names), line
    assert "lineages create --help" in line


def test_unknown_commands_and_options_are_one_line_and_exit_code_2() -> None:
    assert "No such command 'nope'" in _one_line_error(CliRunner().invoke(app, ["jobs", "nope"]), 2)
    assert "No such option: --colour" in _one_line_error(
        CliRunner().invoke(app, ["jobs", "list", "--colour"]), 2
    )
    suite = _one_line_error(
        CliRunner().invoke(app, ["health", "run", "--lineage", "x", "--suite", "telepathy"]), 2
    )
    assert "'telepathy' is not one of" in suite and "retention" in suite


def test_an_unknown_preset_fails_before_torch_is_imported(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from service.cli import app\n"
        f"command = ['base', 'build', '--out', {str(tmp_path / 'm')!r}, '--preset', 'huge']\n"
        "result = CliRunner().invoke(app, command)\n"
        "assert result.exit_code == 2, result.output\n"
        "assert \"'huge' is not one of tiny, small\" in result.stderr, result.stderr\n"
        "assert 'torch' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_the_preset_choices_are_the_presets_build_knows() -> None:
    from trainers.base_model import build  # imports torch: here, never in the CLI

    assert set(BASE_PRESETS) == set(build.PRESETS) == {"tiny", "small"}


def test_every_command_a_group_promises_exists() -> None:
    listed = CliRunner().invoke(app, ["files", "--help"]).output
    assert "list" in listed
    for group, commands in {
        "files": ["upload", "list", "get", "delete"],
        "lineages": ["create", "list", "get", "promote", "rollback", "retention"],
        "jobs": ["create", "list", "get", "events", "checkpoints", "follow", "cancel", "pause", "resume"],
        "health": ["run", "get", "list"],
        "reports": ["open", "link"],
    }.items():
        for command in commands:
            result = CliRunner().invoke(app, [group, command, "--help"])
            assert result.exit_code == 0, f"{group} {command}: {result.output}"
