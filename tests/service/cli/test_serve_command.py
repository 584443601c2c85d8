"""`neuroplast serve`: it makes a dev key only when asked (`--dev-key`), and never a second one."""

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from service.db import Database
from service.local import free_port
from service.services.keys import list_keys, revoke_key
from service.settings import Settings

pytestmark = pytest.mark.slow  # starts the service three times


def _serve(data_dir: Path, *flags: str) -> str:
    """Start `serve` (no worker, no serving tier), wait until it answers, stop it; its stderr and stdout."""
    port = free_port()
    command = [sys.executable, "-m", "service.cli", "serve", "--no-worker", "--no-serving"]
    command += ["--port", str(port)]
    env = {**os.environ, "NEUROPLAST_DATA_DIR": str(data_dir)}
    process = subprocess.Popen([*command, *flags], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and process.poll() is None:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.05)
    finally:
        process.terminate()
        stdout, stderr = process.communicate(timeout=30)
    return (stderr + stdout).decode()


def test_a_dev_key_only_when_asked_and_not_after_every_key_was_revoked(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    plain = _serve(data_dir)
    assert not (data_dir / "dev-key").exists()
    assert "No API key exists yet" in plain and "np_" not in plain

    asked = _serve(data_dir, "--dev-key")
    key = (data_dir / "dev-key").read_text().strip()
    assert "Dev API key (platform)" in asked and key in asked
    database = Database(Settings(data_dir=data_dir).resolved_database_url)
    with database.session() as session:
        (row,) = list_keys(session, None)
        assert row.scope == "platform"
        revoke_key(session, row.key_id)

    again = _serve(data_dir)  # every key revoked: still no new key unless asked
    with database.session() as session:
        assert [row.revoked_at is not None for row in list_keys(session, None)] == [True]
    assert "np_" not in again
    database.dispose()
