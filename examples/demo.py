#!/usr/bin/env python3
"""``make demo``: three scripted agents in tmux panes hold a short conversation by mailslot.

    python3 examples/demo.py [--dir DIR] [--cleanup] [--timeout SECONDS]
    python3 examples/demo.py --stop --dir DIR

It creates a fresh mailroom in DIR (default: a new temporary directory), starts a *private* tmux
server (``tmux -S DIR/tmux.sock``; your own tmux server is never touched) with the panes lead,
backend and frontend, each running ``examples/demo_agent.py``, plus a pane running
``mailslot watch``. It registers the agents, sends the first mail as lead and prints each step
until lead closes the thread, then the mailroom's git log. The tmux server is left running so
you can attach; ``--cleanup`` stops it at the end, ``--stop --dir DIR`` stops it later.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
AGENT = HERE / "demo_agent.py"
MARKER = ".mailslot-demo"
AGENTS = {
    "lead": "plans the work, closes threads",
    "backend": "API and database",
    "frontend": "web UI",
}
FIRST = {
    "to": "backend",
    "cc": "frontend",
    "subject": "Add a /login endpoint",
    "body": "Please add POST /login. frontend: wire the login form to it.",
}
POLL = 0.1


class DemoError(Exception):
    pass


def say(line: str) -> None:
    print(line, flush=True)


class Demo:
    def __init__(self, folder: Path) -> None:
        self.dir = folder
        self.room = folder / "mailroom"
        self.sock = str(folder / "tmux.sock")
        self.state_file = folder / "demo.json"
        self.agent_log = folder / "agents.log"
        self.state_dir = self.room / ".git" / "mailslot"
        self.env = child_env(self.room)
        self.panes: dict[str, str] = {}
        self.offsets: dict[Path, int] = {}
        self.t0 = time.time()  # step times are printed relative to the first mail
        self.elapsed = 0.0

    # --- helpers ------------------------------------------------------------------------------

    def tmux(self, *args: str, check: bool = True) -> str:
        proc = subprocess.run(
            ["tmux", "-S", self.sock, *args], capture_output=True, text=True, env=self.env, check=False
        )
        if check and proc.returncode != 0:
            raise DemoError(f"tmux {args[0]} failed: {proc.stderr.strip()}")
        return proc.stdout

    def server_alive(self) -> bool:
        if not Path(self.sock).exists():
            return False
        return (
            subprocess.run(
                ["tmux", "-S", self.sock, "list-sessions"], capture_output=True, env=self.env, check=False
            ).returncode
            == 0
        )

    def mailslot(self, *args: str) -> str:
        proc = subprocess.run(["mailslot", *args], capture_output=True, text=True, env=self.env, check=False)
        if proc.returncode != 0:
            raise DemoError(
                f"mailslot {' '.join(args)} failed (exit {proc.returncode}): {proc.stderr.strip()}"
            )
        return proc.stdout

    def screen(self, pane: str) -> str:
        return self.tmux("capture-pane", "-p", "-t", pane, check=False)

    def wait(self, what: str, predicate: Any, timeout: float) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if time.monotonic() > deadline:
                raise DemoError(f"timed out after {timeout:.0f}s waiting for {what}")
            time.sleep(POLL)

    def new_lines(self, path: Path) -> list[str]:
        """Complete lines appended to ``path`` since the last call."""
        try:
            with open(path, "rb") as fh:
                fh.seek(self.offsets.get(path, 0))
                data = fh.read()
        except FileNotFoundError:
            return []
        end = data.rfind(b"\n") + 1
        self.offsets[path] = self.offsets.get(path, 0) + end
        return data[:end].decode("utf-8", "replace").splitlines()

    # --- setup --------------------------------------------------------------------------------

    def prepare(self) -> None:
        if self.dir.exists() and any(self.dir.iterdir()) and not (self.dir / MARKER).exists():
            raise DemoError(f"{self.dir} is not empty and not a demo directory; choose another --dir")
        if self.server_alive():
            raise DemoError(
                f"a demo is already running in {self.dir}; stop it first:\n"
                f"  python examples/demo.py --stop --dir {self.dir}"
            )
        if len(os.fsencode(self.sock)) > 100:
            raise DemoError(f"the socket path {self.sock} is too long for tmux; choose a shorter --dir")
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / MARKER).write_text("made by examples/demo.py\n")
        for old in (self.room, self.agent_log, self.state_file, Path(self.sock)):
            if old.is_dir():
                shutil.rmtree(old)
            else:
                old.unlink(missing_ok=True)
        self.mailslot("init", str(self.room))
        say(f"mailroom  {self.room}")

    def agent_cmd(self, name: str) -> str:
        argv = [sys.executable, str(AGENT), name, "--role", AGENTS[name], "--log", str(self.agent_log)]
        return "exec " + shlex.join(argv)  # exec: the agent, not a shell, is the pane's foreground

    def start_tmux(self) -> None:
        names = list(AGENTS)
        fmt = ["-P", "-F", "#{pane_id}"]
        first = self.tmux(
            "-f", "/dev/null", "new-session", "-d", "-s", "demo", "-n", "agents", "-x", "210", "-y", "50",
            *fmt, self.agent_cmd(names[0]),
        )  # fmt: skip
        self.panes[names[0]] = first.strip()
        for option in (("remain-on-exit", "on"), ("pane-border-status", "top"), ("history-limit", "5000")):
            self.tmux("set-option", "-g", *option)
        self.tmux("set-option", "-g", "pane-border-format", " #{pane_title} ")
        for name in names[1:]:
            out = self.tmux("split-window", "-h", "-t", self.panes[names[0]], *fmt, self.agent_cmd(name))
            self.panes[name] = out.strip()
        self.tmux("select-layout", "-t", self.panes[names[0]], "even-horizontal")
        for name, pane in self.panes.items():
            self.tmux("select-pane", "-t", pane, "-T", f"{name}: demo agent")
        self.write_state()
        say(
            f"tmux      private server {self.sock}: "
            + ", ".join(f"{name} {pane}" for name, pane in self.panes.items())
        )
        for name in names:
            self.wait(
                f"the {name} agent's screen",
                lambda n=name: f"demo agent {n} " in self.screen(self.panes[n]),
                10,
            )

    def pane_pids(self) -> dict[str, int]:
        out = self.tmux("list-panes", "-s", "-t", "demo", "-F", "#{pane_id} #{pane_pid}", check=False)
        by_pane = dict(line.split() for line in out.splitlines() if line.strip())
        return {name: int(by_pane[pane]) for name, pane in self.panes.items() if pane in by_pane}

    def write_state(self) -> None:
        state = {
            "socket": self.sock,
            "mailroom": str(self.room),
            "panes": self.panes,
            "pids": self.pane_pids(),
        }
        self.state_file.write_text(json.dumps(state, indent=2) + "\n")

    def register(self) -> None:
        for name, role in AGENTS.items():
            self.mailslot(
                "register", name, "--pane", self.panes[name], "--socket", self.sock,
                "--program", "generic", "--role", role,
            )  # fmt: skip
        say("register  " + ", ".join(f"{n} ({self.panes[n]})" for n in AGENTS) + " as program generic")

    def start_watch(self) -> None:
        """The daemon in a full-width pane below the agents; it taps on start for mail already there."""
        watch = "exec " + shlex.join(["mailslot", "watch", "--rescan", "10"])
        out = self.tmux(
            "split-window", "-v", "-f", "-l", "12", "-t", self.panes["lead"], "-P", "-F", "#{pane_id}", watch
        )
        self.panes["watch"] = out.strip()
        self.tmux("select-pane", "-t", self.panes["watch"], "-T", "mailslot watch")
        self.tmux("select-pane", "-t", self.panes["lead"])
        self.write_state()
        self.wait("mailslot watch to start", lambda: "watching" in self.screen(self.panes["watch"]), 15)
        pid = self.pane_pids()["watch"]
        say(f"watch     mailslot watch running in pane {self.panes['watch']} (pid {pid})")

    # --- the conversation ---------------------------------------------------------------------

    def send_first(self) -> str:
        """lead's first mail, sent before the daemon starts (see the note in ``main``)."""
        out = self.mailslot(
            "send", FIRST["to"], "--cc", FIRST["cc"], "-s", FIRST["subject"], "-m", FIRST["body"],
            "--from", "lead", "--json",
        )  # fmt: skip
        self.t0 = time.time()
        thread: str = json.loads(out)["thread"]
        say(f"send      lead -> {FIRST['to']} (cc {FIRST['cc']}): {FIRST['subject']}  [{thread}]")
        return thread

    def converse(self, thread: str, timeout: float) -> dict[str, Any]:
        start = time.monotonic()
        deadline = start + timeout
        next_check = 0.0
        while True:
            self.print_steps()
            now = time.monotonic()
            if now >= next_check:
                next_check = now + 0.5
                done = self.closed(thread)
                if done:
                    self.settle()
                    say(f"done      {thread} closed with {done['messages']} messages in {self.elapsed:.1f}s")
                    return done
            if now > deadline:
                raise DemoError(f"the conversation did not finish within {timeout:g}s")
            time.sleep(POLL)

    def closed(self, thread: str) -> dict[str, Any] | None:
        """The thread's line from ``mailslot threads --closed --json``, once it is closed."""
        try:
            out = self.mailslot("threads", "--closed", "--json")
        except DemoError:
            return None  # a transient failure: the next poll asks again
        rows: list[dict[str, Any]] = [json.loads(line) for line in out.splitlines() if line.strip()]
        return next((row for row in rows if row.get("thread") == thread), None)

    def settle(self) -> None:
        """Let the agents finish what they are doing (and print it), for up to 5 s."""
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            self.print_steps()
            if not any("[busy]" in self.screen(self.panes[name]) for name in AGENTS):
                break
            time.sleep(POLL)
        self.print_steps()

    def print_steps(self) -> None:
        """Print what happened since the last call: taps (from taps.log) and agents' actions."""
        steps: list[tuple[float, str]] = []
        for line in self.new_lines(self.state_dir / "taps.log"):
            try:
                tap = json.loads(line)
            except ValueError:
                continue
            result = tap.get("result", "?")
            extra = f" ({tap['detail']})" if tap.get("detail") else ""
            retry = "" if result in ("submitted", "recovered") else ", will retry"
            steps.append((float(tap.get("at", 0)), f"tap       {tap.get('agent')}: {result}{extra}{retry}"))
        for line in self.new_lines(self.agent_log):
            stamp, name, text = [*line.split("\t", 2), "", ""][:3]
            steps.append((float(stamp or 0), f"{name:<9} {text}"))
        for at, text in sorted(steps, key=lambda step: step[0]):
            self.elapsed = max(self.elapsed, at - self.t0)
            say(f"{max(at - self.t0, 0):5.1f}s {text}")

    def finish(self) -> None:
        self.wait("the close commit", lambda: "close: " in self.git_log(), 10)
        say("")
        say("$ mailslot threads --closed")
        say(self.mailslot("threads", "--closed").rstrip())
        say("")
        say(f"$ git -C {self.room} log --format='%h %an %s'")
        say(self.git_log().rstrip())

    def git_log(self) -> str:
        proc = subprocess.run(
            ["git", "-C", str(self.room), "log", "--format=%h %an %s"],
            capture_output=True, text=True, env=self.env, check=False,
        )  # fmt: skip
        return proc.stdout

    def how_to_look(self) -> None:
        say("")
        say("Look at the panes (detach with Ctrl-b d):")
        say(f"  tmux -S {self.sock} attach")
        say("Stop it:")
        say(f"  python examples/demo.py --stop --dir {self.dir}    (or: tmux -S {self.sock} kill-server)")

    def dump(self) -> None:
        """Everything that helps to see why the conversation stalled."""
        for name, pane in self.panes.items():
            sys.stderr.write(f"\n----- pane {pane} ({name}) -----\n")
            lines = self.screen(pane).rstrip("\n").splitlines()
            sys.stderr.write("\n".join(line.rstrip() for line in lines if line.strip()) + "\n")
        taps = self.state_dir / "taps.log"
        if taps.exists():
            sys.stderr.write(f"\n----- {taps} (last 15) -----\n")
            sys.stderr.write("\n".join(taps.read_text().splitlines()[-15:]) + "\n")
        sys.stderr.flush()

    # --- stopping -----------------------------------------------------------------------------

    def stop(self) -> None:
        """Stop the daemon (SIGTERM, so it commits and releases its lock), then the tmux server."""
        if not self.server_alive():
            Path(self.sock).unlink(missing_ok=True)
            return
        try:
            state = json.loads(self.state_file.read_text())
            self.panes = state.get("panes", {})
        except (OSError, ValueError):
            state = {}
        daemon = self.pane_pids().get("watch")
        if daemon and daemon == state.get("pids", {}).get("watch"):
            try:
                os.kill(daemon, signal.SIGTERM)
                self.wait("mailslot watch to stop", lambda: not alive(daemon), 10)
            except (ProcessLookupError, DemoError):
                pass
        self.tmux("kill-server", check=False)
        self.wait("the tmux server to stop", lambda: not self.server_alive(), 10)
        Path(self.sock).unlink(missing_ok=True)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie (not yet reaped by tmux) counts as gone
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def child_env(room: Path) -> dict[str, str]:
    """The environment of every child: our mailroom, mailslot on PATH, no inherited tmux/agent."""
    env = {k: v for k, v in os.environ.items() if k not in ("TMUX", "TMUX_PANE", "MAILSLOT_AGENT")}
    env["MAILSLOT_ROOT"] = str(room)
    here = Path(sys.executable).parent  # the venv's bin, where `mailslot` is installed
    if (here / "mailslot").exists():
        env["PATH"] = f"{here}{os.pathsep}{env.get('PATH', '')}"
    return env


