#!/usr/bin/env python3
"""A fake AI coding agent TUI for tap tests: run it in a real tmux pane.

    python3 tests/fakeagent.py --mode claude|codex|gemini|generic|aider
        [--log PATH] [--control PATH] [--busy-ms N] [--queues|--no-queues]
        [--paste-window-ms N] [--guard-ms N] [--swallow-enters N] [--exit-clear]

It puts the tty in raw mode, reads keystrokes, and redraws its whole screen after every change:
a header, a transcript of submitted lines (``  • text``), a status line, then the input box in the
style of the real agent, so that the patterns in ``mailslot/profiles.yaml`` classify it.

States: idle, busy, dialog. Enter in idle submits the input (transcript + log), then the agent is
busy for ``--busy-ms`` (0: stays idle). While busy, with ``--queues`` (default for claude, codex,
gemini) the box stays open and Enter queues the text, submitted when busy ends; without it the box
is hidden and keys are ``rejected``. ESC while busy interrupts: queued text goes back to the box.
In a dialog (which replaces the status line and box) every key is a ``dialog_key``, never input.
Backspace edits, Ctrl-U clears, Ctrl-C exits (in any state). Bracketed pastes insert newlines.

Enter timing imitates the real TUIs: in codex mode an Enter within ``--paste-window-ms`` of the
last printable key is folded into the input as a newline (paste-burst detection); in gemini mode
an Enter within ``--guard-ms`` is dropped. ``--swallow-enters N`` drops the first N Enters.

``--log`` gets one JSON object per line: ``{"t", "event", "state", "text"}`` with event one of
key (every raw chunk read, with the state it arrived in), submit, queued, swallowed, folded,
rejected, dialog_key, interrupted, and the bookkeeping events start, state, control, exit.
Events are written after the screen that shows their effect.

``--control`` is a file of commands, one per line, appended by the test and polled every ~20 ms:
``busy [ms]``, ``idle``, ``dialog``, ``draft TEXT``, ``swallow N``, ``clear``, ``exit``.

Pure standard library; Python 3.11.
"""

from __future__ import annotations

import argparse
import codecs
import json
import os
import re
import select
import signal
import sys
import termios
import time
import tty
from dataclasses import dataclass
from typing import Any, TextIO

NBSP = "\u00a0"
HEAVY_ANGLE = "\u276f"  # Claude Code's prompt (heavy right angle ornament)
SINGLE_ANGLE = "\u203a"  # Codex's prompt (single right angle quotation mark)
NEWLINE_GLYPH = "⏎"
ENTER = ("\r", "\n")
BACKSPACE = ("\x7f", "\x08")
CTRL_C = "\x03"
CTRL_U = "\x15"
PASTE_START = "\x1b[200~"
PASTE_END = "\x1b[201~"
CSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]")
CSI_PREFIX = re.compile(r"\x1b\[[0-?]*[ -/]*\Z")


@dataclass(frozen=True)
class Look:
    """How one agent draws its screen."""

    busy: str
    queued_title: str  # a heading above the queued lines; "" for one ``Queued: text`` line each
    queued_prefix: str
    dialog: tuple[str, ...]
    prompt: str
    placeholder: str
    rules: bool  # a ──── rule above and below the input line


