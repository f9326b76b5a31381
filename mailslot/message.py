"""The message format: a Markdown file with YAML front matter (spec/protocol.md, "Message format").

Files are never rewritten once delivered, so :func:`parse` keeps the exact bytes and :func:`render`
produces the canonical form that writers emit; for canonical files the two round-trip byte-for-byte.
This is the only module that imports PyYAML. It does not use python-frontmatter: that library
strips the body (breaking byte-exact round trips) and returns empty metadata for malformed front
matter instead of an error (so bad files could not be quarantined with a reason).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import yaml

from mailslot import names
from mailslot.errors import InvalidMessage, InvalidName

PROTOCOL = 1
MAX_BYTES = 1024 * 1024
MAX_SUBJECT = 200
PRIORITIES = ("low", "normal", "urgent")
KNOWN = (
    "mailslot",
    "id",
    "thread",
    "from",
    "to",
    "cc",
    "subject",
    "date",
    "in-reply-to",
    "priority",
    "deliver-at",
    "task",
)

_FRONT = re.compile(r"---\n(.*?\n)?---\n", re.DOTALL)

_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when PyYAML has it


@dataclass(frozen=True)
class Message:
    """One message. ``extra`` holds unknown fields in file order; ``raw`` the exact file bytes."""

    id: str
    thread: str
    sender: str
    to: tuple[str, ...]
    subject: str
    date: str
    body: str
    cc: tuple[str, ...] = ()
    in_reply_to: str | None = None
    priority: str | None = None
    deliver_at: str | None = None
    task: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    raw: bytes = b""

    @property
    def recipients(self) -> tuple[str, ...]:
        """``to`` then ``cc``, without repeats."""
        return tuple(dict.fromkeys(self.to + self.cc))

    @property
    def urgent(self) -> bool:
        return self.priority == "urgent"

    def timestamp(self) -> datetime:
        return parse_date(self.date)


def now_rfc3339() -> str:
    """The current UTC time as the spec writes it, e.g. ``2026-11-21T20:27:45Z``."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})")


def parse_date(value: str, field_name: str = "date") -> datetime:
    """Parse an RFC 3339 date-time with an offset; raise :class:`InvalidMessage` naming the field."""
    if not _RFC3339.fullmatch(value):
        raise InvalidMessage(
            f"{field_name!r} {value!r} is not an RFC 3339 date-time with an offset, e.g. 2026-11-21T20:27:45Z"
        )
    try:
        return datetime.fromisoformat(value.upper().replace(" ", "T"))
    except ValueError:
        raise InvalidMessage(f"{field_name!r} {value!r} is not a real date") from None


def _field(name: str, value: object, check: Any) -> str:
    if not isinstance(value, str):
        raise InvalidMessage(f"{name!r} must be a string (quote it): got {value!r}")
    try:
        return str(check(value))
    except InvalidName as e:
        raise InvalidMessage(f"{name!r}: {e.message}") from None


def _names(field_name: str, value: object, check: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value:
        raise InvalidMessage(f"{field_name!r} must be a non-empty list of agent names")
    return tuple(dict.fromkeys(_field(field_name, v, check) for v in value))


def _optional_str(meta: dict[str, Any], key: str) -> str | None:
    value = meta.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidMessage(f"{key!r} must be a string (quote it)")
    return value


def parse(raw: bytes) -> Message:
    """Parse and validate one message file; raise :class:`InvalidMessage` with the reason."""
    if len(raw) > MAX_BYTES:
        raise InvalidMessage(f"file is {len(raw)} bytes, over the {MAX_BYTES}-byte limit")
    if b"\0" in raw:
        raise InvalidMessage("file contains NUL bytes (binary, not a message)")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise InvalidMessage(f"file is not UTF-8 (byte {e.start})") from None
    text = text.replace("\r\n", "\n") if "\r\n" in text[:8] else text
    match = _FRONT.match(text)
    if not match:
        raise InvalidMessage("no front matter: the file must start with '---' and close it with '---'")
    meta = _load_front(match.group(1) or "")
    if not isinstance(meta, dict):
        raise InvalidMessage("front matter must be a YAML mapping of fields")
    return _from_fields(meta, text[match.end() :], raw)


MAX_FRONT = 64 * 1024
MAX_DEPTH = 32
_BLOCK_NESTING = re.compile(rf"^(?: *- ){{{MAX_DEPTH}}}|^ {{{4 * MAX_DEPTH}}}", re.MULTILINE)


def _too_deep(front: str) -> bool:
    """Deep nesting crashes libyaml (a stack overflow, SIGSEGV) long before any real message nests."""
    if _BLOCK_NESTING.search(front):
        return True
    depth = 0
    for c in front:
        if c in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                return True
        elif c in "]}":
            depth = max(depth - 1, 0)
    return False


def _load_front(front: str) -> Any:
    """Parse front matter, turning every way it can fail into :class:`InvalidMessage`."""
    if len(front) > MAX_FRONT:
        raise InvalidMessage(f"front matter is over {MAX_FRONT // 1024} KiB")
    if _too_deep(front):
        raise InvalidMessage(f"front matter is nested more than {MAX_DEPTH} levels deep")
    try:
        return yaml.load(front, Loader=_Loader)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 2}" if mark is not None else ""
        raise InvalidMessage(f"front matter is not valid YAML{where}") from None
    except (ValueError, OverflowError, RecursionError, TypeError) as e:  # e.g. date 2026-02-30
        raise InvalidMessage(f"front matter has a value YAML cannot read: {e}"[:200]) from None


