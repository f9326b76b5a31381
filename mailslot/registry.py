"""Registering agents: which pane of which tmux server belongs to whom."""

from __future__ import annotations

from pathlib import Path

from mailslot import journal, store
from mailslot.errors import MailslotError
from mailslot.mailroom import Agent, Mailroom, load_agent, save_agent, this_host, tmux_env
from mailslot.message import now_rfc3339


def register(
    room: Mailroom,
    name: str,
    *,
    program: str | None = None,
    target: str | None = None,
    sock: str | None = None,
    no_pane: bool = False,
    role: str | None = None,
    worktree: str | None = None,
) -> Agent:
    """Write the card of agent ``name`` and create its inbox; commit.

    The pane is ``target`` resolved on ``sock`` (or on the caller's server), else the caller's own
    ``$TMUX_PANE``, else none. Re-registering replaces pane and program and keeps the card's notes.
    Raises :class:`TmuxError` if ``target`` does not name a live pane.
    """
    pane, server, detected = None, None, None
    if not no_pane:
        if target:
            from mailslot import tmux

            caller = tmux_env()
            server = sock or (caller[1] if caller else None)
            pane, server, detected = tmux.resolve_pane(target, server)
        elif tmux_env():
            pane, server = tmux_env()  # type: ignore[misc]
            from mailslot import tmux

            detected = tmux.pane_command(pane, server)
    try:
        old: Agent | None = load_agent(room, name)
    except MailslotError:
        old = None
    agent = Agent(
        name=name,
        program=program or _guess(detected) or (old.program if old else "generic"),
        host=this_host(),
        pane=pane,
        socket=server,
        role=role if role is not None else (old.role if old else None),
        worktree=str(Path(worktree).resolve()) if worktree else (old.worktree if old else None),
        registered=now_rfc3339(),
        notes=old.notes if old else "",
        extra=old.extra if old else {},
    )
    path = save_agent(room, agent)
    where = f"pane {pane}" if pane else "no pane"
    journal.record(room, [room.rel(path)], f"agent: register {name} ({agent.program}, {where})", name)
    store.commit(room)
    return agent


def _guess(command: str | None) -> str | None:
    if not command:
        return None
    for program in ("claude", "codex", "gemini", "aider", "opencode"):
        if program in command:
            return program
    return None
