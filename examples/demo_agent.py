#!/usr/bin/env python3
"""A scripted stand-in for an agent TUI, for ``make demo`` (pure standard library).

    python3 examples/demo_agent.py NAME [--role TEXT] [--log FILE] [--think SECONDS]

It owns its terminal like a real agent: a header, a transcript, a status line and, on the bottom
row, the input box ``> ``. The ``generic`` profile in ``mailslot/profiles.yaml`` reads that screen
(idle: a line starting with ``> ``; busy: ``[busy]`` visible). When a submitted line contains
``[mailslot]`` it shows ``[busy]``, runs ``mailslot inbox -a NAME --json`` and ``mailslot read``,
and answers each message by the tiny script in ``SCRIPT``:

- a first message (no ``in-reply-to``) to an agent with a scripted reply: ``mailslot reply --all``;
- a reply to a thread this agent started: once every recipient of the first message has
  replied, ``mailslot close`` with the agent's closing note.

Each action is one transcript line (and one ``TIME<TAB>NAME<TAB>line`` line in ``--log``, for the driver).
The mailroom comes from ``$MAILSLOT_ROOT``; the agent identifies itself with ``--from``/``-a``.
"""

from __future__ import annotations

import argparse
import codecs
import json
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import termios
import textwrap
import time
import tty
from typing import Any

SCRIPT: dict[str, dict[str, str]] = {
    "lead": {"close": "Shipped: login works end to end"},
    "backend": {"reply": "POST /login returns a session token"},
    "frontend": {"reply": "Login form wired to POST /login"},
}
ESCAPE = re.compile(r"\x1b(\[[0-?]*[ -/]*[@-~]|O.|.)?")


def wrap(entry: str, width: int) -> list[str]:
    """``entry`` cut into screen rows; continuation rows are indented (never start with ``>``)."""
    return textwrap.wrap(entry, width, subsequent_indent="    ", break_on_hyphens=False) or [""]


