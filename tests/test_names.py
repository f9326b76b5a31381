"""Identifiers that become parts of paths: agent names, thread ids, message ids, archive shards."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from mailslot import names
from mailslot.errors import InvalidName
from mailslot.mailroom import Mailroom

BAD_AGENTS = ["../x", ".hidden", "a/b", "", "a" * 200, "Alice", "a b", "a\x00b", "..", "a\\b", "x\n", "-x"]
BAD_THREADS = ["a/b", "../t", ".t", ".hidden", "..", "", "t" * 65, "t\x00", "t\n", "a\\b", "_t", "-t"]


@pytest.mark.parametrize("name", BAD_AGENTS)
def test_invalid_agent_names_are_refused(name: str) -> None:
    with pytest.raises(InvalidName, match="invalid agent name"):
        names.check_agent(name)


@pytest.mark.parametrize("name", BAD_AGENTS)
def test_an_invalid_agent_name_never_becomes_a_path(name: str, tmp_path: Path) -> None:
    room = Mailroom(tmp_path)
    with pytest.raises(InvalidName):
        room.inbox(name)
    with pytest.raises(InvalidName):
        room.card_path(name)


@pytest.mark.parametrize("value", [None, 7, ["alice"], b"alice"])
def test_non_strings_are_invalid_names(value: object) -> None:
    with pytest.raises(InvalidName):
        names.check_agent(value)
    with pytest.raises(InvalidName):
        names.check_thread(value)
    with pytest.raises(InvalidName):
        names.check_message_id(value)


def test_a_long_name_is_shortened_in_the_error() -> None:
    with pytest.raises(InvalidName) as info:
        names.check_agent("a" * 200)
    assert len(str(info.value)) < 150
    assert "..." in str(info.value)


@pytest.mark.parametrize("name", ["alice", "bob", "a", "backend-2", "x_y", "0day", "a" * 32])
def test_valid_agent_names_pass(name: str) -> None:
    assert names.check_agent(name) == name


def test_agent_names_are_bounded_at_32_characters() -> None:
    names.check_agent("a" * 32)
    with pytest.raises(InvalidName):
        names.check_agent("a" * 33)


@pytest.mark.parametrize("thread", BAD_THREADS)
def test_invalid_thread_ids_are_refused(thread: str, tmp_path: Path) -> None:
    with pytest.raises(InvalidName, match="invalid thread id"):
        names.check_thread(thread)
    with pytest.raises(InvalidName):
        Mailroom(tmp_path).archive_dir(thread)


@pytest.mark.parametrize("thread", ["t-k3f9a2q7", "T1", "issue-42", "v1.2.3", "a_b", "x" * 64])
def test_valid_thread_ids_pass(thread: str) -> None:
    assert names.check_thread(thread) == thread


@pytest.mark.parametrize("mid", ["../m", ".m", "a/b", "", "m" * 81, "a:b", "a b"])
def test_invalid_message_ids_are_refused(mid: str) -> None:
    with pytest.raises(InvalidName, match="invalid message id"):
        names.check_message_id(mid)


def test_generated_message_ids_match_the_pattern_and_make_valid_file_names() -> None:
    for _ in range(200):
        mid = names.new_message_id()
        assert re.fullmatch(r"\d{8}T\d{9}Z-[a-z2-7]{6}", mid), mid
        assert names.check_message_id(mid) == mid
        assert names.is_mail_file_name(f"{mid}.md")
        assert ":" not in mid


def test_generated_message_ids_are_unique() -> None:
    ids = {names.new_message_id() for _ in range(2000)}
    assert len(ids) == 2000


def test_generated_message_ids_sort_by_time() -> None:
    start = datetime(2026, 1, 31, 23, 59, 58, 998_000, tzinfo=UTC)
    moments = [start + timedelta(milliseconds=n * 7) for n in range(600)]
    ids = [names.new_message_id(m) for m in moments]
    assert sorted(ids) == ids
    assert ids[0].startswith("20260131T235958998Z-")


def test_ids_generated_later_sort_later() -> None:
    first = names.new_message_id()
    later = names.new_message_id(datetime.now(UTC) + timedelta(milliseconds=5))
    assert first < later


def test_generated_thread_ids_match_the_pattern() -> None:
    seen = set()
    for _ in range(200):
        tid = names.new_thread_id()
        assert re.fullmatch(r"t-[a-z2-7]{8}", tid), tid
        assert names.check_thread(tid) == tid
        seen.add(tid)
    assert len(seen) == 200


@pytest.mark.parametrize("thread", ["t-k3f9a2q7", "issue-42", "x" * 64, "T1"])
def test_archive_shard_is_two_hex_digits_and_stable(thread: str, tmp_path: Path) -> None:
    shard = names.archive_shard(thread)
    assert re.fullmatch(r"[0-9a-f]{2}", shard)
    assert names.archive_shard(thread) == shard
    assert Mailroom(tmp_path).archive_dir(thread) == tmp_path / "archive" / shard / thread


@pytest.mark.parametrize(("thread", "shard"), [("t-k3f9a2q7", "5b"), ("issue-42", "ff"), ("T1", "e2")])
def test_archive_shard_is_pinned(thread: str, shard: str) -> None:
    # The first byte of sha1(thread); a change would strand every archived thread in the wrong shard.
    assert names.archive_shard(thread) == shard


def test_archive_shards_spread_threads() -> None:
    shards = {names.archive_shard(names.new_thread_id()) for _ in range(500)}
    assert len(shards) > 100


@pytest.mark.parametrize(
    ("name", "ok"),
    [
        ("20261121T202745123Z-k3f9a2.md", True),
        ("hand-written.md", True),
        (".20261121T202745123Z-k3f9a2.md", False),
        ("notes.txt", False),
        ("a:b.md", False),
        ("a b.md", False),
        (".md", False),
        ("x.md.tmp", False),
    ],
)
def test_mail_file_names(name: str, ok: bool) -> None:
    assert names.is_mail_file_name(name) is ok
