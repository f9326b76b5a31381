"""The fake agent itself, in real tmux panes: its Enter timing, states and screens.

Screens are read with the patterns of mailslot/profiles.yaml, so these tests also check that the
profiles classify what the fake (drawn after the real agents) shows. Fixed pauses appear only where
the test is about timing: the 300 ms settle between text and Enter.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from conftest import retry_until
from fakeharness import FakeAgent, classify, run_tmux, shows_queued, start_agent, start_shell

pytestmark = pytest.mark.tmux

MODES = ["claude", "codex", "gemini", "generic", "aider"]
QUEUEING = ["claude", "codex", "gemini"]
SETTLE = 0.3


def type_and_enter(agent: FakeAgent, text: str, settle: float = SETTLE) -> None:
    agent.type(text)
    time.sleep(settle)
    agent.send("Enter")


def key_states(agent: FakeAgent) -> set[str]:
    """The states in which the agent received keystrokes."""
    chunks = agent.keys()
    return {k["state"] for k in chunks}


def typed(agent: FakeAgent) -> str:
    """Every keystroke the agent received, as one string."""
    chunks = agent.keys()
    return "".join(k["text"] for k in chunks)


def wait_box(agent: FakeAgent, text: str) -> str:
    return agent.wait_screen(lambda s: agent.input_box(s) == text, what=f"input box {text!r}")


@pytest.mark.parametrize("mode", MODES)
def test_settled_enter_submits_exactly_once(tmux_socket: str, tmp_path: Path, mode: str) -> None:
    agent = start_agent(tmux_socket, mode, tmp_path)
    screen = agent.screen()
    assert classify(mode, screen) == "idle"
    assert agent.input_box(screen) == ""  # a placeholder reads as empty
    assert not shows_queued(mode, screen)

    agent.type("hello world")
    wait_box(agent, "hello world")
    time.sleep(SETTLE)
    agent.send("Enter")

    agent.wait_submitted(["hello world"])
    screen = wait_box(agent, "")
    assert "  • hello world" in screen.splitlines()
    assert classify(mode, screen) == "idle"
    assert [e["event"] for e in agent.events("submit", "folded", "swallowed")] == ["submit"]
    assert key_states(agent) == {"idle"}


@pytest.mark.parametrize(
    ("mode", "outcome"),
    [("claude", "submit"), ("generic", "submit"), ("codex", "folded"), ("gemini", "swallowed")],
)
def test_text_and_enter_in_one_command(tmux_socket: str, tmp_path: Path, mode: str, outcome: str) -> None:
    agent = start_agent(tmux_socket, mode, tmp_path)
    agent.send("-l", "hello", ";", "send-keys", "-t", agent.pane, "Enter")
    assert agent.wait_events(outcome)[0]["text"] == ("hello\n" if outcome == "folded" else "hello")
    if outcome == "submit":
        agent.wait_submitted(["hello"])
        return
    # The text is stranded in the box; a lone Enter later submits it.
    wait_box(agent, "hello⏎" if outcome == "folded" else "hello")
    assert agent.submitted() == []
    time.sleep(SETTLE)
    agent.send("Enter")
    agent.wait_submitted(["hello\n" if outcome == "folded" else "hello"])
    wait_box(agent, "")


@pytest.mark.parametrize("how", ["keys-then-Enter", "two-commands-back-to-back"])
def test_codex_folds_enter_inside_its_paste_window(tmux_socket: str, tmp_path: Path, how: str) -> None:
    agent = start_agent(tmux_socket, "codex", tmp_path)
    if how == "keys-then-Enter":
        agent.send("hello", "Enter")  # one command, non-literal keys
    else:
        agent.type("hello")  # a few ms apart: well inside 120 ms
        agent.send("Enter")
    agent.wait_events("folded")
    wait_box(agent, "hello⏎")
    assert agent.submitted() == []


def test_gemini_guard_window_is_configurable(tmux_socket: str, tmp_path: Path) -> None:
    agent = start_agent(tmux_socket, "gemini", tmp_path, guard_ms=0)
    agent.send("-l", "hello", ";", "send-keys", "-t", agent.pane, "Enter")
    agent.wait_submitted(["hello"])
    assert agent.events("swallowed") == []


def test_bracketed_paste_never_submits(tmux_socket: str, tmp_path: Path) -> None:
    agent = start_agent(tmux_socket, "generic", tmp_path)
    run_tmux(tmux_socket, "set-buffer", "-b", "tap", "line1\nline2\n")
    run_tmux(tmux_socket, "paste-buffer", "-p", "-b", "tap", "-t", agent.pane)
    wait_box(agent, "line1⏎line2⏎")
    assert "\x1b[200~" in typed(agent)
    assert agent.submitted() == []
    agent.send("C-u")
    type_and_enter(agent, "> quoted")
    agent.wait_submitted(["> quoted"])
    wait_box(agent, "")  # the transcript line "  • > quoted" is not read as the box


@pytest.mark.parametrize("mode", QUEUEING)
def test_busy_agent_queues_and_submits_when_idle(tmux_socket: str, tmp_path: Path, mode: str) -> None:
    agent = start_agent(tmux_socket, mode, tmp_path)
    agent.control("busy")
    screen = agent.wait_state("busy")
    assert agent.input_box(screen) == ""  # the box stays open while it works

    type_and_enter(agent, "later")
    agent.wait_events("queued")
    screen = agent.wait_screen(lambda s: shows_queued(mode, s) and agent.input_box(s) == "")
    assert classify(mode, screen) == "busy"
    assert agent.submitted() == []
    assert key_states(agent) == {"busy"}

    agent.control("idle")
    agent.wait_submitted(["later"])
    screen = agent.wait_state("idle")
    assert not shows_queued(mode, screen)


def test_busy_ms_after_submit_then_queued_turn(tmux_socket: str, tmp_path: Path) -> None:
    agent = start_agent(tmux_socket, "claude", tmp_path, busy_ms=2000)
    type_and_enter(agent, "first")
    agent.wait_submitted(["first"])
    agent.wait_state("busy")
    type_and_enter(agent, "second")
    agent.wait_events("queued")
    agent.wait_submitted(["first", "second"])
    states = [e["state"] for e in agent.events("start", "state")]
    assert states[:4] == ["idle", "busy", "idle", "busy"]


@pytest.mark.parametrize("mode", ["generic", "aider"])
def test_busy_agent_without_queue_rejects_keys(tmux_socket: str, tmp_path: Path, mode: str) -> None:
    agent = start_agent(tmux_socket, mode, tmp_path)
    agent.control("busy")
    screen = agent.wait_state("busy")
    assert agent.input_box(screen) is None  # no prompt while it works

    type_and_enter(agent, "nope")
    retry_until(lambda: "".join(e["text"] for e in agent.events("rejected")) == "nope\r")
    agent.control("idle")
    screen = agent.wait_state("idle")
    assert agent.input_box(screen) == ""
    assert agent.submitted() == []


def test_escape_interrupts_and_puts_queued_text_back(tmux_socket: str, tmp_path: Path) -> None:
    agent = start_agent(tmux_socket, "claude", tmp_path)
    agent.control("busy")
    agent.wait_state("busy")
    type_and_enter(agent, "later")
    agent.wait_events("queued")
    agent.send("Escape")
    agent.wait_events("interrupted")
    screen = agent.wait_state("idle")
    assert agent.input_box(screen) == "later"
    assert agent.submitted() == []


@pytest.mark.parametrize("mode", MODES)
def test_dialog_never_submits(tmux_socket: str, tmp_path: Path, mode: str) -> None:
    agent = start_agent(tmux_socket, mode, tmp_path)
    agent.control("draft half")
    wait_box(agent, "half")
    agent.control("dialog")
    agent.wait_state("dialog")

    for key in ("1", "y"):
        agent.type(key)
        agent.send("Enter")
    retry_until(lambda: typed(agent) == "1\ry\r")
    assert key_states(agent) == {"dialog"}
    assert "".join(e["text"] for e in agent.events("dialog_key")) == "1\ry\r"

    agent.control("idle")
    screen = agent.wait_state("idle")
    assert agent.input_box(screen) == "half"  # the draft survives the dialog
    assert agent.submitted() == []


@pytest.mark.parametrize("mode", MODES)
def test_draft_shows_in_the_input_box(tmux_socket: str, tmp_path: Path, mode: str) -> None:
    agent = start_agent(tmux_socket, mode, tmp_path)
    agent.control("draft hello")
    screen = wait_box(agent, "hello")
    assert classify(mode, screen) == "idle"
    agent.send("BSpace")
    wait_box(agent, "hell")
    agent.send("C-u")
    wait_box(agent, "")
    assert agent.submitted() == []


def test_swallowed_enter_then_lone_enter_submits(tmux_socket: str, tmp_path: Path) -> None:
    agent = start_agent(tmux_socket, "claude", tmp_path, swallow_enters=1)
    type_and_enter(agent, "hello")
    agent.wait_events("swallowed")
    wait_box(agent, "hello")
    assert agent.submitted() == []
    agent.send("Enter")
    agent.wait_submitted(["hello"])

    agent.control("swallow 1")
    type_and_enter(agent, "again")
    agent.wait_events("swallowed", 2)
    agent.send("Enter")
    agent.wait_submitted(["hello", "again"])


@pytest.mark.parametrize(
    ("mode", "argv0", "shell_first"),
    [
        ("claude", None, False),
        ("codex", "node", False),
        ("generic", "my-agent", False),
        ("gemini", None, True),
    ],
)
def test_pane_reports_argv0(
    tmux_socket: str, tmp_path: Path, mode: str, argv0: str | None, shell_first: bool
) -> None:
    agent = start_agent(tmux_socket, mode, tmp_path, argv0=argv0, shell_first=shell_first)
    assert agent.command() == (argv0 or mode)


@pytest.mark.parametrize("how", ["control", "ctrl-c"])
def test_exit_leaves_the_shell_in_front(tmux_socket: str, tmp_path: Path, how: str) -> None:
    agent = start_agent(tmux_socket, "claude", tmp_path, shell_first=True)
    assert agent.command() == "claude"
    if how == "control":
        agent.control("exit")
    else:
        agent.send("C-c")
    agent.wait_command("bash")
    assert agent.events("exit")[0]["text"] == ("control" if how == "control" else "ctrl-c")
    screen = agent.wait_screen(lambda s: s.splitlines()[-1].startswith("bash-"))
    # The agent's last screen is still visible above the prompt: it still reads as idle.
    assert classify("claude", screen) == "idle"


def test_exit_closes_a_pane_that_ran_the_agent(tmux_socket: str, tmp_path: Path) -> None:
    keeper = start_shell(tmux_socket)  # keeps the server alive
    agent = start_agent(tmux_socket, "codex", tmp_path)
    agent.control("exit")
    retry_until(
        lambda: agent.pane not in run_tmux(tmux_socket, "list-panes", "-a", "-F", "#{pane_id}").stdout
    )
    assert keeper.command() == "bash"


@pytest.mark.parametrize("mode", MODES)
def test_mailslot_reads_the_fake_screens_alike(tmux_socket: str, tmp_path: Path, mode: str) -> None:
    """mailslot's own screen reader agrees with the yaml-level classification used above."""
    profiles_mod = pytest.importorskip("mailslot.profiles")
    read_screen = getattr(profiles_mod, "read_screen", None)
    if read_screen is None:
        pytest.skip("mailslot.profiles.read_screen is not there")
    prof = profiles_mod.profile(mode)
    agent = start_agent(tmux_socket, mode, tmp_path)

    def reads(screen: str) -> tuple[str, str | None]:
        got = read_screen(prof, screen.splitlines())
        return got.state, got.box

    agent.control("draft half typed")
    assert reads(wait_box(agent, "half typed")) == ("idle", "half typed")
    agent.control("busy")
    busy = agent.wait_state("busy")
    queues = mode in QUEUEING
    assert reads(busy) == (
        ("busy", "half typed") if queues else ("unknown" if mode == "aider" else "busy", None)
    )
    agent.control("dialog")
    assert reads(agent.wait_state("dialog"))[0] == "dialog"
    agent.control("idle")
    assert reads(agent.wait_state("idle")) == ("idle", "half typed")
