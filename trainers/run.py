"""Run one fine-tuning job as a trainer process (`docs/trainer-protocol.md`).

    python -m trainers.run --spec /data/store/<tenant>/<lineage>/v<N>.partial/spec.json

Protocol lines go to the real stdout; everything libraries print goes to stderr. Exit status 0
means the artifact in the spec's `output_dir` is complete; otherwise the last stderr line says
what went wrong.
"""

import argparse
import ctypes
import os
import signal
import sys
import traceback
from pathlib import Path
from typing import TextIO

from trainers.contracts.job import JobSpec, SpecError
from trainers.progress import Progress

__all__ = ["main"]

_PR_SET_PDEATHSIG = 1  # prctl(2)


def main(argv: list[str] | None = None) -> int:
    """Parse the arguments, run the job, return the exit status."""
    parser = argparse.ArgumentParser(prog="python -m trainers.run", description=__doc__.splitlines()[0])
    parser.add_argument("--spec", type=Path, required=True, help="path of the job's spec.json")
    args = parser.parse_args(argv)

    _die_with_parent()
    protocol = _protocol_stream()
    progress = Progress(protocol if int(os.environ.get("RANK", "0")) == 0 else None)
    try:
        spec = JobSpec.load(args.spec)
    except SpecError as error:
        return _fail(f"invalid spec: {error}", status=2)
    _quiet_progress_bars()
    from trainers.loop import run_job  # torch and friends: imported after stdout is redirected

    try:
        run_job(spec, progress)
    except Exception as error:
        traceback.print_exc()
        return _fail(f"training failed: {type(error).__name__}: {error}")
    return 0


def _die_with_parent() -> None:
    """Ask the kernel for SIGKILL when the process that started this one dies.

    The worker sets the same on the process it starts, but under a launcher (torchrun) the
    ranks are the worker's grandchildren in sessions of their own: a worker killed with SIGKILL
    takes the launcher down, and nothing would reach the ranks. (A rank whose launcher died
    before this call cannot join the others: the rendezvous store lived in the launcher.)
    """
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def _protocol_stream() -> TextIO:
    """Keep the real stdout for protocol lines and point fd 1 (and sys.stdout) at stderr."""
    sys.stdout.flush()
    protocol = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    return protocol


def _quiet_progress_bars() -> None:
    # Bars of datasets and transformers would fill the job's log (stderr) with redraws.
    import datasets
    import transformers

    datasets.disable_progress_bars()
    transformers.utils.logging.disable_progress_bar()


def _fail(message: str, status: int = 1) -> int:
    # One line: the worker reports the log's last line as the job's error message.
    print(" ".join(message.split()), file=sys.stderr, flush=True)
    return status


if __name__ == "__main__":
    status = main()
    sys.stdout.flush()
    sys.stderr.flush()
    # Every artifact file is written and closed by now. Skip the interpreter's teardown of
    # torch, peft and DeepSpeed modules: ~1 s on 2 CPU cores that the worker would wait for.
    os._exit(status)
