"""Mail that arrives by `git pull` taps its recipient through the installed hooks."""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import Result
from conftest import retry_until
from fakeharness import FakeAgent, start_agent

from mailslot import ledger, registry, store, vcs
from mailslot.daemon import Daemon
from mailslot.engine import Policy
from mailslot.mailroom import Mailroom, open_mailroom
from mailslot.message import compose
from mailslot.tapper import TmuxNotifier

pytestmark = pytest.mark.tmux


def git(cwd: Path, *args: str) -> str:
    proc = subprocess.run(["git", "-C", str(cwd), *args], capture_output=True, text=True, check=True)
    return proc.stdout


def taps(agent: FakeAgent) -> list[str]:
    return [t for t in agent.submitted() if t.startswith("[mailslot]")]


@pytest.fixture
def clones(
    tmp_path: Path, tmux_socket: str, run: Callable[..., Result]
) -> tuple[Mailroom, Mailroom, FakeAgent]:
    """Clone A (where alice sends) and clone B (hooks installed), sharing a bare remote; bob's pane."""
    bare = tmp_path / "remote.git"
    git(tmp_path, "init", "-q", "--bare", str(bare))
    a = vcs.init_repo(tmp_path / "a")
    agent = start_agent(tmux_socket, "claude", tmp_path)
    registry.register(a, "alice", no_pane=True)
    registry.register(a, "bob", target=agent.pane, sock=tmux_socket, program="claude")
    git(a.root, "remote", "add", "origin", str(bare))
    git(a.root, "push", "-q", "-u", "origin", "main")
    git(tmp_path, "clone", "-q", str(bare), str(tmp_path / "b"))
    b = open_mailroom(tmp_path / "b")
    run("--root", str(b.root), "hooks", "install")
    assert git(b.root, "config", "core.hooksPath").strip() == str(b.state_dir / "hooks")
    return a, b, agent


def send_from_a(a: Mailroom, subject: str) -> None:
    store.deliver(a, compose(sender="alice", to=["bob"], subject=subject, body="from clone A"))
    git(a.root, "push", "-q", "origin", "main")


@pytest.mark.parametrize("how", ["merge", "rebase"])
def test_pulled_mail_taps_through_the_hooks_without_a_daemon(
    clones: tuple[Mailroom, Mailroom, FakeAgent], how: str
) -> None:
    a, b, agent = clones
    send_from_a(a, "pulled")
    git(b.root, "-c", f"pull.rebase={'true' if how == 'rebase' else 'false'}", "pull", "-q")
    retry_until(lambda: taps(agent), timeout=10, what="a tap from the pulled mail")
    assert taps(agent)[0].startswith("[mailslot] 1 new from alice.")
    retry_until(lambda: (b.state_dir / "hooks.log").exists(), what="hooks.log")
    assert "tap submitted" in (b.state_dir / "hooks.log").read_text()
    assert not (a.state_dir / "taps.log").exists(), "clone A has no hooks and no daemon: it never taps"


def test_pulled_mail_taps_once_with_hooks_and_a_daemon(clones: tuple[Mailroom, Mailroom, FakeAgent]) -> None:
    a, b, agent = clones
    daemon = Daemon(b, TmuxNotifier(), Policy(), rescan=60.0, log=lambda _: None)
    thread = threading.Thread(target=daemon.serve, daemon=True)
    thread.start()
    try:
        retry_until(lambda: (b.state_dir / "daemon.pid").exists(), what="daemon up")
        send_from_a(a, "pulled while watching")
        git(b.root, "-c", "pull.rebase=false", "pull", "-q")
        retry_until(lambda: taps(agent), timeout=10, what="a tap")
        retry_until(lambda: not _deliver_running(b), timeout=10, what="the hook's deliver to finish")
        typed = lambda: [e["result"] for e in ledger.read_log(b) if e.get("typed")]  # noqa: E731
        retry_until(typed, what="the tap's record (written just after the agent took it)")
        time.sleep(0.5)  # room for a wrong second tap by the other of hook and daemon
        assert len(taps(agent)) == 1, "hook and daemon must not both tap"
        assert typed() == ["submitted"]
    finally:
        daemon.stop()
        thread.join(timeout=10)


def _deliver_running(room: Mailroom) -> bool:
    out = subprocess.run(["pgrep", "-f", f"--root {room.root} deliver"], capture_output=True, text=True)
    return bool(out.stdout.strip())


def test_hooks_uninstall(clones: tuple[Mailroom, Mailroom, FakeAgent], run: Callable[..., Result]) -> None:
    _, b, _ = clones
    run("--root", str(b.root), "hooks", "uninstall")
    assert (
        subprocess.run(["git", "-C", str(b.root), "config", "core.hooksPath"], capture_output=True).returncode
        == 1
    )