LOOKS = {
    "claude": Look(
        busy="✻ Working… (esc to interrupt)",
        queued_title="",
        queued_prefix="Queued: ",
        dialog=("Do you want to proceed?", HEAVY_ANGLE + " 1. Yes", "  2. No"),
        prompt=HEAVY_ANGLE + NBSP,
        placeholder="",
        rules=True,
    ),
    "codex": Look(
        busy="• Working (esc to interrupt)",
        queued_title="Queued follow-up inputs",
        queued_prefix="  ↳ ",
        dialog=(
            "Would you like to run the following command?",
            "  $ echo hello",
            SINGLE_ANGLE + " 1. Yes, proceed",
            "  2. No, and tell Codex what to do differently",
        ),
        prompt=SINGLE_ANGLE + " ",
        placeholder="Ask Codex to do anything",
        rules=False,
    ),
    "gemini": Look(
        busy="⠋ Thinking... (esc to cancel, 3s)",
        queued_title="Queued (press ↑ to edit)",
        queued_prefix="  ↳ ",
        dialog=("Allow execution?", "● 1. Allow once", "  2. No, suggest changes (esc)"),
        prompt=">   ",
        placeholder="Type your message or @path/to/file",
        rules=False,
    ),
    "generic": Look(
        busy="[busy]",
        queued_title="",
        queued_prefix="Queued: ",
        dialog=("Proceed? [y/n]",),
        prompt="> ",
        placeholder="",
        rules=False,
    ),
    # aider's own confirmation prompt, so that the aider profile recognises the dialog
    "aider": Look(
        busy="[busy]",
        queued_title="",
        queued_prefix="Queued: ",
        dialog=("Run shell command? (Y)es/(N)o [Yes]:",),
        prompt="> ",
        placeholder="",
        rules=False,
    ),
}
QUEUES_BY_DEFAULT = ("claude", "codex", "gemini")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="fakeagent", description=__doc__.split("\n\n")[0])
    p.add_argument("--mode", choices=sorted(LOOKS), default="generic")
    p.add_argument("--log", help="append JSON-lines events here")
    p.add_argument("--control", help="poll this file for commands")
    p.add_argument("--busy-ms", type=int, default=0, help="busy time after each submit (0: stay idle)")
    p.add_argument("--queues", action=argparse.BooleanOptionalAction, default=None)
    p.add_argument("--paste-window-ms", type=int, default=None, help="fold an Enter this soon (codex: 120)")
    p.add_argument("--guard-ms", type=int, default=None, help="drop an Enter this soon (gemini: 50)")
    p.add_argument("--swallow-enters", type=int, default=0, help="ignore the first N Enters")
    p.add_argument("--header", default=None, help="first screen line (default fake-MODE)")
    p.add_argument("--exit-clear", action="store_true", help="clear the screen on exit")
    args = p.parse_args(argv)
    if args.queues is None:
        args.queues = args.mode in QUEUES_BY_DEFAULT
    if args.paste_window_ms is None:
        args.paste_window_ms = 120 if args.mode == "codex" else 0
    if args.guard_ms is None:
        args.guard_ms = 50 if args.mode == "gemini" else 0
    if args.header is None:
        args.header = f"fake-{args.mode}"
    return args


