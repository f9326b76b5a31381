"""Every command of the CLI, in-process, against a real git mailroom."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import click
import pytest
from click.testing import Result
from conftest import MAILSLOT, git_out

from mailslot import names
from mailslot.cli import cli
from mailslot.errors import NotFound
from mailslot.mailroom import MARKER, Mailroom
from mailslot.message import parse

Run = Callable[..., Result]


def send(run: Run, *args: str, agent: str = "alice") -> tuple[str, str]:
    """``mailslot send ARGS`` as ``agent``; the new message's id and thread."""
    mid, thread = run("send", *args, agent=agent).stdout.split()
    return mid, thread


def listing(room: Mailroom, agent: str, sub: str) -> list[str]:
    return sorted(p.name for p in (room.inbox(agent) / sub).iterdir())


def clean(root: Path) -> bool:
    return git_out(root, "status", "--porcelain", "--untracked-files=all") == ""


def one_error_line(result: Result) -> str:
    """The whole of stderr, which must be one ``mailslot: ...`` line and no traceback."""
    assert "Traceback" not in result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("mailslot: "), lines[0]
    return lines[0]


def all_mail_files(room: Mailroom) -> list[Path]:
    return sorted(p for p in (room.root / "inbox").glob("*/*/*") if p.parent.name in ("new", "cur"))


# --- init and the root ------------------------------------------------------------------------


def test_init_prints_the_path_and_is_idempotent(isolated: Path, run: Run) -> None:
    target = isolated / "elsewhere" / "mail"
    first = run("init", str(target))
    assert first.stdout == f"{target.resolve()}\n"
    assert (target / MARKER).is_file()
    assert git_out(target, "branch", "--show-current").strip() == "main"
    commits = git_out(target, "rev-list", "--count", "HEAD")
    second = run("init", str(target))
    assert second.stdout == first.stdout
    assert git_out(target, "rev-list", "--count", "HEAD") == commits
    assert clean(target)


def test_init_without_a_path_uses_the_resolved_root(isolated: Path, run: Run) -> None:
    assert run("init").stdout.strip() == str((isolated / "mailroom").resolve())
    other = isolated / "flagged"
    assert run("--root", str(other), "init").stdout.strip() == str(other.resolve())
    assert (other / MARKER).is_file()


def test_root_flag_beats_the_environment(room: Mailroom, isolated: Path, run: Run) -> None:
    other = isolated / "other"
    run("init", str(other))
    run("--root", str(other), "register", "zed", "--no-pane")
    assert run("agents").stdout.split("\n")[0].startswith("alice")
    assert "zed" not in run("agents").stdout
    assert [line.split()[0] for line in run("--root", str(other), "agents").stdout.splitlines()] == ["zed"]
    assert (other / "agents" / "zed.md").is_file()
    assert not room.card_path("zed").exists()


