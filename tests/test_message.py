"""The message format: compose, parse and render, and the files a parser must refuse."""

from __future__ import annotations

import dataclasses
import unicodedata
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mailslot import message
from mailslot.errors import InvalidMessage
from mailslot.fsutil import read_regular
from mailslot.message import MAX_BYTES, compose, parse, render

CANONICAL = b"""---
mailslot: 1
id: 20261121T202745123Z-k3f9a2
thread: t-k3f9a2q7
from: alice
to: [bob]
cc: [carol]
subject: 'Schema change: users.email'
date: "2026-11-21T20:27:45Z"
in-reply-to: 20261121T200000000Z-aaaaaa
priority: urgent
task: PROJ-42
labels:
- db
- breaking
x-review:
  by: dave
  rounds: 2
---

users.email is now unique.
"""


def one_line(text: str) -> bool:
    """A subject the spec allows: one line, not blank, no control characters or line separators."""
    return bool(text.strip()) and not any(unicodedata.category(c) in ("Cc", "Zl", "Zp") for c in text)


@pytest.mark.parametrize("subject", ["\x1b[2Jgotcha", "a\x00b", "bell\x07", "next\x85line", "a\u2028b"])
def test_subjects_with_control_characters_are_refused(subject: str) -> None:
    with pytest.raises(InvalidMessage, match="control characters"):
        compose(sender="alice", to=["bob"], subject=subject, body="b")


# Subjects: any unicode on one line, with the characters that trip YAML up drawn often.
TRICKY = st.sampled_from(
    [
        *("yes", "no", "null", "~", "true", "1.5", "0x1F", "2026-01-01", "- ", "! ", "#", ": ", "'", '"'),
        *("\\", "&a", "*a", "|", ">", "%", "@", "`", "{", "}", "[", "]", ",", "?", "...", "---", "\t"),
        *("\x85", "\u2028", "\u2029", "\ufeff", "\x1b", "\x7f", "😀", "é", "  "),
    ]
)
SUBJECTS = (
    st.lists(st.one_of(TRICKY, st.text(max_size=20)), max_size=12)
    .map("".join)
    .map(lambda s: s[:200])
    .filter(one_line)
)
BODIES = st.text().filter(lambda s: "\0" not in s)


def expected_body(body: str) -> str:
    """What ``compose`` stores: a blank line after the front matter, and a final newline."""
    if not body:
        return ""
    return "\n" + body + ("" if body.endswith("\n") else "\n")


def test_compose_parse_render_round_trip() -> None:
    msg = compose(
        sender="alice",
        to=["bob", "carol", "bob"],
        cc=["carol", "dave"],
        subject="  Fix login  ",
        body="Steps:\n\n1. open /login\n",
        in_reply_to="20261121T200000000Z-aaaaaa",
        priority="urgent",
        task="PROJ-7",
    )
    assert msg.to == ("bob", "carol")
    assert msg.cc == ("dave",)  # carol is already in to
    assert msg.recipients == ("bob", "carol", "dave")
    assert msg.subject == "Fix login"
    assert msg.urgent
    again = parse(msg.raw)
    assert again == msg
    assert render(again) == msg.raw
    assert msg.raw.startswith(b"---\nmailslot: 1\n")
    assert f'date: "{msg.date}"'.encode() in msg.raw
    assert msg.timestamp().tzinfo is not None


def test_compose_defaults() -> None:
    msg = compose(sender="alice", to=["bob"], subject="hi", body="x", priority="normal")
    assert msg.priority is None  # normal is the default and is not written
    assert b"priority" not in msg.raw
    assert b"cc:" not in msg.raw
    assert msg.thread.startswith("t-")
    assert msg.body == "\nx\n"
    other = compose(sender="alice", to=["bob"], subject="hi", body="x")
    assert other.id != msg.id and other.thread != msg.thread


