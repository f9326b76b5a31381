"""The audit every chaos scenario ends with: no mail lost or duplicated, all of it in git, no bad tap.

    result = audit(room, sent, fakes=[agent], shells=[shell])

1. Mail: every message sent exists exactly once per recipient in ``new/`` or ``cur/`` (once in the
   archive if its thread was closed), byte-identical to what was sent; no invalid file is left in
   an inbox or the archive. Messages of interrupted sends (``maybe``) are either absent or whole.
2. Git: after one final sweep, no journal entry is left, ``git status`` is clean, ``git ls-files``
   equals the files in the tree (FIFOs excepted: git cannot hold them), the index equals ``HEAD``,
   and ``git fsck --strict`` passes.
3. Taps: the ledger (``taps.log``) shows no typed tap into a forbidden pane, and no message id in two
   submitted taps (re-taps are off in these scenarios) unless the later one brought new urgent mail.
   Cross-checked with the fake agents' own key logs: no key arrived while an agent was busy (unless
   urgent mail may be queued there), in a dialog, or with a draft in its box; no tap text was typed
   twice; every tap an agent submitted has a ledger record, and every tap the ledger calls submitted
   reached the agent. A shell's screen never shows ``[mailslot]``.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fakeharness import FakeAgent, Pane

from mailslot import journal, ledger, store, vcs
from mailslot.mailroom import Mailroom
from mailslot.message import Message

from .harness import git

NONCE = re.compile(r"#(t[a-z0-9]{4})")


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class Sent:
    """What a sender handed to ``store.deliver``: the id, a hash of the bytes, where copies go."""

    id: str
    sha256: str
    recipients: tuple[str, ...]
    thread: str

    @classmethod
    def of(cls, msg: Message) -> Sent:
        return cls(msg.id, sha(msg.raw), tuple(msg.recipients), msg.thread)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Sent:
        return cls(data["id"], data["sha256"], tuple(data["recipients"]), data["thread"])

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "sha256": self.sha256,
            "recipients": list(self.recipients),
            "thread": self.thread,
        }


def reported(folder: Path) -> list[Sent]:
    """Every message a sender reported as delivered (a torn last line cannot occur: one write each)."""
    out = []
    for path in sorted(folder.glob("*.jsonl")):
        out += [Sent.from_json(json.loads(line)) for line in path.read_text().splitlines()]
    return out


@dataclass(frozen=True)
class Copy:
    id: str
    where: str  # "inbox/<agent>" or "archive/<thread>"
    path: Path
    sha256: str


@dataclass
class Result:
    messages: int = 0  # sent messages verified
    copies: int = 0  # message files verified
    maybe_found: int = 0  # messages of interrupted sends found whole
    unknown: int = 0  # messages nobody reported (a sender killed before it could)
    taps: int = 0  # submitted taps in the ledger
    special: list[str] = field(default_factory=list)  # FIFOs and the like (git cannot hold them)
    lost: int = 0


def mail_copies(room: Mailroom) -> tuple[list[Copy], list[store.Problem]]:
    """Every message file in the inboxes (new/ and cur/) and the archive, and every invalid one."""
    copies: list[Copy] = []
    problems: list[store.Problem] = []
    items: list[tuple[str | None, store.Stored | store.Problem]] = []
    for agent in store.iter_inboxes(room):
        items += [(agent, item) for item in store.scan_inbox(room, agent, seen=None)]
    items += [(None, item) for item in store.iter_archive(room)]
    for agent, item in items:
        if isinstance(item, store.Problem):
            problems.append(item)
            continue
        where = f"inbox/{agent}" if agent else f"archive/{item.message.thread}"
        copies.append(Copy(item.message.id, where, item.path, sha(item.path.read_bytes())))
    return copies, problems


def check_mail(
    room: Mailroom,
    sent: Iterable[Sent],
    *,
    maybe: Iterable[Sent] = (),
    closed: Iterable[str] = (),
    unknown_ok: bool = False,
) -> tuple[Result, list[str]]:
    result, errors = Result(), []
    copies, problems = mail_copies(room)
    errors += [f"invalid file left in the mail: {room.rel(p.path)}: {p.reason}" for p in problems]
    by_id: dict[str, list[Copy]] = defaultdict(list)
    for c in copies:
        by_id[c.id].append(c)
    shut = set(closed)

    def places(s: Sent) -> list[str]:
        return [f"archive/{s.thread}"] if s.thread in shut else [f"inbox/{r}" for r in s.recipients]

    for s in sent:
        found = by_id.pop(s.id, [])
        want, have = sorted(places(s)), sorted(c.where for c in found)
        if have != want:
            missing = sorted(set(want) - set(have))
            if missing:
                result.lost += 1
            errors.append(f"message {s.id}: expected one copy in each of {want}, found {have}")
        errors += [f"{room.rel(c.path)} differs from what was sent" for c in found if c.sha256 != s.sha256]
        result.messages += 1
        result.copies += len(found)
    for s in maybe:
        found = by_id.pop(s.id, [])
        have = [c.where for c in found]
        if len(have) != len(set(have)) or not set(have) <= set(places(s)):
            errors.append(f"interrupted message {s.id}: copies in {sorted(have)}, allowed {places(s)}")
        errors += [f"{room.rel(c.path)} differs from what was sent" for c in found if c.sha256 != s.sha256]
        result.maybe_found += bool(found)
        result.copies += len(found)
    for mid, found in by_id.items():
        result.unknown += 1
        result.copies += len(found)
        have = [c.where for c in found]
        if not unknown_ok:
            errors.append(f"message {mid} in {have} was never sent")
        elif len(have) != len(set(have)) or len({c.sha256 for c in found}) != 1:
            errors.append(f"unreported message {mid}: copies {have} are duplicated or differ")
    return result, errors


def tree_files(room: Mailroom) -> tuple[set[str], list[str]]:
    """Files and symlinks under the root as git names them (no .git, no inbox/*/tmp); and FIFOs etc."""
    files: set[str] = set()
    special: list[str] = []
    for top, dirs, names in os.walk(room.root):
        rel_top = Path(top).relative_to(room.root)
        parts = rel_top.parts
        if parts == ():
            dirs[:] = [d for d in dirs if d != ".git"]
        if len(parts) == 2 and parts[0] == "inbox":
            dirs[:] = [d for d in dirs if d != "tmp"]
        linked = [d for d in dirs if os.path.islink(os.path.join(top, d))]
        dirs[:] = [d for d in dirs if d not in linked]
        for name in [*names, *linked]:
            rel = (rel_top / name).as_posix()
            mode = os.lstat(os.path.join(top, name)).st_mode
            if stat.S_ISREG(mode) or stat.S_ISLNK(mode):
                files.add(rel)
            else:
                special.append(rel)
    return files, special


def check_git(room: Mailroom, *, sweep: bool = True) -> tuple[list[str], list[str]]:
    """Sweep once, then: no journal entry left, clean status, ls-files == tree, index == HEAD, fsck."""
    errors: list[str] = []
    if sweep:
        vcs.sweep(room)
    left = journal.pending(room)
    if left:
        errors.append(
            f"{len(left)} journal entries left after the final commit: {[e.path.name for e in left]}"
        )
    status = git(room, "status", "--porcelain=v1", "--untracked-files=all").stdout
    if status:
        errors.append(f"git status is not clean:\n{status[:2000]}")
    tracked = {p for p in git(room, "ls-files", "-z").stdout.split("\0") if p}
    on_disk, special = tree_files(room)
    if on_disk - tracked:
        errors.append(f"files not committed: {sorted(on_disk - tracked)[:20]}")
    if tracked - on_disk:
        errors.append(f"committed files missing from the tree: {sorted(tracked - on_disk)[:20]}")
    if git(room, "diff", "--cached", "--quiet", "HEAD", check=False).returncode != 0:
        errors.append("the index differs from HEAD")
    fsck = git(room, "fsck", "--strict", "--no-progress", check=False)
    if fsck.returncode != 0:
        errors.append(f"git fsck --strict failed: {fsck.stderr.strip()[:2000]}")
    return errors, special


def forbidden_keys(agent: FakeAgent, *, urgent_ok: bool = False) -> list[dict[str, Any]]:
    """Keys the fake read in a dialog, while busy (unless urgent mail may be queued) or over a draft."""
    bad, draft = [], False
    for e in agent.log_events():
        if e["event"] == "control":
            verb, _, rest = (e["text"] or "").partition(" ")
            if verb == "draft":
                draft = bool(rest)
        elif e["event"] == "submit":
            draft = False
        elif e["event"] == "key" and (
            e["state"] == "dialog" or (e["state"] == "busy" and not urgent_ok) or draft
        ):
            bad.append({**e, "draft": draft})
    return bad


def check_taps(
    room: Mailroom,
    *,
    fakes: Iterable[FakeAgent] = (),
    shells: Iterable[Pane] = (),
    urgent: Iterable[str] = (),
    urgent_ok: Iterable[FakeAgent] = (),
    forbidden_panes: Iterable[tuple[str, str]] = (),
) -> tuple[int, list[str]]:
    """The ledger's and the fakes' view of every tap; returns (submitted taps, errors)."""
    errors: list[str] = []
    records = ledger.read_log(room)
    urgent_ids = set(urgent)
    forbidden = set(forbidden_panes)
    tapped: dict[str, set[str]] = defaultdict(set)
    submitted = 0
    for rec in records:
        if rec.get("typed") and (rec.get("pane"), rec.get("socket")) in forbidden:
            errors.append(f"typed into a forbidden pane: {rec}")
        if rec.get("result") != "submitted":
            continue
        submitted += 1
        ids = set(rec.get("ids") or [])
        before = tapped[rec["agent"]]
        if ids & before and not (ids - before) & urgent_ids:
            errors.append(f"mail tapped twice: {sorted(ids & before)} again in {rec}")
        before |= ids
    queue_ok = {id(a) for a in urgent_ok}
    for agent in fakes:
        where = f"{agent.mode} fake {agent.pane}"
        errors += [
            f"{where}: forbidden key {e}" for e in forbidden_keys(agent, urgent_ok=id(agent) in queue_ok)
        ]
        typed = "".join(k["text"] or "" for k in agent.keys())  # noqa: SIM118 - a method
        twice = [n for n, c in Counter(NONCE.findall(typed)).items() if c > 1]
        if twice:
            errors.append(f"{where}: tap text typed more than once: {twice}")
        got = Counter(n for t in agent.submitted() if "[mailslot]" in t for n in NONCE.findall(t))
        if any(c > 1 for c in got.values()):
            errors.append(f"{where}: a tap was submitted twice: {got}")
        mine = [
            r
            for r in records
            if r.get("pane") == agent.pane and r.get("socket", agent.socket) in (agent.socket, None)
        ]
        typed_nonces = {r.get("nonce") for r in mine if r.get("typed")}
        if set(got) - typed_nonces:
            errors.append(f"{where}: taps with no ledger record of typing: {sorted(set(got) - typed_nonces)}")
        said = {r.get("nonce") for r in mine if r.get("result") == "submitted"}
        if said - set(got):
            errors.append(
                f"{where}: the ledger says submitted, the agent never got: {sorted(said - set(got))}"
            )
    for shell in shells:
        res = shell.tmux("capture-pane", "-p", "-S", "-", "-t", shell.pane)
        if res.returncode == 0 and "[mailslot]" in res.stdout:
            errors.append(f"a tap reached the shell in {shell.pane}:\n{res.stdout[-1000:]}")
    return submitted, errors


def audit(
    room: Mailroom,
    sent: Iterable[Sent],
    *,
    maybe: Iterable[Sent] = (),
    closed: Iterable[str] = (),
    unknown_ok: bool = False,
    sweep: bool = True,
    fakes: Iterable[FakeAgent] = (),
    shells: Iterable[Pane] = (),
    urgent: Iterable[str] = (),
    urgent_ok: Iterable[FakeAgent] = (),
    forbidden_panes: Iterable[tuple[str, str]] = (),
) -> Result:
    """Run the three audits (mail, git, taps); fail the test listing every finding."""
    result, errors = check_mail(room, sent, maybe=maybe, closed=closed, unknown_ok=unknown_ok)
    git_errors, result.special = check_git(room, sweep=sweep)
    result.taps, tap_errors = check_taps(
        room, fakes=fakes, shells=shells, urgent=urgent, urgent_ok=urgent_ok, forbidden_panes=forbidden_panes
    )
    everything = errors + git_errors + tap_errors
    assert not everything, f"audit failed ({len(everything)} findings):\n" + "\n".join(everything[:40])
    return result
