"""The daemon's single-instance lock, importable without the daemon's dependencies."""

from __future__ import annotations

from filelock import FileLock, Timeout

from mailslot.mailroom import Mailroom


def daemon_lock(room: Mailroom) -> FileLock:
    """``.git/mailslot/daemon.lock``: held by the one ``mailslot watch`` of this clone."""
    room.state_dir.mkdir(parents=True, exist_ok=True)
    return FileLock(str(room.state_dir / "daemon.lock"), timeout=0)


def is_running(room: Mailroom) -> bool:
    """True if a daemon holds this mailroom's lock (checked without disturbing it)."""
    lock = daemon_lock(room)
    try:
        lock.acquire()
    except Timeout:
        return True
    lock.release()
    return False
