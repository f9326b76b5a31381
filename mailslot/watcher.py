"""Filesystem events from watchdog (inotify): the only module that imports watchdog.

Reports which agents' ``new/`` received a file (created, moved in, or closed after writing) and
whether agent cards changed. A rename from the unwatched ``tmp/`` arrives as a created event.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer

ALL = "*"  # "look at every agent" (an agent card changed)


class _Handler(FileSystemEventHandler):
    def __init__(self, root: Path, notify: Callable[[str], None]) -> None:
        self.root = root
        self.notify = notify

    def _path(self, path: str | bytes) -> None:
        text = path.decode(errors="replace") if isinstance(path, bytes) else path
        try:
            parts = Path(text).relative_to(self.root).parts
        except ValueError:
            return
        if len(parts) == 4 and parts[0] == "inbox" and parts[2] == "new" and not parts[3].startswith("."):
            self.notify(parts[1])
        elif len(parts) == 2 and parts[0] == "agents":
            self.notify(ALL)

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.is_directory:
            return
        if event.event_type in ("created", "closed"):
            self._path(event.src_path)
        elif event.event_type == "moved":
            self._path(event.dest_path)


class Watcher:
    """Watches ``inbox/`` and ``agents/`` of a mailroom; calls ``notify(agent or ALL)`` per event."""

    def __init__(self, root: Path, notify: Callable[[str], None]) -> None:
        self.observer = Observer()
        handler = _Handler(root, notify)
        for sub in ("inbox", "agents"):
            (root / sub).mkdir(exist_ok=True)
            self.observer.schedule(handler, str(root / sub), recursive=True)

    def start(self) -> None:
        self.observer.start()

    def stop(self) -> None:
        self.observer.stop()
        self.observer.join(timeout=5)
