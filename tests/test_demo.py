"""`make demo` end to end: three scripted agents in a private tmux server hold a conversation."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.tmux

DEMO = Path(__file__).resolve().parent.parent / "examples" / "demo.py"


def gone(pid: int) -> bool:
    """True if ``pid`` has exited (a zombie nobody reaped counts as exited)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] in ("Z", "X")


def test_demo_conversation_closes_and_cleans_up(tmp_path: Path) -> None:
    folder = tmp_path / "demo"
    proc = subprocess.run(
        [sys.executable, str(DEMO), "--dir", str(folder), "--cleanup", "--timeout", "45"],
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    out = proc.stdout
    assert proc.returncode == 0, f"exit {proc.returncode}\n{out}\n{proc.stderr}"

    threads = [line for line in out.splitlines() if " 4 msgs " in line and "Add a /login endpoint" in line]
    assert threads, out  # the closed thread, from `mailslot threads --closed`
    assert "close: lead closed" in out  # the git log
    assert "mail: lead -> backend, frontend: Add a /login endpoint" in out
    for name in ("backend", "frontend"):
        assert re.search(rf"\b{name} +replied$", out, re.MULTILINE), out  # its step, as it happened

    room = folder / "mailroom"
    archived = sorted(room.glob("archive/*/t-*/*.md"))
    assert len(archived) == 4, archived  # 3 messages + the closing note
    assert not list(room.glob("inbox/*/new/*.md"))

    sock = folder / "tmux.sock"
    env = {k: v for k, v in os.environ.items() if k not in ("TMUX", "TMUX_PANE")}
    alive = subprocess.run(
        ["tmux", "-S", str(sock), "list-sessions"], capture_output=True, env=env, check=False
    )
    assert alive.returncode != 0, "the demo's tmux server is still running"
    assert not sock.exists()

    state = json.loads((folder / "demo.json").read_text())
    assert set(state["pids"]) == {"lead", "backend", "frontend", "watch"}
    for name, pid in state["pids"].items():
        assert gone(pid), f"{name} (pid {pid}) is still running"
    assert not (room / ".git" / "mailslot" / "daemon.pid").exists()  # the daemon stopped cleanly
