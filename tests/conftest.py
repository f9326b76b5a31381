"""Shared fixtures: every test is isolated (HOME, mailroom, git identity, tmux socket)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from mailslot import vcs
from mailslot.cli import cli
from mailslot.mailroom import Mailroom

MAILSLOT = str(Path(sys.executable).with_name("mailslot"))


def retry_until(
    predicate: Callable[[], Any], timeout: float = 10.0, interval: float = 0.02, what: str = ""
) -> Any:
    """Poll ``predicate`` until it returns a truthy value; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what or predicate}")
        time.sleep(interval)


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private HOME, mailroom path, git identity and no inherited tmux or agent identity."""
    home = tmp_path / "home"
    home.mkdir()
    gitconfig = home / ".gitconfig"
    gitconfig.write_text(
        "[user]\n\tname = Test\n\temail = test@example.invalid\n[init]\n\tdefaultBranch = main\n"
    )
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_DATA_HOME", str(home / ".local" / "share"))
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(gitconfig))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.setenv("MAILSLOT_ROOT", str(tmp_path / "mailroom"))
    monkeypatch.setenv("MAILSLOT_HOST", "testhost")
    for var in ("TMUX", "TMUX_PANE", "MAILSLOT_AGENT", "GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE"):
        monkeypatch.delenv(var, raising=False)
    return tmp_path


@pytest.fixture
def room(isolated: Path) -> Mailroom:
    """A fresh mailroom with agents alice, bob and carol registered (no panes)."""
    from mailslot import registry

    r = vcs.init_repo(isolated / "mailroom")
    for name in ("alice", "bob", "carol"):
        registry.register(r, name, no_pane=True)
    return r


@pytest.fixture
def run() -> Callable[..., Result]:
    """Invoke the CLI in-process; ``run("send", "bob", ..., input=..., agent="alice")``."""
    runner = CliRunner()

    def invoke(
        *args: str, input: str | None = None, agent: str | None = None, code: int | None = 0
    ) -> Result:
        env = {"MAILSLOT_AGENT": agent} if agent else {}
        result = runner.invoke(cli, list(args), input=input, env=env, catch_exceptions=False)
        if code is not None:
            assert result.exit_code == code, f"exit {result.exit_code}: {result.output}{result.stderr}"
        return result

    return invoke


def add_agent(room: Mailroom, agent: Any) -> None:
    """Write an agent card (e.g. with a made-up pane) and commit it, as `register` would."""
    from mailslot import journal, store
    from mailslot.mailroom import save_agent

    path = save_agent(room, agent)
    journal.record(room, [room.rel(path)], f"agent: register {agent.name}", agent.name)
    store.commit(room)


def git_out(root: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, check=True).stdout


@pytest.fixture
def tmux_socket(tmp_path: Path) -> Iterator[str]:
    """The path of a private tmux server socket; the server is killed and the socket removed after."""
    if shutil.which("tmux") is None:
        pytest.fail("tmux is required for these tests")
    sock = f"/tmp/mailslot-test-{uuid.uuid4().hex[:10]}.sock"
    yield sock
    subprocess.run(["tmux", "-S", sock, "kill-server"], capture_output=True, check=False)
    Path(sock).unlink(missing_ok=True)


def tmux(sock: str, *args: str) -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("TMUX", "TMUX_PANE")}
    proc = subprocess.run(["tmux", "-S", sock, *args], capture_output=True, text=True, env=env, check=False)
    return proc.stdout