def check_tools(env: dict[str, str]) -> None:
    path = env.get("PATH")
    missing = [tool for tool in ("tmux", "git", "mailslot") if shutil.which(tool, path=path) is None]
    hints = {
        "tmux": "install tmux (apt-get install tmux / brew install tmux)",
        "git": "install git (apt-get install git / brew install git)",
        "mailslot": "run `make demo`, or install mailslot into this Python (pip install -e .)",
    }
    if missing:
        how = "\n".join(f"  {hints[m]}" for m in missing)
        raise DemoError(f"the demo needs {', '.join(missing)} on PATH:\n{how}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--dir", type=Path, help="where to put the mailroom and tmux socket (default: a new temp dir)"
    )
    p.add_argument("--cleanup", action="store_true", help="stop the tmux server and daemon at the end")
    p.add_argument("--stop", action="store_true", help="stop a demo left running in --dir, then exit")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds the conversation may take")
    args = p.parse_args(argv)
    if args.stop and not args.dir:
        p.error("--stop needs --dir DIR (the directory the demo printed)")
    folder = (args.dir or Path(tempfile.mkdtemp(prefix="mailslot-demo-"))).absolute()
    demo = Demo(folder)
    if args.stop:
        if not (folder / MARKER).exists():
            p.error(f"{folder} is not a directory made by this demo")
        demo.stop()
        say(f"stopped the demo in {folder}")
        return 0
    started = False
    try:
        check_tools(demo.env)
        demo.prepare()
        started = True
        demo.start_tmux()
        demo.register()
        # The first mail goes out before the daemon starts, which taps for it on start: its
        # start-up sweep runs `git status` outside the git lock and can make a concurrent
        # CLI commit fail (see the report on vcs.uncommitted / vcs.git).
        thread = demo.send_first()
        demo.start_watch()
        demo.converse(thread, args.timeout)
        demo.finish()
    except (DemoError, KeyboardInterrupt) as e:
        why = "interrupted" if isinstance(e, KeyboardInterrupt) else str(e)
        sys.stderr.write(f"demo failed: {why}\n")
        if started and demo.panes and not isinstance(e, KeyboardInterrupt):
            demo.dump()
        if started and (args.cleanup or isinstance(e, KeyboardInterrupt)):
            demo.stop()
        elif started and demo.panes:
            demo.how_to_look()
        return 1
    if args.cleanup:
        demo.stop()
        say("")
        say("cleaned up: tmux server and mailslot watch stopped")
    else:
        demo.how_to_look()
    return 0


if __name__ == "__main__":
    sys.exit(main())
