"""The tmux adapter: the only module that imports libtmux.

Every target is a pane id (``%N``) on an explicit server socket: names prefix-match in tmux
(``-t agent-1`` finds ``agent-10``) and the default server may not be the agent's.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass

import libtmux

from mailslot.errors import TmuxError


@dataclass(frozen=True)
class Result:
    returncode: int
    stdout: list[str]
    stderr: list[str]


def server(sock: str | None) -> libtmux.Server:
    """A libtmux Server on socket path ``sock`` (None: tmux's default socket)."""
    if shutil.which("tmux") is None:
        raise TmuxError("tmux is not installed or not on PATH")
    return libtmux.Server(socket_path=sock) if sock else libtmux.Server()


def run(sock: str | None, *args: str) -> Result:
    """Run one tmux command on server ``sock``; never raises for tmux's own failures."""
    env_tmux = os.environ.pop("TMUX", None)  # a nested client must not inherit the caller's server
    try:
        out = server(sock).cmd(*args)
    finally:
        if env_tmux is not None:
            os.environ["TMUX"] = env_tmux
    rc = out.returncode if isinstance(out.returncode, int) else 1
    return Result(rc, list(out.stdout), list(out.stderr))


def resolve_pane(target: str, sock: str | None) -> tuple[str, str, str]:
    """Resolve ``target`` to ``(pane id, socket path, current command)`` on server ``sock``.

    Raises :class:`TmuxError` if the server or pane does not exist (tmux answers rc 0 with no
    output for some missing targets, so the answer itself is checked).
    """
    res = run(
        sock, "display-message", "-p", "-t", target, "#{pane_id}\t#{socket_path}\t#{pane_current_command}"
    )
    line = res.stdout[0] if res.stdout else ""
    parts = line.split("\t")
    if res.returncode != 0 or len(parts) != 3 or not parts[0].startswith("%"):
        why = res.stderr[0] if res.stderr else "no such pane"
        raise TmuxError(f"cannot resolve tmux target {target!r}: {why}", socket=sock or "default")
    return parts[0], parts[1], parts[2]


def pane_command(pane: str, sock: str | None) -> str | None:
    """The pane's foreground command name, or None if it cannot be read."""
    try:
        return resolve_pane(pane, sock)[2]
    except TmuxError:
        return None


_PROBE = "\t".join(
    "#{" + f + "}"
    for f in (
        "pane_id",
        "pane_dead",
        "pane_current_command",
        "pane_in_mode",
        "session_attached",
        "window_activity",
    )
)


@dataclass(frozen=True)
class Probe:
    """One ``display-message`` reading of a pane: is it there, who is in front, is it in a mode."""

    alive: bool
    command: str = ""
    in_mode: bool = False
    attached: bool = False
    quiet_seconds: float = 0.0


def probe(pane: str, sock: str | None) -> Probe:
    """Read the gate facts of ``pane`` in one tmux command; a missing pane or server is not alive."""
    res = run(sock, "display-message", "-p", "-t", pane, _PROBE)
    return _probe(pane, res.stdout[0] if res.returncode == 0 and res.stdout else "")


def probe_and_capture(pane: str, sock: str | None) -> tuple[Probe, list[str] | None]:
    """:func:`probe` and :func:`capture` in one tmux client (one process instead of two)."""
    res = run(sock, "display-message", "-p", "-t", pane, _PROBE, ";", "capture-pane", "-p", "-t", pane)
    if res.returncode != 0 or not res.stdout:
        return Probe(False), None
    found = _probe(pane, res.stdout[0])
    return found, (res.stdout[1:] if found.alive else None)


def _probe(pane: str, line: str) -> Probe:
    import time

    parts = line.split("\t")
    if len(parts) != 6 or parts[0] != pane or parts[1] == "1":
        return Probe(False)
    try:
        quiet = time.time() - int(parts[5])
    except ValueError:
        quiet = 0.0
    return Probe(True, parts[2], parts[3] == "1", parts[4] not in ("", "0"), quiet)


def capture(pane: str, sock: str | None) -> list[str] | None:
    """The pane's visible lines, or None if it is gone."""
    res = run(sock, "capture-pane", "-p", "-t", pane)
    return res.stdout if res.returncode == 0 else None


def send_text(pane: str, sock: str | None, text: str) -> bool:
    """Type ``text`` literally (``send-keys -l``); the caller guarantees it is a checked tap line."""
    return run(sock, "send-keys", "-t", pane, "-l", "--", text).returncode == 0


def send_enter(pane: str, sock: str | None) -> bool:
    return run(sock, "send-keys", "-t", pane, "Enter").returncode == 0


def leave_copy_mode(pane: str, sock: str | None) -> bool:
    return run(sock, "copy-mode", "-q", "-t", pane).returncode == 0
