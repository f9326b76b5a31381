"""The tap policy and the delivery pass, with a recording notifier (no tmux)."""

from __future__ import annotations

import os
import time

import pytest
from conftest import add_agent, git_out
from recorder import Recorder

from mailslot import ledger, store, threads
from mailslot.engine import Engine, Pending, Policy, decide
from mailslot.mailroom import Agent, Mailroom
from mailslot.message import compose, render


@pytest.fixture
def paned(room: Mailroom) -> Mailroom:
    """bob and carol get (fake) panes on this host so the engine considers tapping them."""
    for name, pane in (("bob", "%1"), ("carol", "%2")):
        add_agent(room, Agent(name=name, program="claude", host="testhost", pane=pane, socket="/nonexistent"))
    return room


def send(room: Mailroom, to: str = "bob", subject: str = "hi", sender: str = "alice", **kw: object) -> str:
    msg = compose(sender=sender, to=[to], subject=subject, body="body", **kw)  # type: ignore[arg-type]
    store.deliver(room, msg)
    return msg.id


def test_one_mail_one_tap_and_no_second_tap_until_read(paned: Mailroom) -> None:
    rec = Recorder()
    engine = Engine(paned, rec, Policy())
    send(paned)
    engine.run(["bob"])
    assert rec.count == 1
    assert rec.lines[0].startswith("[mailslot] 1 new from alice.")
    engine.run(["bob"])
    engine.run()
    assert rec.count == 1, "unread mail must not be tapped again before the backoff"
    store.inbox(paned, "bob")  # bob reads
    engine.run(["bob"])
    assert rec.count == 1, "seen mail never taps"
    send(paned, subject="second")
    engine.run(["bob"])
    assert rec.count == 2


def test_burst_of_ten_is_one_tap(paned: Mailroom) -> None:
    rec = Recorder()
    for i in range(10):
        send(paned, subject=f"m{i}")
    Engine(paned, rec, Policy()).run()
    assert rec.lines == [rec.lines[0]] and " 10 new from alice." in rec.lines[0]


def test_unseen_mail_is_retapped_after_backoff_with_doubling(paned: Mailroom) -> None:
    rec = Recorder()
    engine = Engine(paned, rec, Policy(retap_after=10))
    send(paned)
    t0 = time.time()
    engine.run_agent(_card(paned, "bob"), now=t0)
    engine.run_agent(_card(paned, "bob"), now=t0 + 9)
    assert rec.count == 1
    engine.run_agent(_card(paned, "bob"), now=t0 + 11)
    assert rec.count == 2
    engine.run_agent(_card(paned, "bob"), now=t0 + 11 + 19)
    assert rec.count == 2, "second re-tap waits twice as long"
    engine.run_agent(_card(paned, "bob"), now=t0 + 11 + 21)
    assert rec.count == 3


def _card(room: Mailroom, name: str) -> Agent:
    from mailslot.mailroom import load_agent

    return load_agent(room, name)


def test_gated_tap_claims_nothing_and_is_retried(paned: Mailroom) -> None:
    rec = Recorder(result="busy")
    engine = Engine(paned, rec, Policy())
    send(paned)
    report = engine.run(["bob"])[0]
    assert rec.count == 0 and report.retry_in is not None
    assert ledger.snapshot(paned)["agents"]["bob"]["outstanding"] is None
    rec.result = "submitted"
    engine.run(["bob"])
    assert rec.count == 1


def test_budget_per_hour(paned: Mailroom) -> None:
    rec = Recorder()
    engine = Engine(paned, rec, Policy(budget=2))
    for i in range(3):
        send(paned, subject=f"m{i}")
        engine.run(["bob"])
        store.inbox(paned, "bob")
    assert rec.count == 2
    send(paned, subject="more")
    assert "budget" in engine.run(["bob"])[0].decision


def test_loop_breaker_cools_a_ping_pong_thread(paned: Mailroom) -> None:
    rec = Recorder()
    engine = Engine(paned, rec, Policy(loop_taps=3))
    first = compose(sender="alice", to=["bob"], subject="ping", body="x")
    store.deliver(paned, first)
    for _ in range(5):
        engine.run(["bob"])
        store.inbox(paned, "bob")
        store.deliver(
            paned, compose(sender="alice", to=["bob"], subject="ping", body="x", thread=first.thread)
        )
    assert rec.count == 3
    assert "loop breaker" in engine.run(["bob"])[0].decision
    send(paned, subject="another thread")
    engine.run(["bob"])
    assert rec.count == 4, "other threads still tap"


