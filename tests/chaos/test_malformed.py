"""Malformed files dropped into inboxes while valid mail flows, with the daemon running.

Generated bad files: the spec's invalid examples, bad YAML, missing fields, wrong types, binary, NUL
bytes, invalid UTF-8, a byte-order mark, truncated front matter, files over 1 MiB (one of 10 MB),
empty files, symlinks (to /etc/passwd, to a secret file, dangling, to a directory, to a valid
message), FIFOs, directories named ``*.md``, names that try to escape or break rules (spaces, ``:``,
leading ``-``, no ``.md``, too long, control characters), mail in the wrong inbox, copies of messages
already read (under their own names); and dotfiles, which readers ignore by design. Each is staged
with an old mtime (past the 2 s grace) and renamed into a ``new/``, interleaved with valid mail
(delivered, or written by hand). Every bad file must end up in ``rejected/`` with a non-empty reason,
every valid message must be tapped, no file's target outside the mailroom (/etc/passwd, a secret)
may ever be read into it, and the audit must pass.

Kinds that broke the product when this suite was written (duplicate ids, values PyYAML cannot build,
deep nesting, names that are not UTF-8) have their own regression tests at the end.
"""

from __future__ import annotations

import os
import random
import stat
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import MAILSLOT, add_agent, retry_until
from recorder import Recorder

from mailslot import ledger, store
from mailslot.daemon import Daemon
from mailslot.engine import Engine, Policy
from mailslot.mailroom import Agent, Mailroom
from mailslot.message import Message, compose

from .audit import Sent, audit
from .harness import git, git_bytes, size

pytestmark = pytest.mark.chaos

SPEC_INVALID = sorted((Path(__file__).resolve().parents[2] / "spec" / "examples" / "invalid").glob("*.md"))
OLD = time.time() - 3600  # an hour ago: past the grace period, so quarantine does not wait
MIB = 1024 * 1024
AGENTS = ("bob", "carol")


@dataclass
class Bad:
    kind: str
    agent: str
    name: str
    make: Callable[[Path], None]
    ignored: bool = False  # a dotfile: readers skip it by design
    content: bytes | None = None  # what a regular file holds
    target: str | None = None  # where a symlink points

    @property
    def rel(self) -> str:
        return f"inbox/{self.agent}/new/{self.name}"


@dataclass
class Valid:
    msg: Message
    by_hand: bool


@dataclass
class World:
    """What the generators point at: a secret outside the mailroom, a directory, a valid message."""

    secret: Path
    secret_text: str
    outside_dir: Path
    outside_valid: Path
    originals: list[Message] = field(default_factory=list)  # read before the run; duplicates copy them


def valid_raw(agent: str, **kw: Any) -> bytes:
    return compose(sender="alice", to=[agent], subject=kw.pop("subject", "looks fine"), body="b", **kw).raw


def regular(kind: str, agent: str, name: str, data: bytes, ignored: bool = False) -> Bad:
    return Bad(kind, agent, name, lambda p: p.write_bytes(data), ignored=ignored, content=data)


def link(kind: str, agent: str, name: str, target: str) -> Bad:
    return Bad(kind, agent, name, lambda p: os.symlink(target, p), target=target)


def _edit(raw: bytes, field: str, line: bytes | None) -> bytes:
    lines = raw.split(b"\n")
    i = next(n for n, x in enumerate(lines) if x.startswith(field.encode() + b":"))
    if line is None:
        del lines[i]
    else:
        lines[i] = line
    return b"\n".join(lines)


