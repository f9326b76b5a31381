"""Start fake agents (``tests/fakeagent.py``) and plain shells in panes of a private tmux server.

    agent = start_agent(tmux_socket, "codex", tmp_path, busy_ms=500)
    tmux(tmux_socket, "send-keys", "-t", agent.pane, "-l", "hello")
    agent.wait_submitted(["hello"])

The fake is started as ``exec -a ARGV0 <real python> fakeagent.py ...`` from ``bash -c``, so tmux's
``#{pane_current_command}`` (argv[0] of the pane's foreground process group leader, read from
/proc/PID/cmdline) reports ARGV0. The interpreter must be the real binary: a wrapper script such as
a pyenv shim would exec python again and reset argv[0]. PYTHONHOME is set because Python finds
its standard library from argv[0] by searching PATH: with argv[0] ``node`` and a real node on PATH
it looks next to node and fails (``No module named 'select'``).

Screens are classified with the patterns of ``mailslot/profiles.yaml`` (see :func:`classify`).
"""

from __future__ import annotations

import functools
import itertools
import json
import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from conftest import retry_until

FAKE = Path(__file__).resolve().with_name("fakeagent.py")
PROFILES = Path(__file__).resolve().parents[1] / "mailslot" / "profiles.yaml"
PYTHON = os.path.realpath(sys.executable)
DEFAULT_ARGV0 = {
    "claude": "claude",
    "codex": "codex",
    "gemini": "gemini",
    "aider": "aider",
    "generic": "agent",
}
_serial = itertools.count()


def run_tmux(sock: str, *args: str) -> subprocess.CompletedProcess[str]:
    """One tmux command on server ``sock`` (TMUX unset), never raising."""
    env = {k: v for k, v in os.environ.items() if k not in ("TMUX", "TMUX_PANE")}
    return subprocess.run(["tmux", "-S", sock, *args], capture_output=True, text=True, env=env, check=False)


@functools.cache
def profiles() -> dict[str, dict[str, Any]]:
    data: dict[str, dict[str, Any]] = yaml.safe_load(PROFILES.read_text(encoding="utf-8"))
    return data


def classify(profile: str, screen: str) -> str | None:
    """The screen's state by ``profile``'s patterns: dialog wins, then busy, then idle; else None."""
    p = profiles()[profile]
    lines = screen.splitlines()
    for state in ("dialog", "busy", "idle"):
        if any(re.search(pat, line) for pat in p[state] for line in lines):
            return state
    return None


def input_box(profile: str, screen: str) -> str | None:
    """The text in the input box (bottom-most ``input`` match; placeholder reads as ""), or None."""
    p = profiles()[profile]
    for line in reversed(screen.splitlines()):
        m = re.search(p["input"], line)
        if m:
            text = m.group(1)
            return "" if p["placeholder"] and text == p["placeholder"] else text
    return None


def shows_queued(profile: str, screen: str) -> bool:
    pats = profiles()[profile]["queued"]
    return any(re.search(pat, line) for pat in pats for line in screen.splitlines())


@dataclass
class Pane:
    """A pane on a private tmux server."""

    socket: str
    pane: str

    def tmux(self, *args: str) -> subprocess.CompletedProcess[str]:
        return run_tmux(self.socket, *args)

    def screen(self) -> str:
        """The visible screen (``capture-pane -p``), trailing blank lines removed."""
        return self.tmux("capture-pane", "-p", "-t", self.pane).stdout.rstrip("\n")

    def command(self) -> str:
        """``#{pane_current_command}``: the name of the pane's foreground process."""
        return self.tmux("display-message", "-p", "-t", self.pane, "#{pane_current_command}").stdout.strip()

    def type(self, text: str) -> None:
        """``send-keys -l``: the text as literal keys, no Enter."""
        self.send("-l", "--", text)

    def send(self, *keys: str) -> None:
        """``send-keys`` of tmux key names (``Enter``, ``Escape``, ``C-u``) or flags and text."""
        res = self.tmux("send-keys", "-t", self.pane, *keys)
        assert res.returncode == 0, res.stderr

    def wait_screen(self, predicate: Any, timeout: float = 10.0, what: str = "") -> str:
        """Wait until ``predicate(screen)`` (or ``str in screen``) holds; return that screen."""
        test = predicate if callable(predicate) else lambda s: predicate in s
        found: list[str] = []

        def check() -> bool:
            s = self.screen()
            if test(s):
                found.append(s)
                return True
            return False

        retry_until(check, timeout=timeout, what=what or f"screen of {self.pane}: {predicate!r}")
        return found[0]

    def wait_command(self, name: str, timeout: float = 10.0) -> None:
        retry_until(lambda: self.command() == name, timeout=timeout, what=f"{self.pane} running {name}")


