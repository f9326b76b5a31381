"""The store on disk: mail written by hand, quarantine of bad files, and the story git tells."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from click.testing import Result
from conftest import git_out

from mailslot import store, vcs
from mailslot.errors import InvalidMessage, MailslotError
from mailslot.mailroom import Mailroom
from mailslot.message import compose, parse

Run = Callable[..., Result]


def hand_written(
    mid: str, *, to: str = "bob", sender: str = "alice", subject: str = "Written by hand"
) -> bytes:
    """A message in the canonical format, as an agent with an editor would write it."""
    return (
        f"---\nmailslot: 1\nid: {mid}\nthread: t-byhand01\nfrom: {sender}\nto: [{to}]\n"
        f'subject: {subject}\ndate: "2026-11-21T20:27:45Z"\n---\n\nHello from an editor.\n'
    ).encode()


def drop(folder: Path, name: str, data: bytes) -> Path:
    """Write ``data`` as a dotfile, then rename it into place, so no reader sees it half-written."""
    part = folder / f".{name}.part"
    part.write_bytes(data)
    final = folder / name
    os.rename(part, final)
    return final


def backdate(path: Path, seconds: float = 60.0) -> None:
    """Move a file's mtime into the past, beyond the quarantine grace period."""
    then = time.time() - seconds
    os.utime(path, (then, then), follow_symlinks=False)


def clean(room: Mailroom) -> bool:
    return git_out(room.root, "status", "--porcelain", "--untracked-files=all") == ""


def committed_paths(room: Mailroom) -> str:
    return git_out(room.root, "log", "--name-only", "--format=")


def send(run: Run, *args: str, agent: str = "alice") -> tuple[str, str]:
    mid, thread = run("send", *args, agent=agent).stdout.split()
    return mid, thread


# --- mail written by hand ---------------------------------------------------------------------


def test_a_hand_written_message_is_listed_read_and_committed(room: Mailroom, run: Run) -> None:
    new = room.inbox("bob") / "new"
    raw = hand_written("20261121T202745123Z-byhand")
    drop(new, "20261121T202745123Z-byhand.md", raw)
    out = run("inbox", agent="bob").stdout.splitlines()
    assert len(out) == 1
    assert out[0].startswith("20261121T202745123Z-byhand alice ") and out[0].endswith("Written by hand")
    cur = room.inbox("bob") / "cur" / "20261121T202745123Z-byhand.md"
    assert cur.read_bytes() == raw
    assert run("read", "20261121T202745123Z-byhand", agent="bob").stdout_bytes == raw
    assert "inbox/bob/cur/20261121T202745123Z-byhand.md" in committed_paths(room).splitlines()
    assert clean(room)


def test_a_hand_written_message_under_any_name_is_found_by_id(room: Mailroom, run: Run) -> None:
    drop(room.inbox("bob") / "new", "from-my-editor.md", hand_written("hand-2"))
    assert run("read", "hand-2", agent="bob").stdout_bytes == hand_written("hand-2")
    assert (room.inbox("bob") / "cur" / "from-my-editor.md").is_file()
    assert "inbox/bob/cur/from-my-editor.md" in committed_paths(room).splitlines()
    assert clean(room)


def test_a_reply_to_a_hand_written_message(room: Mailroom, run: Run) -> None:
    drop(room.inbox("bob") / "new", "hand-3.md", hand_written("hand-3"))
    rid, thread = run("reply", "hand-3", "-m", "got it", agent="bob").stdout.split()
    assert thread == "t-byhand01"
    reply = parse((room.inbox("alice") / "new" / f"{rid}.md").read_bytes())
    assert (reply.in_reply_to, reply.subject) == ("hand-3", "Re: Written by hand")