WRONG_TYPES = [
    ("to", b"to: 123"),
    ("to", b"to: {bob: 1}"),
    ("mailslot", b"mailslot: 2"),
    ("mailslot", b"mailslot: '1'"),
    ("date", b"date: 2026-11-21T09:00:00Z"),
    ("date", b'date: "yesterday"'),
    ("id", b"id: ../../etc/passwd"),
    ("id", b"id: .hidden"),
    ("thread", b"thread: a/b"),
    ("from", b"from: Alice"),
    ("subject", b'subject: ""'),
    ("subject", b"subject: [a, b]"),
    ("to", b"to: []"),
    ("to", b"to: [../../etc]"),
]
BAD_YAML = [
    b"to: [bob\n",
    b"subject: 'open\n",
    b"\tx: 1\n",
    b": :\n",
    b"{{{\n",
    b"- a\nb: c\n",
    b"x: *nowhere\n",
]
BAD_UTF8 = [b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\xf8\x88\x80\x80\x80", b"\x80"]
BAD_NAMES = [
    "with space {i}.md",
    "colon:{i}.md",
    "-dash{i}.md",
    "_under{i}.md",
    "ünïcode{i}.md",
    "{long}{i}.md",
    "plain{i}.txt",
    "upper{i}.MD",
    "noext{i}",
    "up..%2f..%2fetc{i}.md",
    "tab\t{i}.md",
    "new\nline{i}.md",
    "back\\slash{i}.md",
    "esc\x1b[31m{i}.md",
    "quote'{i}\".md",
]
DOTFILES = [".hidden{i}.md", "..{i}.md", "...{i}", ".{i}", "..%2f..%2fetc{i}.md"]


def generate(n: int, rng: random.Random, world: World) -> list[Bad]:
    """``n`` bad files of random kinds (exactly one of them 10 MB), each with a unique name."""
    out: list[Bad] = []

    def one(i: int) -> Bad:
        agent = rng.choice(AGENTS)
        other = "carol" if agent == "bob" else "bob"
        base = f"bad-{i:04d}.md"
        kind = rng.choice(KINDS)
        raw = valid_raw(agent)
        if kind == "spec-invalid":
            return regular(kind, agent, base, rng.choice(SPEC_INVALID).read_bytes())
        if kind == "bad-yaml":
            fm = raw.split(b"\n---\n")[0] + b"\n" + rng.choice(BAD_YAML)
            return regular(kind, agent, base, fm + b"---\n\nbody\n")
        if kind == "missing-field":
            name = rng.choice(["mailslot", "id", "thread", "from", "to", "subject", "date"])
            return regular(kind, agent, base, _edit(raw, name, None))
        if kind == "wrong-type":
            name, line = rng.choice(WRONG_TYPES)
            return regular(kind, agent, base, _edit(raw, name, line))
        if kind == "binary":
            return regular(kind, agent, base, bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 4096))))
        if kind == "nul":
            at = rng.randint(0, len(raw))
            return regular(kind, agent, base, raw[:at] + b"\0" + raw[at:])
        if kind == "bad-utf8":
            at = rng.randint(4, len(raw))
            return regular(kind, agent, base, raw[:at] + rng.choice(BAD_UTF8) + raw[at:])
        if kind == "bom":
            return regular(kind, agent, base, b"\xef\xbb\xbf" + raw)
        if kind == "truncated":
            return regular(kind, agent, base, raw[: rng.randint(0, raw.index(b"\n---\n"))])
        if kind == "empty":
            return regular(kind, agent, base, b"")
        if kind == "over-limit":
            return regular(kind, agent, base, raw + b"x" * (MIB - len(raw) + rng.randint(1, 4096)))
        if kind == "duplicate":  # a copy of a message already read, under its own name
            original = compose(sender="alice", to=[agent], subject=f"original {i}", body="o")
            world.originals.append(original)
            return regular(kind, agent, f"{original.id}.md", original.raw)
        if kind == "wrong-inbox":
            return regular(kind, agent, base, valid_raw(other))
        if kind == "bad-name":
            long = "x" * 100
            name = rng.choice(BAD_NAMES).format(i=i, long=long)
            return regular(kind, agent, name, raw)
        if kind == "dotfile":
            return regular(kind, agent, rng.choice(DOTFILES).format(i=i), raw, ignored=True)
        if kind == "symlink":
            target = rng.choice(
                [
                    "/etc/passwd",
                    str(world.secret),
                    "/nonexistent/dangling.md",
                    "/etc",
                    str(world.outside_dir),
                    str(world.outside_valid),
                    f"../cur/{base}",
                ]
            )
            return link(kind, agent, base, target)
        if kind == "fifo":
            return Bad(kind, agent, base, lambda p: os.mkfifo(p))
        if kind == "directory":

            def make_dir(p: Path) -> None:
                p.mkdir()
                if rng.random() < 0.5:
                    (p / "inner.md").write_bytes(raw)
                    (p / "deeper.md").mkdir()
                    (p / "deeper.md" / "note.txt").write_text("inside a directory named like mail\n")

            return Bad(kind, agent, base, make_dir)
        raise AssertionError(kind)

    for i in range(n):
        out.append(one(i))
    huge = rng.randrange(n)  # exactly one 10 MB file
    agent = out[huge].agent
    out[huge] = regular("10MB", agent, f"bad-{huge:04d}.md", valid_raw(agent) + b"y" * (10 * MIB))
    return out


