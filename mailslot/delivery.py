"""One-shot delivery (``mailslot deliver``, git hooks) and ``mailslot status``."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from filelock import FileLock, Timeout

from mailslot import ledger, store
from mailslot.engine import Engine, Policy, Report
from mailslot.mailroom import Mailroom, iter_agents, this_host
from mailslot.profiles import profile
from mailslot.tapper import Notifier


def deliver(
    room: Mailroom, notifier: Notifier, agents: list[str] | None = None, *, hook: str | None = None
) -> list[Report]:
    """Run passes until no other ``deliver`` asked for one meanwhile; commit; return the reports.

    Concurrent calls coalesce: one runs, the others leave a request and return at once. With
    ``hook``, every report is appended to ``.git/mailslot/hooks.log`` (hooks must not fail silently).
    """
    room.state_dir.mkdir(parents=True, exist_ok=True)
    again = room.state_dir / "deliver.again"
    lock = FileLock(str(room.state_dir / "deliver.lock"), timeout=0)
    try:
        lock.acquire()
    except Timeout:
        again.touch()
        return []
    reports: list[Report] = []
    try:
        engine = Engine(room, notifier, Policy.from_env())
        while True:
            again.unlink(missing_ok=True)
            reports = engine.run(agents)
            if not again.exists():
                break
    except Exception as e:
        if hook:
            _hook_log(room, hook, f"error: {type(e).__name__}: {e}")
        raise
    finally:
        lock.release()
    if hook:
        for r in reports:
            if r.outcome or r.rejected or r.archived:
                _hook_log(
                    room, hook, f"{r.agent}: {r.decision}; tap {r.outcome.result if r.outcome else '-'}"
                )
    return reports


def _hook_log(room: Mailroom, hook: str, line: str) -> None:
    with open(room.state_dir / "hooks.log", "a", encoding="utf-8") as fh:
        fh.write(f"{datetime.now(UTC):%Y-%m-%dT%H:%M:%SZ} {hook}: {line}\n")


def status(room: Mailroom, notifier: Notifier) -> list[dict[str, Any]]:
    """One row per agent: pane, detected state, unseen count, last tap, taps left in the budget."""
    data = ledger.snapshot(room)
    policy = Policy.from_env()
    now = time.time()
    host = this_host()
    rows = []
    for agent in iter_agents(room):
        unseen = sum(1 for s in store.scan_inbox(room, agent.name, seen=False) if isinstance(s, store.Stored))
        if not agent.pane:
            state = "no-pane"
        elif agent.host != host:
            state = f"on {agent.host}"
        else:
            state = notifier.state(agent.pane, agent.socket, profile(agent.program))
        info = data["agents"].get(agent.name, {})
        last = info.get("last") or {}
        recent = [t for t in info.get("taps", []) if now - t < ledger.HOUR]
        rows.append(
            {
                "agent": agent.name,
                "program": agent.program,
                "pane": agent.pane,
                "state": state,
                "unseen": unseen,
                "last_tap": datetime.fromtimestamp(last["at"], UTC).strftime("%H:%M:%S") if last else None,
                "last_result": last.get("result"),
                "taps_left": max(policy.budget - len(recent), 0),
            }
        )
    return rows
