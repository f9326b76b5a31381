"""Delivery, reading and quarantine of messages (spec/protocol.md, "Delivery", "Reading").

Delivery is Maildir: each copy is written to ``inbox/<agent>/tmp/`` with O_EXCL, fsynced, and
hard-linked into ``new/`` (never replacing a file), so a reader never sees a partial message and
delivery takes no lock. Seeing moves ``new/`` -> ``cur/``. Every change is journaled and, unless
``commit=False``, group-committed before returning.
"""

from __future__ import annotations

import os
import stat
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from mailslot import journal, names
from mailslot.errors import InvalidMessage, MailslotError, NotFound, StorageError, ThreadClosed
from mailslot.fsutil import atomic_write, move_noclobber, read_regular, write_all_new
from mailslot.mailroom import Mailroom, ensure_inbox, load_agent
from mailslot.message import Message, dump_yaml, now_rfc3339, parse

# An invalid file younger than this may still be being written by hand; it is skipped, not quarantined.
GRACE_SECONDS = 2.0


@dataclass(frozen=True)
class Stored:
    """A message file found on disk: where it is, and what it says."""

    path: Path
    message: Message
    agent: str | None  # the inbox it sits in; None in the archive
    seen: bool


@dataclass(frozen=True)
class Problem:
    """A file that failed validation, and why."""

    path: Path
    reason: str


_deferred: list[Mailroom] | None = None  # set by defer_commits(): the rooms waiting for a commit


def commit(room: Mailroom, mine: Path | None = None) -> str | None:
    """Group-commit everything journaled (imports the git adapter lazily); see ``vcs.commit_pending``.

    After :func:`defer_commits` it only notes the room and returns None; :func:`commit_deferred`
    commits later.
    """
    if _deferred is not None:
        if room not in _deferred:
            _deferred.append(room)
        return None
    from mailslot import vcs

    return vcs.commit_pending(room, mine=mine)


def defer_commits(on: bool = True) -> None:
    """Let this process answer first and commit afterwards (the CLI; never the daemon)."""
    global _deferred
    _deferred = [] if on else None


def commit_deferred() -> None:
    """Commit the rooms noted since :func:`defer_commits` in a forked child, so the caller (an agent
    waiting for the command to exit) does not wait for git. The child detaches from the terminal and
    the caller's pipes; a failure is logged to ``.git/mailslot/errors.log`` and the journal keeps
    the changes for the next commit.
    """
    global _deferred
    rooms, _deferred = _deferred or [], None
    if not rooms:
        return
    sys.stdout.flush()
    sys.stderr.flush()
    if os.fork() != 0:
        return
    try:  # the child: never return into the caller's code
        os.setsid()
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)
        for room in rooms:
            try:
                commit(room, journal.newest)  # returns at once if another process committed it
            except Exception as e:  # logged, not lost: the journal still holds the change
                with open(room.state_dir / "errors.log", "a", encoding="utf-8") as fh:
                    fh.write(f"{now_rfc3339()} commit failed: {type(e).__name__}: {e}\n")
    finally:
        os._exit(0)


def summary(msg: Message) -> str:
    """The commit line of a delivery: ``mail: alice -> bob, carol: Subject``."""
    return f"mail: {msg.sender} -> {', '.join(msg.recipients)}: {msg.subject}"


def deliver(room: Mailroom, msg: Message, *, commit_now: bool = True) -> list[Path]:
    """Deliver one copy of ``msg`` into the ``new/`` of each recipient; return the paths.

    Raises :class:`NotFound` for an unregistered recipient or sender, :class:`ThreadClosed` if the
    thread is archived, :class:`StorageError` if the disk refuses (then nothing is delivered).
    Concurrent deliveries never clobber each other. Commits unless told not to: a commit per call
    costs ~20-35 ms, so a program sending many messages uses :func:`deliver_many` (one commit).
    """
    return deliver_many(room, [msg], commit_now=commit_now)