KINDS = [
    "spec-invalid", "bad-yaml", "missing-field", "wrong-type", "binary", "nul", "bad-utf8", "bom",
    "truncated", "empty", "over-limit", "wrong-inbox", "bad-name", "bad-name", "dotfile", "symlink",
    "symlink", "fifo", "directory", "duplicate",
]  # fmt: skip


def drop(room: Mailroom, staging: Path, bad: Bad) -> None:
    """Create the entry in a staging directory with an old mtime, then rename it into new/."""
    tmp = staging / uuid.uuid4().hex
    bad.make(tmp)
    os.utime(tmp, (OLD, OLD), follow_symlinks=False)
    os.rename(tmp, room.root / bad.rel)


def deliver(room: Mailroom, item: Valid) -> None:
    if not item.by_hand:
        store.deliver(room, item.msg)
        return
    for agent in item.msg.recipients:  # written by hand: tmp/ then rename (spec section 7)
        tmp = room.inbox(agent) / "tmp" / f"hand-{item.msg.id}"
        tmp.write_bytes(item.msg.raw)
        os.rename(tmp, room.inbox(agent) / "new" / f"{item.msg.id}.md")


def tapped(room: Mailroom) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {a: set() for a in AGENTS}
    for r in ledger.read_log(room):
        if r.get("result") == "submitted":
            out[r["agent"]].update(r.get("ids") or [])
    return out


def read(room: Mailroom, msg: Message) -> None:
    """The agent reads the message (only it: the agent's listing would also quarantine bad files)."""
    for agent in msg.recipients:
        items = [
            s
            for s in store.scan_inbox(room, agent, seen=False)
            if isinstance(s, store.Stored) and s.message.id == msg.id
        ]
        store.mark_seen(room, items, agent)
    store.commit(room)


def reasons(room: Mailroom) -> dict[str, list[tuple[Path, str]]]:
    """``from`` path -> [(rejected entry, reason)] for every ``.reason`` file in rejected/."""
    out: dict[str, list[tuple[Path, str]]] = {}
    for path in room.rejected_dir.glob("*.reason"):
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        out.setdefault(data["from"], []).append(
            (path.with_name(path.name[: -len(".reason")]), data["reason"])
        )
    return out


def leftovers(room: Mailroom, bads: list[Bad]) -> list[str]:
    return [b.rel for b in bads if not b.ignored and os.path.lexists(room.root / b.rel)]


@pytest.fixture
def world(tmp_path: Path) -> World:
    secret_text = f"chaos-secret-{uuid.uuid4().hex}"
    secret = tmp_path / "outside" / "secret.txt"
    secret.parent.mkdir()
    secret.write_text(secret_text + "\n")
    outside_dir = tmp_path / "outside" / "a-directory"
    outside_dir.mkdir()
    (outside_dir / "x.md").write_bytes(valid_raw("bob"))
    outside_valid = tmp_path / "outside" / "valid.md"
    outside_valid.write_bytes(valid_raw("bob", subject="reached through a symlink"))
    return World(secret, secret_text, outside_dir, outside_valid)


@pytest.fixture
def daemon(room: Mailroom) -> Iterator[tuple[Daemon, Recorder, list[str], threading.Thread]]:
    for i, name in enumerate(AGENTS, 1):
        add_agent(
            room, Agent(name=name, program="claude", host="testhost", pane=f"%{i}", socket="/nonexistent")
        )
    rec, logs = Recorder(), []
    # re-taps off; every valid message gets its own tap, far more than the hourly budget of 30 allows
    d = Daemon(room, rec, Policy(retap_after=3600, budget=100_000), rescan=2.0, log=logs.append)
    thread = threading.Thread(target=d.serve, daemon=True)
    thread.start()
    retry_until(lambda: any("watching" in line for line in logs), what="daemon up")
    yield d, rec, logs, thread
    d.stop()
    thread.join(timeout=15)


