"""Threads: replying, listing, and closing into the archive (spec/protocol.md, "Threads").

A thread is open while any of its messages sits in an inbox and closed once
``archive/<shard>/<thread>/`` exists. Replies to a closed thread are refused.
"""

from __future__ import annotations

import os
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime

from mailslot import journal, names, store
from mailslot.errors import InvalidName, NotFound
from mailslot.fsutil import move_noclobber, write_new
from mailslot.mailroom import Mailroom
from mailslot.message import Message, compose


@dataclass(frozen=True)
class ThreadInfo:
    """A summary of one thread."""

    thread: str
    subject: str
    participants: tuple[str, ...]
    count: int
    unseen: int
    last: str
    closed: bool


def reply(
    room: Mailroom, mid: str, sender: str, body: str, *, reply_all: bool = False, priority: str | None = None
) -> Message:
    """Reply to message ``mid`` in its thread: to its sender, or with ``reply_all`` to everyone.

    Raises :class:`NotFound` for an unknown id, :class:`ThreadClosed` for a closed thread. Commits.
    """
    original = store.find(room, mid, sender).message
    to = [original.sender]
    cc: list[str] = []
    if reply_all:
        cc = [a for a in original.recipients if a not in (sender, original.sender)]
    if to == [sender]:  # replying to your own message goes to its recipients
        to = [a for a in original.to if a != sender] or [sender]
        cc = [a for a in cc if a not in to]
    subject = original.subject if original.subject.lower().startswith("re:") else "Re: " + original.subject
    msg = compose(
        sender=sender,
        to=to,
        cc=cc,
        subject=subject[:200],
        body=body,
        thread=original.thread,
        in_reply_to=original.id,
        priority=priority,
        task=original.task,
    )
    store.deliver(room, msg)
    return msg


def _order(item: store.Stored) -> tuple[datetime, str]:
    """Oldest first: by the instant (dates have whole seconds and maybe offsets), then by id."""
    return item.message.timestamp(), item.message.id


def _open_messages(room: Mailroom) -> list[store.Stored]:
    found = []
    for agent in store.iter_inboxes(room):
        found += [s for s in store.scan_inbox(room, agent, seen=None) if isinstance(s, store.Stored)]
    return found


def _summarize(thread: str, items: list[store.Stored], closed: bool) -> ThreadInfo:
    by_id: dict[str, Message] = {}
    for item in sorted(items, key=_order):
        by_id.setdefault(item.message.id, item.message)
    msgs = list(by_id.values())
    people: dict[str, None] = {}
    for m in msgs:
        people.update(dict.fromkeys((m.sender, *m.recipients)))
    unseen = sum(1 for s in items if not s.seen)
    return ThreadInfo(thread, msgs[0].subject, tuple(people), len(msgs), unseen, msgs[-1].date, closed)


def list_threads(room: Mailroom, *, closed: bool = False) -> list[ThreadInfo]:
    """Open threads (from the inboxes) or closed ones (from the archive), newest activity first."""
    groups: dict[str, list[store.Stored]] = defaultdict(list)
    source = store.iter_archive(room) if closed else _open_messages(room)
    for item in source:
        if isinstance(item, store.Stored):
            groups[item.message.thread].append(item)
    newest_first = sorted(groups.items(), key=lambda kv: max(map(_order, kv[1])), reverse=True)
    return [_summarize(t, items, closed) for t, items in newest_first]


def resolve_thread(room: Mailroom, ref: str) -> str:
    """A thread id from a thread id or a message id; raise :class:`NotFound` if it is neither."""
    try:
        thread = names.check_thread(ref)
    except InvalidName:
        thread = None
    if thread and room.is_closed(thread):
        return thread
    open_items = _open_messages(room)
    if thread and any(s.message.thread == thread for s in open_items):
        return thread
    try:
        return store.find(room, ref).message.thread
    except (NotFound, InvalidName):
        raise NotFound(f"no thread or message {ref!r}") from None


def messages(room: Mailroom, ref: str) -> tuple[str, list[Message], bool]:
    """Every message of a thread once (inbox copies and archive), oldest first, and if it is closed."""
    thread = resolve_thread(room, ref)
    items = [s for s in store.iter_archive(room, thread) if isinstance(s, store.Stored)]
    items += [s for s in _open_messages(room) if s.message.thread == thread]
    by_id: dict[str, Message] = {}
    for item in sorted(items, key=_order):
        by_id.setdefault(item.message.id, item.message)
    return thread, list(by_id.values()), room.is_closed(thread)


@dataclass(frozen=True)
class Closed:
    thread: str
    moved: int
    already: bool


def close(room: Mailroom, ref: str, closer: str, note: str | None = None) -> Closed:
    """Move every copy of the thread's messages into ``archive/<shard>/<thread>/``; commit.

    One file per message id is kept; extra copies (one per recipient) are removed. Idempotent:
    closing a closed thread moves any stragglers and reports ``already``. A ``note`` becomes a last
    message from ``closer`` to the participants, written straight into the archive (it taps no one).
    """
    thread = resolve_thread(room, ref)
    already = room.is_closed(thread)
    target = room.archive_dir(thread)
    target.mkdir(parents=True, exist_ok=True)
    kept: set[str] = {s.message.id for s in store.iter_archive(room, thread) if isinstance(s, store.Stored)}
    paths: list[str] = []
    subject = ""
    people: dict[str, None] = {}
    mine = sorted((s for s in _open_messages(room) if s.message.thread == thread), key=_order)
    for item in mine:
        msg = item.message
        subject = subject or msg.subject
        people.update(dict.fromkeys((msg.sender, *msg.recipients)))
        paths.append(room.rel(item.path))
        if msg.id in kept:
            item.path.unlink(missing_ok=True)
            continue
        try:
            landed = move_noclobber(item.path, target / item.path.name)
        except FileNotFoundError:
            continue
        kept.add(msg.id)
        paths.append(room.rel(landed))
    if note:
        others = [p for p in people if p != closer] or [closer]
        last = compose(
            sender=closer, to=others, subject=f"Closed: {subject or thread}"[:200], body=note, thread=thread
        )
        path = target / f"{last.id}.md"
        write_new(path, last.raw)
        os.utime(path)
        paths.append(room.rel(path))
    moved = len([p for p in paths if p.startswith("archive/")])
    if paths or not already:
        label = f" {subject!r}" if subject else ""
        what = f"close: {closer} closed {thread}{label} ({len(kept)} message{'s' * (len(kept) != 1)})"
        journal.record(
            room,
            paths or [room.rel(target)],
            what + (f": {note.splitlines()[0]}" if note else ""),
            closer,
        )
        store.commit(room)
    return Closed(thread, moved, already and not paths)