def deliver_many(room: Mailroom, msgs: list[Message], *, commit_now: bool = True) -> list[Path]:
    """:func:`deliver` for a batch: one journal entry and (unless told not to) one commit for all.

    Every message is checked before any is written; every copy and the journal entry are written
    before any copy becomes visible in ``new/``.
    """
    for msg in msgs:
        for agent in (msg.sender, *msg.recipients):
            if not room.card_path(agent).is_file():
                load_agent(room, agent)  # raises NotFound, naming the registered agents
        if room.is_closed(msg.thread):
            raise ThreadClosed(
                f"thread {msg.thread} is closed; send a new message (a new thread) to continue",
                archive=room.rel(room.archive_dir(msg.thread)),
            )
    staged: list[tuple[Path, Path, Message]] = []  # (tmp copy, its place in new/, message)
    boxes = {agent: ensure_inbox(room, agent) for msg in msgs for agent in msg.recipients}
    try:
        for msg in msgs:
            for agent in msg.recipients:
                tmp = boxes[agent] / "tmp" / f"{msg.id}.{os.getpid()}.{os.urandom(4).hex()}"
                staged.append((tmp, boxes[agent] / "new" / f"{msg.id}.md", msg))
        write_all_new([(tmp, msg.raw) for tmp, _, msg in staged])
        senders = {m.sender for m in msgs}
        entry = journal.record(
            room,
            [room.rel(final) for _, final, _ in staged],
            "\n".join(summary(m) for m in msgs),
            senders.pop() if len(senders) == 1 else "mailslot",
        )
    except OSError as e:
        for tmp, _, _ in staged:
            tmp.unlink(missing_ok=True)
        raise StorageError(f"cannot write the message: {e.strerror}; nothing was delivered") from None
    landed: list[Path] = []
    try:
        for tmp, final, msg in staged:
            try:
                os.link(tmp, final)
            except FileExistsError:
                owner = final.parent.parent.name
                raise MailslotError(
                    f"a message with id {msg.id} is already in the inbox of {owner}"
                ) from None
            landed.append(final)
    finally:
        for tmp, _, _ in staged:
            tmp.unlink(missing_ok=True)
    if commit_now:
        commit(room, entry)
    return landed


def load(path: Path) -> Message:
    """Read and validate one message file (no symlinks, no FIFOs, size-capped)."""
    return parse(read_regular(path))


def _names(folder: Path) -> list[str]:
    """The names in ``folder`` except dotfiles, sorted (strings: 10k Paths cost ~0.2 s to sort)."""
    try:
        return sorted(n for n in os.listdir(folder) if not n.startswith("."))
    except (FileNotFoundError, NotADirectoryError):
        return []


def _files(folder: Path) -> list[Path]:
    return [folder / name for name in _names(folder)]


def scan_inbox(
    room: Mailroom, agent: str, *, seen: bool | None = False, listing: dict[str, list[str]] | None = None
) -> Iterator[Stored | Problem]:
    """Messages in an inbox: unseen (``seen=False``), seen (True) or both (None), oldest first.

    ``listing`` gives the names of ``new``/``cur`` already read (see :func:`inbox_page`)."""
    box = room.inbox(agent)
    folders = {False: ["new"], True: ["cur"], None: ["new", "cur"]}[seen]
    first: dict[str, Path] = {}
    for sub in folders:
        for name in listing[sub] if listing is not None else _names(box / sub):
            path = box / sub / name
            item = _stored(path, agent, sub == "cur")
            if isinstance(item, Stored):
                twin = first.get(item.message.id) or _seen_twin(box, path, sub, item.message.id)
                if twin is False:
                    continue  # being moved to cur/ right now: the same file under both names
                if isinstance(twin, Path):
                    yield Problem(path, f"duplicate of message {item.message.id} ({room.rel(twin)})")
                    continue
                first[item.message.id] = path
            yield item


def _seen_twin(box: Path, path: Path, sub: str, mid: str) -> Path | bool | None:
    """For a file in new/: a seen file of the same name or of ``<id>.md`` (a duplicate), False if
    that is the same file mid-move, None if there is none."""
    if sub != "new":
        return None
    for twin in dict.fromkeys((box / "cur" / path.name, box / "cur" / f"{mid}.md")):
        try:
            return False if os.path.samestat(os.lstat(twin), os.lstat(path)) else twin
        except FileNotFoundError:
            continue
    return None


def _stored(path: Path, agent: str | None, seen: bool) -> Stored | Problem:
    if not names.is_mail_file_name(path.name):
        return Problem(path, f"file name {path.name!r} does not match the spec (<id>.md, no leading dot)")
    try:
        msg = load(path)
    except InvalidMessage as e:
        return Problem(path, e.message)
    except FileNotFoundError:
        return Problem(path, "vanished")
    if agent is not None and agent not in msg.recipients:
        return Problem(path, f"found in the inbox of {agent}, who is not in to/cc")
    return Stored(path, msg, agent, seen)


