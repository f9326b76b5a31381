"""A full disk: the mailroom on a 1 MiB tmpfs, filled so that only N pages (4 KiB) are left.

With N = 0 the message file itself cannot be written; with a few pages the journal entry, git's
objects, git's index or its ref cannot. Whatever fails, nothing half-written is visible in ``new/``,
and once space is back mail flows again and everything is committed. Where mounting is not allowed
(not root), the disk is simulated: ``os.write`` raises ENOSPC for files of the mailroom once a budget
of bytes is spent (git's own writes then never fail).
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import subprocess
import time
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from conftest import MAILSLOT

from mailslot import fsutil, registry, store, vcs
from mailslot.cli import cli
from mailslot.errors import GitError, MailslotError
from mailslot.mailroom import Mailroom
from mailslot.message import compose

from .audit import Sent, audit, sha
from .harness import FULL

pytestmark = pytest.mark.chaos

PAGE = 4096
CLI_SUBJECT = "sent by the CLI on a full disk"


class Disk:
    """Where mailrooms live, and a way to fill it up leaving ``pages`` free, then to free it again."""

    def __init__(self, base: Path, real: bool) -> None:
        self.base = base
        self.real = real
        self.patch = pytest.MonkeyPatch()  # its own: undoing it leaves the test's isolation alone
        self.budget: int | None = None

    def fill(self, pages: int) -> None:
        if self.real:
            st = os.statvfs(self.base)
            target = st.f_bavail * st.f_frsize - pages * PAGE
            with open(self.base / "filler", "wb") as fh:
                try:
                    while target > 0:
                        target -= fh.write(b"\0" * min(target, 1 << 16))
                except OSError as e:
                    assert e.errno == errno.ENOSPC
            st = os.statvfs(self.base)
            assert st.f_bavail * st.f_frsize == pages * PAGE, "the filler left the wrong amount of space"
            return
        self.budget = pages * PAGE
        real_write = os.write
        root = str(self.base)

        def write(fd: int, data: Any) -> int:
            if self.budget is not None and os.readlink(f"/proc/self/fd/{fd}").startswith(root):
                if len(data) > self.budget:
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
                self.budget -= -(-len(data) // PAGE) * PAGE  # whole pages, like tmpfs
            return real_write(fd, data)

        self.patch.setattr(os, "write", write)

    def free(self) -> None:
        if self.real:
            (self.base / "filler").unlink()
        else:
            self.budget = None
            self.patch.undo()


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[Disk]:
    """A 1 MiB tmpfs when this process may mount one (root), else a simulated disk."""
    mnt = tmp_path / "disk"
    mnt.mkdir()
    mounted = (
        shutil.which("mount") is not None
        and subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)], capture_output=True, check=False
        ).returncode
        == 0
    )
    made = Disk(mnt, mounted)
    try:
        yield made
    finally:
        made.patch.undo()
        if mounted:
            subprocess.run(["umount", "-l", str(mnt)], capture_output=True, check=False)


def new_room(disk: Disk, name: str) -> Mailroom:
    room = vcs.init_repo(disk.base / name)
    for agent in ("alice", "bob"):
        registry.register(room, agent, no_pane=True)
    return room


def says_disk_full(text: str) -> bool:
    return re.search(r"space|disk is full|quota", text, re.IGNORECASE) is not None


def cli_send(room: Mailroom, subject: str, body: str) -> Any:
    """``mailslot send`` in-process: a traceback shows as ``result.exception`` (not a SystemExit)."""
    return CliRunner().invoke(
        cli,
        ["--root", str(room.root), "send", "bob", "-s", subject, "-m", body],
        env={"MAILSLOT_AGENT": "alice"},
    )


def traceback_of(result: Any) -> str | None:
    """The exception a real process would print as a traceback, if any."""
    exc = result.exception
    return None if exc is None or isinstance(exc, SystemExit) else f"{type(exc).__name__}: {exc}"


def copies_of(room: Mailroom, subject: str) -> list[Path]:
    found = []
    for item in store.scan_inbox(room, "bob", seen=None):
        if isinstance(item, store.Stored) and item.message.subject == subject:
            found.append(item.path)
    return found


def nothing_half_written(room: Mailroom, expected: dict[str, bytes]) -> None:
    """Every file in new/ is a whole message: one we sent byte for byte, or the CLI's, whole."""
    for path in (room.inbox("bob") / "new").iterdir():
        msg = store.load(path)  # raises if partial
        if msg.id in expected:
            assert path.read_bytes() == expected[msg.id], f"{path} differs from what was sent"
        else:
            assert msg.subject == CLI_SUBJECT and msg.body == "\n" + "B" * 300 + "\n", f"unexpected {path}"


