"""Ctrl-C, SIGTERM and SIGHUP during `deephtm train`: the first signal stops training at the
end of the current step (the Trainer then saves a checkpoint of a whole step and a summary
marked interrupted, as on any stop); a second Ctrl-C interrupts at once.

SIGTERM is what a scheduler or `docker stop` sends, SIGHUP what a closed terminal sends: both
are handled like a first Ctrl-C, and the command exits with 128 + the signal's number.

A flag rather than Python's default KeyboardInterrupt: the exception is raised wherever the
main thread happens to be, and where that is inside a finalizer or callback it is printed as
"Exception ignored" and lost, so training would go on. A flag cannot be lost.
"""
from __future__ import annotations

import signal

from ..events import TrainerListener

STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name))


class StopOnCtrlC(TrainerListener):
    def __init__(self, trainer):
        self.trainer = trainer
        self.pressed = False
        self.signum: int | None = None  # the first stop signal received
        self._previous: dict[int, object] = {}

    def __enter__(self) -> "StopOnCtrlC":
        self.trainer.listeners.append(self)
        for sig in STOP_SIGNALS:
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)
        self.trainer.listeners.remove(self)

    @property
    def exit_code(self) -> int:
        return 128 + int(self.signum or signal.SIGINT)

    def _handle(self, signum, frame) -> None:
        self.pressed = True
        if self.signum is None:
            self.signum = signum
        self.trainer.request_stop()
        signal.signal(signal.SIGINT, signal.default_int_handler)  # a second Ctrl-C interrupts at once

    def on_start(self, info: dict) -> None:
        if self.pressed:  # pressed before the loop began: run() clears earlier stop requests
            self.trainer.request_stop()
