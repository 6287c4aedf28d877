"""The CLI's progress bar: a trainer listener drawing tqdm on stderr."""
from __future__ import annotations

from ..events import TrainerListener


class ProgressListener(TrainerListener):
    """Progress bar with step, steps/s, loss, the main metric and ETA (tqdm, on stderr)."""

    def __init__(self, main_metric: str | None = None):
        self.bar = None
        self.main_metric = main_metric

    def on_start(self, info):
        from tqdm import tqdm

        self.bar = tqdm(total=info["steps"], initial=info["start_step"], unit="step", dynamic_ncols=True)

    def on_log(self, step, metrics):
        if self.bar is None:
            return
        self.bar.update(step - self.bar.n)
        shown = {"loss": f"{metrics['loss']:.4g}"} if "loss" in metrics else {}
        for k, v in metrics.items():
            if k not in ("loss", "steps_per_s") and (self.main_metric in (None, "", k)):
                shown[k] = f"{v:.4g}"
                break
        self.bar.set_postfix(shown, refresh=False)

    def on_end(self, summary):
        if self.bar is not None:
            self.bar.close()
            self.bar = None
