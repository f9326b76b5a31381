"""Taps into real tmux panes running a fake agent (tests/fakeagent.py) on a private server."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import Result
from conftest import MAILSLOT, retry_until
from fakeharness import FakeAgent, start_agent, start_shell

from mailslot import ledger, registry, store, tapline, tmux
from mailslot.daemon import Daemon
from mailslot.engine import Engine, Policy
from mailslot.mailroom import Mailroom
from mailslot.message import compose
from mailslot.profiles import profile
from mailslot.tapper import TmuxNotifier

pytestmark = pytest.mark.tmux


def mail(room: Mailroom, to: str = "bob", subject: str = "hello", **kw: object) -> str:
    msg = compose(sender="alice", to=[to], subject=subject, body="body", **kw)  # type: ignore[arg-type]
    store.deliver(room, msg)
    return msg.id


def taps(agent: FakeAgent) -> list[str]:
    return [t for t in agent.submitted() if t.startswith("[mailslot]")]


def one_pass(room: Mailroom, policy: Policy | None = None) -> None:
    Engine(room, TmuxNotifier(), policy or Policy()).run()


@pytest.fixture(params=["process", "control"])
def daemon(room: Mailroom, request: pytest.FixtureRequest) -> Iterator[Daemon]:
    """A daemon in a thread, talking to tmux by one process per command or a control client."""
    tmux.use_control(request.param == "control")
    request.addfinalizer(lambda: tmux.use_control(False))
    d = Daemon(room, TmuxNotifier(), Policy(), rescan=60.0, log=lambda _: None)
    thread = threading.Thread(target=d.serve, daemon=True)
    thread.start()
    retry_until(lambda: (room.state_dir / "daemon.pid").exists(), what="daemon up")
    yield d
    d.stop()
    thread.join(timeout=10)


@pytest.mark.parametrize("mode", ["claude", "codex", "gemini", "generic"])
def test_one_mail_one_submitted_tap_within_a_second(
    room: Mailroom, tmux_socket: str, tmp_path: Path, daemon: Daemon, mode: str
) -> None:
    agent = start_agent(tmux_socket, mode, tmp_path)
    registry.register(room, "bob", target=agent.pane, sock=tmux_socket, program=mode)
    time.sleep(0.05)
    start = time.time()
    mail(room)
    retry_until(lambda: taps(agent), timeout=3, what="a submitted tap")
    elapsed = agent.events("submit")[0]["t"] - start
    assert elapsed < 1.0, f"tap took {elapsed:.2f}s"
    [line] = taps(agent)
    tapline.check(line)
    assert line.startswith("[mailslot] 1 new from alice.")
    time.sleep(0.5)
    assert len(taps(agent)) == 1, "exactly one tap"
    agent.check_alive()


def test_burst_of_ten_mails_makes_one_tap(
    room: Mailroom, tmux_socket: str, tmp_path: Path, daemon: Daemon
) -> None:
    agent = start_agent(tmux_socket, "claude", tmp_path)
    registry.register(room, "bob", target=agent.pane, sock=tmux_socket, program="claude")
    for i in range(10):
        mail(room, subject=f"burst {i}")
    retry_until(lambda: taps(agent), timeout=3, what="a tap")
    time.sleep(1.0)
    assert len(taps(agent)) == 1


def test_never_types_into_a_shell(room: Mailroom, tmux_socket: str, tmp_path: Path) -> None:
    shell = start_shell(tmux_socket)
    registry.register(room, "bob", target=shell.pane, sock=tmux_socket, program="claude")
    before = shell.screen()
    mail(room)
    one_pass(room)
    assert shell.screen() == before
    assert ledger.read_log(room)[-1]["result"] == "shell" and not ledger.read_log(room)[-1]["typed"]


def test_agent_that_exits_to_its_shell_is_not_typed_into(
    room: Mailroom, tmux_socket: str, tmp_path: Path
) -> None:
    agent = start_agent(tmux_socket, "claude", tmp_path, shell_first=True)
    registry.register(room, "bob", target=agent.pane, sock=tmux_socket, program="claude")
    agent.control("exit")
    agent.wait_command("bash")
    mail(room)
    one_pass(room)
    assert "[mailslot]" not in agent.screen()
    assert ledger.read_log(room)[-1]["result"] == "shell"


@pytest.mark.parametrize("state", ["dialog", "busy"])
def test_no_keystroke_reaches_a_dialog_or_busy_agent(
    room: Mailroom, tmux_socket: str, tmp_path: Path, state: str
) -> None:
    agent = start_agent(tmux_socket, "claude", tmp_path)
    registry.register(room, "bob", target=agent.pane, sock=tmux_socket, program="claude")
    agent.control(state)
    agent.wait_state(state)
    mail(room)
    one_pass(room)
    assert agent.events("key") == []
    assert ledger.read_log(room)[-1]["result"] == state
    agent.control("idle")
    agent.wait_state("idle")
    one_pass(room)  # the mail is still unseen: the tap happens once the agent is idle
    retry_until(lambda: taps(agent), timeout=3, what="tap after idle")
    assert all(k["state"] == "idle" for k in agent.events("key"))


def test_urgent_mail_may_tap_a_busy_agent_that_queues(
    room: Mailroom, tmux_socket: str, tmp_path: Path
) -> None:
    agent = start_agent(tmux_socket, "codex", tmp_path)
    registry.register(room, "bob", target=agent.pane, sock=tmux_socket, program="codex")
    agent.control("busy")
    agent.wait_state("busy")
    mail(room, priority="urgent")
    one_pass(room)
    assert ledger.read_log(room)[-1]["result"] == "submitted"
    assert agent.events("queued")
    agent.control("idle")
    retry_until(lambda: taps(agent), what="queued tap submitted when busy ends")
    assert taps(agent)[0].startswith("[mailslot] URGENT")


def test_a_human_draft_is_never_touched(room: Mailroom, tmux_socket: str, tmp_path: Path) -> None:
    agent = start_agent(tmux_socket, "claude", tmp_path)
    registry.register(room, "bob", target=agent.pane, sock=tmux_socket, program="claude")
    agent.control("draft fix the flaky te")
    agent.wait_screen("fix the flaky te")
    mail(room)
    one_pass(room)
    assert agent.events("key") == [] and agent.submitted() == []
    assert agent.input_box() == "fix the flaky te"
    assert ledger.read_log(room)[-1]["result"] == "draft"
    agent.control("draft ")  # the human clears the box
    retry_until(lambda: agent.input_box() == "", what="empty box")
    one_pass(room)
    retry_until(lambda: taps(agent), what="tap after the draft is gone")
    assert taps(agent)[0].endswith(ledger.read_log(room)[-1]["nonce"]), "never glued to earlier text"


def test_a_swallowed_enter_is_recovered_without_retyping(
    room: Mailroom, tmux_socket: str, tmp_path: Path
) -> None:
    agent = start_agent(tmux_socket, "gemini", tmp_path, swallow_enters=1)
    registry.register(room, "bob", target=agent.pane, sock=tmux_socket, program="gemini")
    mail(room)
    one_pass(room)
    retry_until(lambda: taps(agent), what="tap")
    record = ledger.read_log(room)[-1]
    assert record["result"] == "submitted" and record["enters"] == 2
    typed = "".join(k["text"] for k in agent.events("key"))
    assert typed.count("[mailslot]") == 1, "the text is never typed twice"
    assert len(taps(agent)) == 1


def test_codex_paste_window_does_not_fold_the_enter(room: Mailroom, tmux_socket: str, tmp_path: Path) -> None:
    agent = start_agent(tmux_socket, "codex", tmp_path)
    registry.register(room, "bob", target=agent.pane, sock=tmux_socket, program="codex")
    mail(room)
    one_pass(room)
    retry_until(lambda: taps(agent), what="tap")
    assert not agent.events("folded") and "\n" not in taps(agent)[0]
    assert profile("codex").settle_ms >= 150


def test_copy_mode_without_a_human_is_left_then_tapped(
    room: Mailroom, tmux_socket: str, tmp_path: Path
) -> None:
    agent = start_agent(tmux_socket, "claude", tmp_path)
    registry.register(room, "bob", target=agent.pane, sock=tmux_socket, program="claude")
    agent.tmux("copy-mode", "-t", agent.pane)
    retry_until(
        lambda: agent.tmux("display", "-p", "-t", agent.pane, "#{pane_in_mode}").stdout.strip() == "1"
    )
    mail(room)
    one_pass(room)
    retry_until(lambda: taps(agent), what="tap after leaving copy mode")


def test_unseen_mail_is_retapped_after_backoff_and_seen_mail_never(
    room: Mailroom, tmux_socket: str, tmp_path: Path
) -> None:
    agent = start_agent(tmux_socket, "claude", tmp_path)
    registry.register(room, "bob", target=agent.pane, sock=tmux_socket, program="claude")
    policy = Policy(retap_after=0.5)
    mail(room)
    one_pass(room, policy)
    retry_until(lambda: len(taps(agent)) == 1, what="first tap")
    one_pass(room, policy)
    assert len(taps(agent)) == 1, "not before the backoff"
    time.sleep(0.6)
    one_pass(room, policy)
    retry_until(lambda: len(taps(agent)) == 2, what="re-tap after backoff")
    store.inbox(room, "bob")
    time.sleep(1.2)
    one_pass(room, policy)
    assert len(taps(agent)) == 2, "seen mail is never re-tapped"


def _watch(room: Mailroom, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "MAILSLOT_ROOT": str(room.root), "MAILSLOT_RETAP_SECONDS": "3600"}
    env.pop("TMUX", None)
    with open(log, "ab") as fh:
        return subprocess.Popen([MAILSLOT, "watch"], env=env, stderr=fh, stdout=fh)


def test_daemon_killed_mid_tap_neither_repeats_nor_forgets(
    room: Mailroom, tmux_socket: str, tmp_path: Path
) -> None:
    agent = start_agent(tmux_socket, "claude", tmp_path)
    registry.register(room, "bob", target=agent.pane, sock=tmux_socket, program="claude")
    log = tmp_path / "watch.log"
    proc = _watch(room, log)
    try:
        retry_until(lambda: "watching" in log.read_text(), what="daemon up")
        mail(room)
        retry_until(lambda: agent.events("key"), timeout=5, what="the tap's first keys")
        proc.send_signal(signal.SIGKILL)  # within the settle delay: text typed, Enter not yet sent
        proc.wait(timeout=5)
        claim = ledger.snapshot(room)["agents"]["bob"]["outstanding"]
        assert claim and claim["phase"] == "typing"
        proc = _watch(room, log)
        retry_until(
            lambda: taps(agent), timeout=5, what="the interrupted tap submitted by the restarted daemon"
        )
        time.sleep(1.0)
        assert len(taps(agent)) == 1, "no repeated tap"
        typed = "".join(k["text"] for k in agent.events("key"))
        assert typed.count("[mailslot]") == 1, "the text was never typed again"
        assert any(e["result"] == "recovered" for e in ledger.read_log(room))
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=5)
        agent.control("busy")  # a pending tap across a restart is not forgotten either
        agent.wait_state("busy")
        store.inbox(room, "bob")
        mail(room, subject="while down")
        proc = _watch(room, log)
        retry_until(lambda: log.read_text().count("watching") == 3, what="third daemon up")
        agent.control("idle")
        retry_until(lambda: len(taps(agent)) == 2, timeout=8, what="tap after restart")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=10)
    assert proc.returncode == 0


def test_status_reports_state_unseen_and_last_tap(
    room: Mailroom, tmux_socket: str, tmp_path: Path, run: Callable[..., Result]
) -> None:
    agent = start_agent(tmux_socket, "claude", tmp_path)
    registry.register(room, "bob", target=agent.pane, sock=tmux_socket, program="claude")
    shell = start_shell(tmux_socket)
    registry.register(room, "carol", target=shell.pane, sock=tmux_socket, program="claude")
    mail(room)
    one_pass(room)
    retry_until(lambda: taps(agent), what="tap")
    rows = {r["agent"]: r for r in map(json.loads, run("status", "--json").output.splitlines())}
    assert rows["bob"]["state"] == "idle" and rows["bob"]["unseen"] == 1
    assert rows["bob"]["last_result"] == "submitted" and rows["bob"]["taps_left"] == 29
    assert rows["carol"]["state"] == "shell" and rows["alice"]["state"] == "no-pane"


def test_the_control_client_does_not_count_as_a_human_nor_resize_panes(
    room: Mailroom, tmux_socket: str, tmp_path: Path
) -> None:
    agent = start_agent(tmux_socket, "claude", tmp_path)
    size = agent.tmux("display", "-p", "-t", agent.pane, "#{pane_width}x#{pane_height}").stdout
    tmux.use_control()
    try:
        probe = tmux.probe(agent.pane, tmux_socket)
        assert probe.alive and not probe.attached, "our own control client is not a human"
        assert tmux.control_session(tmux_socket)
        assert agent.tmux("display", "-p", "-t", agent.pane, "#{pane_width}x#{pane_height}").stdout == size
        agent.tmux("kill-server")
        assert not tmux.probe(agent.pane, tmux_socket).alive, "a dead server reads as gone, not as a hang"
    finally:
        tmux.use_control(False)


def test_copy_mode_entered_while_idle_is_being_confirmed_stops_the_tap(
    tmux_socket: str, tmp_path: Path
) -> None:
    agent = start_agent(tmux_socket, "claude", tmp_path)
    agent.control("clear")  # the pane just printed: the gate must confirm idle on a second read
    activity = lambda: int(agent.tmux("display", "-p", "-t", agent.pane, "#{window_activity}").stdout)  # noqa: E731
    retry_until(lambda: time.time() - activity() < 1.5, what="recent output in the pane")
    notifier = TmuxNotifier(confirm=1.0)
    timer = threading.Timer(0.3, lambda: agent.tmux("copy-mode", "-t", agent.pane))
    timer.start()
    try:
        line = tapline.build("bob", 1, ["alice"], tapline.new_nonce())
        outcome = notifier.tap(agent.pane, tmux_socket, profile("claude"), line, urgent=False)
    finally:
        timer.join()
    assert (outcome.result, outcome.typed) == ("copy-mode", False)
    assert agent.events("key") == []
