"""The pending-change journal: what a process changed, waiting for the next group commit.

Each mutation drops one small JSON entry under ``.git/mailslot/journal/`` naming the paths it
touched and a one-line summary. Whoever holds the git lock commits the union of all entries and
removes them (see :mod:`mailslot.vcs`). Entries are written atomically; a crash leaves either a
whole entry or none, and replaying an entry whose paths are already committed is harmless.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

from mailslot.fsutil import atomic_write
from mailslot.mailroom import Mailroom


@dataclass(frozen=True)
class Entry:
    path: Path
    paths: tuple[str, ...]
    summary: str
    author: str


def _dir(room: Mailroom) -> Path:
    return room.state_dir / "journal"


def record(
    room: Mailroom, paths: list[str] | tuple[str, ...], summary: str, author: str = "mailslot"
) -> Path:
    """Add an entry for ``paths`` (relative to the root) and return it. Safe from any number of processes.

    The entry exists until a commit includes it, so a caller can tell when its change is committed.
    """
    folder = _dir(room)
    folder.mkdir(parents=True, exist_ok=True)
    name = f"{time.time_ns():020d}-{os.getpid()}-{os.urandom(3).hex()}.json"
    data = json.dumps({"paths": list(paths), "summary": summary, "author": author})
    atomic_write(folder / name, data.encode(), fsync=False)
    global newest
    newest = folder / name
    return folder / name


# This process's newest entry: once a commit has taken it, it has taken all older ones too.
newest: Path | None = None


def pending(room: Mailroom) -> list[Entry]:
    """All entries, oldest first; unreadable ones are returned with no paths (and so dropped)."""
    folder = _dir(room)
    try:
        files = sorted(p for p in folder.iterdir() if p.suffix == ".json" and not p.name.startswith("."))
    except FileNotFoundError:
        return []
    entries = []
    for path in files:
        try:
            data = json.loads(path.read_bytes())
            entries.append(Entry(path, tuple(data["paths"]), str(data["summary"]), str(data["author"])))
        except FileNotFoundError:
            continue
        except (ValueError, KeyError, TypeError):
            entries.append(Entry(path, (), "", ""))
    return entries


def drop(entries: list[Entry]) -> None:
    for entry in entries:
        entry.path.unlink(missing_ok=True)
