"""Shared helpers of the chaos scenarios: the size knob, daemon and sender subprocesses, git probes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from conftest import MAILSLOT, retry_until

from mailslot.mailroom import Mailroom

FULL = os.environ.get("MAILSLOT_CHAOS", "").strip().lower() == "full"


def size(short: int, full: int) -> int:
    """``full`` under ``MAILSLOT_CHAOS=full`` (``make chaos``), else ``short`` (``make test``)."""
    return full if FULL else short


def start_watch(room: Mailroom, log: Path, **env: str) -> subprocess.Popen[bytes]:
    """A ``mailslot watch`` subprocess (re-taps off, no hourly budget); its stderr goes to ``log``."""
    full_env = {
        **os.environ,
        "MAILSLOT_ROOT": str(room.root),
        "MAILSLOT_RETAP_SECONDS": "3600",
        "MAILSLOT_TAP_BUDGET": "100000",
        "MAILSLOT_SYNC": "1",  # no commit left running in a detached child after a kill
        **env,
    }
    full_env.pop("TMUX", None)
    with open(log, "ab") as fh:
        return subprocess.Popen([MAILSLOT, "watch"], env=full_env, stdout=fh, stderr=fh)


# Waits on stdin after its imports, then delivers COUNT messages, PACE seconds apart at most (agents do
# not send in a tight loop; it spreads the sends over the daemon's kills); one report line per success.
SENDER = r"""
import hashlib, json, os, random, sys, time
from pathlib import Path
from mailslot import store
from mailslot.mailroom import Mailroom
from mailslot.message import compose

room = Mailroom(Path(sys.argv[1]))
worker, count = sys.argv[2], int(sys.argv[3])
report = os.open(sys.argv[4], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
pace = float(sys.argv[5]) if len(sys.argv) > 5 else 0.0
print("ready", flush=True)
sys.stdin.readline()
for i in range(count):
    to = ["bob", "carol"] if i % 5 == 0 else ["bob"]
    msg = compose(sender="alice", to=to, subject=f"w{worker} #{i}", body=f"{worker}/{i}\n" * (1 + i % 9))
    store.deliver(room, msg)
    line = {"id": msg.id, "sha256": hashlib.sha256(msg.raw).hexdigest(), "recipients": list(msg.recipients),
            "thread": msg.thread}
    os.write(report, (json.dumps(line) + "\n").encode())
    time.sleep(random.uniform(0, pace))
"""


def python(script: str, *args: str, **kw: Any) -> subprocess.Popen[str]:
    """``python -c script args`` with pipes for stdin, stdout and stderr (text)."""
    return subprocess.Popen(
        [sys.executable, "-c", script, *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kw,
    )


def git(room: Mailroom, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """``git -C <root> ARGS`` (text output); raises on failure unless ``check=False``."""
    env = {k: v for k, v in os.environ.items() if k not in ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE")}
    return subprocess.run(
        ["git", "-C", str(room.root), *args], capture_output=True, text=True, env=env, check=check
    )


def git_bytes(room: Mailroom, *args: str) -> bytes:
    """``git -C <root> ARGS``, stdout as bytes (object contents)."""
    return subprocess.run(["git", "-C", str(room.root), *args], capture_output=True, check=True).stdout


GIT_LOCKS = ("index.lock", "HEAD.lock", "refs/heads/main.lock")


def wait_git_locks_gone(room: Mailroom, timeout: float = 10.0) -> None:
    """Git commands orphaned by a killed process finish on their own; wait for their locks to go."""
    retry_until(
        lambda: not any((room.git_dir / p).exists() for p in GIT_LOCKS),
        timeout=timeout,
        what="git locks of orphaned git commands to go",
    )


def pid_gone(pid: int) -> bool:
    """True once ``pid`` is neither running nor a zombie (a reaped child of another process)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] == "Z"
    except (FileNotFoundError, ProcessLookupError):  # gone between the open and the read
        return True