def test_inbox_lists_oldest_first_across_time_zones(room: Mailroom) -> None:
    new = room.inbox("bob") / "new"
    for mid, date in [("zulu", "2026-11-21T20:00:00Z"), ("plus-two", "2026-11-21T21:00:00+02:00")]:
        drop(new, f"{mid}.md", hand_written(mid).replace(b"2026-11-21T20:27:45Z", date.encode()))
    found, _ = store.inbox(room, "bob")
    assert [item.message.id for item in found] == ["plus-two", "zulu"]  # 19:00Z comes before 20:00Z


def test_files_being_written_are_ignored(room: Mailroom, run: Run) -> None:
    mid, _ = send(run, "bob", "-s", "real", "-m", "x")
    partial = room.inbox("bob") / "new" / f".{mid}-draft.md"
    partial.write_bytes(b"---\nmailslot: 1\nid: half")  # an editor still writing
    backdate(partial)
    assert run("inbox", agent="bob").stdout.split()[0] == mid
    assert partial.read_bytes() == b"---\nmailslot: 1\nid: half"
    assert list((room.root / "rejected").iterdir()) == []


# --- bad files --------------------------------------------------------------------------------


def plant_bad_files(room: Mailroom, outside: Path) -> dict[str, str]:
    """Every kind of bad file in bob's new/; returns name -> the reason quarantine must record."""
    new = room.inbox("bob") / "new"
    drop(new, "bad-yaml.md", b"---\nmailslot: 1\nid: [unclosed\nsubject: x\n---\nbody\n")
    target = outside / "elsewhere.md"
    target.write_bytes(hand_written("elsewhere"))
    (new / "link.md").symlink_to(target)
    os.mkfifo(new / "pipe.md")
    (new / "x.md").mkdir()
    (new / "x.md" / "inside.txt").write_text("a directory is not a message\n")
    drop(new, "notes.txt", b"just notes\n")
    drop(new, "a:b.md", hand_written("colon"))
    drop(new, "stray.md", hand_written("stray", to="carol"))
    return {
        "bad-yaml.md": "front matter is not valid YAML",
        "link.md": "file is a symbolic link",
        "pipe.md": "not a regular file",
        "x.md": "not a regular file",
        "notes.txt": "does not match the spec",
        "a:b.md": "does not match the spec",
        "stray.md": "found in the inbox of bob, who is not in to/cc",
    }


def reasons(room: Mailroom) -> dict[str, dict[str, str]]:
    """What rejected/ holds: original inbox path -> the parsed ``.reason`` beside it."""
    out = {}
    for path in (room.root / "rejected").glob("*.reason"):
        data = yaml.safe_load(path.read_text())
        landed = path.with_name(path.name.removesuffix(".reason"))
        assert os.path.lexists(landed), f"{landed} missing beside its reason"
        out[data["from"]] = data
    return out


def test_bad_files_are_quarantined_and_good_mail_flows(room: Mailroom, run: Run, tmp_path: Path) -> None:
    good, _ = send(run, "bob", "-s", "good mail", "-m", "x")
    expected = plant_bad_files(room, tmp_path)
    for name in expected:
        backdate(room.inbox("bob") / "new" / name)
    result = run("inbox", agent="bob")
    assert [line.split()[0] for line in result.stdout.splitlines()] == [good]
    for name in expected:
        assert f"inbox/bob/new/{name}" in result.stderr
    assert "Traceback" not in result.output
    assert sorted(os.listdir(room.inbox("bob") / "new")) == []
    assert os.listdir(room.inbox("bob") / "cur") == [f"{good}.md"]
    found = reasons(room)
    assert sorted(found) == sorted(f"inbox/bob/new/{name}" for name in expected)
    for name, why in expected.items():
        assert why in found[f"inbox/bob/new/{name}"]["reason"], name
    # The symlink was moved as a link; its target outside the mailroom is untouched.
    links = [p for p in (room.root / "rejected").iterdir() if p.is_symlink()]
    assert len(links) == 1 and (tmp_path / "elsewhere.md").read_bytes() == hand_written("elsewhere")
    # Everything git can hold is committed; the FIFO (which git cannot hold) is left out.
    tracked = git_out(room.root, "ls-files", "rejected").splitlines()
    assert len([t for t in tracked if t.endswith(".reason")]) == len(expected)
    assert any(t.endswith("x.md/inside.txt") for t in tracked)
    assert not any(t.endswith("pipe.md") for t in tracked)
    assert clean(room)
    # ... and nothing else broke: mail keeps flowing and committing.
    later, _ = send(run, "bob", "-s", "later", "-m", "y")
    assert run("inbox", agent="bob").stdout.split()[0] == later
    assert run("fsck").exit_code == 0
    assert clean(room)