class DemoAgent:
    def __init__(self, name: str, role: str, log: str | None, think: float) -> None:
        self.name = name
        self.role = role
        self.log_path = log
        self.think = think
        self.script = SCRIPT.get(name, {})
        self.transcript: list[str] = []
        self.box = ""
        self.busy = ""
        self.resized = False
        self.mailslot = shutil.which("mailslot") or "mailslot"
        os.environ["MAILSLOT_AGENT"] = name

    # --- screen -----------------------------------------------------------------------------

    def draw(self) -> None:
        cols, rows = shutil.get_terminal_size((80, 24))
        width = max(cols - 1, 10)
        head = [f"demo agent {self.name} ({self.role})"[:width], "=" * min(width, 60)]
        status = f"[busy] {self.busy}" if self.busy else "idle: waiting for mail (mailslot taps this pane)"
        room = max(rows - len(head) - 3, 0)
        rows_ = [row for entry in self.transcript[-room:] for row in wrap(entry, width)]
        body = rows_[-room:] if room else []
        lines = head + body + [""] * (room - len(body)) + ["", status[:width]]
        box = self.box if len(self.box) <= width - 2 else "…" + self.box[-(width - 3) :]
        out = "\x1b[H\x1b[2J" + "\r\n".join(lines) + "\r\n> " + box
        sys.stdout.write(out)
        sys.stdout.flush()

    def say(self, text: str) -> None:
        """One transcript line (never starting with ``>``: only the input box does)."""
        for line in text.splitlines() or [""]:
            self.transcript.append("  " + line)
        self.transcript = self.transcript[-500:]
        if self.log_path:
            with open(self.log_path, "a", encoding="utf-8") as fh:
                fh.write(f"{time.time():.3f}\t{self.name}\t{text.splitlines()[0] if text else ''}\n")
        self.draw()

    # --- mailslot ---------------------------------------------------------------------------

    def mailslot_cmd(self, *args: str) -> str | None:
        proc = subprocess.run([self.mailslot, *args], capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            why = (proc.stderr or proc.stdout).strip().splitlines()
            self.say(f"error: mailslot {args[0]} exit {proc.returncode}: {why[-1] if why else ''}")
            return None
        return proc.stdout

    def json_lines(self, *args: str) -> list[dict[str, Any]]:
        out = self.mailslot_cmd(*args, "--json")
        return [json.loads(line) for line in (out or "").splitlines() if line.strip()]

    def handle_tap(self) -> None:
        self.busy = "reading mail"
        self.draw()
        answered: dict[str, None] = {}
        for item in self.json_lines("inbox", "-a", self.name):
            if "id" not in item:  # {"more": N}: the rest comes with the next tap
                continue
            msg = next(iter(self.json_lines("read", item["id"])), item)
            if self.handle(msg):
                answered[msg["thread"]] = None
        for thread in answered:  # after reading everything that arrived, as a person would
            self.maybe_close(thread)
        self.busy = ""

    def handle(self, msg: dict[str, Any]) -> bool:
        """Read one message and act on it; True if it is a reply this agent may close on."""
        body = next((ln.strip() for ln in str(msg.get("body", "")).splitlines() if ln.strip()), "")
        reply_to = msg.get("in-reply-to")
        text = body if reply_to and body else msg.get("subject", "")
        self.say(f"read {msg['id']} from {msg['from']}: {text}")
        self.work()
        answer = self.script.get("reply")
        if answer and not reply_to and self.reply_all(msg["id"], answer):
            self.say("replied")
        return bool(reply_to) and "close" in self.script

    def reply_all(self, message_id: str, text: str) -> bool:
        return self.mailslot_cmd("reply", message_id, "--all", "-m", text, "--from", self.name) is not None

    def maybe_close(self, thread: str) -> None:
        """Close ``thread`` once every recipient of its first message has answered."""
        view = next(iter(self.json_lines("thread", thread)), None)
        if not view or view.get("closed") or not view.get("messages"):
            return
        first = view["messages"][0]
        if first.get("from") != self.name:
            return
        waiting = set(first.get("to", [])) | set(first.get("cc") or [])
        waiting -= {m.get("from") for m in view["messages"][1:]}
        if waiting:
            self.say(f"waiting for {', '.join(sorted(waiting))}")
            return
        if self.mailslot_cmd("close", thread, "-m", self.script["close"], "--from", self.name) is not None:
            self.say(f"closed {thread}: {self.script['close']}")

    def work(self) -> None:
        """Pretend to think, so that a human watching sees ``[busy]``."""
        end = time.monotonic() + self.think
        while time.monotonic() < end:
            time.sleep(0.05)
            if self.resized:
                self.resized = False
                self.draw()

    # --- input ------------------------------------------------------------------------------

    def submit(self, line: str) -> None:
        line = line.strip()
        if not line:
            self.draw()
            return
        self.transcript.append("  you: " + line)
        if "[mailslot]" in line:
            try:
                self.handle_tap()
            except Exception as e:  # a demo agent reports its trouble and stays up
                self.say(f"error: {type(e).__name__}: {e}")
            self.busy = ""
        else:
            self.say("(this demo agent only answers [mailslot] taps)")
        self.draw()

    def keys(self, text: str) -> None:
        for ch in ESCAPE.sub("", text):
            if ch in "\r\n":
                line, self.box = self.box, ""
                self.submit(line)
            elif ch in "\x7f\x08":
                self.box = self.box[:-1]
            elif ch == "\x15":
                self.box = ""
            elif ch.isprintable():
                self.box += ch
        self.draw()

    def run(self) -> None:
        fd = sys.stdin.fileno()
        saved = termios.tcgetattr(fd)
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        signal.signal(signal.SIGWINCH, lambda *_: setattr(self, "resized", True))
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        try:
            tty.setcbreak(fd)  # keys one by one, no echo; Ctrl-C still interrupts
            self.draw()
            while True:
                try:
                    ready, _, _ = select.select([fd], [], [], 0.5)
                except InterruptedError:
                    ready = []
                if self.resized:
                    self.resized = False
                    self.draw()
                if ready:
                    data = os.read(fd, 4096)
                    if not data:
                        return
                    self.keys(decoder.decode(data))
        except KeyboardInterrupt:
            pass
        finally:
            termios.tcsetattr(fd, termios.TCSADRAIN, saved)
            sys.stdout.write("\r\n")
            sys.stdout.flush()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("name", help="the agent's mailslot name")
    p.add_argument("--role", default="demo agent")
    p.add_argument("--log", help="append one TIME<TAB>NAME<TAB>action line per action here")
    p.add_argument("--think", type=float, default=0.4, help="seconds of pretend work per message")
    args = p.parse_args(argv)
    if not sys.stdin.isatty():
        p.error("run me in a terminal (a tmux pane)")
    DemoAgent(args.name, args.role, args.log, args.think).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
