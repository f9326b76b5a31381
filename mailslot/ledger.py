"""The tap ledger: which taps were made, local to one clone and never committed.

It lives in ``.git/mailslot/ledger.json`` and is read and written under ``ledger.lock``, so the
daemon and ``mailslot deliver`` run from hooks share one memory: a restarted daemon neither repeats
a tap already made nor forgets a pending one. Every tap attempt is also appended to ``taps.log``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from filelock import FileLock

from mailslot.fsutil import atomic_write
from mailslot.mailroom import Mailroom

HOUR = 3600.0


@contextmanager
def locked(room: Mailroom) -> Iterator[dict[str, Any]]:
    """Yield the ledger as a dict under the ledger lock; changes are saved atomically on exit."""
    room.state_dir.mkdir(parents=True, exist_ok=True)
    with FileLock(str(room.state_dir / "ledger.lock"), timeout=30):
        path = room.state_dir / "ledger.json"
        try:
            data = json.loads(path.read_bytes())
        except (FileNotFoundError, ValueError):
            data = {}
        data.setdefault("agents", {})
        before = json.dumps(data, sort_keys=True)
        yield data
        after = json.dumps(data, sort_keys=True)
        if after != before:
            atomic_write(path, after.encode(), fsync=False)


def snapshot(room: Mailroom) -> dict[str, Any]:
    """A read-only copy of the ledger (for ``status``)."""
    try:
        data: dict[str, Any] = json.loads((room.state_dir / "ledger.json").read_bytes())
    except (FileNotFoundError, ValueError):
        data = {}
    data.setdefault("agents", {})
    return data


def agent_state(data: dict[str, Any], agent: str) -> dict[str, Any]:
    state: dict[str, Any] = data["agents"].setdefault(agent, {})
    state.setdefault("taps", [])
    state.setdefault("outstanding", None)
    state.setdefault("threads", {})
    return state


def prune(state: dict[str, Any], now: float) -> None:
    """Forget taps older than an hour (the budget window) and expired thread cool-downs."""
    state["taps"] = [t for t in state["taps"] if now - t < HOUR]
    state["threads"] = {
        t: v
        for t, v in state["threads"].items()
        if now - max([*v.get("taps", [0]), v.get("until", 0)]) < HOUR
    }


def log(room: Mailroom, record: dict[str, Any]) -> None:
    """Append one tap attempt to ``taps.log`` (JSON lines)."""
    room.state_dir.mkdir(parents=True, exist_ok=True)
    with open(room.state_dir / "taps.log", "a", encoding="utf-8") as fh:
        fh.write(json.dumps({"at": round(time.time(), 3), **record}, sort_keys=True) + "\n")


def read_log(room: Mailroom) -> list[dict[str, Any]]:
    try:
        lines = (room.state_dir / "taps.log").read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return []
    out = []
    for line in lines:
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
    return out
