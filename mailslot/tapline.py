"""The tap line: the only text mailslot ever types into a pane.

It is built from a fixed template and validated identifiers (agent names match ``[a-z0-9_-]``), then
checked again against the grammar in spec/protocol.md before anything is typed. No subject, body or
other message-derived text can appear in it.
"""

from __future__ import annotations

import re

from mailslot import names

MAX_LEN = 120  # bytes typed per tap, at most
_FORBIDDEN_START = "!/#@?>-"
_FORBIDDEN = set(";$`|&<>'\"\\")
_GRAMMAR = re.compile(
    r"\[mailslot\]( URGENT)? [0-9]{1,2}\+? new from ([a-z0-9_,+-]+|[0-9]+ agents)\. "
    r"Run: mailslot inbox -a [a-z0-9_-]+ #t[a-z0-9]{4}"
)


def new_nonce() -> str:
    return "t" + names.token(4)


def build(agent: str, count: int, senders: list[str], nonce: str, *, urgent: bool = False) -> str:
    """The tap line for ``agent``; raise ValueError if it would break the grammar (it cannot)."""
    names.check_agent(agent)
    unique = [names.check_agent(s) for s in dict.fromkeys(senders)] or ["mailslot"]
    prefix = "[mailslot] URGENT" if urgent else "[mailslot]"
    shown = f"{count}" if 0 < count < 100 else "1" if count <= 0 else "99+"
    for keep in (3, 2, 1, 0):  # long names: show fewer senders, then only how many
        who = ",".join(unique[:keep]) + (f",+{len(unique) - keep}" if len(unique) > keep else "")
        if keep == 0:
            who = f"{len(unique)} agents"
        line = f"{prefix} {shown} new from {who}. Run: mailslot inbox -a {agent} #{nonce}"
        if len(line) <= MAX_LEN:
            break
    check(line)
    return line


def check(line: str) -> str:
    """Raise ValueError unless ``line`` is a safe tap line (printable ASCII, the fixed grammar)."""
    if len(line) > MAX_LEN:
        raise ValueError("tap line too long")
    if not line.isascii() or not line.isprintable():
        raise ValueError("tap line must be printable ASCII")
    if line[0] in _FORBIDDEN_START or _FORBIDDEN.intersection(line):
        raise ValueError("tap line contains a forbidden character")
    if not _GRAMMAR.fullmatch(line):
        raise ValueError("tap line does not match the template")
    return line