def _from_fields(meta: dict[str, Any], body: str, raw: bytes) -> Message:
    version = meta.get("mailslot")
    if type(version) is not int or version != PROTOCOL:
        raise InvalidMessage(f"'mailslot' must be {PROTOCOL} (the protocol version), got {version!r}")
    for key in ("id", "thread", "from", "to", "subject", "date"):
        if key not in meta:
            raise InvalidMessage(f"missing required field {key!r}")
    mid = _field("id", meta["id"], names.check_message_id)
    thread = _field("thread", meta["thread"], names.check_thread)
    sender = _field("from", meta["from"], names.check_agent)
    reply_to = meta.get("in-reply-to")
    if reply_to is not None:
        _field("in-reply-to", reply_to, names.check_message_id)
    subject = meta["subject"]
    if not isinstance(subject, str) or not subject.strip():
        raise InvalidMessage("'subject' must be a non-empty string")
    if len(subject) > MAX_SUBJECT or any(c in subject for c in "\n\r"):
        raise InvalidMessage(f"'subject' must be one line of at most {MAX_SUBJECT} characters")
    if any(unicodedata.category(c) in ("Cc", "Zl", "Zp") for c in subject):
        raise InvalidMessage("'subject' must not contain control characters or line separators")
    date = meta["date"]
    if not isinstance(date, str):
        raise InvalidMessage("'date' must be a quoted RFC 3339 string, e.g. \"2026-11-21T20:27:45Z\"")
    parse_date(date, "date")
    priority = _optional_str(meta, "priority")
    if priority is not None and priority not in PRIORITIES:
        raise InvalidMessage(f"'priority' must be one of {', '.join(PRIORITIES)}")
    deliver_at = _optional_str(meta, "deliver-at")
    if deliver_at is not None:
        parse_date(deliver_at, "deliver-at")
    task = meta.get("task")
    if task is not None and (isinstance(task, bool) or not isinstance(task, str | int)):
        raise InvalidMessage("'task' must be a string")
    cc = _names("cc", meta["cc"], names.check_agent) if meta.get("cc") is not None else ()
    return Message(
        id=mid,
        thread=thread,
        sender=sender,
        to=_names("to", meta["to"], names.check_agent),
        subject=subject,
        date=date,
        body=body,
        cc=cc,
        in_reply_to=reply_to,
        priority=priority,
        deliver_at=deliver_at,
        task=None if task is None else str(task),
        extra={k: v for k, v in meta.items() if k not in KNOWN},
        raw=raw,
    )


# Line breaks to YAML (NEL, LS, PS) that Python's one-line checks let through. PyYAML writes them
# raw in plain or single-quoted scalars, where they break the line or fold into a space on reading.
_YAML_BREAKS = ("\x85", "\u2028", "\u2029")


_PLAIN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/+-]*(?: [A-Za-z0-9._/+-]+)*")
_RESOLVER = yaml.resolver.Resolver()


def _scalar(value: Any) -> str:
    # fast path: a name or simple phrase that YAML reads back as the same string needs no emitter
    if (
        isinstance(value, str)
        and _PLAIN.fullmatch(value)
        and _RESOLVER.resolve(yaml.nodes.ScalarNode, value, (True, False)) == "tag:yaml.org,2002:str"  # type: ignore[no-untyped-call]
    ):
        return value
    return _emit(value)


