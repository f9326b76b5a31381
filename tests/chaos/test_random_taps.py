"""Randomized taps: a fake agent in a random mode and a random state when its mail arrives.

Each case starts a fresh fake agent (claude, codex, gemini or generic) and a fresh agent card, puts
the fake in a random state (idle, busy, dialog, a draft in its box, exited to its shell, copy mode,
or set to swallow the next Enter), delivers one message (sometimes urgent) and runs one delivery
pass. No key may reach a busy agent (unless urgent mail may queue there), a dialog, a draft or a
shell; an idle agent (also in copy mode, or swallowing an Enter) gets exactly one submitted tap; a
blocked tap happens once the block clears. Eight cases run at a time, one pane each.
"""

from __future__ import annotations

import random
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from conftest import retry_until
from fakeharness import FakeAgent, start_agent

from mailslot import registry, store
from mailslot.engine import Engine, Policy
from mailslot.mailroom import Mailroom
from mailslot.message import compose
from mailslot.profiles import profile
from mailslot.tapper import TmuxNotifier

from .audit import NONCE, Sent, audit, forbidden_keys
from .harness import size

pytestmark = [pytest.mark.chaos, pytest.mark.tmux]

MODES = ("claude", "codex", "gemini", "generic")
STATES = ("idle", "busy", "dialog", "draft", "shell", "copy-mode", "swallow")
PARALLEL = 8
DRAFT = "half a thought typed by a human"


@dataclass(frozen=True)
class Case:
    n: int
    mode: str
    state: str
    urgent: bool

    @property
    def agent(self) -> str:
        return f"r{self.n:04d}"

    @property
    def may_queue(self) -> bool:
        return self.urgent and profile(self.mode).queues_input


@dataclass
class Done:
    case: Case
    fake: FakeAgent
    sent: Sent
    first: str  # the first pass's tap result
    enters: int


def cases(count: int, seed: int) -> list[Case]:
    rng = random.Random(seed)
    return [Case(n, rng.choice(MODES), rng.choice(STATES), rng.random() < 0.3) for n in range(count)]


def in_copy_mode(fake: FakeAgent) -> bool:
    return fake.tmux("display-message", "-p", "-t", fake.pane, "#{pane_in_mode}").stdout.strip() == "1"


def tap_texts(fake: FakeAgent) -> list[str]:
    return [t for t in fake.submitted() if "[mailslot]" in t]


def setup(fake: FakeAgent, state: str) -> None:
    """Put the fake into ``state`` and wait until its screen shows it."""
    if state in ("busy", "dialog"):
        fake.control(state)
        fake.wait_state(state)
    elif state == "draft":
        fake.control(f"draft {DRAFT}")
        fake.wait_screen(lambda s: fake.input_box(s) == DRAFT, what="the draft in the box")
    elif state == "shell":
        fake.control("exit")
        fake.wait_command("bash")
    elif state == "copy-mode":
        fake.tmux("copy-mode", "-t", fake.pane)
        retry_until(lambda: in_copy_mode(fake), what="copy mode")
    elif state == "swallow":
        fake.control("swallow 1")
        retry_until(lambda: any(e["text"] == "swallow 1" for e in fake.events("control")), what="swallow set")


def unblock(fake: FakeAgent, state: str) -> None:
    fake.control("draft " if state == "draft" else "idle")
    if state == "draft":
        retry_until(lambda: fake.input_box() == "", what="the draft cleared")
    fake.wait_state("idle")


def one_pass(room: Mailroom, agent: str) -> Any:
    [report] = Engine(room, TmuxNotifier(), Policy()).run([agent])
    return report


