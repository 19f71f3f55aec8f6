"""How often to draw a streaming reply: as often as possible while the UI stays cheap.

Every draw re-lays out the conversation. On a fast machine that costs nothing and the reply can
be drawn 30 times a second; on a Pi, or a laptop whose cores are busy, the same draws would take
time from the model itself. The pacer watches the UI thread's own CPU time and stretches or
shrinks the interval between draws so the UI spends about TARGET_SHARE of a core while text
streams.
"""

from __future__ import annotations

from dataclasses import dataclass

TARGET_SHARE = 0.04  # of one core: the engine keeps >= 95% of what it would have alone
MIN_INTERVAL_S = 1 / 30
MAX_INTERVAL_S = 0.5
START_INTERVAL_S = 0.1
WINDOW_S = 0.5  # how much history one adjustment looks at


@dataclass
class FramePacer:
    interval: float = START_INTERVAL_S
    _cpu_mark: float | None = None
    _wall_mark: float = 0.0

    def observe(self, cpu_time: float, wall_time: float) -> float:
        """Feed the UI thread's CPU clock and the wall clock; returns the interval to wait now."""
        if self._cpu_mark is None or wall_time < self._wall_mark:
            self._cpu_mark, self._wall_mark = cpu_time, wall_time
            return self.interval
        elapsed = wall_time - self._wall_mark
        if elapsed >= WINDOW_S:
            share = (cpu_time - self._cpu_mark) / elapsed
            # Proportional: twice the share we want means twice the interval (and the reverse).
            wanted = self.interval * max(share, 1e-6) / TARGET_SHARE
            self.interval = min(MAX_INTERVAL_S, max(MIN_INTERVAL_S, wanted))
            self._cpu_mark, self._wall_mark = cpu_time, wall_time
        return self.interval

    def pause(self) -> None:
        """A reply ended: idle time between replies must not count as cheap drawing."""
        self._cpu_mark = None