def test_fresh_invalid_files_are_left_alone_until_the_grace_period_ends(room: Mailroom, run: Run) -> None:
    good, _ = send(run, "bob", "-s", "good mail", "-m", "x")
    bad = drop(room.inbox("bob") / "new", "half-edited.md", b"---\nmailslot: 1\nsubject: [\n---\n")
    out = run("inbox", agent="bob").stdout
    assert [line.split()[0] for line in out.splitlines()] == [good]
    assert bad.exists()
    assert list((room.root / "rejected").iterdir()) == []
    assert vcs.uncommitted(room) == ["inbox/bob/new/half-edited.md"]
    backdate(bad)
    run("inbox", agent="bob")
    assert not bad.exists()
    assert list(reasons(room)) == ["inbox/bob/new/half-edited.md"]
    assert clean(room)


def test_quarantine_respects_the_grace_period_directly(room: Mailroom) -> None:
    bad = drop(room.inbox("bob") / "new", "bad.md", b"nope\n")
    problem = store.Problem(bad, "no front matter")
    assert store.quarantine(room, problem) is None
    assert bad.exists()
    landed = store.quarantine(room, problem, grace=0.0)
    assert landed is not None and landed.parent == room.root / "rejected"
    assert landed.read_bytes() == b"nope\n"
    assert store.quarantine(room, problem, grace=0.0) is None  # already gone: nothing to do


def test_quarantine_never_overwrites(room: Mailroom) -> None:
    new = room.inbox("bob") / "new"
    landed = []
    for content in (b"first\n", b"second\n"):
        bad = drop(new, "bad.md", content)
        landed.append(store.quarantine(room, store.Problem(bad, "no front matter"), grace=0.0))
    assert landed[0] != landed[1]
    assert [p.read_bytes() for p in landed if p] == [b"first\n", b"second\n"]
    store.commit(room)
    assert clean(room)


def test_bad_files_in_cur_and_the_archive_are_found_by_fsck(room: Mailroom, run: Run) -> None:
    _, thread = send(run, "bob", "-s", "s", "-m", "b")
    run("close", thread, agent="alice")
    (room.inbox("carol") / "cur" / "junk.md").write_bytes(b"\x00\x01")
    (room.archive_dir(thread) / "junk.md").write_bytes(b"no front matter\n")
    out = run("fsck", code=1).stdout
    assert "inbox/carol/cur/junk.md: file contains NUL bytes" in out
    assert f"{room.rel(room.archive_dir(thread))}/junk.md: no front matter" in out
    run("fsck", "--fix")
    assert len(reasons(room)) == 2
    assert clean(room)
    assert run("fsck").stdout == ""


# --- delivery ---------------------------------------------------------------------------------


def test_delivery_never_clobbers_an_existing_file(room: Mailroom) -> None:
    first = compose(sender="alice", to=["bob"], subject="first", body="x")
    store.deliver(room, first)
    impostor = compose(sender="carol", to=["bob"], subject="impostor", body="y")
    impostor = parse(impostor.raw.replace(impostor.id.encode(), first.id.encode()))
    with pytest.raises(MailslotError, match="already in the inbox of bob"):
        store.deliver(room, impostor)
    assert (room.inbox("bob") / "new" / f"{first.id}.md").read_bytes() == first.raw
    assert os.listdir(room.inbox("bob") / "tmp") == []  # the staging copy is cleaned up


