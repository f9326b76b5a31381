"""Many processes at once: concurrent senders, senders killed mid-write, concurrent readers."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import MAILSLOT, git_out, retry_until

from mailslot import store
from mailslot.errors import MailslotError
from mailslot.mailroom import Mailroom
from mailslot.message import compose, parse

# Each worker script waits on stdin after its imports, so all of them start delivering together.
SENDER = r"""
import sys
from pathlib import Path
from mailslot import store
from mailslot.mailroom import Mailroom
from mailslot.message import compose

room = Mailroom(Path(sys.argv[1]))
worker, count = sys.argv[2], int(sys.argv[3])
print("ready", flush=True)
sys.stdin.readline()
for i in range(count):
    msg = compose(sender="alice", to=["bob"], subject=f"worker {worker} #{i}", body=f"{worker}/{i}")
    store.deliver(room, msg)
"""

# Delivers big messages (so a kill can land mid-write) to two inboxes until killed.
LOOPER = r"""
import sys
from pathlib import Path
from mailslot import store
from mailslot.mailroom import Mailroom
from mailslot.message import compose

room = Mailroom(Path(sys.argv[1]))
body = sys.argv[2] * int(sys.argv[3])
print("ready", flush=True)
while True:
    store.deliver(room, compose(sender="alice", to=["bob", "carol"], subject="big", body=body))
"""

# Runs `inbox` for bob until told to stop and nothing is left; prints every id it listed.
READER = r"""
import json, sys
from pathlib import Path
from mailslot import store
from mailslot.mailroom import Mailroom

room, stop = Mailroom(Path(sys.argv[1])), Path(sys.argv[2])
listed = []
print("ready", flush=True)
sys.stdin.readline()
while True:
    finished = stop.exists()  # read before the scan: a last full pass follows the writer
    found, problems = store.inbox(room, "bob")
    if problems:
        sys.exit(f"problems: {problems}")
    listed += [item.message.id for item in found]
    if finished and not found:
        break
