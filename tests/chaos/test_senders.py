"""Chaos among processes: many senders while the daemon is SIGKILLed and restarted; senders SIGKILLed.

Scenario 1: 8 library senders (``compose`` + ``store.deliver``) in subprocesses, while a ``mailslot
watch`` subprocess is killed with SIGKILL and restarted every ~0.7 s (full: ~2 s); the recipient is a
fake agent in a real tmux pane that reads its mail whenever a tap reaches it, so taps, reads, commits
and kills all overlap. Scenario 2: senders killed with SIGKILL at random moments.
"""

from __future__ import annotations

import os
import random
import signal
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
from conftest import retry_until
from fakeharness import start_agent

from mailslot import journal, ledger, registry, store
from mailslot.engine import Engine, Policy
from mailslot.mailroom import Mailroom
from mailslot.tapper import TmuxNotifier

from .audit import Sent, audit, reported, sha
from .harness import (
    FULL,
    SENDER,
    git,
    pid_gone,
    python,
    size,
    start_watch,
    wait_git_locks_gone,
)

pytestmark = [pytest.mark.chaos, pytest.mark.tmux]

# Forks a delivering child per line read ("<n>"), prints its pid; the child delivers until killed and
# appends one report line after each delivery that returned. Forking skips the import cost per kill.
FORKER = r"""
import hashlib, json, os, random, signal, sys
from pathlib import Path
from mailslot import store
from mailslot.mailroom import Mailroom
from mailslot.message import compose

room, reports = Mailroom(Path(sys.argv[1])), Path(sys.argv[2])
signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # killed children are reaped by the kernel
print("ready", flush=True)
for line in sys.stdin:
    n = int(line)
    pid = os.fork()
    if pid == 0:
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # git subprocesses must be waited for
        rng = random.Random(n)
        out = os.open(reports / f"{n}.jsonl", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        for i in range(10**9):
            size = rng.choice([1, 10, 100, 5_000, 40_000])  # up to ~400 KiB: a kill may land mid-write
            to = rng.choice([["bob"], ["carol"], ["bob", "carol"]])
            msg = compose(sender="alice", to=to, subject=f"k{n} #{i}", body=f"k{n}-{i}|" * size)
            store.deliver(room, msg)
            rec = {"id": msg.id, "sha256": hashlib.sha256(msg.raw).hexdigest(),
                   "recipients": list(msg.recipients), "thread": msg.thread}
            os.write(out, (json.dumps(rec) + "\n").encode())
    print(pid, flush=True)
"""


def test_eight_senders_while_the_daemon_is_killed_and_restarted(
    room: Mailroom, tmux_socket: str, tmp_path: Path, procs: list, figures
) -> None:
    workers, count = 8, size(40, 500)
    interval = (1.0, 3.0) if FULL else (0.3, 1.1)  # from the moment the daemon is up
    pace = "0.03" if FULL else "0.12"
    agent = start_agent(tmux_socket, "claude", tmp_path, busy_ms=150)
    registry.register(room, "bob", target=agent.pane, sock=tmux_socket, program="claude")
    reports = tmp_path / "reports"
    reports.mkdir()
    senders = [
        python(SENDER, str(room.root), str(w), str(count), str(reports / f"{w}.jsonl"), pace)
        for w in range(workers)
    ]
    procs += senders
    for proc in senders:
        assert proc.stdout.readline() == "ready\n", proc.communicate()[1]

    stop = threading.Event()
    reads: list[int] = []
    problems: list[str] = []

    def bob_reads_when_tapped() -> None:
        """The agent's side: each tap that reaches it makes it read its inbox (marking mail seen)."""
        handled = 0
        while not stop.is_set():
            now = sum("[mailslot]" in t for t in agent.submitted())
            if now > handled:
                handled = now
                found, bad = store.inbox(room, "bob")
                reads.append(len(found))
                problems.extend(f"{p.path}: {p.reason}" for p in bad)
            time.sleep(0.05)

    reader = threading.Thread(target=bob_reads_when_tapped)
    reader.start()
    rng = random.Random(20261121)
    kills = 0
    log = tmp_path / "watch.log"
    try:
        for proc in senders:
            proc.stdin.write("go\n")
            proc.stdin.flush()
        while any(p.poll() is None for p in senders):
            daemon = start_watch(room, log)
            procs.append(daemon)
            up = kills + 1
            retry_until(lambda n=up: log.read_text().count("watching") >= n, what="the daemon up")
            time.sleep(rng.uniform(*interval))  # the test is about kills at arbitrary moments
            daemon.send_signal(signal.SIGKILL)
            daemon.wait()
            kills += 1
    finally:
        stop.set()
        reader.join()
    for proc in senders:
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 0 and err == "", err
    assert problems == []
    assert kills >= 3, "the daemon was hardly ever killed: the run proved little"
    # The aftermath: a last pass settles any tap a killed daemon left half done (recovers its claim).
    Engine(room, TmuxNotifier(), Policy(retap_after=3600, budget=100_000)).run()
    sent = reported(reports)
    assert len(sent) == workers * count
    result = audit(room, sent, fakes=[agent])
    assert reads, "no tap reached the agent while the daemon was being killed"
    assert "Traceback" not in log.read_text()
    outcomes = Counter(r["result"] for r in ledger.read_log(room))
    figures(
        runs=1,
        messages=result.messages,
        faults=kills,
        lost=result.lost,
        copies=result.copies,
        taps_submitted=sum("[mailslot]" in t for t in agent.submitted()),
        tap_outcomes=dict(outcomes),
    )