def test_delivery_to_an_unregistered_agent_writes_nothing(room: Mailroom) -> None:
    from mailslot.errors import NotFound

    msg = compose(sender="alice", to=["bob", "zed"], subject="s", body="b")
    with pytest.raises(NotFound, match="unknown agent 'zed'"):
        store.deliver(room, msg)
    assert os.listdir(room.inbox("bob") / "new") == []
    assert not (room.root / "inbox" / "zed").exists()


# --- the story git tells ----------------------------------------------------------------------


def test_git_log_tells_the_story_and_the_index_stays_clean(isolated: Path, run: Run) -> None:
    root = isolated / "mailroom"
    run("init")
    room = Mailroom(root)
    steps: list[tuple[Callable[[], object], str, str]] = [
        (lambda: run("register", "alice", "--no-pane"), "alice", "agent: register alice (generic, no pane)"),
        (lambda: run("register", "bob", "--no-pane"), "bob", "agent: register bob (generic, no pane)"),
        (
            lambda: run("send", "bob", "-s", "Fix login", "-m", "x", agent="alice"),
            "alice",
            "mail: alice -> bob: Fix login",
        ),
        (lambda: run("inbox", agent="bob"), "bob", "seen: bob read 1 message"),
    ]
    for action, author, subject in steps:
        action()
        assert git_out(root, "log", "-1", "--format=%an|%cn|%s").strip() == f"{author}|mailslot|{subject}"
        assert clean(room)
    mid = git_out(root, "log", "-1", "--name-only", "--format=").split("/")[-1].strip().removesuffix(".md")
    thread = parse((room.inbox("bob") / "cur" / f"{mid}.md").read_bytes()).thread
    send(run, "bob", "--cc", "alice", "-s", "Second", "-m", "y", agent="bob")
    assert git_out(root, "log", "-1", "--format=%an|%s").strip() == "bob|mail: bob -> bob, alice: Second"
    run("inbox", agent="bob")
    assert git_out(root, "log", "-1", "--format=%s").strip() == "seen: bob read 1 message"
    run("reply", mid, "-m", "done", agent="bob")
    assert git_out(root, "log", "-1", "--format=%an|%s").strip() == "bob|mail: bob -> alice: Re: Fix login"
    assert clean(room)
    run("close", thread, "-m", "Fixed in abc123", agent="alice")
    head = git_out(root, "log", "-1", "--format=%an|%s").strip()
    assert head.startswith(f"alice|close: alice closed {thread} 'Fix login'")
    assert head.endswith(": Fixed in abc123")
    assert clean(room)
    subjects = git_out(root, "log", "--reverse", "--format=%s").splitlines()
    assert subjects[:6] == [
        "mailroom: create",
        "agent: register alice (generic, no pane)",
        "agent: register bob (generic, no pane)",
        "mail: alice -> bob: Fix login",
        "seen: bob read 1 message",
        "mail: bob -> bob, alice: Second",
    ]
    assert subjects[6:8] == ["seen: bob read 1 message", "mail: bob -> alice: Re: Fix login"]
    assert subjects[8].startswith("close: ") and len(subjects) == 9  # one commit per operation


def test_control_characters_in_subjects_are_refused_and_commits_go_on(room: Mailroom, run: Run) -> None:
    # YAML escapes let a file carry NUL or ESC in its subject; git refuses NUL in a commit message.
    with pytest.raises(InvalidMessage, match="control characters"):
        compose(sender="alice", to=["bob"], subject="nul\x00 esc\x1b[31m", body="x")
    hand = room.inbox("bob") / "new" / "hand.md"
    hand.write_bytes(hand_written("ctl-1", subject='"nul\\0 esc\\e[31m"'))
    os.utime(hand, (time.time() - 60, time.time() - 60))
    _, problems = store.inbox(room, "bob")
    assert problems and "control characters" in problems[0].reason and not hand.exists()
    assert clean(room)
    send(run, "bob", "-s", "next", "-m", "y")
    assert git_out(room.root, "log", "-1", "--format=%s").strip() == "mail: alice -> bob: next"
    assert list((room.state_dir / "journal").iterdir()) == []