def iter_inboxes(room: Mailroom) -> list[str]:
    """Names of the agents that have an inbox directory."""
    base = room.root / "inbox"
    try:
        return sorted(e.name for e in os.scandir(base) if e.is_dir() and names.AGENT_RE.fullmatch(e.name))
    except FileNotFoundError:
        return []


STALE_TMP_SECONDS = 36 * 3600  # Maildir's rule: a tmp/ file this old belongs to a dead writer


def clean_tmp(room: Mailroom, *, max_age: float = STALE_TMP_SECONDS) -> list[Path]:
    """Remove what writers killed mid-delivery left in ``inbox/*/tmp/``: entries not modified for
    ``max_age`` seconds (files and symlinks; directories are left alone). Returns what was removed.

    A live delivery keeps its tmp/ file for milliseconds, so nothing in flight is touched.
    """
    cutoff = time.time() - max_age
    removed = []
    for agent in iter_inboxes(room):
        folder = room.inbox(agent) / "tmp"
        try:
            entries = list(os.scandir(folder))
        except (FileNotFoundError, NotADirectoryError):
            continue
        for entry in entries:
            try:
                info = entry.stat(follow_symlinks=False)
                if stat.S_ISDIR(info.st_mode) or info.st_mtime > cutoff:
                    continue
                os.unlink(entry.path)
            except FileNotFoundError:
                continue
            removed.append(Path(entry.path))
    return removed


def iter_archive(room: Mailroom, thread: str | None = None) -> Iterator[Stored | Problem]:
    """Messages in the archive, of one thread or of all."""
    if thread is not None:
        folders = [room.archive_dir(thread)]
    else:
        folders = [t for shard in _files(room.root / "archive") for t in _files(shard)]
    for folder in folders:
        for path in _files(folder):
            yield _stored(path, None, True)


def quarantine(room: Mailroom, problem: Problem, *, grace: float = GRACE_SECONDS) -> Path | None:
    """Move a bad file to ``rejected/`` with ``<name>.reason`` beside it; journal both.

    Returns the new path, or None if the file vanished or is younger than ``grace`` seconds (it may
    still be being written by hand). Does not commit.
    """
    if problem.reason == "vanished":
        return None
    try:
        age = time.time() - problem.path.lstat().st_mtime
    except FileNotFoundError:
        return None
    if age < grace:
        return None
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    origin = room.rel(problem.path)
    safe = "".join(c if c.isalnum() or c in "._-" else "_" for c in origin.replace("/", "_"))[-120:]
    target = room.rejected_dir / f"{stamp}-{safe.lstrip('._-')}"
    try:
        landed = move_noclobber(problem.path, target)
    except FileNotFoundError:
        return None
    reason_path = landed.with_name(landed.name + ".reason")
    atomic_write(
        reason_path,
        dump_yaml({"reason": problem.reason, "from": origin, "at": now_rfc3339()}).encode(),
    )
    paths = [origin, room.rel(landed), room.rel(reason_path)]
    if landed.is_dir() and not landed.is_symlink():  # files a tracked directory held leave the index
        paths += [f"{origin}/{p.relative_to(landed).as_posix()}" for p in landed.rglob("*")]
    journal.record(room, paths, f"reject: {origin}: {problem.reason}"[:200])
    return landed


def mark_seen(room: Mailroom, items: list[Stored], reader: str) -> list[Stored]:
    """Move unseen items from ``new/`` to ``cur/``; journal the moves (no commit). Idempotent."""
    moved, paths = [], []
    for item in items:
        if item.seen or item.agent is None:
            continue
        target = item.path.parent.parent / "cur" / item.path.name
        try:
            landed = move_noclobber(item.path, target)
        except FileNotFoundError:
            landed = target  # another reader moved it first
        paths += [room.rel(item.path), room.rel(landed)]
        moved.append(Stored(landed, item.message, item.agent, True))
    if paths:
        count = len(moved)
        journal.record(room, paths, f"seen: {reader} read {count} message{'s' * (count != 1)}", reader)
    return moved


@dataclass(frozen=True)
class Page:
    """A page of an inbox listing: the messages, the bad files found, and how many are left."""

    found: list[Stored]
    problems: list[Problem]
    more: int