def test_malformed_files_are_quarantined_and_valid_mail_flows(
    room: Mailroom, daemon: Any, world: World, tmp_path: Path, figures
) -> None:
    d, _, logs, thread = daemon
    n = size(150, 1000)
    rng = random.Random(20261121)
    bads = generate(n, rng, world)
    valids = [
        Valid(
            compose(
                sender="alice",
                to=rng.choice([["bob"], ["carol"], ["bob", "carol"]]),
                subject=f"valid {i}",
                body=f"valid mail number {i}",
            ),
            by_hand=rng.random() < 0.4,
        )
        for i in range(n // 5)
    ]
    items: list[Bad | Valid] = [*bads, *valids]
    rng.shuffle(items)
    originals = [Valid(msg, by_hand=False) for msg in world.originals]  # read before their copies come
    staging = tmp_path / "staging"
    staging.mkdir()
    for item in [*originals, *items]:
        if isinstance(item, Bad):
            drop(room, staging, item)
            continue
        deliver(room, item)
        retry_until(
            lambda m=item.msg: all(m.id in tapped(room)[a] for a in m.recipients),
            timeout=10,
            what=f"a tap for valid mail {item.msg.id}",
        )
        read(room, item.msg)
    valids += originals
    try:
        retry_until(lambda: not leftovers(room, bads), timeout=15, what="every bad file quarantined")
    except pytest.fail.Exception:
        pytest.fail(f"never quarantined: {leftovers(room, bads)}")
    assert thread.is_alive(), "the daemon died"
    d.stop()
    thread.join(timeout=15)
    assert not [line for line in logs if "unexpected" in line or "failed" in line], logs

    # Every bad file is in rejected/, once, as itself, with a non-empty reason beside it.
    found = reasons(room)
    expected = {b.rel for b in bads if not b.ignored}
    assert set(found) == expected, f"rejected, not generated: {set(found) - expected}"
    for bad in bads:
        if bad.ignored:
            assert (room.root / bad.rel).read_bytes() == bad.content, f"a dotfile was touched: {bad.rel}"
            continue
        [(entry, reason)] = found[bad.rel]
        assert isinstance(reason, str) and reason.strip(), f"{bad.rel}: empty reason"
        mode = os.lstat(entry).st_mode
        if bad.target is not None:
            assert stat.S_ISLNK(mode) and os.readlink(entry) == bad.target, f"{bad.rel}: not moved as a link"
        elif bad.content is not None:
            assert stat.S_ISREG(mode) and entry.read_bytes() == bad.content, f"{bad.rel}: changed"
        elif bad.kind == "fifo":
            assert stat.S_ISFIFO(mode)
        else:
            assert stat.S_ISDIR(mode)

    # Valid mail only was ever tapped; nothing outside the mailroom was read into it.
    valid_ids = {v.msg.id for v in valids}
    every_tapped = set().union(*tapped(room).values())
    assert every_tapped == valid_ids, f"tapped, not valid: {every_tapped - valid_ids}"
    result = audit(room, [Sent.of(v.msg) for v in valids])
    blobs = git_bytes(room, "cat-file", "--batch-all-objects", "--batch")
    assert world.secret_text.encode() not in blobs, "a symlink's target (a secret) was committed"
    passwd = Path("/etc/passwd").read_bytes().splitlines()[:1]
    assert not passwd or passwd[0] not in blobs, "/etc/passwd was committed"
    for top, _, files in os.walk(room.root):
        for name in files:
            path = Path(top) / name
            if path.is_file() and not path.is_symlink() and ".git" not in path.parts:
                assert world.secret_text.encode() not in path.read_bytes(), f"the secret was copied to {path}"
    kinds: dict[str, int] = {}
    for b in bads:
        kinds[b.kind] = kinds.get(b.kind, 0) + 1
    figures(
        runs=n,
        messages=result.messages,
        faults=len(expected),
        lost=result.lost,
        quarantined=len(expected),
        dotfiles_ignored=sum(b.ignored for b in bads),
        fifos_not_committable=len(result.special),
        taps=result.taps,
        details={"kinds": dict(sorted(kinds.items()))},
    )


# --- kinds that broke the product (found by this suite); regression tests --------------------


@pytest.fixture
def bob_tapped(room: Mailroom) -> Mailroom:
    add_agent(room, Agent(name="bob", program="claude", host="testhost", pane="%1", socket="/nonexistent"))
    return room


def plant(room: Mailroom, name: str | bytes, data: bytes) -> None:
    """A file in bob's new/ with an old mtime (bytes names may be any bytes, not only UTF-8)."""
    path = os.path.join(bytes(room.inbox("bob") / "new"), os.fsencode(name))
    with open(path, "wb") as fh:
        fh.write(data)
    os.utime(path, (OLD, OLD))


def submitted_ids(room: Mailroom) -> list[list[str]]:
    return [r["ids"] for r in ledger.read_log(room) if r["result"] == "submitted"]


def test_a_duplicate_of_an_unseen_message_is_quarantined(bob_tapped: Mailroom) -> None:
    """A second file with an id already in new/ was listed and tapped as another message."""
    room = bob_tapped
    msg = compose(sender="alice", to=["bob"], subject="original", body="x")
    store.deliver(room, msg)
    plant(room, "copy-of-original.md", msg.raw)
    Engine(room, Recorder(), Policy()).run()
    assert submitted_ids(room) == [[msg.id]]
    copies = [s for s in store.scan_inbox(room, "bob", seen=None) if isinstance(s, store.Stored)]
    assert len(copies) == 1, f"{len(copies)} copies of {msg.id} in bob's inbox"
    assert "inbox/bob/new/copy-of-original.md" in reasons(room)


@pytest.mark.parametrize("name", ["same", "other"])
def test_a_duplicate_of_a_seen_message_is_quarantined(bob_tapped: Mailroom, name: str, request) -> None:
    """A copy of a message already read (in cur/) dropped into new/ must not tap or list it again."""
    room = bob_tapped
    msg = compose(sender="alice", to=["bob"], subject="read already", body="x")
    store.deliver(room, msg)
    store.inbox(room, "bob")  # read: the original is in cur/
    copy = f"{msg.id}.md" if name == "same" else "copy-of-a-read-message.md"
    plant(room, copy, msg.raw)
    Engine(room, Recorder(), Policy()).run()
    assert submitted_ids(room) == [], f"a seen message was tapped again: {submitted_ids(room)}"
    assert f"inbox/bob/new/{copy}" in reasons(room)


@pytest.mark.parametrize("field", [b"due: 2026-02-30", b"x: " + b"9" * 5000], ids=["feb-30", "5000-digits"])
def test_a_value_yaml_cannot_construct_is_quarantined(bob_tapped: Mailroom, field: bytes) -> None:
    """PyYAML raised ValueError (not a YAMLError) for these: the inbox stopped tapping, inbox crashed."""
    room = bob_tapped
    good = compose(sender="alice", to=["bob"], subject="good", body="x")
    store.deliver(room, good)
    plant(room, "bad-value.md", valid_raw("bob").replace(b"\n---\n", b"\n" + field + b"\n---\n", 1))
    rec = Recorder()
    Engine(room, rec, Policy()).run()
    assert rec.count == 1, "the good mail beside the bad file was not tapped"
    assert "inbox/bob/new/bad-value.md" in reasons(room)


@pytest.mark.parametrize(
    "nesting",
    [b"x: " + b"[" * 25_000 + b"]" * 25_000, b"x:\n" + b"- " * 25_000 + b"1"],
    ids=["flow", "block"],
)
def test_deeply_nested_front_matter_does_not_crash(bob_tapped: Mailroom, nesting: bytes) -> None:
    """25,000 levels (a 50 KB file) overflowed libyaml's stack: SIGSEGV in watch, inbox and fsck."""
    room = bob_tapped
    plant(room, "nested.md", valid_raw("bob").replace(b"\n---\n", b"\n" + nesting + b"\n---\n", 1))
    env = {**os.environ, "MAILSLOT_ROOT": str(room.root), "MAILSLOT_SYNC": "1"}
    proc = subprocess.run([MAILSLOT, "fsck", "--fix"], capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 0, f"mailslot fsck --fix exited {proc.returncode}: {proc.stderr[-500:]}"
    assert "inbox/bob/new/nested.md" in reasons(room)


def test_a_file_name_that_is_not_utf8_does_not_stop_commits(bob_tapped: Mailroom) -> None:
    """Its journal entry once made every later commit fail (UnicodeEncodeError), so every send failed."""
    room = bob_tapped
    plant(room, b"\xff\xfe-latin1.md", valid_raw("bob"))
    Engine(room, Recorder(), Policy()).run()
    assert not [p for p in os.listdir(bytes(room.inbox("bob") / "new")) if p.startswith(b"\xff")]
    later = compose(sender="alice", to=["bob"], subject="after the odd name", body="x")
    store.deliver(room, later)
    assert git(room, "status", "--porcelain").stdout == ""
    audit(room, [Sent.of(later)])