def test_a_batch_is_delivered_with_one_journal_entry_and_one_commit(room: Mailroom) -> None:
    before = int(git_out(room.root, "rev-list", "--count", "HEAD"))
    msgs = [compose(sender="alice", to=["bob", "carol"], subject=f"batch {i}", body="x") for i in range(3)]
    landed = store.deliver_many(room, msgs)
    assert len(landed) == 6 and all(p.read_bytes() == msgs[i // 2].raw for i, p in enumerate(landed))
    assert int(git_out(room.root, "rev-list", "--count", "HEAD")) == before + 1
    message = git_out(room.root, "log", "-1", "--format=%B")
    assert message.startswith("mail: alice -> bob, carol: batch 0 (+2 more)\n")
    assert all(f"mail: alice -> bob, carol: batch {i}\n" in message for i in range(3))
    assert clean(room)


def test_a_batch_with_one_bad_message_delivers_nothing(room: Mailroom) -> None:
    from mailslot.errors import NotFound

    good = compose(sender="alice", to=["bob"], subject="fine", body="x")
    bad = compose(sender="alice", to=["zed"], subject="nobody", body="x")
    with pytest.raises(NotFound):
        store.deliver_many(room, [good, bad])
    assert list((room.inbox("bob") / "new").iterdir()) == []


def test_stale_tmp_files_of_dead_writers_are_removed_after_36_hours(room: Mailroom, run: Run) -> None:
    tmp = room.inbox("bob") / "tmp"
    stale = drop(tmp, "m1.4242.dead", b"half a mess")
    backdate(stale, store.STALE_TMP_SECONDS + 60)
    link = tmp / "m2.4242.link"
    link.symlink_to(room.root / "mailslot.yaml")  # removing the link leaves its target alone
    backdate(link, store.STALE_TMP_SECONDS + 60)
    young = drop(tmp, "m3.4243.writing", b"in flight")
    backdate(young, store.STALE_TMP_SECONDS - 600)
    folder = tmp / "a-directory"
    folder.mkdir()
    backdate(folder, store.STALE_TMP_SECONDS + 60)
    result = run("fsck", "--fix")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in tmp.iterdir()) == ["a-directory", "m3.4243.writing"]
    assert (room.root / "mailslot.yaml").is_file()
    assert store.clean_tmp(room) == []  # nothing left to remove


@pytest.mark.parametrize("limit", [None, 3])
def test_inbox_counts_what_is_left_from_its_own_listing(
    room: Mailroom, monkeypatch: pytest.MonkeyPatch, limit: int | None
) -> None:
    """Another reader takes a message while this one scans: `more` counts only what is still listed
    after the page, never the message that left (it once printed "(+1 more)" with nothing left)."""
    msgs = [compose(sender="alice", to=["bob"], subject=f"m{i}", body="x") for i in range(5)]
    store.deliver_many(room, msgs)
    new = room.inbox("bob") / "new"
    taken = new / sorted(p.name for p in new.iterdir())[1]
    real = store._names

    def other_reader_right_after(folder: Path) -> list[str]:
        listed = real(folder)
        if taken.exists():  # another reader moves it to cur/ just after this one listed new/
            os.rename(taken, room.inbox("bob") / "cur" / taken.name)
        return listed

    monkeypatch.setattr(store, "_names", other_reader_right_after)
    page = store.inbox_page(room, "bob", limit=limit)
    assert len(page.found) == (4 if limit is None else 3) and not page.problems
    assert page.more == (0 if limit is None else 1)
