"""Child processes that die with the process that started them (Linux `prctl(PR_SET_PDEATHSIG)`).

The control plane starts trainers, evaluators, serving backends and (in tests) Postgres. A crash
or SIGKILL of the parent (an OOM kill) must not leave them running as orphans that hold memory and
cores, and that a restarted service would start beside. The kernel sends the child `death_signal`
when the thread that started it ends, so they are started from long-lived threads only: the worker
thread, the API process's event loop.
"""

import ctypes
import signal
from collections.abc import Callable
from functools import partial

__all__ = ["dying_with_parent"]

_PR_SET_PDEATHSIG = 1  # prctl(2)


def dying_with_parent(death_signal: signal.Signals = signal.SIGKILL) -> Callable[[], None]:
    """A `preexec_fn` for `subprocess.Popen`: the child gets `death_signal` when its parent dies.

    Args:
        death_signal: SIGKILL for a process that holds nothing to clean up; SIGTERM for one that
            must stop children of its own (a launcher's ranks, vLLM's engine processes).
    """
    return partial(_set_death_signal, death_signal)


def _set_death_signal(death_signal: signal.Signals) -> None:
    # Runs in the child between fork and exec (after any switch of user), so it survives the exec.
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, death_signal)