def test_senders_killed_at_random_moments(room: Mailroom, tmp_path: Path, procs: list, figures) -> None:
    kills = size(25, 200)
    reports = tmp_path / "reports"
    reports.mkdir()
    forker = python(FORKER, str(room.root), str(reports))
    procs.append(forker)
    assert forker.stdout.readline() == "ready\n", forker.communicate()[1]
    rng = random.Random(1121)
    alive: list[int] = []

    def fork(n: int) -> None:
        forker.stdin.write(f"{n}\n")
        forker.stdin.flush()
        alive.append(int(forker.stdout.readline()))

    fork(0)
    for n in range(1, kills + 1):
        fork(n)  # two senders at a time: one may die holding the git lock while the other waits
        time.sleep(rng.uniform(0.0, 0.15))  # the random moment of the kill
        victim = alive.pop(0)
        os.kill(victim, signal.SIGKILL)
        retry_until(lambda v=victim: pid_gone(v), what=f"sender {victim} to die")
    for pid in alive:
        os.kill(pid, signal.SIGKILL)
        retry_until(lambda p=pid: pid_gone(p), what=f"sender {pid} to die")
    forker.stdin.close()
    forker.wait(timeout=10)
    sent = reported(reports)
    assert len(sent) >= kills // 2, "too few deliveries finished before the kills: the test proved little"

    # No partial file in any new/: every file there parses whole (its body is one sender's pattern).
    for agent in ("bob", "carol"):
        for path in (room.inbox(agent) / "new").iterdir():
            msg = store.load(path)
            unit = msg.body.strip("\n").split("|")[0] + "|"
            assert msg.body == "\n" + unit * (msg.body.count("|")) + "\n", f"partial body in {path}"
    wait_git_locks_gone(room)
    fsck = git(room, "fsck", "--strict", "--no-progress", check=False)
    assert fsck.returncode == 0, f"git fsck after the kills: {fsck.stderr}"
    before_sweep = len(journal.pending(room))
    staged = sorted(p.name for agent in ("bob", "carol") for p in (room.inbox(agent) / "tmp").iterdir())
    state_tmp = sorted(p.name for p in (room.state_dir / "journal").iterdir() if p.name.startswith("."))
    result = audit(room, sent, unknown_ok=True)  # unreported: killed between delivery and report
    figures(
        runs=kills,
        messages=result.messages,
        faults=kills,
        lost=result.lost,
        unreported_found_whole=result.unknown,
        journal_entries_left_by_kills=before_sweep,
        tmp_files_left=len(staged),
        journal_temp_files_left=len(state_tmp),
    )


def test_sha_of_sent_matches_the_file(room: Mailroom) -> None:
    """The audit's own premise: what deliver writes is byte for byte the composed message."""
    from mailslot.message import compose

    msg = compose(sender="alice", to=["bob", "carol"], subject="premise", body="x")
    paths = store.deliver(room, msg)
    assert {sha(p.read_bytes()) for p in paths} == {Sent.of(msg).sha256}
    audit(room, [Sent.of(msg)])
