"""The delivery engine: which agent to tap, when, and remembering it (spec/protocol.md, "Taps").

A *pass* looks at agents' unseen mail and taps each agent that needs it. Policy, per agent:
- a tap covers all of the agent's unseen mail; it is *outstanding* until that mail is seen;
- while outstanding, no new tap, except: the re-tap after a backoff (doubling), or new urgent mail;
- mail of a closed thread never taps (it is moved to the archive instead);
- at most ``budget`` taps per hour; a thread that caused ``loop_taps`` taps within ``loop_window``
  cools down (its mail stays stored, it just stops tapping).
A tap is *claimed* in the ledger before typing and settled after, all under the ledger lock, so
the daemon and ``mailslot deliver`` in hooks never double-tap; a claim left by a killed process is
recovered from the pane itself (is the nonce there?).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from filelock import FileLock, Timeout

from mailslot import journal, ledger, store, tapline
from mailslot.fsutil import move_noclobber
from mailslot.mailroom import Agent, Mailroom, iter_agents, this_host
from mailslot.profiles import profile
from mailslot.tapper import Notifier, Outcome

GATED_RETRY = 1.0  # a tap blocked by a busy agent, a draft or a dialog is tried again this soon,
GATED_RETRY_MAX = 15.0  # doubling while the same block persists, up to this


@dataclass(frozen=True)
class Policy:
    """Tap timing and budgets, in seconds; ``from_env`` reads ``MAILSLOT_*`` overrides."""

    retap_after: float = 120.0
    retap_max: float = 1800.0
    budget: int = 30
    loop_taps: int = 8
    loop_window: float = 600.0
    loop_cooldown: float = 900.0

    @classmethod
    def from_env(cls) -> Policy:
        env = os.environ
        return cls(
            retap_after=float(env.get("MAILSLOT_RETAP_SECONDS", cls.retap_after)),
            budget=int(env.get("MAILSLOT_TAP_BUDGET", cls.budget)),
            loop_taps=int(env.get("MAILSLOT_LOOP_TAPS", cls.loop_taps)),
        )


@dataclass(frozen=True)
class Pending:
    id: str
    thread: str
    sender: str
    urgent: bool


@dataclass(frozen=True)
class Decision:
    tap: bool
    reason: str
    mail: tuple[Pending, ...] = ()
    count: int = 1
    wait: float | None = None  # when a waiting decision may change by itself

    @property
    def urgent(self) -> bool:
        return any(p.urgent for p in self.mail)


@dataclass
class Report:
    """What a pass did for one agent."""

    agent: str
    unseen: int
    decision: str
    outcome: Outcome | None = None
    retry_in: float | None = None
    repeated: bool = False  # the same gate blocked this agent's tap last time too
    archived: list[str] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)


def decide(state: dict[str, Any], unseen: list[Pending], now: float, policy: Policy) -> Decision:
    """Pure policy: should this agent be tapped now, given its ledger state and unseen mail?"""
    ids = {p.id for p in unseen}
    out = state.get("outstanding")
    if not ids:
        return Decision(False, "no unseen mail")
    cooling = {t for t, v in state["threads"].items() if v.get("until", 0) > now}
    mail = tuple(p for p in unseen if p.thread not in cooling)
    if not mail:
        return Decision(False, "loop breaker: thread cooling down")
    count = 1
    if out and set(out["ids"]) & ids:
        if out.get("phase") == "typing":
            return Decision(False, "tap in flight")
        new_urgent = any(p.urgent and p.id not in out["ids"] for p in mail)
        due = out["at"] + min(policy.retap_after * 2 ** (out["count"] - 1), policy.retap_max)
        if not new_urgent and now < due:
            return Decision(
                False, f"waiting for the agent to read (re-tap in {due - now:.0f}s)", wait=due - now
            )
        count = 1 if new_urgent else out["count"] + 1
    if len(state["taps"]) >= policy.budget:
        wait = min(state["taps"]) + ledger.HOUR - now
        return Decision(False, f"budget of {policy.budget} taps per hour used", wait=wait)
    return Decision(True, "re-tap" if count > 1 else "new mail", mail, count)


def _tap_record(decision: Decision, nonce: str, at: float, **more: Any) -> dict[str, Any]:
    """The ledger's record of an outstanding tap: claimed (``phase: typing``) or made (``done``)."""
    return {"ids": [p.id for p in decision.mail], "at": at, "nonce": nonce, "count": decision.count, **more}


def _sooner(a: float | None, b: float | None) -> float | None:
    return b if a is None else a if b is None else min(a, b)


