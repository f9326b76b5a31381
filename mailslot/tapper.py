"""Typing a tap into a tmux pane, safely: gate, type, settle, Enter, verify.

The gate reads the pane in one ``display-message``: alive, the agent's own process in front (a
shell means never type), not in copy mode. The screen must then read idle with an empty input box,
twice unless the pane has been quiet for 2 seconds. The line is typed with ``send-keys -l``; after
the profile's settle delay Enter is sent as its own command. The tap's nonce must then leave the
input box; if it is still there, a lone Enter is retried (at most 3 times). The text is never
re-typed, and nothing but a checked :mod:`mailslot.tapline` line is ever typed.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Protocol

from mailslot import tapline, tmux
from mailslot.profiles import Profile, Screen, is_shell, read_screen

CONFIRM_SECONDS = 0.3
VERIFY_SECONDS = 1.5
MAX_ENTER_RETRIES = 3


@dataclass(frozen=True)
class Outcome:
    """What a tap attempt did. ``typed`` is True once any key reached the pane."""

    # submitted | unverified | aborted | gone | shell | foreign | copy-mode | dialog | busy | draft | unknown
    result: str
    typed: bool
    detail: str = ""
    enters: int = 0

    @property
    def delivered(self) -> bool:
        return self.result == "submitted"


class Notifier(Protocol):
    """Anything that can tap an agent; the daemon takes one as a parameter."""

    def tap(self, pane: str, sock: str | None, prof: Profile, line: str, *, urgent: bool) -> Outcome: ...

    def state(self, pane: str, sock: str | None, prof: Profile) -> str: ...


def _screen(pane: str, sock: str | None, prof: Profile) -> Screen | None:
    lines = tmux.capture(pane, sock)
    return None if lines is None else read_screen(prof, lines)


def _nonce_in_box(screen: Screen | None, nonce: str) -> bool:
    """Is the tap still waiting in the input box? (Also when the box wrapped it onto more lines.)"""
    return screen is not None and screen.box is not None and nonce in screen.below


class TmuxNotifier:
    """Taps real panes through :mod:`mailslot.tmux`. Timings are in seconds."""

    def __init__(self, confirm: float = CONFIRM_SECONDS, verify: float = VERIFY_SECONDS) -> None:
        self.confirm = confirm
        self.verify = verify

    def _gate(self, pane: str, sock: str | None, prof: Profile, urgent: bool) -> Outcome | None:
        probe, lines = tmux.probe_and_capture(pane, sock)
        if not probe.alive:
            return Outcome("gone", False, "pane or server not found")
        if not prof.is_agent_process(probe.command):
            kind = "shell" if is_shell(probe.command) else "foreign"
            return Outcome(kind, False, f"foreground is {probe.command!r}")
        if probe.in_mode:
            if probe.attached:
                return Outcome("copy-mode", False, "a human is in copy mode")
            tmux.leave_copy_mode(pane, sock)
            probe, lines = tmux.probe_and_capture(pane, sock)
            if probe.in_mode:
                return Outcome("copy-mode", False, "could not leave copy mode")
        for attempt in range(2):
            screen = read_screen(prof, lines) if lines is not None else None
            lines = None
            if screen is None:
                return Outcome("gone", False, "capture failed")
            if screen.state == "dialog":
                return Outcome("dialog", False)
            if screen.state == "busy" and not (urgent and prof.queues_input):
                return Outcome("busy", False)
            if screen.state == "unknown":
                return Outcome("unknown", False, "screen matches no idle pattern")
            if not screen.box_empty:
                return Outcome("draft", False, "the input box is not empty")
            if attempt == 0 and probe.quiet_seconds < 2 and screen.state == "idle":
                time.sleep(self.confirm)  # idle must hold on a second read unless the pane is quiet
                probe, lines = tmux.probe_and_capture(pane, sock)
                if not prof.is_agent_process(probe.command):
                    return Outcome("shell" if is_shell(probe.command) else "gone", False, "agent left")
                if probe.in_mode:  # a human entered copy mode meanwhile: it would swallow the text
                    return Outcome("copy-mode", False, "copy mode began while confirming idle")
                continue
            break
        return None

    def tap(self, pane: str, sock: str | None, prof: Profile, line: str, *, urgent: bool) -> Outcome:
        """Gate, type ``line``, settle, Enter, verify. Never types into a shell, dialog or draft."""
        tapline.check(line)
        nonce = line.rsplit("#", 1)[1]
        blocked = self._gate(pane, sock, prof, urgent)
        if blocked is not None:
            return blocked
        if not tmux.send_text(pane, sock, line):
            return Outcome("gone", False, "send-keys failed")
        time.sleep(prof.settle_ms / 1000)
        probe = tmux.probe(pane, sock)
        if not probe.alive:
            return Outcome("gone", True, "pane vanished after typing")
        if not prof.is_agent_process(probe.command):
            return Outcome("aborted", True, f"{probe.command!r} took the foreground; Enter not sent")
        enters = 1
        tmux.send_enter(pane, sock)
        deadline = time.monotonic() + self.verify
        retry_at = time.monotonic() + 0.5
        while True:
            screen = _screen(pane, sock, prof)
            if screen is None:
                return Outcome("gone", True, "pane vanished after Enter", enters)
            if not _nonce_in_box(screen, nonce):
                return Outcome("submitted", True, "", enters)
            now = time.monotonic()
            if now >= retry_at and enters <= MAX_ENTER_RETRIES:
                if not prof.is_agent_process(tmux.probe(pane, sock).command):
                    return Outcome("aborted", True, "agent left the foreground", enters)
                tmux.send_enter(pane, sock)  # a swallowed Enter: retry the Enter alone, never the text
                enters += 1
                retry_at = now + 0.5
                deadline = max(deadline, retry_at + 0.2)
            elif now >= deadline:
                return Outcome("unverified", True, "the tap is still in the input box", enters)
            time.sleep(0.03)

    def state(self, pane: str, sock: str | None, prof: Profile) -> str:
        """One reading for ``status``: idle, busy, dialog, draft, shell, foreign, copy-mode, gone."""
        probe = tmux.probe(pane, sock)
        if not probe.alive:
            return "gone"
        if not prof.is_agent_process(probe.command):
            return "shell" if is_shell(probe.command) else "foreign"
        if probe.in_mode:
            return "copy-mode"
        screen = _screen(pane, sock, prof)
        if screen is None:
            return "gone"
        if screen.state == "idle" and not screen.box_empty:
            return "draft"
        return screen.state
