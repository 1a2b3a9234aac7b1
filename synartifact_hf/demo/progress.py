"""The demo's step headers: ``[3/7] Fine-tune ... (0:42 elapsed)`` and each step's duration.

The long steps draw their own tqdm bars (dataset build, "Classifying", the SFTTrainer, "DDPO epochs");
these headers say which step runs and how long the demo has taken, and the durations go in the index.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

__all__ = ["StepClock"]


def _clock(seconds: float) -> str:
    minutes, seconds = divmod(int(round(seconds)), 60)
    return f"{minutes}:{seconds:02d}"


@dataclass
class StepClock:
    """Prints a header per step and records ``(title, seconds)`` for each finished step."""

    total: int
    started: float = field(default_factory=time.perf_counter)
    durations: list[tuple[str, float]] = field(default_factory=list)
    _current: tuple[str, float] | None = None

    def step(self, title: str) -> None:
        """Close the running step and open the next one."""
        self.finish()
        now = time.perf_counter()
        number = len(self.durations) + 1
        header = f"[{number}/{self.total}] {title}"
        print(f"\n=== {header} " + "=" * max(0, 70 - len(header)) + f" ({_clock(now - self.started)} elapsed)",
              flush=True)
        self._current = (title, now)

    def skip(self, title: str, reason: str) -> None:
        """A step that does not run (e.g. fine-tuning with a real checkpoint unless asked)."""
        self.finish()
        number = len(self.durations) + 1
        print(f"\n=== [{number}/{self.total}] {title}: skipped ({reason})", flush=True)
        self.durations.append((f"{title} (skipped)", 0.0))

    def finish(self) -> None:
        if self._current is not None:
            title, since = self._current
            self.durations.append((title, time.perf_counter() - since))
            self._current = None

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.started
