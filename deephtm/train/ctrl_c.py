"""Ctrl-C during `deephtm train`: the first press stops training at the end of the current
step (the Trainer then saves a checkpoint of a whole step, as on any stop); a second press
interrupts at once.

A flag rather than Python's default KeyboardInterrupt: the exception is raised wherever the
main thread happens to be, and where that is inside a finalizer or callback it is printed as
"Exception ignored" and lost, so training would go on. A flag cannot be lost.
"""
from __future__ import annotations

import signal

from ..events import TrainerListener


class StopOnCtrlC(TrainerListener):
    def __init__(self, trainer):
        self.trainer = trainer
        self.pressed = False
        self._previous = None

    def __enter__(self) -> "StopOnCtrlC":
        self.trainer.listeners.append(self)
        self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        signal.signal(signal.SIGINT, self._previous)
        self.trainer.listeners.remove(self)

    def _handle(self, signum, frame) -> None:
        self.pressed = True
        self.trainer.request_stop()
        signal.signal(signal.SIGINT, signal.default_int_handler)  # a second press interrupts at once

    def on_start(self, info: dict) -> None:
        if self.pressed:  # pressed before the loop began: run() clears earlier stop requests
            self.trainer.request_stop()
