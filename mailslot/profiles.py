"""Agent program profiles (data in ``profiles.yaml``) and reading a pane's screen with them."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from importlib import resources

from mailslot.message import load_yaml_text

SHELLS = frozenset(
    {
        "sh",
        "bash",
        "zsh",
        "fish",
        "dash",
        "ksh",
        "mksh",
        "tcsh",
        "csh",
        "nu",
        "elvish",
        "xonsh",
        "login",
        "su",
    }
)


@dataclass(frozen=True)
class Profile:
    name: str
    processes: tuple[str, ...]
    input: re.Pattern[str]
    placeholder: str
    idle: tuple[re.Pattern[str], ...]
    busy: tuple[re.Pattern[str], ...]
    queued: tuple[re.Pattern[str], ...]
    dialog: tuple[re.Pattern[str], ...]
    queues_input: bool
    settle_ms: int

    def is_agent_process(self, command: str) -> bool:
        """True if ``command`` (tmux's pane_current_command) is this program, and never a shell."""
        base = command.rsplit("/", 1)[-1].lstrip("-")
        if not base or is_shell(base):
            return False
        return not self.processes or base in self.processes


def is_shell(command: str) -> bool:
    """True if ``command`` names a shell: a pane showing one must never be typed into."""
    return command.rsplit("/", 1)[-1].lstrip("-") in SHELLS


@dataclass(frozen=True)
class Screen:
    """What a pane shows: its state and the text in its input box (None if no box was found)."""

    state: str  # idle | busy | dialog | unknown
    box: str | None
    queued: bool
    below: str = ""  # the box line and every line under it (a long input wraps onto them)

    @property
    def box_empty(self) -> bool:
        return self.box == ""


def _patterns(items: list[str]) -> tuple[re.Pattern[str], ...]:
    return tuple(re.compile(p, re.MULTILINE) for p in items)


@cache
def profiles() -> dict[str, Profile]:
    """Every profile by program name (loaded once per process)."""
    text = resources.files("mailslot").joinpath("profiles.yaml").read_text(encoding="utf-8")
    data = load_yaml_text(text)
    out = {}
    for name, p in data.items():
        settle = int(p.get("settle_ms", 300))
        if settle < 150:
            raise ValueError(f"profile {name}: settle_ms must be >= 150 (Codex folds a faster Enter)")
        out[name] = Profile(
            name=name,
            processes=tuple(p.get("processes") or ()),
            input=re.compile(p["input"]),
            placeholder=str(p.get("placeholder") or ""),
            idle=_patterns(p.get("idle") or []),
            busy=_patterns(p.get("busy") or []),
            queued=_patterns(p.get("queued") or []),
            dialog=_patterns(p.get("dialog") or []),
            queues_input=bool(p.get("queues_input")),
            settle_ms=settle,
        )
    return out


def profile(program: str) -> Profile:
    return profiles().get(program) or profiles()["generic"]


def read_screen(prof: Profile, lines: list[str]) -> Screen:
    """Classify a pane's visible lines: dialog wins over busy, busy over idle."""
    text = "\n".join(lines)
    box, below = None, ""
    for index in range(len(lines) - 1, -1, -1):
        match = prof.input.match(lines[index])
        if match:
            box = match.group(1).strip()
            if prof.placeholder and box == prof.placeholder:
                box = ""
            below = "\n".join(lines[index:])
            break
    queued = any(p.search(text) for p in prof.queued)
    if any(p.search(text) for p in prof.dialog):
        return Screen("dialog", box, queued, below)
    if any(p.search(text) for p in prof.busy):
        return Screen("busy", box, queued, below)
    if box is not None and any(p.search(text) for p in prof.idle):
        return Screen("idle", box, queued, below)
    return Screen("unknown", box, queued, below)
