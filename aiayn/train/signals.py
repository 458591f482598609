"""Graceful stop on SIGTERM and SIGINT (Ctrl-C): finish the step, save, exit non-zero.

Colab, Slurm and ``kill`` send SIGTERM before killing a job; Ctrl-C sends SIGINT. Inside
:class:`StopRequest` both only set a flag: the training loop checks it after every optimizer
step, writes a checkpoint and exits with ``128 + signal number`` (143 for SIGTERM, 130 for
SIGINT). A second Ctrl-C aborts at once, without saving, except in torchrun workers: there
Ctrl-C reaches each worker twice (from the terminal and forwarded by torchrun), so repeats
are ignored.
"""

from __future__ import annotations

import signal
import sys
import threading


class StopRequest:
    """Context manager that turns SIGINT/SIGTERM into a flag (``signum``)."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self, verbose: bool = True, abort_on_repeat: bool = True):
        self.signum: int | None = None
        self.verbose = verbose
        self.abort_on_repeat = abort_on_repeat
        self._old: dict = {}

    @property
    def requested(self) -> bool:
        return self.signum is not None

    @property
    def exit_code(self) -> int:
        return 128 + (self.signum or 0)

    def _handle(self, signum, _frame) -> None:
        if self.signum is not None:
            if self.abort_on_repeat and signum == signal.SIGINT:
                raise KeyboardInterrupt  # second Ctrl-C: abort without saving
            return
        self.signum = signum
        if self.verbose:
            name = signal.Signals(signum).name
            print(
                f"\n{name} received: saving a checkpoint after this step "
                + ("(Ctrl-C again to abort without saving)" if self.abort_on_repeat else ""),
                file=sys.stderr,
                flush=True,
            )

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():
            self._old = {s: signal.signal(s, self._handle) for s in self.SIGNALS}
        return self

    def __exit__(self, *exc) -> None:
        for s, h in self._old.items():
            signal.signal(s, h)
        self._old = {}