LEVELS = list(range(17)) if FULL else [0, 1, 2, 4, 8]


def test_full_disk_nothing_half_written_and_mail_flows_again(disk: Disk, figures) -> None:
    outcomes: dict[int, dict[str, Any]] = {}
    messages = lost = 0
    for pages in LEVELS:
        room = new_room(disk, f"room-{pages}")
        disk.fill(pages)
        first = compose(sender="alice", to=["bob"], subject="on a full disk", body="A" * 300)
        start = time.monotonic()
        try:
            store.deliver(room, first)
            library = "ok"
        except MailslotError as e:
            library = f"{type(e).__name__}: {e}"
        except OSError as e:  # not a MailslotError: reported by test_full_disk_gives_a_clear_error
            library = f"{type(e).__name__}: {e}"
        seconds = time.monotonic() - start
        disk.free()
        disk.fill(pages)  # the CLI gets as little space as the library had
        by_cli = cli_send(room, CLI_SUBJECT, "B" * 300)
        nothing_half_written(room, {first.id: first.raw})
        outcomes[pages] = {
            "library": library,
            "seconds": round(seconds, 2),
            "cli_exit": by_cli.exit_code,
            "cli": traceback_of(by_cli) or by_cli.stderr.strip(),
            "delivered_despite_error": (library != "ok" and bool(copies_of(room, "on a full disk")))
            + (by_cli.exit_code != 0 and bool(copies_of(room, CLI_SUBJECT))),
        }
        disk.free()
        # Space is back: mail flows again, and the audit's sweep commits whatever was left behind.
        after = compose(sender="alice", to=["bob"], subject="space is back", body="C")
        store.deliver(room, after)
        again = cli_send(room, "space is back, CLI", "D")
        assert again.exit_code == 0 and traceback_of(again) is None, again.stderr
        sent, maybe = [Sent.of(after)], []
        (sent if library == "ok" else maybe).append(Sent.of(first))
        for path in copies_of(room, CLI_SUBJECT) + copies_of(room, "space is back, CLI"):
            msg = store.load(path)
            (sent if by_cli.exit_code == 0 or msg.subject != CLI_SUBJECT else maybe).append(
                Sent(msg.id, sha(path.read_bytes()), ("bob",), msg.thread)
            )
        result = audit(room, sent, maybe=maybe)
        messages += result.messages + result.maybe_found
        lost += result.lost
        shutil.rmtree(room.root)  # space for the next level
    for pages, o in outcomes.items():
        print(f"{pages} pages free: {o}")
    figures(
        runs=len(LEVELS),
        messages=messages,
        faults=sum(o["library"] != "ok" for o in outcomes.values())
        + sum(o["cli_exit"] != 0 for o in outcomes.values()),
        lost=lost,
        disk="tmpfs" if disk.real else "simulated",
        tracebacks=sum(o["cli"].startswith("OSError") for o in outcomes.values()),
        delivered_despite_error=sum(o["delivered_despite_error"] for o in outcomes.values()),
        details={str(k): v for k, v in outcomes.items()},
    )