def _emit(value: Any) -> str:
    out = yaml.safe_dump(value, default_flow_style=True, allow_unicode=True, width=1 << 30)
    if any(c in out for c in _YAML_BREAKS):  # double quotes escape them (\N, \L, \P)
        out = yaml.safe_dump(value, default_style='"', allow_unicode=True, width=1 << 30)
    return out.removesuffix("\n").removesuffix("\n...")


def _quoted(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def render(msg: Message) -> bytes:
    """The canonical bytes of ``msg`` (known fields in spec order, then ``extra``, then the body)."""
    # names such as 123, no or 2026-11-21 are quoted, so YAML reads them back as strings
    lines = ["---", f"mailslot: {PROTOCOL}", f"id: {_scalar(msg.id)}", f"thread: {_scalar(msg.thread)}"]
    lines.append(f"from: {_scalar(msg.sender)}")
    lines.append("to: [" + ", ".join(map(_scalar, msg.to)) + "]")
    if msg.cc:
        lines.append("cc: [" + ", ".join(map(_scalar, msg.cc)) + "]")
    lines.append(f"subject: {_scalar(msg.subject)}")
    lines.append(f"date: {_quoted(msg.date)}")
    if msg.in_reply_to:
        lines.append(f"in-reply-to: {_scalar(msg.in_reply_to)}")
    if msg.priority:
        lines.append(f"priority: {msg.priority}")
    if msg.deliver_at:
        lines.append(f"deliver-at: {_quoted(msg.deliver_at)}")
    if msg.task is not None:
        lines.append(f"task: {_scalar(msg.task)}")
    if msg.extra:
        dumped = yaml.safe_dump(
            msg.extra, sort_keys=False, allow_unicode=True, default_flow_style=False, width=1 << 30
        )
        if any(c in dumped for c in _YAML_BREAKS):  # ASCII-only output escapes them
            dumped = yaml.safe_dump(msg.extra, sort_keys=False, default_flow_style=False, width=1 << 30)
        lines.append(dumped.rstrip("\n"))
    lines.append("---")
    return ("\n".join(lines) + "\n" + msg.body).encode("utf-8")


def compose(
    *,
    sender: str,
    to: list[str] | tuple[str, ...],
    subject: str,
    body: str,
    thread: str | None = None,
    cc: list[str] | tuple[str, ...] = (),
    in_reply_to: str | None = None,
    priority: str | None = None,
    task: str | None = None,
) -> Message:
    """Build and validate a new message (fresh id and date); its ``raw`` is the canonical bytes."""
    text = body if body.endswith("\n") or not body else body + "\n"
    draft = Message(
        id=names.new_message_id(),
        thread=thread or names.new_thread_id(),
        sender=sender,
        to=tuple(dict.fromkeys(to)),
        cc=tuple(c for c in dict.fromkeys(cc) if c not in to),
        subject=subject.strip(),
        date=now_rfc3339(),
        body=("\n" + text) if text else "",
        in_reply_to=in_reply_to,
        priority=None if priority in (None, "normal") else priority,
        task=task,
    )
    if "\0" in text:
        raise InvalidMessage("body contains NUL bytes (binary, not a message)")
    raw = render(draft)
    if len(raw) > MAX_BYTES:
        raise InvalidMessage(f"message is {len(raw)} bytes, over the {MAX_BYTES}-byte limit")
    # validated by the reader's own rules, from the fields (render() round-trips them; tests hold it)
    meta: dict[str, Any] = {"mailslot": PROTOCOL, "id": draft.id, "thread": draft.thread, "from": sender}
    meta.update(to=list(draft.to), subject=draft.subject, date=draft.date)
    optional = {"cc": list(draft.cc) or None, "in-reply-to": in_reply_to, "priority": draft.priority}
    meta.update({k: v for k, v in {**optional, "task": task}.items() if v is not None})
    return _from_fields(meta, draft.body, raw)


def load_fields(raw: bytes) -> dict[str, Any]:
    """The front matter of a file as a plain mapping (for files that fail :func:`parse`)."""
    match = _FRONT.match(raw.decode("utf-8", "replace"))
    if not match:
        return {}
    try:
        meta = _load_front(match.group(1) or "")
    except InvalidMessage:
        return {}
    return meta if isinstance(meta, dict) else {}


def dump_yaml(data: dict[str, Any]) -> str:
    """Block-style YAML for agent cards and quarantine reasons."""
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, default_flow_style=False)


def load_yaml_text(text: str) -> Any:
    """Parse a YAML document (profiles, ledgers); raises yaml.YAMLError on bad input."""
    return yaml.load(text, Loader=_Loader)
