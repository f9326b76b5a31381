"""Chaos in tmux: the server killed mid-tap, a pane closed as mail arrives, an agent exiting to its shell.

The daemon runs in a thread with the real tmux notifier; agents are fake TUIs in real panes.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import retry_until
from fakeharness import run_tmux, start_agent

from mailslot import ledger, registry, store
from mailslot.daemon import Daemon
from mailslot.engine import Policy
from mailslot.mailroom import Mailroom
from mailslot.message import compose
from mailslot.tapper import TmuxNotifier

from .audit import Sent, audit

pytestmark = [pytest.mark.chaos, pytest.mark.tmux]


class Running:
    """A daemon in a thread (re-taps off), with its log lines."""

    def __init__(self, room: Mailroom) -> None:
        self.logs: list[str] = []
        self.daemon = Daemon(
            room, TmuxNotifier(), Policy(retap_after=3600), rescan=60.0, log=self.logs.append
        )
        self.thread = threading.Thread(target=self.daemon.serve, daemon=True)
        self.thread.start()
        retry_until(lambda: any("watching" in line for line in self.logs), what="daemon up")

    def stop(self) -> None:
        self.daemon.stop()
        self.thread.join(timeout=15)
        assert not self.thread.is_alive(), "the daemon did not stop"


@pytest.fixture
def running(room: Mailroom) -> Iterator[Running]:
    r = Running(room)
    yield r
    if r.thread.is_alive():
        r.stop()


def mail(room: Mailroom, to: str, subject: str) -> Sent:
    msg = compose(sender="alice", to=[to], subject=subject, body=subject)
    store.deliver(room, msg)
    return Sent.of(msg)


def results(room: Mailroom, agent: str) -> list[str]:
    return [r["result"] for r in ledger.read_log(room) if r.get("agent") == agent]


def taps(agent) -> list[str]:  # type: ignore[no-untyped-def]
    return [t for t in agent.submitted() if "[mailslot]" in t]


def test_tmux_server_killed_mid_tap_then_restarted(
    room: Mailroom, tmux_socket: str, tmp_path: Path, running: Running, figures
) -> None:
    """A tap into a pane that died (typed, 'gone') once counted as made: the mail then waited for the
    re-tap backoff instead of tapping the agent's new pane."""
    first = start_agent(tmux_socket, "claude", tmp_path)
    registry.register(room, "bob", target=first.pane, sock=tmux_socket, program="claude")
    sent = [mail(room, "bob", "before the crash")]
    retry_until(lambda: first.keys(), timeout=5, what="the tap's first keys")
    server = int(run_tmux(tmux_socket, "display-message", "-p", "#{pid}").stdout)
    os.kill(server, signal.SIGKILL)  # in the settle delay: the text is typed, Enter not yet sent
    retry_until(lambda: "gone" in results(room, "bob"), timeout=5, what="the tap to end as gone")
    assert taps(first) == []
    # A new server on the same socket (its pane ids start again at %0), a new agent, re-registered.
    second = start_agent(tmux_socket, "claude", tmp_path)
    registry.register(room, "bob", target=second.pane, sock=tmux_socket, program="claude")
    retry_until(lambda: taps(second), timeout=5, what="the unseen mail tapped on the new pane")
    sent.append(mail(room, "carol", "the daemon still runs"))
    assert running.thread.is_alive()
    running.stop()
    result = audit(room, sent, fakes=[second])
    assert len(taps(second)) == 1
    figures(runs=1, messages=result.messages, faults=1, lost=result.lost)


@pytest.mark.parametrize("when", ["before", "after"])
def test_pane_closed_as_mail_arrives(
    room: Mailroom, tmux_socket: str, tmp_path: Path, running: Running, when: str, figures
) -> None:
    bob = start_agent(tmux_socket, "claude", tmp_path)
    carol = start_agent(tmux_socket, "codex", tmp_path)
    registry.register(room, "bob", target=bob.pane, sock=tmux_socket, program="claude")
    registry.register(room, "carol", target=carol.pane, sock=tmux_socket, program="codex")
    sent = []
    if when == "before":
        run_tmux(tmux_socket, "kill-pane", "-t", bob.pane)
        sent.append(mail(room, "bob", "into a closed pane"))
    else:
        sent.append(mail(room, "bob", "into a closing pane"))
        run_tmux(tmux_socket, "kill-pane", "-t", bob.pane)
    retry_until(lambda: results(room, "bob"), timeout=5, what="bob's tap attempt")
    assert results(room, "bob") == ["gone"]
    assert any("tap bob: gone" in line for line in running.logs)
    sent.append(mail(room, "carol", "the daemon keeps running"))
    retry_until(lambda: taps(carol), timeout=5, what="carol tapped after bob's pane closed")
    assert running.thread.is_alive()
    running.stop()
    assert not [line for line in running.logs if "unexpected" in line]
    result = audit(room, sent, fakes=[bob, carol])
    figures(runs=1, messages=result.messages, faults=1, lost=result.lost)


def test_agent_exits_to_its_shell_and_no_key_reaches_bash(
    room: Mailroom, tmux_socket: str, tmp_path: Path, running: Running, figures
) -> None:
    agent = start_agent(tmux_socket, "claude", tmp_path, shell_first=True)
    registry.register(room, "bob", target=agent.pane, sock=tmux_socket, program="claude")
    agent.control("exit")
    agent.wait_command("bash")
    assert "\u276f" in agent.screen(), "the agent's last screen (an idle prompt) stays in the shell"
    sent = [mail(room, "bob", "to an agent that left")]
    retry_until(lambda: "shell" in results(room, "bob"), timeout=5, what="the shell gate")
    # The daemon tries again (1 s, then 2 s later): wait for two more attempts, all refused.
    first = ledger.snapshot(room)["agents"]["bob"]["last"]["at"]
    attempts = {first}

    def more_attempts() -> bool:
        attempts.add(ledger.snapshot(room)["agents"]["bob"]["last"]["at"])
        return len(attempts) >= 3

    retry_until(more_attempts, timeout=8, what="two more gated attempts")
    assert ledger.snapshot(room)["agents"]["bob"]["last"]["result"] == "shell"
    running.stop()
    assert set(results(room, "bob")) == {"shell"}
    result = audit(room, sent, fakes=[agent], shells=[agent], forbidden_panes=[(agent.pane, tmux_socket)])
    figures(runs=1, messages=result.messages, faults=1, lost=result.lost, gated_attempts=len(attempts))
