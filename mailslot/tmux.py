"""The tmux adapter: the only module that imports libtmux.

Every target is a pane id (``%N``) on an explicit server socket: names prefix-match in tmux
(``-t agent-1`` finds ``agent-10``) and the default server may not be the agent's.
"""

from __future__ import annotations

import contextlib
import os
import select
import shutil
import subprocess
import threading
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


REPLY_SECONDS = 5.0


class Control:
    """A persistent control-mode client (``tmux -C``) on one server: ~0.1 ms a command instead of
    a new tmux process (~2 ms) each. It attaches with ``ignore-size`` (panes keep their size) and
    ``no-output`` (no pane output is streamed to it). Commands are serialized by a lock."""

    def __init__(self, sock: str) -> None:
        env = {k: v for k, v in os.environ.items() if k not in ("TMUX", "TMUX_PANE")}
        self.proc = subprocess.Popen(
            ["tmux", "-S", sock, "-C", "attach-session", "-f", "ignore-size,no-output"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=env,
            bufsize=0,
        )
        self.lock = threading.Lock()
        self._reply()  # the attach command's own (empty) reply
        found = self.command(["display-message", "-p", "#{session_id}"])
        if found is None or found.returncode != 0:
            self.close()
            raise TmuxError("control client could not attach", socket=sock)
        self.session = found.stdout[0] if found.stdout else ""

    def _reply(self) -> Result | None:
        assert self.proc.stdout is not None
        lines: list[str] = []
        inside = False
        while True:
            ready, _, _ = select.select([self.proc.stdout], [], [], REPLY_SECONDS)
            raw = self.proc.stdout.readline() if ready else b""
            if not raw:
                if not ready:  # a server that does not answer must not hang the daemon
                    self.proc.kill()
                return None  # the server or the client went away
            line = raw.decode("utf-8", "replace").rstrip("\n")
            if line.startswith("%begin"):
                inside, lines = True, []
            elif inside and (line.startswith("%end") or line.startswith("%error")):
                return Result(
                    0 if line.startswith("%end") else 1,
                    [] if line.startswith("%error") else lines,
                    lines if line.startswith("%error") else [],
                )
            elif inside:
                lines.append(line)  # (notifications come between blocks and are skipped)

    def command(self, args: list[str]) -> Result | None:
        """One command; None if the client is gone (the caller falls back to a process)."""
        if any("'" in a or "\n" in a for a in args):
            return None
        line = " ".join("'" + a + "'" for a in args) + "\n"
        assert self.proc.stdin is not None
        with self.lock:
            try:
                self.proc.stdin.write(line.encode())
            except OSError:
                return None
            return self._reply()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            if self.proc.stdin is not None:
                self.proc.stdin.close()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=2)
        if self.proc.poll() is None:
            self.proc.kill()


_controls: dict[str, Control] = {}
_controls_lock = threading.Lock()
_use_control = False


def use_control(on: bool = True) -> None:
    """Route commands through persistent control clients (long-lived processes: the daemon)."""
    global _use_control
    _use_control = on
    if not on:
        with _controls_lock:
            for client in _controls.values():
                client.close()
            _controls.clear()


def _control(sock: str) -> Control | None:
    with _controls_lock:
        client = _controls.get(sock)
        if client is None or client.proc.poll() is not None:
            try:
                client = _controls[sock] = Control(sock)
            except (TmuxError, OSError):
                _controls.pop(sock, None)
                return None
        return client


def _via_control(sock: str, args: tuple[str, ...]) -> Result | None:
    client = _control(sock)
    if client is None:
        return None
    commands: list[list[str]] = [[]]
    for arg in args:  # "a ; b" is two commands, two replies
        if arg == ";":
            commands.append([])
        else:
            commands[-1].append(arg)
    out: list[str] = []
    for command in commands:
        res = client.command(command)
        if res is None:
            with _controls_lock:
                _controls.pop(sock, None)
            client.close()
            return None
        if res.returncode != 0:
            return Result(res.returncode, out, res.stderr)
        out += res.stdout
    return Result(0, out, [])


def control_session(sock: str | None) -> str | None:
    """The session our control client on ``sock`` is attached to (it counts as an attached client)."""
    client = _controls.get(sock or "") if _use_control else None
    return client.session if client is not None else None


def run(sock: str | None, *args: str) -> Result:
    """Run one tmux command on server ``sock``; never raises for tmux's own failures."""
    if _use_control and sock:
        res = _via_control(sock, args)
        if res is not None:
            return res
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
        "session_id",
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
    return _probe(pane, sock, res.stdout[0] if res.returncode == 0 and res.stdout else "")


def probe_and_capture(pane: str, sock: str | None) -> tuple[Probe, list[str] | None]:
    """:func:`probe` and :func:`capture` in one tmux client (one process instead of two)."""
    res = run(sock, "display-message", "-p", "-t", pane, _PROBE, ";", "capture-pane", "-p", "-t", pane)
    if res.returncode != 0 or not res.stdout:
        return Probe(False), None
    found = _probe(pane, sock, res.stdout[0])
    return found, (res.stdout[1:] if found.alive else None)


def _probe(pane: str, sock: str | None, line: str) -> Probe:
    import time

    parts = line.split("\t")
    if len(parts) != 7 or parts[0] != pane or parts[1] == "1":
        return Probe(False)
    try:
        quiet = time.time() - int(parts[5])
    except ValueError:
        quiet = 0.0
    try:  # our own control client is attached too, but it is not a human
        humans = int(parts[4]) - (1 if parts[6] and parts[6] == control_session(sock) else 0)
    except ValueError:
        humans = 0
    return Probe(True, parts[2], parts[3] == "1", humans > 0, quiet)


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