def test_unknown_fields_are_preserved_in_order() -> None:
    msg = parse(CANONICAL)
    assert msg.extra == {"labels": ["db", "breaking"], "x-review": {"by": "dave", "rounds": 2}}
    assert list(msg.extra) == ["labels", "x-review"]
    assert (msg.cc, msg.in_reply_to, msg.priority, msg.task) == (
        ("carol",),
        "20261121T200000000Z-aaaaaa",
        "urgent",
        "PROJ-42",
    )
    assert render(msg) == CANONICAL
    assert msg.raw == CANONICAL


def test_render_keeps_unknown_fields_added_to_a_composed_message() -> None:
    msg = compose(sender="alice", to=["bob"], subject="s", body="b")
    extra = {"x-note": "a\x85b\u2028c", "nested": {"list": [1, "two", None]}, "yes": "no"}
    raw = render(dataclasses.replace(msg, extra=extra))
    assert parse(raw).extra == extra


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(subject=SUBJECTS, body=BODIES)
def test_any_subject_and_body_round_trip(subject: str, body: str) -> None:
    msg = compose(sender="alice", to=["bob"], subject=subject, body=body)
    again = parse(msg.raw)
    assert again.subject == subject.strip()
    assert again.body == expected_body(body)
    assert render(again) == msg.raw
    front = msg.raw.split(b"\n---\n", 1)[0].decode()
    assert len(front.split("\n")) == 8  # "---" and one line per field: the subject never spills over


@pytest.mark.parametrize(
    "subject",
    ["yes", "null", "1.5", "~", "- item", "! bang", "#12 fix", "a: b", "'quoted'", '"double"', "Ünïcødé 😀"],
)
def test_yaml_keywords_and_punctuation_stay_strings(subject: str) -> None:
    msg = parse(compose(sender="alice", to=["bob"], subject=subject, body="").raw)
    assert msg.subject == subject
    assert isinstance(msg.subject, str)


def test_subject_limits() -> None:
    assert parse(compose(sender="a", to=["b"], subject="s" * 200, body="").raw).subject == "s" * 200
    with pytest.raises(InvalidMessage, match="200"):
        compose(sender="a", to=["b"], subject="s" * 201, body="")
    with pytest.raises(InvalidMessage, match="one line"):
        compose(sender="a", to=["b"], subject="two\nlines", body="")
    with pytest.raises(InvalidMessage, match="non-empty"):
        compose(sender="a", to=["b"], subject="   ", body="")


def test_compose_refuses_invalid_names() -> None:
    with pytest.raises(InvalidMessage, match="invalid agent name"):
        compose(sender="alice", to=["../bob"], subject="s", body="")
    with pytest.raises(InvalidMessage, match="invalid agent name"):
        compose(sender="Alice", to=["bob"], subject="s", body="")
    with pytest.raises(InvalidMessage, match="invalid thread id"):
        compose(sender="alice", to=["bob"], subject="s", body="", thread=".hidden")
    with pytest.raises(InvalidMessage, match="priority"):
        compose(sender="alice", to=["bob"], subject="s", body="", priority="high")


def test_oversize_files_are_refused(tmp_path: Path) -> None:
    big = CANONICAL + b"x" * MAX_BYTES
    with pytest.raises(InvalidMessage, match="limit"):
        parse(big)
    with pytest.raises(InvalidMessage, match="limit"):
        compose(sender="alice", to=["bob"], subject="s", body="x" * MAX_BYTES)
    path = tmp_path / "big.md"
    path.write_bytes(big)
    with pytest.raises(InvalidMessage, match="limit"):
        read_regular(path)
    # Just under the limit is fine.
    fits = CANONICAL + b"y" * (MAX_BYTES - len(CANONICAL))
    assert len(parse(fits).raw) == MAX_BYTES


def test_binary_files_are_refused() -> None:
    with pytest.raises(InvalidMessage, match="NUL"):
        parse(CANONICAL + b"\x00\x01\x02")
    with pytest.raises(InvalidMessage, match="NUL"):
        compose(sender="alice", to=["bob"], subject="s", body="a\0b")


