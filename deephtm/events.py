"""What the trainer tells its listeners. The CLI and the editor subscribe to the same events."""
from __future__ import annotations


class TrainerListener:
    """Override what you need; every method is a no-op by default. Called on the
    training thread: a GUI listener must forward to its own thread (Qt signals do)."""

    def on_start(self, info: dict) -> None:
        """info: steps, start_step, device, params, graph."""

    def on_log(self, step: int, metrics: dict[str, float]) -> None:
        """Every log_every steps: mean loss since the last report, metric values, steps_per_s."""

    def on_step(self, step: int, values: dict) -> None:
        """Every step, only when the listener sets wants_values; values maps
        (node, port) to detached tensors. Used by live views; costs time."""

    def on_checkpoint(self, step: int, path: str) -> None:
        pass

    def on_pause(self, step: int) -> None:
        """The loop is held after `step` steps (Trainer.request_pause or request_step)."""

    def on_resume(self, step: int) -> None:
        """The loop goes on after a hold."""

    def on_end(self, summary: dict) -> None:
        pass

    wants_values: bool = False
