"""A notifier that records taps instead of typing them (for engine and daemon tests)."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from mailslot import tapline
from mailslot.profiles import Profile
from mailslot.tapper import Outcome


@dataclass
class Recorder:
    """Answers every tap with ``result`` (``submitted`` by default) and remembers the lines."""

    result: str = "submitted"
    lines: list[str] = field(default_factory=list)
    panes: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def tap(self, pane: str, sock: str | None, prof: Profile, line: str, *, urgent: bool) -> Outcome:
        tapline.check(line)
        typed = self.result in ("submitted", "unverified", "aborted")
        with self.lock:
            if typed:
                self.lines.append(line)
                self.panes.append(pane)
        return Outcome(self.result, typed)

    def state(self, pane: str, sock: str | None, prof: Profile) -> str:
        return "idle"

    @property
    def count(self) -> int:
        with self.lock:
            return len(self.lines)