def test_new_urgent_mail_taps_despite_outstanding_tap(paned: Mailroom) -> None:
    rec = Recorder()
    engine = Engine(paned, rec, Policy())
    send(paned)
    engine.run(["bob"])
    send(paned, subject="prod down", priority="urgent")
    engine.run(["bob"])
    assert rec.count == 2 and rec.lines[1].startswith("[mailslot] URGENT 2 new from alice.")


def test_closed_thread_never_taps_and_late_mail_is_archived(paned: Mailroom) -> None:
    rec = Recorder()
    engine = Engine(paned, rec, Policy())
    mid = send(paned)
    thread = store.find(paned, mid).message.thread
    threads.close(paned, thread, "alice")
    late = compose(sender="alice", to=["bob"], subject="late", body="x", thread=thread)
    (paned.inbox("bob") / "new" / f"{late.id}.md").write_bytes(render(late))  # by hand
    report = engine.run(["bob"])[0]
    assert rec.count == 0
    assert report.archived and not list((paned.inbox("bob") / "new").iterdir())
    assert (paned.archive_dir(thread) / f"{late.id}.md").exists()
    assert f"archive/{paned.rel(paned.archive_dir(thread)).split('/', 1)[1]}/{late.id}.md" in git_out(
        paned.root, "ls-files"
    )


def test_agents_without_pane_or_of_another_host_are_not_tapped(room: Mailroom) -> None:
    add_agent(room, Agent(name="carol", program="claude", host="elsewhere", pane="%9", socket="/x"))
    rec = Recorder()
    send(room, to="bob")
    send(room, to="carol")
    reports = {r.agent: r for r in Engine(room, rec, Policy()).run()}
    assert rec.count == 0
    assert reports["bob"].unseen == 1 and "no pane" in reports["bob"].decision
    assert reports["carol"].unseen == 1


def test_hand_written_mail_is_committed_and_bad_mail_quarantined(paned: Mailroom) -> None:
    rec = Recorder()
    good = compose(sender="alice", to=["bob"], subject="by hand", body="x")
    (paned.inbox("bob") / "new" / "handmade.md").write_bytes(good.raw)
    bad = paned.inbox("bob") / "new" / "broken.md"
    bad.write_text("---\nnot: [closed\n---\n")
    os.utime(bad, (time.time() - 60, time.time() - 60))
    report = Engine(paned, rec, Policy()).run(["bob"])[0]
    assert rec.count == 1
    assert report.rejected and "not valid YAML" in report.rejected[0]
    tracked = git_out(paned.root, "ls-files")
    assert "inbox/bob/new/handmade.md" in tracked
    assert any(line.startswith("rejected/") and line.endswith(".reason") for line in tracked.splitlines())
    assert "mail: alice -> bob: by hand" in git_out(paned.root, "log", "--format=%s%n%b")
    assert git_out(paned.root, "status", "--porcelain") == ""


def test_a_killed_tappers_claim_is_recovered_not_lost(paned: Mailroom) -> None:
    send(paned)
    with ledger.locked(paned) as data:  # a tapper claimed, then died before typing
        state = ledger.agent_state(data, "bob")
        claim = {"ids": ["x"], "at": time.time(), "nonce": "tdead", "count": 1, "phase": "typing"}
        state["outstanding"] = {**claim, "previous": None}
    rec = Recorder()
    Engine(paned, rec, Policy()).run(["bob"])
    assert rec.count == 1, "a claim whose nonce never reached the pane is re-tapped"
    assert any(e["result"] == "lost-claim" for e in ledger.read_log(paned))


def test_decide_is_pure_policy() -> None:
    state = {"outstanding": None, "taps": [], "threads": {}}
    mail = [Pending("a", "t", "alice", False)]
    assert decide(state, mail, 0.0, Policy()).tap
    assert not decide(state, [], 0.0, Policy()).tap
    state["outstanding"] = {"ids": ["a"], "at": 0.0, "count": 1, "phase": "typing"}
    assert decide(state, mail, 999.0, Policy()).reason == "tap in flight"
