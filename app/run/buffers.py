"""Bounded buffers for live plots: memory stays flat however long a run lasts."""
from __future__ import annotations

import numpy as np


class Ring:
    """The last `capacity` rows of a stream (steps plus values of a fixed shape)."""

    def __init__(self, capacity: int, row_shape: tuple = (), dtype=np.float32):
        self.capacity = int(capacity)
        self.steps = np.zeros(self.capacity, dtype=np.int64)
        self.rows = np.zeros((self.capacity,) + tuple(row_shape), dtype=dtype)
        self.count = 0  # rows written in total
        self.head = 0  # where the next row goes

    def __len__(self) -> int:
        return min(self.count, self.capacity)

    def extend(self, steps, rows) -> None:
        steps = np.asarray(steps)
        rows = np.asarray(rows)
        n = len(steps)
        if n == 0:
            return
        want = (n,) + self.rows.shape[1:]
        if rows.shape != want:
            # a one-value port arrives as [n], a ring of rows of one as [n, 1]: the same values
            if rows.size != int(np.prod(want)):
                raise ValueError(f"{n} rows of shape {list(rows.shape[1:])} do not fit rows of "
                                 f"shape {list(self.rows.shape[1:])}")
            rows = rows.reshape(want)
        if n > self.capacity:  # only the newest rows can survive
            steps, rows, n = steps[-self.capacity:], rows[-self.capacity:], self.capacity
        first = min(n, self.capacity - self.head)
        self.steps[self.head:self.head + first] = steps[:first]
        self.rows[self.head:self.head + first] = rows[:first]
        if first < n:
            self.steps[:n - first] = steps[first:]
            self.rows[:n - first] = rows[first:]
        self.head = (self.head + n) % self.capacity
        self.count += n

    def view(self) -> tuple[np.ndarray, np.ndarray]:
        """(steps, rows), oldest first (copies)."""
        if self.count < self.capacity:
            return self.steps[:self.count].copy(), self.rows[:self.count].copy()
        order = np.r_[self.head:self.capacity, 0:self.head]
        return self.steps[order], self.rows[order]

    def clear(self) -> None:
        self.count = 0
        self.head = 0


class DecimatingSeries:
    """A whole run's curve in at most `capacity` points: when full, every other point is
    dropped and from then on only every `stride`-th new point is kept."""

    def __init__(self, capacity: int = 2048):
        self.capacity = int(capacity) - int(capacity) % 2
        self.x = np.zeros(self.capacity, dtype=np.float64)
        self.y = np.zeros(self.capacity, dtype=np.float64)
        self.n = 0
        self.stride = 1
        self.seen = 0  # points offered since the last halving

    def append(self, x: float, y: float) -> None:
        self.seen += 1
        if (self.seen - 1) % self.stride:
            return
        if self.n == self.capacity:
            half = self.capacity // 2
            self.x[:half] = self.x[0::2]
            self.y[:half] = self.y[0::2]
            self.n = half
            self.stride *= 2
            self.seen = 1
        self.x[self.n] = x
        self.y[self.n] = y
        self.n += 1

    def view(self) -> tuple[np.ndarray, np.ndarray]:
        return self.x[:self.n], self.y[:self.n]

    def clear(self) -> None:
        self.n = 0
        self.stride = 1
        self.seen = 0