def test_non_utf8_files_are_refused() -> None:
    with pytest.raises(InvalidMessage, match="not UTF-8"):
        parse(CANONICAL.replace(b"unique", b"uniqu\xe9"))
    with pytest.raises(InvalidMessage, match="not UTF-8"):
        parse(b"\xff\xfe---\n")


def test_crlf_files_parse_like_lf_files() -> None:
    crlf = CANONICAL.replace(b"\n", b"\r\n")
    msg = parse(crlf)
    lf = parse(CANONICAL)
    assert (msg.id, msg.thread, msg.sender, msg.to, msg.cc, msg.subject, msg.extra) == (
        lf.id,
        lf.thread,
        lf.sender,
        lf.to,
        lf.cc,
        lf.subject,
        lf.extra,
    )
    assert msg.body.strip() == lf.body.strip()
    assert msg.raw == crlf  # the exact bytes are kept


def test_a_crlf_body_survives_compose() -> None:
    msg = parse(compose(sender="alice", to=["bob"], subject="s", body="line1\r\nline2\r\n").raw)
    assert msg.body == "\nline1\r\nline2\r\n"


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"no front matter\n", "no front matter"),
        (b"---\nmailslot: 1\nid: [unclosed\n---\n", "not valid YAML"),
        (b"---\n- a list\n---\n", "mapping"),
        (CANONICAL.replace(b"mailslot: 1", b"mailslot: 2"), "protocol version"),
        (CANONICAL.replace(b"from: alice\n", b""), "missing required field 'from'"),
        (CANONICAL.replace(b"from: alice", b"from: ../alice"), "invalid agent name"),
        (CANONICAL.replace(b"thread: t-k3f9a2q7", b"thread: .t"), "invalid thread id"),
        (CANONICAL.replace(b"id: 2026", b"id: ../2026"), "invalid message id"),
        (CANONICAL.replace(b"to: [bob]", b"to: []"), "non-empty list"),
        (CANONICAL.replace(b'"2026-11-21T20:27:45Z"', b"2026-11-21T20:27:45Z"), "quoted RFC 3339"),
        (CANONICAL.replace(b'"2026-11-21T20:27:45Z"', b'"yesterday"'), "RFC 3339"),
        (CANONICAL.replace(b'"2026-11-21T20:27:45Z"', b'"2026-11-21T20:27:45"'), "offset"),
        (CANONICAL.replace(b"priority: urgent", b"priority: high"), "priority"),
        (CANONICAL.replace(b"subject: 'Schema change: users.email'", b"subject: 42"), "subject"),
    ],
)
def test_invalid_files_give_a_reason(raw: bytes, reason: str) -> None:
    with pytest.raises(InvalidMessage, match=reason):
        parse(raw)


def test_hand_written_shorthands_are_accepted() -> None:
    raw = (
        b"---\nmailslot: 1\nid: hand-1\nthread: t1\nfrom: alice\nto: bob\n"
        b'subject: hi\ndate: "2026-11-21T20:27:45+01:00"\ntask: 42\n---\nbody\n'
    )
    msg = parse(raw)
    assert msg.to == ("bob",)
    assert msg.task == "42"
    assert msg.body == "body\n"
    assert msg.timestamp().utcoffset() is not None


def test_load_fields_reads_what_parse_refuses() -> None:
    raw = CANONICAL.replace(b"mailslot: 1", b"mailslot: 9")
    with pytest.raises(InvalidMessage):
        parse(raw)
    assert message.load_fields(raw)["from"] == "alice"
    assert message.load_fields(b"garbage") == {}


@settings(max_examples=300, deadline=None)
@given(value=st.one_of(st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._/+ -]{0,30}", fullmatch=True), SUBJECTS))
def test_the_scalar_fast_path_writes_what_yaml_would(value: str) -> None:
    assert message._scalar(value) == message._emit(value)
