"""One trainer or evaluator process (`python -m trainers.run|trainers.evaluate --spec …`) and its JSON lines.

A trainer of several processes runs under torchrun (`python -m torch.distributed.run`), which
starts one rank per process and stops them all when one fails; rank 0 writes the protocol lines.
The command is built here without importing torch (the control plane never does).
"""

import os
import queue
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from service.child_processes import dying_with_parent
from trainers.contracts.lines import Line, Message, ProtocolError, parse_line

_EOF = object()


class TrainerProcess:
    """Spawns a trainer (or, with `module="trainers.evaluate"`, an evaluator) in its own process group and
    streams its protocol lines.

    The process is killed if the worker dies (Linux parent-death signal), so a re-claimed job
    never has two trainers writing the same staging folder. Under torchrun the ranks run in
    sessions of their own, out of reach of the group's signals: the launcher gets SIGTERM
    instead, on cancel (`stop`) as on the worker's death, and passes it on to every rank; and
    each rank asks for SIGKILL on its launcher's death (`trainers.run`), should the launcher
    itself be killed.

    Args:
        spec_path: The job's spec.json.
        log_path: Where stderr goes (appended): of the process, or of the launcher and all ranks.
        module: `trainers.run` or `trainers.evaluate`.
        processes: Ranks to launch; 1 runs the module directly, without a launcher.
        threads: CPU threads of each process (`OMP_NUM_THREADS`); None leaves torch's default,
            every core for one process (torchrun gives each of several one thread).
        offline: No hub access (`HF_HUB_OFFLINE`): nothing is downloaded that an operator did not
            allow (`NEUROPLAST_HUB_MODELS`).
    """

    def __init__(
        self,
        spec_path: Path,
        log_path: Path,
        module: str = "trainers.run",
        processes: int = 1,
        threads: int | None = None,
        offline: bool = True,
    ) -> None:
        self.log_path = log_path
        self.processes = processes
        self._lines: queue.Queue[Any] = queue.Queue()
        with log_path.open("ab") as log:
            self.process = subprocess.Popen(
                launch_command(module, spec_path, processes),
                stdout=subprocess.PIPE,
                stderr=log,
                stdin=subprocess.DEVNULL,
                env={
                    **os.environ,
                    **({"OMP_NUM_THREADS": str(threads)} if threads else {}),
                    **({"HF_HUB_OFFLINE": "1"} if offline else {}),
                },
                start_new_session=True,
                preexec_fn=dying_with_parent(signal.SIGTERM if processes > 1 else signal.SIGKILL),
            )
        threading.Thread(target=self._read, daemon=True).start()

    def lines(self, tick: float) -> Iterator[Line | None]:
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
        """The trainer's last stderr line, which says why it failed (the log holds the rest).

        Under torchrun the failed rank's line comes before the launcher's own report (its log
        lines, then a `ChildFailedError` traceback), which is left out.
        """
        lines = self.log_path.read_text(errors="replace")[-20000:].strip().splitlines()
        if self.processes > 1:
            lines = _before_launcher_report(lines, self.process.pid)
        return lines[-1] if lines else f"trainer exited with status {self.returncode}"

    def _read(self) -> None:
        assert self.process.stdout is not None
        for raw in self.process.stdout:
            try:
                self._lines.put(parse_line(raw))
            except ProtocolError as error:  # a trainer bug: tell the user, keep reading
                self._lines.put(Message(str(error), level="warn"))
        self._lines.put(_EOF)


def launch_command(module: str, spec_path: Path, processes: int) -> list[str]:
    """The command line of a trainer (or evaluator) of `processes` ranks on this machine.

    `--standalone` gives each job a rendezvous on a free local port, so jobs of several workers
    on one machine never meet; torchrun sets RANK, WORLD_SIZE and LOCAL_RANK for each rank.
    """
    command = ["-m", module, "--spec", str(spec_path)]
    if processes == 1:
        return [sys.executable, *command]
    launcher = ["-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={processes}"]
    return [sys.executable, *launcher, *command]


def _before_launcher_report(lines: list[str], launcher_pid: int) -> list[str]:
    """The log's lines without what torchrun writes after a rank failed."""
    if any("ChildFailedError" in line for line in lines[-60:]):
        tracebacks = [i for i, line in enumerate(lines) if line.startswith("Traceback (most recent call")]
        lines = lines[: tracebacks[-1]] if tracebacks else lines
    # Its log lines: glog format with its pid, e.g. "E1128 11:46:15.179000 28632 …/api.py:1002] failed …"
    launcher_line = re.compile(rf"[IWEF]\d{{4}} [\d:.]+ {launcher_pid} ")
    while lines and launcher_line.match(lines[-1]):
        lines.pop()
    return lines