def inbox(
    room: Mailroom, agent: str, *, include_seen: bool = False, mark: bool = True
) -> tuple[list[Stored], list[Problem]]:
    """:func:`inbox_page` without a limit: every message, and the problems found."""
    page = inbox_page(room, agent, include_seen=include_seen, mark=mark)
    return page.found, page.problems


def inbox_page(
    room: Mailroom, agent: str, *, include_seen: bool = False, mark: bool = True, limit: int | None = None
) -> Page:
    """List an agent's mail (unseen, or all), mark what is listed seen, quarantine bad files; commit.

    With ``limit``, only the first ``limit`` messages in file-name order (the oldest, for names as
    mailslot writes them) are read and marked; ``more`` counts the files left for the next call.
    Messages are returned oldest first.
    """
    load_agent(room, agent)
    found: list[Stored] = []
    problems: list[Problem] = []
    box = room.inbox(agent)
    folders = ("new", "cur") if include_seen else ("new",)
    listing = {sub: _names(box / sub) for sub in folders}  # one listing: `more` counts from it
    more = 0
    for item in scan_inbox(room, agent, seen=None if include_seen else False, listing=listing):
        if limit is not None and len(found) >= limit:
            order = [box / sub / name for sub in folders for name in listing[sub]]
            more = len(order) - order.index(item.path)  # this one and those after it
            break
        if isinstance(item, Problem):
            if item.reason != "vanished":
                problems.append(item)
                quarantine(room, item)
        else:
            found.append(item)
    found.sort(key=lambda s: (s.message.timestamp(), s.path.name))  # instants: offsets may differ
    if mark:
        unseen = [s for s in found if not s.seen]
        moved = {s.message.id: s for s in mark_seen(room, unseen, agent)}
        found = [moved.get(s.message.id, s) if not s.seen else s for s in found]
    commit(room)
    return Page(found, problems, more)


def find(room: Mailroom, mid: str, reader: str | None = None) -> Stored:
    """Find a message by id: the reader's inbox first, then every inbox, then the archive.

    Files named ``<id>.md`` are found without parsing others; raise :class:`NotFound` if absent.
    """
    names.check_message_id(mid)
    agents = iter_inboxes(room)
    if reader in agents:
        agents.remove(reader)
        agents.insert(0, reader)
    for agent in agents:
        for sub in ("new", "cur"):
            path = room.inbox(agent) / sub / f"{mid}.md"
            if path.exists():
                item = _stored(path, agent, sub == "cur")
                if isinstance(item, Stored):
                    return item
    for path in (room.root / "archive").glob(f"*/*/{mid}.md"):
        item = _stored(path, None, True)
        if isinstance(item, Stored):
            return item
    for agent in agents:  # files written by hand under other names
        for entry in scan_inbox(room, agent, seen=None):
            if isinstance(entry, Stored) and entry.message.id == mid:
                return entry
    for entry in iter_archive(room):
        if isinstance(entry, Stored) and entry.message.id == mid:
            return entry
    raise NotFound(f"no message with id {mid}")


def read(room: Mailroom, mid: str, reader: str | None) -> Stored:
    """Find a message and, if it is unseen in the reader's own inbox, mark it seen and commit."""
    item = find(room, mid, reader)
    if reader is not None and item.agent == reader and not item.seen:
        item = mark_seen(room, [item], reader)[0]
        commit(room)
    return item


def fsck(room: Mailroom, *, fix: bool = False) -> list[Problem]:
    """Validate every message file and agent card; with ``fix``, quarantine the bad ones and commit.

    When fixing, also removes stale ``tmp/`` files (:func:`clean_tmp`) and commits files written by
    hand (a sweep).
    """
    from mailslot.mailroom import _agent_from

    problems: list[Problem] = []
    for path in _files(room.root / "agents"):
        try:
            _agent_from(path)
        except (InvalidMessage, ValueError) as e:
            problems.append(Problem(path, str(e)))
        except OSError as e:
            problems.append(Problem(path, f"unreadable: {e.strerror}"))
    for agent in iter_inboxes(room):
        problems += [p for p in scan_inbox(room, agent, seen=None) if isinstance(p, Problem)]
    problems += [p for p in iter_archive(room) if isinstance(p, Problem)]
    if fix:
        from mailslot import vcs

        for problem in problems:
            quarantine(room, problem, grace=0.0)
        clean_tmp(room)
        vcs.sweep(room)
    return problems
