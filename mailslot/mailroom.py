"""The mailroom: its root, its layout, and agent cards (spec/protocol.md, "Layout", "Agents").

Opening a mailroom reads nothing but a marker file; nothing here imports git or tmux.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mailslot import names
from mailslot.errors import InvalidMessage, NotAMailroom, NotFound
from mailslot.fsutil import atomic_write, read_regular
from mailslot.message import PROTOCOL, dump_yaml, load_fields, now_rfc3339

MARKER = "mailslot.yaml"
PROGRAMS = ("claude", "codex", "gemini", "aider", "opencode", "generic")
GITIGNORE = "# mailslot: staging areas of atomic delivery are never committed\ninbox/*/tmp/\n"


def default_root() -> Path:
    """The per-user mailroom used when neither ``--root`` nor ``MAILSLOT_ROOT`` is given."""
    data = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data) / "mailslot" / "mailroom"


def resolve_root(explicit: str | os.PathLike[str] | None = None) -> tuple[Path, bool]:
    """``--root`` > ``MAILSLOT_ROOT`` > :func:`default_root`; the flag tells if it was the default."""
    if explicit:
        return Path(explicit).expanduser().resolve(), False
    env = os.environ.get("MAILSLOT_ROOT")
    if env:
        return Path(env).expanduser().resolve(), False
    return default_root(), True


@dataclass(frozen=True)
class Agent:
    """An agent card (``agents/<name>.md``). ``pane`` is a tmux pane id like ``%3`` or None."""

    name: str
    program: str = "generic"
    host: str = ""
    pane: str | None = None
    socket: str | None = None
    role: str | None = None
    worktree: str | None = None
    registered: str = ""
    notes: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Mailroom:
    """Paths of one mailroom. Cheap to build; see :func:`open_mailroom`."""

    root: Path

    @property
    def git_dir(self) -> Path:
        dotgit = self.root / ".git"
        if dotgit.is_file():  # a worktree or submodule: "gitdir: <path>"
            target = dotgit.read_text().split(":", 1)[1].strip()
            return (self.root / target).resolve()
        return dotgit

    @property
    def state_dir(self) -> Path:
        """Local, never-committed state (journal, ledger, locks) under ``.git/mailslot``."""
        return self.git_dir / "mailslot"

    def inbox(self, agent: str) -> Path:
        return self.root / "inbox" / names.check_agent(agent)

    def card_path(self, agent: str) -> Path:
        return self.root / "agents" / f"{names.check_agent(agent)}.md"

    def archive_dir(self, thread: str) -> Path:
        return self.root / "archive" / names.archive_shard(thread) / names.check_thread(thread)

    @property
    def rejected_dir(self) -> Path:
        return self.root / "rejected"

    def rel(self, path: Path) -> str:
        """``path`` relative to the root, with forward slashes (as git names it)."""
        return path.relative_to(self.root).as_posix()

    def is_closed(self, thread: str) -> bool:
        return self.archive_dir(thread).is_dir()


def open_mailroom(root: Path) -> Mailroom:
    """Open an existing mailroom; raise :class:`NotAMailroom` if ``root`` has no marker."""
    if not (root / MARKER).is_file():
        raise NotAMailroom(f"{root} is not a mailroom; create it with: mailslot init {root}")
    return Mailroom(root)


def write_layout(root: Path) -> Mailroom:
    """Create the marker, ``.gitignore`` and top directories (idempotent; no git involved)."""
    root.mkdir(parents=True, exist_ok=True)
    for sub in ("agents", "inbox", "archive", "rejected"):
        (root / sub).mkdir(exist_ok=True)
    if not (root / MARKER).exists():
        atomic_write(root / MARKER, dump_yaml({"mailslot": PROTOCOL}).encode())
    if not (root / ".gitignore").exists():
        atomic_write(root / ".gitignore", GITIGNORE.encode())
    return Mailroom(root)


def ensure_inbox(room: Mailroom, agent: str) -> Path:
    """Create ``inbox/<agent>/{tmp,new,cur}`` if missing and return the inbox path."""
    box = room.inbox(agent)
    for sub in ("tmp", "new", "cur"):
        (box / sub).mkdir(parents=True, exist_ok=True)
    return box


def _card_bytes(agent: Agent) -> bytes:
    fields: dict[str, Any] = {"mailslot": PROTOCOL, "name": agent.name, "program": agent.program}
    for key in ("host", "pane", "socket", "role", "worktree"):
        value = getattr(agent, key)
        if value:
            fields[key] = value
    fields["registered"] = agent.registered or now_rfc3339()
    fields.update(agent.extra)
    notes = agent.notes if agent.notes.endswith("\n") or not agent.notes else agent.notes + "\n"
    return ("---\n" + dump_yaml(fields) + "---\n" + notes).encode()


def save_agent(room: Mailroom, agent: Agent) -> Path:
    """Write (or replace) an agent card atomically and create its inbox; does not commit."""
    if agent.program not in PROGRAMS:
        raise InvalidMessage(f"unknown program {agent.program!r}; use one of {', '.join(PROGRAMS)}")
    path = room.card_path(agent.name)
    path.parent.mkdir(exist_ok=True)
    atomic_write(path, _card_bytes(agent))
    ensure_inbox(room, agent.name)
    return path


def _agent_from(path: Path) -> Agent:
    raw = read_regular(path)
    meta = load_fields(raw)
    name = meta.get("name")
    if name != path.stem:
        raise InvalidMessage(f"agent card {path.name}: 'name' must be {path.stem!r}")
    known = {
        "mailslot",
        "name",
        "program",
        "host",
        "pane",
        "socket",
        "role",
        "worktree",
        "registered",
    }
    text = raw.decode("utf-8", "replace")
    notes = text.split("\n---\n", 1)[1] if "\n---\n" in text else ""
    return Agent(
        name=names.check_agent(name),
        program=str(meta.get("program") or "generic"),
        host=str(meta.get("host") or ""),
        pane=str(meta["pane"]) if meta.get("pane") else None,
        socket=str(meta["socket"]) if meta.get("socket") else None,
        role=str(meta["role"]) if meta.get("role") else None,
        worktree=str(meta["worktree"]) if meta.get("worktree") else None,
        registered=str(meta.get("registered") or ""),
        notes=notes,
        extra={k: v for k, v in meta.items() if k not in known},
    )


def load_agent(room: Mailroom, name: str) -> Agent:
    """Read one agent card; raise :class:`NotFound` naming the registered agents."""
    path = room.card_path(name)
    if not path.is_file():
        known = ", ".join(a.name for a in iter_agents(room)) or "none yet"
        raise NotFound(f"unknown agent {name!r} (registered: {known}); add it with: mailslot register {name}")
    return _agent_from(path)


def iter_agents(room: Mailroom) -> Iterator[Agent]:
    """Every valid agent card, by name; invalid cards are skipped (``fsck`` reports them)."""
    folder = room.root / "agents"
    if not folder.is_dir():
        return
    for path in sorted(folder.glob("*.md")):
        try:
            yield _agent_from(path)
        except (InvalidMessage, OSError, ValueError):
            continue


def this_host() -> str:
    return os.environ.get("MAILSLOT_HOST") or os.uname().nodename


def tmux_env() -> tuple[str, str] | None:
    """The caller's own pane and server, from ``$TMUX_PANE`` and ``$TMUX`` (never the active pane)."""
    pane, server = os.environ.get("TMUX_PANE"), os.environ.get("TMUX")
    if not pane or not server:
        return None
    return pane, server.split(",", 1)[0]


def agent_for_pane(room: Mailroom, pane: str, sock: str, host: str) -> Agent | None:
    """The agent registered for pane ``pane`` on server ``sock`` of ``host``, if any."""
    for agent in iter_agents(room):
        if agent.pane == pane and agent.socket == sock and agent.host == host:
            return agent
    return None


def whoami(room: Mailroom, explicit: str | None = None) -> tuple[str, str]:
    """The calling agent and how it was found: ``--from`` > ``MAILSLOT_AGENT`` > the calling pane."""
    if explicit:
        return names.check_agent(explicit), "--from"
    env = os.environ.get("MAILSLOT_AGENT")
    if env:
        return names.check_agent(env), "MAILSLOT_AGENT"
    found = tmux_env()
    if found:
        agent = agent_for_pane(room, found[0], found[1], this_host())
        if agent:
            return agent.name, f"pane {found[0]}"
    raise NotFound(
        "who are you? pass --from NAME, set MAILSLOT_AGENT, or run `mailslot register NAME` in your pane"
    )