@dataclass
class FakeAgent(Pane):
    """A fake agent in a pane, with its event log and control file."""

    mode: str
    argv0: str
    log_path: Path
    control_path: Path
    stderr_path: Path

    def log_events(self) -> list[dict[str, Any]]:
        """The events logged so far (a partly written last line is skipped)."""
        try:
            text = self.log_path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return []
        return [json.loads(line) for line in text.splitlines(keepends=True) if line.endswith("\n")]

    def events(self, *kinds: str) -> list[dict[str, Any]]:
        return [e for e in self.log_events() if e["event"] in kinds]

    def submitted(self) -> list[str]:
        """The texts submitted so far, in order (folded newlines are ``\\n``)."""
        return [e["text"] for e in self.events("submit")]

    def keys(self) -> list[dict[str, Any]]:
        """Every raw keystroke chunk read, each with the state it arrived in."""
        return self.events("key")

    def state(self) -> str | None:
        """The fake's own state from its log: idle, busy or dialog (None before it starts)."""
        states = self.events("start", "state")
        return states[-1]["state"] if states else None

    def control(self, cmd: str) -> None:
        """Append a command (``busy``, ``idle``, ``dialog``, ``draft TEXT``, ``swallow N``, ``exit``...)."""
        with self.control_path.open("a", encoding="utf-8") as f:
            f.write(cmd + "\n")

    def classify(self, screen: str | None = None) -> str | None:
        return classify(self.mode, self.screen() if screen is None else screen)

    def input_box(self, screen: str | None = None) -> str | None:
        return input_box(self.mode, self.screen() if screen is None else screen)

    def wait_state(self, state: str, timeout: float = 10.0) -> str:
        """Wait until the fake is in ``state`` and its screen reads so by the profile; return it."""
        # aider's profile has no busy pattern: a busy aider reads as unknown.
        expect = None if (state == "busy" and not profiles()[self.mode]["busy"]) else state

        def check() -> str | bool:
            self.check_alive()
            if self.state() != state:
                return False
            s = self.screen()
            return s if classify(self.mode, s) == expect else False

        result: str = retry_until(check, timeout=timeout, what=f"{self.mode} fake {self.pane} {state}")
        return result

    def wait_events(self, kind: str, count: int = 1, timeout: float = 10.0) -> list[dict[str, Any]]:
        """Wait until at least ``count`` events of ``kind`` are logged; return them."""

        def check() -> list[dict[str, Any]] | bool:
            self.check_alive()
            found = self.events(kind)
            return found if len(found) >= count else False

        result: list[dict[str, Any]] = retry_until(check, timeout=timeout, what=f"{count} {kind} event(s)")
        return result

    def wait_submitted(self, texts: list[str], timeout: float = 10.0) -> None:
        """Wait until exactly ``texts`` have been submitted (fails at once on anything else)."""

        def check() -> bool:
            got = self.submitted()
            assert got == texts[: len(got)], f"submitted {got!r}, expected {texts!r}"
            return got == texts

        retry_until(check, timeout=timeout, what=f"submitted {texts!r}")

    def check_alive(self) -> None:
        err = self.stderr_path.read_text(encoding="utf-8") if self.stderr_path.exists() else ""
        assert "Traceback" not in err, f"fake agent crashed:\n{err}"


def new_pane(sock: str, argv: list[str]) -> str:
    """A new 120x40 pane running ``argv``: the server's first session, or a new window in it."""
    if run_tmux(sock, "has-session").returncode == 0:
        res = run_tmux(sock, "new-window", "-d", "-P", "-F", "#{pane_id}", *argv)
    else:
        res = run_tmux(sock, "new-session", "-d", "-x", "120", "-y", "40", "-P", "-F", "#{pane_id}", *argv)
    pane = res.stdout.strip()
    assert res.returncode == 0 and pane.startswith("%"), res.stderr
    return pane


def start_shell(sock: str) -> Pane:
    """A pane running a plain interactive ``bash --norc --noprofile``, its prompt shown."""
    shell = Pane(sock, new_pane(sock, ["bash", "--norc", "--noprofile"]))
    shell.wait_screen(lambda s: s.strip() != "", what=f"bash prompt in {shell.pane}")
    shell.wait_command("bash")
    return shell


def fake_options(opts: dict[str, Any]) -> list[str]:
    """``busy_ms=500`` -> ``--busy-ms 500``; ``queues=False`` -> ``--no-queues``; True -> the flag."""
    out: list[str] = []
    for key, value in opts.items():
        flag = "--" + key.replace("_", "-")
        if value is True:
            out.append(flag)
        elif value is False:
            out.append("--no-" + key.replace("_", "-"))
        elif value is not None:
            out += [flag, str(value)]
    return out


def start_agent(
    sock: str,
    mode: str,
    tmp_path: Path,
    argv0: str | None = None,
    shell_first: bool = False,
    **opts: Any,
) -> FakeAgent:
    """Start a fake agent in a new pane of server ``sock`` and wait for its idle screen.

    ``argv0`` is the name tmux reports (default: the mode's program name). With ``shell_first``
    the fake runs in a subshell of an interactive bash, so its exit leaves bash in the foreground;
    otherwise it is the pane's command and the pane closes when it exits. ``opts`` become
    fakeagent.py options (``busy_ms``, ``queues``, ``paste_window_ms``, ``guard_ms``,
    ``swallow_enters``, ``header``, ``exit_clear``).
    """
    base = tmp_path / f"fake-{mode}-{next(_serial)}"
    log, control, stderr = (base.with_suffix(s) for s in (".log", ".control", ".stderr"))
    control.touch()
    name = argv0 or DEFAULT_ARGV0[mode]
    args = [PYTHON, str(FAKE), "--mode", mode, "--log", str(log), "--control", str(control)]
    line = (
        f"export PYTHONHOME={shlex.quote(sys.base_prefix)}; "
        f"exec -a {shlex.quote(name)} {shlex.join(args + fake_options(opts))} 2>>{shlex.quote(str(stderr))}"
    )
    if shell_first:
        pane = start_shell(sock).pane
        run_tmux(sock, "send-keys", "-t", pane, "-l", "--", f"( {line} )")
        run_tmux(sock, "send-keys", "-t", pane, "Enter")
    else:
        pane = new_pane(sock, ["bash", "--norc", "--noprofile", "-c", line])
    agent = FakeAgent(sock, pane, mode, name, log, control, stderr)
    agent.wait_state("idle")
    return agent