def test_full_disk_gives_a_clear_error(disk: Disk) -> None:
    """ENOSPC escaped as OSError: no MailslotError from the library, a traceback from the CLI."""
    room = new_room(disk, "room")
    disk.fill(0)
    msg = compose(sender="alice", to=["bob"], subject="on a full disk", body="A")
    try:
        store.deliver(room, msg)
        raised: BaseException | None = None
    except BaseException as e:  # what kind of exception it is, is the point
        raised = e
    by_cli = cli_send(room, CLI_SUBJECT, "B")
    console = None
    if disk.real:  # the console script itself, as an agent runs it (answers first, commits later)
        env = {**os.environ, "MAILSLOT_ROOT": str(room.root), "MAILSLOT_AGENT": "alice"}
        console = subprocess.run(
            [MAILSLOT, "send", "bob", "-s", CLI_SUBJECT, "-m", "B"], capture_output=True, text=True, env=env
        )
    disk.free()
    assert list((room.inbox("bob") / "new").iterdir()) == []  # nothing half-written
    assert isinstance(raised, MailslotError), f"the library raised {raised!r}"
    assert traceback_of(by_cli) is None, f"the CLI would print a traceback: {traceback_of(by_cli)}"
    lines = by_cli.stderr.splitlines()
    assert by_cli.exit_code != 0 and len(lines) == 1 and lines[0].startswith("mailslot: "), by_cli.stderr
    assert says_disk_full(lines[0]), f"the error does not say the disk is full: {lines[0]}"
    if console is not None:
        assert console.returncode == by_cli.exit_code and console.stderr.splitlines() == lines, console.stderr


def test_no_space_for_the_index_is_not_reported_as_a_held_lock(
    room: Mailroom, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Any git error naming index.lock was read as contention: retried ~12 s, then reported as
    "locked by another git process". What git 2.39 says when the index cannot be written on a full
    disk (seen on a real tmpfs with three pages free) is simulated here, to be deterministic and fast."""
    real_git = vcs.git
    calls: list[str] = []

    def git(r: Mailroom, *args: str, **kw: Any) -> str:
        if args and args[0] == "update-index":
            calls.append(args[0])
            error = GitError("git update-index failed: fatal: sha1 file write error")
            error.stderr = f"fatal: sha1 file '{r.git_dir}/index.lock' write error. Out of diskspace"
            raise error
        return real_git(r, *args, **kw)

    class FailedStager(vcs._Stager):  # the background update-index failed: finish() redoes it
        def __init__(self, r: Mailroom, paths: list[str]) -> None:
            self.room, self.paths, self.stamp, self.proc, self.failed = r, paths, None, None, True

        def finish(self) -> None:
            if self.failed:
                self.failed = False
                vcs._update_index(self.room, self.paths)

    monkeypatch.setattr(vcs, "git", git)
    monkeypatch.setattr(vcs, "_Stager", FailedStager)
    monkeypatch.setattr(
        vcs, "time", types.SimpleNamespace(sleep=lambda s: None, time=time.time, monotonic=time.monotonic)
    )
    with pytest.raises(MailslotError) as caught:
        store.deliver(room, compose(sender="alice", to=["bob"], subject="no room for the index", body="x"))
    assert "another git" not in str(caught.value), str(caught.value)
    assert says_disk_full(str(caught.value)), str(caught.value)
    assert len(calls) == 1, f"update-index was tried {len(calls)} times"


def test_a_big_batch_on_a_full_disk_delivers_nothing_and_leaves_no_copy(disk: Disk) -> None:
    """deliver_many writes a big batch with several threads; when some copies do not fit, every copy
    already written is removed and none is linked into new/."""
    room = new_room(disk, "room")
    msgs = [compose(sender="alice", to=["bob", "alice"], subject=f"batch {i}", body="B") for i in range(40)]
    assert len(msgs) * 2 >= fsutil.PARALLEL_MIN  # the threaded path
    disk.fill(20)  # room for about 20 of the 80 copies
    with pytest.raises(MailslotError) as raised:
        store.deliver_many(room, msgs)
    disk.free()
    assert says_disk_full(str(raised.value)), str(raised.value)
    for agent in ("alice", "bob"):
        for sub in ("new", "tmp"):
            assert list((room.inbox(agent) / sub).iterdir()) == [], f"{agent}/{sub} kept a copy"
    landed = store.deliver_many(room, msgs)  # space is back: the same batch goes through whole
    assert sorted(p.read_bytes() for p in landed) == sorted(m.raw for m in msgs for _ in range(2))
    assert vcs.uncommitted(room) == []