class Agent:
    """The fake agent's state machine and screen; ``run`` owns the terminal until exit."""

    def __init__(self, args: argparse.Namespace, fd: int, out: int) -> None:
        self.args = args
        self.look = LOOKS[args.mode]
        self.fd = fd
        self.out = out
        self.state = "idle"
        self.input = ""
        self.transcript: list[str] = []
        self.queued: list[str] = []
        self.busy_until: float | None = None
        self.swallow = args.swallow_enters
        self.last_printable = float("-inf")
        self.in_paste = False
        self.pending = ""  # an escape sequence split across reads
        self.rejected = ""
        self.running = True
        self.dirty = True
        self.first_draw = True
        self.events: list[dict[str, Any]] = []
        self.log: TextIO | None = open(args.log, "a", encoding="utf-8") if args.log else None  # noqa: SIM115
        self.control_offset = 0
        self.control_rest = b""
        self.decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    # -- events ------------------------------------------------------------------------------------

    def emit(self, event: str, text: str | None = None, state: str | None = None) -> None:
        """Record an event; it reaches the log only after the next screen is drawn."""
        self.events.append({"t": time.time(), "event": event, "state": state or self.state, "text": text})

    def flush_events(self) -> None:
        if self.log is not None:
            for e in self.events:
                self.log.write(json.dumps(e, ensure_ascii=False) + "\n")
            self.log.flush()
        self.events.clear()

    def set_state(self, state: str, busy_ms: int = 0) -> None:
        self.busy_until = time.monotonic() + busy_ms / 1000 if state == "busy" and busy_ms > 0 else None
        if state != self.state:
            self.state = state
            self.emit("state")
        self.dirty = True

    # -- keys --------------------------------------------------------------------------------------

    def on_data(self, data: bytes, now: float) -> None:
        text = self.decoder.decode(data)
        if not text:
            return
        self.emit("key", text)
        if self.state == "dialog":
            self.emit("dialog_key", text)
            if CTRL_C in text:
                self.quit("ctrl-c")
            return
        self.feed(self.pending + text, now)
        if self.rejected:
            self.emit("rejected", self.rejected)
            self.rejected = ""
        self.dirty = True

    def feed(self, s: str, now: float) -> None:
        self.pending = ""
        i = 0
        while i < len(s) and self.running:
            ch = s[i]
            if ch == "\x1b":
                if s.startswith("\x1b[", i):
                    m = CSI.match(s, i)
                    if m is None:
                        if CSI_PREFIX.match(s, i):
                            self.pending = s[i:]
                            return
                        i += 2
                        continue
                    self.on_sequence(m.group(), now)
                    i = m.end()
                    continue
                if s.startswith("\x1bO", i) and i + 2 < len(s):
                    i += 3  # SS3: F1-F4 and application-mode arrows
                    continue
                self.on_escape()
                i += 1
                continue
            if self.in_paste:
                self.insert("\n" if ch in ENTER else ch, now)
            elif ch in ENTER:
                self.on_enter(now)
            elif ch in BACKSPACE:
                self.edit(self.input[:-1])
            elif ch == CTRL_U:
                self.edit("")
            elif ch == CTRL_C:
                self.quit("ctrl-c")
            elif ch.isprintable():
                self.insert(ch, now)
            i += 1

    def accepting(self) -> bool:
        return self.state == "idle" or (self.state == "busy" and self.args.queues)

    def insert(self, ch: str, now: float) -> None:
        if not self.accepting():
            self.rejected += ch
            return
        self.input += ch
        if ch != "\n":
            self.last_printable = now

    def edit(self, new: str) -> None:
        if self.accepting():
            self.input = new

    def on_sequence(self, seq: str, now: float) -> None:
        if seq == PASTE_START:
            self.in_paste = True
        elif seq == PASTE_END:
            self.in_paste = False
            self.last_printable = now  # a paste ends like a burst of typing

    def on_escape(self) -> None:
        if self.state != "busy":
            return
        self.emit("interrupted", self.input)
        # Like the real agents, an interrupt puts queued prompts back into the input box.
        self.input = "\n".join([*self.queued, *([self.input] if self.input else [])])
        self.queued.clear()
        self.set_state("idle")

    def on_enter(self, now: float) -> None:
        if not self.accepting():
            self.rejected += "\r"
            return
        since_ms = (now - self.last_printable) * 1000
        if since_ms < self.args.paste_window_ms:
            self.input += "\n"
            self.emit("folded", self.input)
            return
        if since_ms < self.args.guard_ms:
            self.emit("swallowed", self.input)
            return
        if self.swallow > 0:
            self.swallow -= 1
            self.emit("swallowed", self.input)
            return
        text, self.input = self.input, ""
        if not text.strip():
            return
        if self.state == "busy":
            self.queued.append(text)
            self.emit("queued", text)
        else:
            self.submit(text)
            if self.args.busy_ms > 0:
                self.set_state("busy", self.args.busy_ms)

    def submit(self, text: str) -> None:
        self.transcript.append(text)
        self.emit("submit", text)

    def end_busy(self) -> None:
        """Go idle; queued prompts are submitted (each one logged) as the next turn."""
        self.set_state("idle")
        if self.queued:
            for text in self.queued:
                self.submit(text)
            self.queued.clear()
            if self.args.busy_ms > 0:
                self.set_state("busy", self.args.busy_ms)

    def quit(self, why: str) -> None:
        self.emit("exit", why)
        self.running = False

    # -- control file ------------------------------------------------------------------------------

    def poll_control(self) -> None:
        if not self.args.control:
            return
        try:
            with open(self.args.control, "rb") as f:
                f.seek(self.control_offset)
                data = f.read()
        except FileNotFoundError:
            return
        if not data:
            return
        self.control_offset += len(data)
        data = self.control_rest + data
        *lines, self.control_rest = data.split(b"\n")
        for raw in lines:
            line = raw.decode("utf-8", errors="replace").rstrip("\r")
            if line.strip() and self.running:
                self.command(line)

    def command(self, line: str) -> None:
        verb, _, rest = line.partition(" ")
        self.emit("control", line)
        if verb == "busy":
            self.set_state("busy", int(rest) if rest.strip() else 0)
        elif verb == "idle":
            self.end_busy()
        elif verb == "dialog":
            self.set_state("dialog")
        elif verb == "draft":
            self.input = rest
        elif verb == "swallow":
            self.swallow = int(rest)
        elif verb == "clear":
            self.transcript.clear()
        elif verb == "exit":
            self.quit("control")
        else:
            self.emit("control_error", line)
        self.dirty = True

    # -- screen ------------------------------------------------------------------------------------

    def render(self, cols: int, rows: int) -> list[str]:
        lk = self.look
        bottom: list[str] = []
        if self.state == "dialog":
            bottom += ["", *lk.dialog]  # the dialog replaces the status line and the input box
        else:
            bottom.append(lk.busy if self.state == "busy" else "")
            if self.queued:
                if lk.queued_title:
                    bottom.append(lk.queued_title)
                bottom += [lk.queued_prefix + show(q) for q in self.queued]
            if self.accepting():
                rule = ["─" * cols] if lk.rules else []
                bottom += [*rule, *self.box_lines(cols), *rule]
        room = max(0, rows - 1 - len(bottom))
        lines = ["  • " + show(t) for t in self.transcript]
        lines = lines[len(lines) - room :] if room else []
        return [line[:cols] for line in [self.args.header, *lines, *bottom]][:rows]

    def box_lines(self, cols: int) -> list[str]:
        prompt = self.look.prompt
        text = show(self.input) or self.look.placeholder
        width = max(1, cols - len(prompt))
        chunks = [text[i : i + width] for i in range(0, len(text), width)] or [""]
        return [prompt + chunks[0], *(" " * len(prompt) + c for c in chunks[1:])]

    def draw(self) -> None:
        size = os.get_terminal_size(self.out)
        lines = self.render(size.columns, size.lines)
        out = "\x1b[2J" if self.first_draw else ""
        # Overwrite in place (home, each line, erase rest) so the screen is never blank mid-frame.
        out += "\x1b[H" + "\r\n".join(line + "\x1b[K" for line in lines) + "\x1b[J"
        write(self.out, out)
        self.first_draw = False
        self.dirty = False

    # -- main loop ---------------------------------------------------------------------------------

    def run(self) -> int:
        signal.signal(signal.SIGWINCH, lambda *_: setattr(self, "dirty", True))
        write(self.out, "\x1b[?2004h\x1b[?25l")  # bracketed paste on, cursor hidden
        self.emit("start")
        while self.running:
            timeout = 0.02
            if self.busy_until is not None:
                timeout = max(0.0, min(timeout, self.busy_until - time.monotonic()))
            ready, _, _ = select.select([self.fd], [], [], timeout)
            if ready:
                data = os.read(self.fd, 4096)
                if not data:
                    self.quit("eof")
                    break
                self.on_data(data, time.monotonic())
            self.poll_control()
            if self.busy_until is not None and time.monotonic() >= self.busy_until:
                self.end_busy()
            if self.dirty or self.events:
                if self.dirty:
                    self.draw()
                self.flush_events()
        tail = "\x1b[H\x1b[2J" if self.args.exit_clear else "\r\n"
        write(self.out, "\x1b[?2004l\x1b[?25h" + tail)
        self.flush_events()
        return 0


def show(text: str) -> str:
    return text.replace("\n", NEWLINE_GLYPH)


def write(fd: int, text: str) -> None:
    data = text.encode("utf-8")
    while data:
        data = data[os.write(fd, data) :]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    fd = sys.stdin.fileno()
    saved = termios.tcgetattr(fd)
    tty.setraw(fd)
    try:
        return Agent(args, fd, sys.stdout.fileno()).run()
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


if __name__ == "__main__":
    sys.exit(main())