print(json.dumps(listed), flush=True)
"""


@pytest.fixture
def procs() -> Iterator[list[subprocess.Popen[str]]]:
    """Processes a test starts; any still running at the end is killed."""
    started: list[subprocess.Popen[str]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


def start(procs: list[subprocess.Popen[str]], script: str, *args: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", script, *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    procs.append(proc)
    return proc


def go(workers: list[subprocess.Popen[str]]) -> None:
    """Wait until every worker has imported everything, then release them all at once."""
    for proc in workers:
        assert proc.stdout is not None and proc.stdin is not None
        line = proc.stdout.readline()
        assert line == "ready\n", proc.communicate()[1]
    for proc in workers:
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()


def finish(proc: subprocess.Popen[str], timeout: float = 120) -> str:
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err
    assert err == "", err  # no git error, no warning, no traceback
    return out


def clean(room: Mailroom) -> bool:
    return git_out(room.root, "status", "--porcelain", "--untracked-files=all") == ""


def tracked(room: Mailroom, folder: str) -> list[str]:
    return git_out(room.root, "ls-files", folder).splitlines()


def test_eight_processes_send_a_hundred_messages_each(room: Mailroom, procs: list) -> None:
    before = int(git_out(room.root, "rev-list", "--count", "HEAD"))
    workers = [start(procs, SENDER, str(room.root), str(w), "100") for w in range(8)]
    go(workers)
    for proc in workers:
        finish(proc)
    new = room.inbox("bob") / "new"
    files = sorted(new.iterdir())
    assert len(files) == 800
    bodies = {parse(f.read_bytes()).body for f in files}
    assert bodies == {f"\n{w}/{i}\n" for w in range(8) for i in range(100)}
    assert len(tracked(room, "inbox/bob/new")) == 800
    assert clean(room)
    assert list((room.state_dir / "journal").iterdir()) == []
    commits = int(git_out(room.root, "rev-list", "--count", "HEAD")) - before
    assert 0 < commits < 800  # group commit: contention makes fewer, larger commits
    history = git_out(room.root, "log", f"-{commits}", "--format=%B")
    for w in range(8):  # every message is named in the history, grouped or not
        for i in range(100):
            assert f"mail: alice -> bob: worker {w} #{i}\n" in history


def test_four_cli_processes_send_ten_messages_each(room: Mailroom, procs: list) -> None:
    loop = 'for i in 1 2 3 4 5 6 7 8 9 10; do "$0" send bob -s "cli $1 #$i" -m "$1/$i" || exit 1; done'
    env = {**os.environ, "MAILSLOT_AGENT": "alice"}
    for w in range(4):
        procs.append(
            subprocess.Popen(
                ["sh", "-c", loop, MAILSLOT, str(w)],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    printed = []
    for proc in procs:
        printed += finish(proc).splitlines()
    assert len(printed) == 40
    ids = {line.split()[0] for line in printed}
    assert {f.name for f in (room.inbox("bob") / "new").iterdir()} == {f"{mid}.md" for mid in ids}
    # the CLI answers first and commits in a detached child: everything is committed within seconds
    retry_until(
        lambda: len(tracked(room, "inbox/bob/new")) == 40 and not any((room.state_dir / "journal").iterdir()),
        timeout=20,
        what="the CLI's deferred commits",
    )
    assert clean(room)


def test_with_mailslot_sync_the_cli_has_committed_when_it_exits(room: Mailroom) -> None:
    env = {**os.environ, "MAILSLOT_AGENT": "alice", "MAILSLOT_SYNC": "1"}
    out = subprocess.run(
        [MAILSLOT, "send", "bob", "-s", "synced", "-m", "x"], env=env, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    assert f"inbox/bob/new/{out.stdout.split()[0]}.md" in tracked(room, "inbox/bob/new")


def test_a_sender_killed_at_random_moments_never_leaves_a_partial_file(room: Mailroom, procs: list) -> None:
    rng = random.Random(1121)
    body = "0123456789abcdef" * 16_384  # 256 KiB: each delivery takes a while to write
    expected = compose(sender="alice", to=["bob", "carol"], subject="big", body=body)
    for _ in range(30):
        proc = start(procs, LOOPER, str(room.root), "0123456789abcdef", "16384")
        assert proc.stdout is not None
        assert proc.stdout.readline() == "ready\n", proc.communicate()[1]
        time.sleep(rng.uniform(0, 0.05))  # the random moment of the kill
        proc.kill()
        proc.wait()
    delivered = [p for agent in ("bob", "carol") for p in (room.inbox(agent) / "new").iterdir()]
    assert delivered, "no delivery finished before a kill: the test proved nothing"
    for path in delivered:
        raw = path.read_bytes()
        msg = parse(raw)  # never partial: complete front matter ...
        assert msg.body == expected.body  # ... and the complete body
        assert len(raw) == len(expected.raw)
    # The mailroom recovers: once orphaned git commands are done, reading commits everything.
    locks = [room.git_dir / "index.lock", room.git_dir / "HEAD.lock", room.git_dir / "refs/heads/main.lock"]
    retry_until(lambda: not any(p.exists() for p in locks), what="git locks of killed senders to go")
    bob = {item.message.id for item in store.inbox(room, "bob")[0]}
    carol = {item.message.id for item in store.inbox(room, "carol")[0]}
    assert {p.stem for p in delivered} == bob | carol
    assert clean(room)


def test_two_readers_never_lose_or_duplicate_a_message(room: Mailroom, procs: list, tmp_path: Path) -> None:
    first = []
    for i in range(100):
        msg = compose(sender="carol", to=["bob"], subject=f"early {i}", body="x")
        store.deliver(room, msg, commit_now=False)
        first.append(msg.id)
    store.commit(room)
    stop = tmp_path / "stop"
    readers = [start(procs, READER, str(room.root), str(stop)) for _ in range(2)]
    writer = start(procs, SENDER, str(room.root), "late", "100")
    go([*readers, writer])
    finish(writer)
    stop.touch()
    listed = [json.loads(finish(reader)) for reader in readers]
    every = set(first) | {parse(p.read_bytes()).id for p in (room.inbox("bob") / "cur").iterdir()}
    assert len(every) == 200
    cur = sorted(p.name for p in (room.inbox("bob") / "cur").iterdir())
    assert cur == sorted(f"{mid}.md" for mid in every)  # each id exactly once: no copies, no losses
    assert list((room.inbox("bob") / "new").iterdir()) == []
    assert set(listed[0]) | set(listed[1]) == every  # every message was shown to a reader
    assert len(tracked(room, "inbox/bob/cur")) == 200
    assert tracked(room, "inbox/bob/new") == []
    assert clean(room)


def test_two_cli_readers_at_once(room: Mailroom, procs: list) -> None:
    ids = []
    for i in range(60):
        msg = compose(sender="alice", to=["bob"], subject=f"m{i}", body="x")
        store.deliver(room, msg, commit_now=False)
        ids.append(msg.id)
    store.commit(room)
    env = {**os.environ, "MAILSLOT_AGENT": "bob"}
    for _ in range(2):
        procs.append(
            subprocess.Popen(
                [MAILSLOT, "inbox", "--limit", "0"],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    outputs = []
    for proc in procs:
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        assert "Traceback" not in err
        outputs.append({line.split()[0] for line in out.splitlines()})
    assert outputs[0] | outputs[1] == set(ids)
    assert sorted(p.name for p in (room.inbox("bob") / "cur").iterdir()) == sorted(f"{m}.md" for m in ids)
    assert list((room.inbox("bob") / "new").iterdir()) == []
    retry_until(lambda: clean(room), timeout=20, what="the CLI's deferred commits")


def test_a_human_running_git_status_and_committing_meanwhile_breaks_nothing(room: Mailroom) -> None:
    """`git status` takes .git/index.lock for a moment; a human may commit too. Mail still flows."""
    stop = threading.Event()
    errors: list[str] = []

    def human() -> None:
        n = 0
        while not stop.is_set():
            subprocess.run(["git", "-C", str(room.root), "status", "--short"], capture_output=True)
            n += 1
            if n % 5 == 0:
                (room.root / "notes.txt").write_text(f"note {n}\n")
                subprocess.run(["git", "-C", str(room.root), "add", "notes.txt"], capture_output=True)
                subprocess.run(
                    ["git", "-C", str(room.root), "commit", "-qm", f"human note {n}"], capture_output=True
                )

    thread = threading.Thread(target=human)
    thread.start()
    try:
        for i in range(40):
            try:
                store.deliver(room, compose(sender="alice", to=["bob"], subject=f"m{i}", body="x"))
            except MailslotError as e:
                errors.append(str(e))
    finally:
        stop.set()
        thread.join()
    assert errors == []
    # git lets a concurrent `git status` write back an index it read before ours changed, so an
    # entry can drop out of the index (never out of the inbox); the sweep the daemon runs restores it
    from mailslot import vcs

    vcs.sweep(room)
    assert len(tracked(room, "inbox/bob/new")) == 40
    assert len(git_out(room.root, "ls-tree", "-r", "--name-only", "HEAD", "inbox/bob/new").split()) == 40
    assert (
        git_out(room.root, "status", "--porcelain", "--", "inbox", "agents") == ""
    )  # (notes.txt is the human's)
    assert (
        "human note"
        in subprocess.run(
            ["git", "-C", str(room.root), "log", "--format=%s"], capture_output=True, text=True
        ).stdout
    )