def test_without_a_root_the_per_user_mailroom_is_created_and_shared(
    isolated: Path, run: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MAILSLOT_ROOT")
    default = isolated / "home" / ".local" / "share" / "mailslot" / "mailroom"
    one, two = isolated / "wt1", isolated / "wt2"
    one.mkdir()
    two.mkdir()
    monkeypatch.chdir(one)
    first = run("register", "alice", "--no-pane")
    assert f"created the default mailroom at {default}" in first.stderr
    assert (default / MARKER).is_file()
    assert (default / "agents" / "alice.md").is_file()
    monkeypatch.chdir(two)
    again = run("agents")
    assert again.stdout.split()[0] == "alice"
    assert "created" not in again.stderr
    send(run, "alice", "-s", "note to self", "-m", "x")
    assert len(list((default / "inbox" / "alice" / "new").iterdir())) == 1
    assert not (one / MARKER).exists() and not (two / MARKER).exists()
    assert run("init").stdout.strip() == str(default)


def test_a_root_that_is_not_a_mailroom_is_a_clear_error(isolated: Path, run: Run) -> None:
    empty = isolated / "empty"
    empty.mkdir()
    result = run("--root", str(empty), "agents", code=5)
    assert "is not a mailroom" in one_error_line(result)
    assert "mailslot init" in result.stderr


# --- agents and identity ----------------------------------------------------------------------


def test_register_and_agents(room: Mailroom, run: Run) -> None:
    out = run("register", "dave", "--no-pane", "--program", "claude", "--role", "reviewer").stdout
    assert out.startswith("registered dave (claude, no pane")
    lines = run("agents").stdout.splitlines()
    assert [line.split()[0] for line in lines] == ["alice", "bob", "carol", "dave"]
    assert lines[3] == "dave claude - testhost reviewer"
    rows = [json.loads(line) for line in run("agents", "--json").stdout.splitlines()]
    assert [r["name"] for r in rows] == ["alice", "bob", "carol", "dave"]
    assert rows[3] == {
        "name": "dave",
        "program": "claude",
        "host": "testhost",
        "pane": None,
        "socket": None,
        "role": "reviewer",
        "worktree": None,
    }
    assert room.inbox("dave").joinpath("new").is_dir()
    assert clean(room.root)


def test_reregistering_keeps_the_role_and_the_notes(room: Mailroom, run: Run) -> None:
    run("register", "dave", "--no-pane", "--role", "reviewer")
    card = room.card_path("dave")
    card.write_text(card.read_text() + "Knows the billing code.\n")
    run("register", "dave", "--no-pane", "--program", "codex")
    text = card.read_text()
    assert "program: codex" in text and "role: reviewer" in text
    assert text.endswith("Knows the billing code.\n")


def test_whoami(room: Mailroom, run: Run) -> None:
    assert run("whoami", agent="bob").stdout == "bob\n"
    assert json.loads(run("whoami", "--json", agent="bob").stdout) == {"name": "bob", "via": "MAILSLOT_AGENT"}
    result = run("whoami", code=4)
    line = one_error_line(result)
    assert "who are you?" in line and "--from" in line and "MAILSLOT_AGENT" in line


def test_whoami_honours_from(room: Mailroom, run: Run) -> None:
    assert run("whoami", "--from", "carol", agent="bob").stdout == "carol\n"


def test_from_beats_the_environment(room: Mailroom, run: Run) -> None:
    mid, _ = send(run, "bob", "-s", "hi", "-m", "x", "--from", "carol", agent="alice")
    assert parse((room.inbox("bob") / "new" / f"{mid}.md").read_bytes()).sender == "carol"


def test_sending_without_an_identity_is_a_clear_error(room: Mailroom, run: Run) -> None:
    result = run("send", "bob", "-s", "hi", "-m", "x", code=4)
    assert "who are you?" in one_error_line(result)
    assert all_mail_files(room) == []


# --- send -------------------------------------------------------------------------------------


def test_send_with_message(room: Mailroom, run: Run) -> None:
    mid, thread = send(run, "bob", "-s", "Fix login", "-m", "It 500s on empty passwords")
    assert names.check_message_id(mid) and names.check_thread(thread)
    assert listing(room, "bob", "new") == [f"{mid}.md"]
    msg = parse((room.inbox("bob") / "new" / f"{mid}.md").read_bytes())
    assert (msg.id, msg.thread, msg.sender, msg.to, msg.subject) == (
        mid,
        thread,
        "alice",
        ("bob",),
        "Fix login",
    )
    assert msg.body == "\nIt 500s on empty passwords\n"
    assert listing(room, "alice", "new") == []
    assert clean(room.root)


def test_send_with_the_body_on_stdin(room: Mailroom, run: Run) -> None:
    body = "# Plan\n\n- step one\n- step two: `x | y`\n"
    mid, _ = run("send", "bob", "-s", "Plan", input=body, agent="alice").stdout.split()
    msg = parse((room.inbox("bob") / "new" / f"{mid}.md").read_bytes())
    assert msg.body == "\n" + body


def test_send_with_cc_delivers_one_copy_per_inbox(room: Mailroom, run: Run) -> None:
    mid, _ = send(run, "bob", "--cc", "carol", "--cc", "bob", "-s", "FYI", "-m", "x")
    for agent in ("bob", "carol"):
        assert listing(room, agent, "new") == [f"{mid}.md"]
        msg = parse((room.inbox(agent) / "new" / f"{mid}.md").read_bytes())
        assert msg.to == ("bob",) and msg.cc == ("carol",)
    assert (room.inbox("bob") / "new" / f"{mid}.md").read_bytes() == (
        room.inbox("carol") / "new" / f"{mid}.md"
    ).read_bytes()


def test_send_to_several_recipients(room: Mailroom, run: Run) -> None:
    mid, _ = send(run, "bob", "carol", "-s", "All hands", "-m", "x")
    assert listing(room, "bob", "new") == listing(room, "carol", "new") == [f"{mid}.md"]


def test_send_into_an_existing_thread(room: Mailroom, run: Run) -> None:
    _, thread = send(run, "bob", "-s", "first", "-m", "x")
    mid, again = send(run, "carol", "-s", "second", "-m", "y", "--thread", thread)
    assert again == thread
    assert parse((room.inbox("carol") / "new" / f"{mid}.md").read_bytes()).thread == thread
    named = send(run, "bob", "-s", "named", "-m", "z", "--thread", "issue-42")
    assert named[1] == "issue-42"


def test_send_urgent(room: Mailroom, run: Run) -> None:
    mid, _ = send(run, "bob", "-s", "Prod is down", "-m", "now", "--priority", "urgent")
    raw = (room.inbox("bob") / "new" / f"{mid}.md").read_bytes()
    assert b"\npriority: urgent\n" in raw
    line = run("inbox", agent="bob").stdout.strip()
    assert line.startswith(mid) and " ! Prod is down" in line


def test_send_json(room: Mailroom, run: Run) -> None:
    out = run("send", "bob", "--cc", "carol", "-s", "s", "-m", "b", "--json", agent="alice").stdout
    data = json.loads(out)
    assert names.check_message_id(data["id"]) and names.check_thread(data["thread"])
    assert data["to"] == ["bob", "carol"]
    assert (room.inbox("bob") / "new" / f"{data['id']}.md").is_file()


def test_send_to_an_unknown_agent(room: Mailroom, run: Run) -> None:
    result = run("send", "bob", "nobody", "-s", "s", "-m", "b", agent="alice", code=4)
    line = one_error_line(result)
    assert line.startswith("mailslot: unknown agent 'nobody'")
    assert "alice, bob, carol" in line
    assert result.stdout == ""
    assert all_mail_files(room) == []  # nothing half-delivered to bob either
    assert clean(room.root)


INVALID = [
    (("register", "../x", "--no-pane"), "../x"),
    (("register", "Alice", "--no-pane"), "Alice"),
    (("register", ".hidden", "--no-pane"), ".hidden"),
    (("send", "../x", "-s", "s", "-m", "b"), "../x"),
    (("send", "bob", "--cc", "a/b", "-s", "s", "-m", "b"), "a/b"),
    (("send", "bob", "--thread", ".t", "-s", "s", "-m", "b"), ".t"),
    (("send", "bob", "--thread", "a/b", "-s", "s", "-m", "b"), "a/b"),
    (("send", "bob", "--from", "a b", "-s", "s", "-m", "b"), "a b"),
    (("reply", "../x", "-m", "b"), "../x"),
    (("reply", "20261121T202745123Z-k3f9a2", "--from", "../x", "-m", "b"), "../x"),
    (("inbox", "--agent", "../x"), "../x"),
    (("read", "../x"), "../x"),
    (("read", ".hidden"), ".hidden"),
    (("thread", "../x"), "../x"),
    (("close", "../x"), "../x"),
]


@pytest.mark.parametrize(("args", "bad"), INVALID, ids=[" ".join(a) for a, _ in INVALID])
def test_invalid_names_are_refused(
    room: Mailroom, isolated: Path, run: Run, args: tuple[str, ...], bad: str
) -> None:
    before = sorted(p.relative_to(isolated) for p in isolated.rglob("*") if ".git" not in p.parts)
    result = run(*args, agent="alice", code=None)
    assert result.exit_code not in (0, 1), result.output
    line = one_error_line(result)
    assert repr(bad) in line
    assert "invalid" in line or "no thread or message" in line
    after = sorted(p.relative_to(isolated) for p in isolated.rglob("*") if ".git" not in p.parts)
    assert after == before  # nothing written anywhere, let alone outside the mailroom


def test_an_invalid_identity_is_refused(room: Mailroom, run: Run) -> None:
    result = run("whoami", agent="../x", code=2)
    assert "invalid agent name '../x'" in one_error_line(result)
    result = run("inbox", agent="Bob", code=2)
    assert "invalid agent name 'Bob'" in one_error_line(result)


def test_close_with_an_invalid_from_is_refused(room: Mailroom, run: Run) -> None:
    _, thread = send(run, "bob", "-s", "s", "-m", "b")
    result = run("close", thread, "--from", "../x", code=None)
    assert result.exit_code == 2
    assert not room.is_closed(thread)


# --- reply ------------------------------------------------------------------------------------


def test_reply_goes_to_the_sender_in_the_same_thread(room: Mailroom, run: Run) -> None:
    mid, thread = send(run, "bob", "--cc", "carol", "-s", "Schema change", "-m", "x")
    rid, rthread = run("reply", mid, "-m", "ok", agent="bob").stdout.split()
    assert rthread == thread
    assert listing(room, "alice", "new") == [f"{rid}.md"]
    assert listing(room, "carol", "new") == [f"{mid}.md"]  # not copied on a plain reply
    msg = parse((room.inbox("alice") / "new" / f"{rid}.md").read_bytes())
    assert (msg.sender, msg.to, msg.cc) == ("bob", ("alice",), ())
    assert (msg.subject, msg.in_reply_to, msg.thread) == ("Re: Schema change", mid, thread)


def test_reply_all_and_re_is_not_doubled(room: Mailroom, run: Run) -> None:
    mid, thread = send(run, "bob", "--cc", "carol", "-s", "Schema change", "-m", "x")
    rid = run("reply", mid, "--all", "-m", "agreed", agent="carol").stdout.split()[0]
    msg = parse((room.inbox("alice") / "new" / f"{rid}.md").read_bytes())
    assert (msg.sender, msg.to, msg.cc) == ("carol", ("alice",), ("bob",))
    assert (room.inbox("bob") / "new" / f"{rid}.md").is_file()
    assert not (room.inbox("carol") / "new" / f"{rid}.md").exists()
    again = json.loads(run("reply", rid, "--all", "-m", "thanks", "--json", agent="alice").stdout)
    assert again["thread"] == thread
    assert sorted(again["to"]) == ["bob", "carol"]
    third = parse((room.inbox("carol") / "new" / f"{again['id']}.md").read_bytes())
    assert third.subject == "Re: Schema change"
    assert third.in_reply_to == rid
    assert clean(room.root)


def test_reply_to_a_long_subject_stays_within_the_limit(room: Mailroom, run: Run) -> None:
    mid, _ = send(run, "bob", "-s", "x" * 200, "-m", "b")
    rid = run("reply", mid, "-m", "ok", agent="bob").stdout.split()[0]
    subject = parse((room.inbox("alice") / "new" / f"{rid}.md").read_bytes()).subject
    assert subject == "Re: " + "x" * 196


def test_reply_to_an_unknown_message(room: Mailroom, run: Run) -> None:
    result = run("reply", "20261121T202745123Z-k3f9a2", "-m", "x", agent="bob", code=4)
    assert "no message with id" in one_error_line(result)


# --- inbox and read ---------------------------------------------------------------------------


def test_inbox_lists_unseen_mail_once_and_marks_it_seen(room: Mailroom, run: Run) -> None:
    first, _ = send(run, "bob", "-s", "one", "-m", "x")
    second, _ = send(run, "bob", "-s", "two", "-m", "y", agent="carol")
    out = run("inbox", agent="bob").stdout.splitlines()
    assert [line.split()[0] for line in out] == [first, second]
    assert out[0].split()[1] == "alice" and out[1].split()[1] == "carol"
    assert listing(room, "bob", "new") == []
    assert listing(room, "bob", "cur") == [f"{first}.md", f"{second}.md"]
    again = run("inbox", agent="bob")
    assert again.stdout == ""
    assert "no new mail for bob" in again.stderr
    everything = run("inbox", "--all", agent="bob").stdout.splitlines()
    assert [line.split()[0] for line in everything] == [first, second]
    rows = [json.loads(line) for line in run("inbox", "--all", "--json", agent="bob").stdout.splitlines()]
    assert [(r["id"], r["seen"]) for r in rows] == [(first, True), (second, True)]
    assert clean(room.root)


def test_inbox_of_another_agent(room: Mailroom, run: Run) -> None:
    mid, _ = send(run, "carol", "-s", "x", "-m", "y")
    assert run("inbox", "--agent", "carol", agent="bob").stdout.split()[0] == mid


def test_inbox_lines_are_short(room: Mailroom, run: Run) -> None:
    subjects = [
        "Schema change: users.email is now unique, please migrate",
        "Review #12: login form validation and the error messages",
        "Résumé des tests d'intégration — échecs sur la CI (Linux)",
    ]
    body = "Some context for the reader.\n" * 12
    ids = [send(run, "bob", "-s", s, "-m", body)[0] for s in subjects]
    out = run("inbox", agent="bob").stdout
    lines = out.splitlines()
    assert len(lines) == len(ids)
    assert out.count("\n") == len(ids)
    for line, mid, subject in zip(lines, ids, subjects, strict=True):
        assert line.startswith(mid) and line.endswith(subject)
        assert len(line.encode()) <= 120, line


def test_read_prints_the_raw_file_and_marks_it_seen(room: Mailroom, run: Run) -> None:
    mid, _ = send(run, "bob", "-s", "Fix: the 'login' page", "-m", "body\n\nmore")
    raw = (room.inbox("bob") / "new" / f"{mid}.md").read_bytes()
    assert run("read", mid, agent="bob").stdout_bytes == raw
    assert listing(room, "bob", "new") == []
    assert listing(room, "bob", "cur") == [f"{mid}.md"]
    assert run("inbox", agent="bob").stdout == ""
    assert clean(room.root)


def test_read_by_someone_else_does_not_mark_it_seen(room: Mailroom, run: Run) -> None:
    mid, _ = send(run, "bob", "-s", "s", "-m", "b")
    assert mid in run("read", mid, agent="alice").stdout
    assert mid in run("read", mid).stdout  # no identity at all is fine for reading
    assert listing(room, "bob", "new") == [f"{mid}.md"]


def test_read_json(room: Mailroom, run: Run) -> None:
    mid, thread = send(run, "bob", "--cc", "carol", "-s", "s", "-m", "hello", "--priority", "urgent")
    data = json.loads(run("read", mid, "--json", agent="bob").stdout)
    assert data["id"] == mid and data["thread"] == thread
    assert (data["from"], data["to"], data["cc"]) == ("alice", ["bob"], ["carol"])
    assert data["priority"] == "urgent"
    assert data["body"] == "\nhello\n"
    assert data["path"] == f"inbox/bob/cur/{mid}.md"


def test_read_an_unknown_message(room: Mailroom, run: Run) -> None:
    result = run("read", "20261121T202745123Z-k3f9a2", agent="bob", code=4)
    assert "no message with id" in one_error_line(result)


# --- threads and closing ----------------------------------------------------------------------


def conversation(run: Run) -> tuple[str, list[str]]:
    """alice -> bob (cc carol), bob replies, carol replies to all: three ids, five inbox copies."""
    first, thread = send(run, "bob", "--cc", "carol", "-s", "Release plan", "-m", "Ship Friday?")
    second = run("reply", first, "-m", "Yes", agent="bob").stdout.split()[0]
    third = run("reply", first, "--all", "-m", "Fine by me", agent="carol").stdout.split()[0]
    return thread, [first, second, third]


def test_thread_and_threads(room: Mailroom, run: Run) -> None:
    thread, ids = conversation(run)
    out = run("thread", thread).stdout
    assert out.splitlines()[0] == f"thread {thread} (3 messages, open)"
    assert [line.split()[1] for line in out.splitlines() if line.startswith("--- ")] == ids
    assert "Ship Friday?" in out and "Fine by me" in out
    assert run("thread", ids[1]).stdout == out  # by any message id
    data = json.loads(run("thread", thread, "--json").stdout)
    assert data["closed"] is False and [m["id"] for m in data["messages"]] == ids
    _, lonely = send(run, "carol", "-s", "Lunch?", "-m", "x", agent="bob")
    rows = run("threads").stdout.splitlines()
    assert [r.split()[0] for r in rows] == [lonely, thread]
    assert rows[1].startswith(f"{thread} 3 msgs ") and rows[1].endswith("Release plan")
    listed = [json.loads(r) for r in run("threads", "--json").stdout.splitlines()]
    assert listed[1]["messages"] == 3 and set(listed[1]["participants"]) == {"alice", "bob", "carol"}
    assert run("threads", "--closed").stdout == ""


def archived(room: Mailroom, thread: str) -> list[str]:
    folder = room.root / "archive" / names.archive_shard(thread) / thread
    return sorted(p.name for p in folder.iterdir())


def copies_in_inboxes(room: Mailroom, thread: str) -> list[Path]:
    return [p for p in all_mail_files(room) if parse(p.read_bytes()).thread == thread]


def test_close_archives_every_message_once(room: Mailroom, run: Run) -> None:
    thread, ids = conversation(run)
    run("inbox", agent="bob")  # some copies in cur/, some in new/
    _, other = send(run, "bob", "-s", "unrelated", "-m", "x")
    out = run("close", thread, agent="alice").stdout
    assert out == f"closed {thread} (3 files archived)\n"
    assert archived(room, thread) == sorted(f"{i}.md" for i in ids)
    assert copies_in_inboxes(room, thread) == []
    assert len(copies_in_inboxes(room, other)) == 1
    assert room.is_closed(thread)
    assert [r.split()[0] for r in run("threads").stdout.splitlines()] == [other]
    assert [r.split()[0] for r in run("threads", "--closed").stdout.splitlines()] == [thread]
    assert run("thread", thread).stdout.splitlines()[0] == f"thread {thread} (3 messages, closed)"
    assert clean(room.root)
    assert git_out(room.root, "ls-files", "inbox").count(ids[0]) == 0
    again = run("close", thread, agent="alice")
    assert again.stdout == f"{thread} was already closed\n"
    assert archived(room, thread) == sorted(f"{i}.md" for i in ids)


def test_close_by_message_id_with_a_note(room: Mailroom, run: Run) -> None:
    thread, ids = conversation(run)
    data = json.loads(run("close", ids[2], "-m", "Shipped in v1.2", "--json", agent="alice").stdout)
    assert data == {"thread": thread, "moved": 4, "already": False}
    files = archived(room, thread)
    assert len(files) == 4
    notes = [f for f in files if f.removesuffix(".md") not in ids]
    note = parse((room.archive_dir(thread) / notes[0]).read_bytes())
    assert (note.sender, set(note.to), note.thread) == ("alice", {"bob", "carol"}, thread)
    assert note.subject == "Closed: Release plan"
    assert note.body == "\nShipped in v1.2\n"
    assert copies_in_inboxes(room, thread) == []
    assert listing(room, "bob", "new") == listing(room, "carol", "new") == []  # the note taps no one
    assert "Shipped in v1.2" in run("thread", thread).stdout
    assert clean(room.root)


def test_close_without_an_identity_closes_as_mailslot(room: Mailroom, run: Run) -> None:
    _, thread = send(run, "bob", "-s", "s", "-m", "b")
    run("close", thread)
    assert room.is_closed(thread)
    assert git_out(room.root, "log", "-1", "--format=%an").strip() == "mailslot"


def test_close_an_unknown_thread(room: Mailroom, run: Run) -> None:
    result = run("close", "t-nothere", agent="alice", code=4)
    assert "no thread or message 't-nothere'" in one_error_line(result)
    assert not (room.root / "archive" / names.archive_shard("t-nothere")).exists()


def test_mail_into_a_closed_thread_is_refused(room: Mailroom, run: Run) -> None:
    mid, thread = send(run, "bob", "-s", "s", "-m", "b")
    run("close", thread, agent="alice")
    before = all_mail_files(room)
    result = run("send", "bob", "--thread", thread, "-s", "more", "-m", "x", agent="alice", code=6)
    assert f"thread {thread} is closed" in one_error_line(result)
    result = run("reply", mid, "-m", "late", agent="bob", code=6)
    assert f"thread {thread} is closed" in one_error_line(result)
    assert all_mail_files(room) == before
    assert archived(room, thread) == [f"{mid}.md"]
    assert clean(room.root)


# --- fsck -------------------------------------------------------------------------------------


def test_fsck_on_a_clean_mailroom(room: Mailroom, run: Run) -> None:
    conversation(run)
    _, thread = send(run, "bob", "-s", "s", "-m", "b")
    run("close", thread, agent="alice")
    result = run("fsck")
    assert result.stdout == ""
    assert "ok" in result.stderr


def test_fsck_names_a_malformed_file_and_fix_quarantines_it(room: Mailroom, run: Run) -> None:
    mid, _ = send(run, "bob", "-s", "fine", "-m", "b")
    bad = room.inbox("bob") / "new" / "broken.md"
    bad.write_text("---\nmailslot: 1\nid: [oops\n---\nbody\n")
    result = run("fsck", code=1)
    assert "inbox/bob/new/broken.md: front matter is not valid YAML" in result.stdout
    assert mid not in result.stdout
    rows = [json.loads(r) for r in run("fsck", "--json", code=1).stdout.splitlines()]
    assert rows == [{"path": "inbox/bob/new/broken.md", "reason": rows[0]["reason"], "quarantined": False}]
    fixed = run("fsck", "--fix")
    assert fixed.stdout.startswith("quarantined inbox/bob/new/broken.md: ")
    assert not bad.exists()
    rejected = sorted((room.root / "rejected").iterdir())
    assert [p.name.endswith(".reason") for p in rejected] == [False, True]
    assert rejected[1].name == rejected[0].name + ".reason"
    assert rejected[0].read_text() == "---\nmailslot: 1\nid: [oops\n---\nbody\n"
    reason = rejected[1].read_text()
    assert "not valid YAML" in reason and "from: inbox/bob/new/broken.md" in reason
    assert clean(room.root)
    committed = git_out(room.root, "log", "-1", "--name-only", "--format=%s")
    assert committed.startswith("reject: inbox/bob/new/broken.md")
    assert f"rejected/{rejected[1].name}" in committed
    assert run("fsck").stdout == ""
    assert listing(room, "bob", "new") == [f"{mid}.md"]


def test_fsck_fix_commits_files_written_by_hand(room: Mailroom, run: Run) -> None:
    card = room.card_path("alice")
    card.write_text(card.read_text() + "Prefers short mail.\n")
    assert not clean(room.root)
    run("fsck", "--fix")
    assert clean(room.root)


# --- help -------------------------------------------------------------------------------------


def command_paths(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every command and subcommand, as the words that invoke it."""
    paths = []
    for name, command in sorted(group.commands.items()):
        paths.append((*prefix, name))
        if isinstance(command, click.Group):
            paths += command_paths(command, (*prefix, name))
    return paths


@pytest.mark.parametrize("command", [(), *command_paths(cli)], ids=lambda c: " ".join(c) or "mailslot")
def test_help_ends_with_an_example(run: Run, command: tuple[str, ...]) -> None:
    out = run(*command, "--help").stdout
    description = out.split("\nOptions:", 1)[0].rstrip().splitlines()
    examples = [i for i, line in enumerate(description) if line.strip() == "Example:"]
    assert examples, out
    example = [line.strip() for line in description[examples[-1] + 1 :]]
    assert example, out
    assert all("mailslot" in line.split() for line in example), out


def test_inbox_lists_the_oldest_page_and_says_how_many_more_wait(room: Mailroom, run: Run) -> None:
    ids = [send(run, "bob", "-s", f"m{i}", "-m", "x")[0] for i in range(5)]
    first = run("inbox", "-n", "2", agent="bob").stdout.splitlines()
    assert [line.split()[0] for line in first[:2]] == ids[:2]
    assert first[2] == "(+3 more; run mailslot inbox again)" and len(first) == 3
    assert sorted(p.stem for p in (room.inbox("bob") / "cur").iterdir()) == ids[:2], (
        "only what was listed is seen"
    )
    second = [json.loads(line) for line in run("inbox", "-n", "2", "--json", agent="bob").stdout.splitlines()]
    assert [m["id"] for m in second[:2]] == ids[2:4] and second[2] == {"more": 1}
    last = run("inbox", "--limit", "0", agent="bob").stdout.splitlines()
    assert [line.split()[0] for line in last] == ids[4:]


def test_the_console_script_flushes_its_output_and_passes_on_exit_codes(room: Mailroom) -> None:
    """``main()`` ends with ``os._exit``: the output still gets out, and each error keeps its code."""
    env = {**os.environ, "MAILSLOT_AGENT": "alice", "MAILSLOT_ROOT": str(room.root)}

    def console(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([MAILSLOT, *args], env=env, capture_output=True, text=True, timeout=30)

    sent = console("send", "bob", "-s", "flushed", "-m", "x")
    assert sent.returncode == 0 and names.MESSAGE_ID_RE.fullmatch(sent.stdout.split()[0]), sent
    missing = console("send", "zed", "-s", "nobody", "-m", "x")
    assert missing.returncode == NotFound.exit_code and missing.stdout == ""
    assert missing.stderr.startswith("mailslot: ") and len(missing.stderr.splitlines()) == 1
    usage = console("send")
    assert usage.returncode == 2 and "Usage: mailslot send" in usage.stderr
    listing = console("inbox", "-a", "bob", "--json")
    assert listing.returncode == 0 and json.loads(listing.stdout)["subject"] == "flushed"
    agents = console("agents")  # commits nothing: no fork (which flushes first) before the exit
    assert agents.returncode == 0 and {"alice", "bob", "carol"} <= set(agents.stdout.split()), agents
