"""Simulated time: wall-clock based, running ``speed`` times faster, advanceable by tests."""

from __future__ import annotations

import threading
import time


class SimClock:
    """Seconds since the epoch as the simulated cloud sees them."""

    def __init__(self, speed: float = 1.0) -> None:
        if speed <= 0:
            raise ValueError("speed must be positive")
        self.speed = speed
        self._wall0 = time.time()
        self._mono0 = time.monotonic()
        self._offset = 0.0
        self._lock = threading.Lock()

    def now(self) -> float:
        """Current simulated time."""
        with self._lock:
            return self._wall0 + (time.monotonic() - self._mono0) * self.speed + self._offset

    def advance(self, seconds: float) -> None:
        """Jump simulated time forward (lab control)."""
        with self._lock:
            self._offset += max(0.0, seconds)

    def real_seconds(self, sim_seconds: float) -> float:
        """How long ``sim_seconds`` of simulated time last in real time."""
        return sim_seconds / self.speed