def _pane_lock(room: Mailroom, agent: Agent) -> FileLock:
    folder = room.state_dir / "panes"
    folder.mkdir(parents=True, exist_ok=True)
    key = f"{agent.socket or 'default'}{agent.pane}".replace("/", "_").replace("%", "p")[-120:]
    return FileLock(str(folder / f"{key}.lock"), timeout=0)


class Engine:
    """Runs passes over a mailroom with a notifier (real tmux, or a recorder in tests)."""

    def __init__(self, room: Mailroom, notifier: Notifier, policy: Policy | None = None) -> None:
        self.room = room
        self.notifier = notifier
        self.policy = policy or Policy.from_env()
        self.host = this_host()
        self._journaled: dict[str, set[str]] = {}
        self._blocked: dict[str, tuple[str | None, int]] = {}  # agent -> (gate result, repeats)

    # --- mail on disk -------------------------------------------------------------------------

    def collect(self, agent: str) -> tuple[list[Pending], Report]:
        """Validate an inbox's new/ mail: quarantine bad files, archive closed-thread mail, journal
        files never seen before (hand-written or pulled) so they get committed."""
        report = Report(agent, 0, "")
        unseen: list[Pending] = []
        known = self._journaled.get(agent, set())
        current: set[str] = set()
        for item in store.scan_inbox(self.room, agent, seen=False):
            if isinstance(item, store.Problem):
                if item.reason != "vanished":
                    landed = store.quarantine(self.room, item)
                    if landed is not None:
                        report.rejected.append(f"{self.room.rel(item.path)}: {item.reason}")
                    else:
                        report.retry_in = store.GRACE_SECONDS
                continue
            msg = item.message
            rel = self.room.rel(item.path)
            if self.room.is_closed(msg.thread):
                self._archive_late(item)
                report.archived.append(rel)
                continue
            current.add(rel)
            if rel not in known:
                journal.record(self.room, [rel], store.summary(msg), msg.sender)
            unseen.append(Pending(msg.id, msg.thread, msg.sender, msg.urgent))
        self._journaled[agent] = current  # files that left new/ are forgotten: the set stays small
        report.unseen = len(unseen)
        return unseen, report

    def _archive_late(self, item: store.Stored) -> None:
        target = self.room.archive_dir(item.message.thread)
        have = {
            s.message.id
            for s in store.iter_archive(self.room, item.message.thread)
            if isinstance(s, store.Stored)
        }
        paths = [self.room.rel(item.path)]
        if item.message.id in have:
            item.path.unlink(missing_ok=True)
        else:
            try:
                paths.append(self.room.rel(move_noclobber(item.path, target / item.path.name)))
            except FileNotFoundError:
                return
        journal.record(
            self.room, paths, f"close: archive late mail {item.message.id} of closed {item.message.thread}"
        )

    # --- one agent ----------------------------------------------------------------------------

    def run_agent(self, agent: Agent, now: float | None = None) -> Report:
        """Collect, decide, and (maybe) tap one agent. Safe against concurrent passes."""
        unseen, report = self.collect(agent.name)
        if not agent.pane or agent.host != self.host:
            report.decision = "no pane on this host: stored, not tapped"
            return report
        lock = _pane_lock(self.room, agent)
        try:
            lock.acquire()
        except Timeout:
            report.decision = "a tap into this pane is in flight"
            report.retry_in = GATED_RETRY
            return report
        try:
            return self._run_locked(agent, unseen, report, now)
        finally:
            lock.release()

    def _recover(self, agent: Agent, out: dict[str, Any]) -> bool:
        """A claim left by a killed tapper: True if its tap reached the agent."""
        from mailslot import tmux

        lines = tmux.capture(agent.pane or "", agent.socket) or []
        nonce = "#" + str(out.get("nonce", ""))
        if not any(nonce in line for line in lines):
            return False
        prof = profile(agent.program)
        from mailslot.profiles import read_screen

        screen = read_screen(prof, lines)
        if (
            screen.box is not None
            and nonce in screen.box
            and prof.is_agent_process(tmux.probe(agent.pane or "", agent.socket).command)
        ):
            tmux.send_enter(agent.pane or "", agent.socket)
        return True

    def _run_locked(self, agent: Agent, unseen: list[Pending], report: Report, now: float | None) -> Report:
        now = time.time() if now is None else now
        with ledger.locked(self.room) as data:
            state = ledger.agent_state(data, agent.name)
            stale = state["outstanding"] if (state["outstanding"] or {}).get("phase") == "typing" else None
        if stale is not None:  # we hold the pane lock, so whoever claimed this is gone
            reached = self._recover(agent, stale)
            with ledger.locked(self.room) as data:
                state = ledger.agent_state(data, agent.name)
                if reached:
                    state["outstanding"] = {**stale, "phase": "done", "outcome": "recovered"}
                else:
                    state["outstanding"] = stale.get("previous")
            ledger.log(
                self.room,
                {
                    "agent": agent.name,
                    "pane": agent.pane,
                    "nonce": stale.get("nonce"),
                    "result": "recovered" if reached else "lost-claim",
                    "typed": reached,
                },
            )
        with ledger.locked(self.room) as data:
            state = ledger.agent_state(data, agent.name)
            ledger.prune(state, now)
            decision = decide(state, unseen, now, self.policy)
            if not unseen:
                state["outstanding"] = None
            report.decision = decision.reason
            if not decision.tap:
                report.retry_in = _sooner(report.retry_in, decision.wait)
                return report
            nonce = tapline.new_nonce()
            previous = state["outstanding"]
            state["outstanding"] = _tap_record(
                decision, nonce, now, phase="typing", pid=os.getpid(), previous=previous
            )
        line = tapline.build(
            agent.name, len(decision.mail), [p.sender for p in decision.mail], nonce, urgent=decision.urgent
        )
        started = time.monotonic()
        outcome = self.notifier.tap(
            agent.pane or "", agent.socket, profile(agent.program), line, urgent=decision.urgent
        )
        report.outcome = outcome
        if not outcome.typed or outcome.result in ("gone", "aborted"):
            streak = self._blocked.get(agent.name, (None, 0))
            count = streak[1] + 1 if streak[0] == outcome.result else 0
            self._blocked[agent.name] = (outcome.result, count)
            report.retry_in = _sooner(report.retry_in, min(GATED_RETRY * 2**count, GATED_RETRY_MAX))
            report.repeated = count > 0
        else:
            self._blocked.pop(agent.name, None)
        # the backoff counts from when the tap was made, not from when it was claimed
        done = now + time.monotonic() - started
        self._settle(agent, decision, nonce, previous, outcome, done, log=not report.repeated)
        return report

    def _settle(
        self,
        agent: Agent,
        decision: Decision,
        nonce: str,
        previous: Any,
        outcome: Outcome,
        now: float,
        *,
        log: bool = True,
    ) -> None:
        """Record a tap's outcome in the ledger (and, unless a repeat of the same block, taps.log)."""
        # a tap into a pane that vanished, or whose Enter was withheld, reached no one
        reached = outcome.typed and outcome.result not in ("gone", "aborted")
        with ledger.locked(self.room) as data:
            state = ledger.agent_state(data, agent.name)
            if reached:
                state["outstanding"] = _tap_record(decision, nonce, now, phase="done", outcome=outcome.result)
                state["taps"].append(now)
                for thread in {p.thread for p in decision.mail}:
                    info = state["threads"].setdefault(thread, {"taps": []})
                    info["taps"] = [t for t in info["taps"] if now - t < self.policy.loop_window] + [now]
                    if len(info["taps"]) >= self.policy.loop_taps:
                        info["until"] = now + self.policy.loop_cooldown
            else:
                state["outstanding"] = previous
            state["last"] = {"at": now, "result": outcome.result, "nonce": nonce, "detail": outcome.detail}
        if not log:
            return
        ledger.log(
            self.room,
            {
                "agent": agent.name,
                "pane": agent.pane,
                "socket": agent.socket,
                "nonce": nonce,
                "ids": [p.id for p in decision.mail],
                "result": outcome.result,
                "typed": outcome.typed,
                "enters": outcome.enters,
                "detail": outcome.detail,
                "count": decision.count,
            },
        )

    # --- passes -------------------------------------------------------------------------------

    def run(self, agents: Iterable[str] | None = None) -> list[Report]:
        """One pass over ``agents`` (default: every agent with an inbox); commits what it changed."""
        cards = {a.name: a for a in iter_agents(self.room)}
        wanted = (
            list(agents) if agents is not None else sorted(set(store.iter_inboxes(self.room)) | set(cards))
        )
        reports = []
        for name in wanted:
            card = cards.get(name)
            if card is None:
                _, report = (
                    self.collect(name) if self.room.inbox(name).is_dir() else ([], Report(name, 0, ""))
                )
                report.decision = "no agent card"
                reports.append(report)
                continue
            reports.append(self.run_agent(card))
        store.commit(self.room)
        return reports
