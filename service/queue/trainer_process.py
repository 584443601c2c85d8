"""One trainer or evaluator process (`python -m trainers.run|eval.run --spec …`) and its JSON lines."""

import ctypes
import json
import os
import queue
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

_EOF = object()
_PR_SET_PDEATHSIG = 1


class TrainerProcess:
    """Spawns a trainer (or, with `module="eval.run"`, an evaluator) in its own process group and
    streams its protocol lines.

    The process is killed if the worker dies (Linux parent-death signal), so a re-claimed job
    never has two trainers writing the same staging folder.
    """

    def __init__(self, spec_path: Path, log_path: Path, module: str = "trainers.run") -> None:
        self.log_path = log_path
        self._lines: queue.Queue[Any] = queue.Queue()
        with log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", module, "--spec", str(spec_path)],
                stdout=subprocess.PIPE,
                stderr=log,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        threading.Thread(target=self._read, daemon=True).start()

    def lines(self, tick: float) -> Iterator[dict[str, Any] | None]:
        """Protocol lines as they come; None every `tick` seconds of silence; ends at exit."""
        while True:
            try:
                line = self._lines.get(timeout=tick)
            except queue.Empty:
                yield None
                continue
            if line is _EOF:
                self.process.wait()
                return
            yield line

    def stop(self, grace: float = 10.0) -> None:
        """SIGTERM the whole process group, then SIGKILL it after `grace` seconds."""
        if self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(grace)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    @property
    def returncode(self) -> int | None:
        return self.process.returncode

    def failure_reason(self) -> str:
        """The trainer's last stderr line, which says why it failed (the log holds the rest)."""
        lines = self.log_path.read_text(errors="replace")[-4000:].strip().splitlines()
        return lines[-1] if lines else f"trainer exited with status {self.returncode}"

    def _read(self) -> None:
        assert self.process.stdout is not None
        for raw in self.process.stdout:
            try:
                self._lines.put(json.loads(raw))
            except json.JSONDecodeError:
                self._lines.put(
                    {
                        "type": "message",
                        "level": "info",
                        "message": raw.decode(errors="replace").strip(),
                    }
                )
        self._lines.put(_EOF)


def _die_with_parent() -> None:
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
