"""Validation and generation of agent names, thread ids and message ids.

Every identifier that becomes part of a path passes through here, so none can climb out of its
directory: no separators, no leading dot, bounded length.
"""

from __future__ import annotations

import os
import re
from datetime import UTC, datetime

from mailslot.errors import InvalidName

try:  # CPython's built-in SHA-1 avoids loading OpenSSL through hashlib (~3 ms of every start-up)
    from _sha1 import sha1  # type: ignore[import-not-found]
except ImportError:  # pragma: no cover - other Pythons
    from hashlib import sha1

AGENT_RE = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}")
THREAD_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
MESSAGE_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,79}")
FILE_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,95}\.md")

_B32 = "abcdefghijklmnopqrstuvwxyz234567"


def _check(kind: str, value: object, pattern: re.Pattern[str], rule: str) -> str:
    if not isinstance(value, str) or not pattern.fullmatch(value):
        shown = value if not isinstance(value, str) or len(value) <= 40 else value[:40] + "..."
        raise InvalidName(f"invalid {kind} {shown!r}: {rule}")
    return value


def check_agent(name: object) -> str:
    """Return ``name`` if it is a valid agent name, else raise :class:`InvalidName`."""
    return _check("agent name", name, AGENT_RE, "use 1-32 of a-z 0-9 _ -, starting with a letter or digit")


def check_thread(thread: object) -> str:
    """Return ``thread`` if it is a valid thread id, else raise :class:`InvalidName`."""
    return _check("thread id", thread, THREAD_RE, "use 1-64 of A-Z a-z 0-9 . _ -, not starting with . _ -")


def check_message_id(mid: object) -> str:
    """Return ``mid`` if it is a valid message id, else raise :class:`InvalidName`."""
    return _check("message id", mid, MESSAGE_ID_RE, "use 1-80 of A-Z a-z 0-9 . _ -, not starting with . _ -")


def is_mail_file_name(name: str) -> bool:
    """True for names the spec allows for message files (dotfiles are skipped by readers first)."""
    return FILE_NAME_RE.fullmatch(name) is not None


def token(n: int) -> str:
    """``n`` random characters of ``a-z2-7`` (uniform: 256 is a multiple of 32)."""
    return "".join(_B32[b & 31] for b in os.urandom(n))


def new_message_id(now: datetime | None = None) -> str:
    """A time-sortable, collision-resistant id such as ``20261121T202745123Z-k3fxa2``."""
    now = now or datetime.now(UTC)
    return now.strftime("%Y%m%dT%H%M%S") + f"{now.microsecond // 1000:03d}Z-" + token(6)


def new_thread_id() -> str:
    """A fresh thread id such as ``t-k3fva2q7``."""
    return "t-" + token(8)


def archive_shard(thread: str) -> str:
    """The two-hex-digit shard of ``archive/`` that holds ``thread`` (keeps directories small)."""
    return str(sha1(thread.encode()).hexdigest()[:2])
