"""The sampler lives in deephtm: it runs wherever the trainer runs (a thread or a process)."""
from deephtm.live_sampler import CLONE_BYTES, Sampler  # noqa: F401
