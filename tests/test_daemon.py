"""The watch daemon, with a recording notifier: events, rescans, commits, quarantine, one instance."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator

import pytest
from conftest import add_agent, git_out, retry_until
from recorder import Recorder

from mailslot import store
from mailslot.daemon import Daemon
from mailslot.engine import Policy
from mailslot.errors import Busy
from mailslot.mailroom import Agent, Mailroom
from mailslot.message import compose


@pytest.fixture
def running(room: Mailroom) -> Iterator[tuple[Daemon, Recorder, list[str]]]:
    add_agent(room, Agent(name="bob", program="claude", host="testhost", pane="%1", socket="/nonexistent"))
    rec = Recorder()
    logs: list[str] = []
    daemon = Daemon(room, rec, Policy(), rescan=60.0, log=logs.append)
    thread = threading.Thread(target=daemon.serve, daemon=True)
    thread.start()
    retry_until(lambda: any("watching" in line for line in logs), what="daemon start")
    yield daemon, rec, logs
    daemon.stop()
    thread.join(timeout=10)
    assert not thread.is_alive(), "daemon did not stop"


def test_mail_from_the_cli_library_taps_once(
    running: tuple[Daemon, Recorder, list[str]], room: Mailroom
) -> None:
    _, rec, _ = running
    store.deliver(room, compose(sender="alice", to=["bob"], subject="hi", body="x"))
    retry_until(lambda: rec.count == 1, timeout=5, what="one tap")
    store.deliver(room, compose(sender="alice", to=["bob"], subject="again", body="x"))
    time.sleep(0.3)  # give a wrong second tap the chance to happen
    assert rec.count == 1


def test_hand_written_file_taps_and_is_committed(
    running: tuple[Daemon, Recorder, list[str]], room: Mailroom
) -> None:
    _, rec, _ = running
    msg = compose(sender="alice", to=["bob"], subject="written by hand", body="x")
    tmp = room.inbox("bob") / "tmp" / "draft"
    tmp.write_bytes(msg.raw)
    os.rename(tmp, room.inbox("bob") / "new" / "by-hand.md")
    retry_until(lambda: rec.count == 1, timeout=5, what="tap for a hand-written file")
    retry_until(
        lambda: "inbox/bob/new/by-hand.md" in git_out(room.root, "ls-files"), timeout=5, what="commit"
    )


def test_invalid_file_is_quarantined_and_the_daemon_keeps_running(
    running: tuple[Daemon, Recorder, list[str]], room: Mailroom
) -> None:
    _, rec, logs = running
    bad = room.inbox("bob") / "new" / "junk.md"
    bad.write_bytes(b"\x00\x01binary")
    retry_until(lambda: not bad.exists(), timeout=8, what="quarantine after the grace period")
    retry_until(
        lambda: any("quarantined inbox/bob/new/junk.md" in line for line in logs), what="its log line"
    )
    assert list(room.rejected_dir.glob("*junk.md.reason"))
    store.deliver(room, compose(sender="alice", to=["bob"], subject="still flowing", body="x"))
    retry_until(lambda: rec.count == 1, timeout=5, what="tap after a bad file")


def test_second_daemon_is_refused(running: tuple[Daemon, Recorder, list[str]], room: Mailroom) -> None:
    with pytest.raises(Busy, match="already running"):
        Daemon(room, Recorder(), Policy(), log=lambda _: None).serve()


def test_mail_present_at_start_is_found_by_the_catch_up_scan(room: Mailroom) -> None:
    add_agent(room, Agent(name="bob", program="claude", host="testhost", pane="%1", socket="/nonexistent"))
    store.deliver(room, compose(sender="alice", to=["bob"], subject="before start", body="x"))
    rec = Recorder()
    daemon = Daemon(room, rec, Policy(), log=lambda _: None)
    thread = threading.Thread(target=daemon.serve, daemon=True)
    thread.start()
    try:
        retry_until(lambda: rec.count == 1, timeout=5, what="catch-up tap")
    finally:
        daemon.stop()
        thread.join(timeout=10)


def test_the_daemon_sweep_removes_stale_tmp_files(room: Mailroom) -> None:
    stale = room.inbox("alice") / "tmp" / "m.999.dead"
    stale.write_bytes(b"left by a killed sender")
    old = time.time() - store.STALE_TMP_SECONDS - 60
    os.utime(stale, (old, old))
    logs: list[str] = []
    daemon = Daemon(room, Recorder(), Policy(), log=logs.append)
    thread = threading.Thread(target=daemon.serve, daemon=True)
    thread.start()
    try:
        retry_until(lambda: not stale.exists(), timeout=5, what="the sweep at start")
        retry_until(lambda: any("removed inbox/alice/tmp/m.999.dead" in line for line in logs), what="log")
    finally:
        daemon.stop()
        thread.join(timeout=10)