def run_case(room: Mailroom, sock: str, tmp_path: Path, case: Case) -> Done:
    fake = start_agent(sock, case.mode, tmp_path, shell_first=case.state == "shell")
    try:
        registry.register(room, case.agent, target=fake.pane, sock=sock, program=case.mode)
        setup(fake, case.state)
        msg = compose(
            sender="alice",
            to=[case.agent],
            subject=f"case {case.n}",
            body=repr(case),
            priority="urgent" if case.urgent else None,
        )
        store.deliver(room, msg)
        report = one_pass(room, case.agent)
        result = report.outcome.result if report.outcome else report.decision
        enters = report.outcome.enters if report.outcome else 0
        expected = {
            "idle": "submitted",
            "copy-mode": "submitted",
            "swallow": "submitted",
            "busy": "submitted" if case.may_queue else "busy",
            "dialog": "dialog",
            "draft": "draft",
            "shell": "shell",
        }[case.state]
        assert result == expected, f"{case}: first pass {result!r}, expected {expected!r}"
        bad = forbidden_keys(fake, urgent_ok=case.may_queue)
        assert bad == [], f"{case}: forbidden keys {bad}"
        if result != "submitted":
            assert fake.keys() == [], f"{case}: keys reached a blocked agent: {fake.keys()}"
        if case.state == "swallow":
            assert enters >= 2, f"{case}: the swallowed Enter was not retried ({enters} Enters)"
        if case.state == "busy" and case.may_queue:
            fake.wait_events("queued")
            unblock(fake, "busy")
        elif case.state in ("busy", "dialog", "draft"):
            unblock(fake, case.state)
            again = one_pass(room, case.agent)
            assert again.outcome and again.outcome.result == "submitted", f"{case}: after unblocking: {again}"
        if case.state == "shell":
            screen = fake.tmux("capture-pane", "-p", "-S", "-", "-t", fake.pane).stdout
            assert "[mailslot]" not in screen, f"{case}: a tap reached the shell:\n{screen}"
        else:
            retry_until(lambda: tap_texts(fake), timeout=5, what=f"{case}: the tap submitted")
            assert len(tap_texts(fake)) == 1, f"{case}: {tap_texts(fake)}"
            typed = "".join(k["text"] for k in fake.keys())  # noqa: SIM118 - a method
            assert len(NONCE.findall(typed)) == 1, f"{case}: tap text typed more than once: {typed!r}"
        return Done(case, fake, Sent.of(msg), result, enters)
    finally:
        fake.tmux("kill-pane", "-t", fake.pane)


def test_randomized_taps_never_type_where_forbidden(
    room: Mailroom, tmux_socket: str, tmp_path: Path, figures
) -> None:
    count = size(40, 1000)
    todo = cases(count, seed=1121)
    done: list[Done] = []
    failures: list[str] = []
    lock = threading.Lock()
    with ThreadPoolExecutor(max_workers=PARALLEL, thread_name_prefix="chaos-tap") as pool:
        futures = {pool.submit(run_case, room, tmux_socket, tmp_path, case): case for case in todo}
        for future in as_completed(futures):
            try:
                item = future.result()
            except (AssertionError, pytest.fail.Exception) as e:
                with lock:
                    failures.append(f"{futures[future]}: {e}")
                continue
            done.append(item)
    assert not failures, f"{len(failures)} of {count} cases failed:\n" + "\n".join(failures[:10])
    fakes = [d.fake for d in done]
    result = audit(
        room,
        [d.sent for d in done],
        fakes=fakes,
        shells=[d.fake for d in done if d.case.state == "shell"],
        urgent=[d.sent.id for d in done if d.case.urgent],
        urgent_ok=[d.fake for d in done if d.case.may_queue],
        forbidden_panes=[(d.fake.pane, tmux_socket) for d in done if d.case.state == "shell"],
    )
    by_state = Counter(d.case.state for d in done)
    figures(
        runs=count,
        messages=result.messages,
        faults=sum(n for s, n in by_state.items() if s != "idle"),
        lost=result.lost,
        taps=result.taps,
        forbidden_keys=0,
        states=dict(sorted(by_state.items())),
        modes=dict(sorted(Counter(d.case.mode for d in done).items())),
        urgent=sum(d.case.urgent for d in done),
    )
