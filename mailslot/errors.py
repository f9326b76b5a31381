"""The one error family the core raises; the CLI turns each into a line on stderr and an exit code."""

from __future__ import annotations

from typing import Any


class MailslotError(Exception):
    """A user-facing failure. ``context`` holds the keyword details shown after the message."""

    exit_code = 1

    def __init__(self, message: str, **context: Any) -> None:
        super().__init__(message)
        self.message = message
        self.context = context

    def __str__(self) -> str:
        if not self.context:
            return self.message
        details = ", ".join(f"{k}={v}" for k, v in self.context.items())
        return f"{self.message} ({details})"


class InvalidName(MailslotError):
    """An agent name, thread id or message id that the spec does not allow."""

    exit_code = 2


class InvalidMessage(MailslotError):
    """A message file that fails validation; ``reason`` is what quarantine records."""

    exit_code = 3


class NotFound(MailslotError):
    """An agent, message or thread that does not exist."""

    exit_code = 4


class NotAMailroom(MailslotError):
    """The root is not a mailroom (no ``mailslot.yaml``)."""

    exit_code = 5


class ThreadClosed(MailslotError):
    """Mail into a thread that is already in the archive."""

    exit_code = 6


class GitError(MailslotError):
    """A git command failed; ``stderr`` holds git's own words."""

    exit_code = 7
    stderr = ""


class Busy(MailslotError):
    """A lock is held by another process (a second daemon, a tap in flight)."""

    exit_code = 8


class TmuxError(MailslotError):
    """tmux is missing, a server or pane is gone, or a command failed."""

    exit_code = 9


class StorageError(MailslotError):
    """The disk refused a write (full, read-only, no permission); nothing half-written is visible."""

    exit_code = 10
