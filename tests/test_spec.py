"""The spec's examples are the truth of the message format: spec/examples/{valid,accepted,invalid}."""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import Result
from conftest import git_out

from mailslot.errors import InvalidMessage
from mailslot.mailroom import Mailroom
from mailslot.message import parse, render

SPEC = Path(__file__).resolve().parent.parent / "spec"
EXAMPLES = SPEC / "examples"


def _files(kind: str) -> list[Path]:
    return sorted((EXAMPLES / kind).glob("*.md"))


def _ids(paths: list[Path]) -> list[str]:
    return [p.name for p in paths]


VALID = _files("valid")
ACCEPTED = _files("accepted")
INVALID = _files("invalid")

# What each invalid example's error must say: the offending field, or the offending value where the
# error names a kind of identifier rather than the field.
EXPECTED = {
    "bad-deliver-at.md": "'deliver-at' 'tomorrow' is not an RFC 3339",
    "bad-in-reply-to.md": "invalid message id '..hidden'",
    "bad-priority.md": "'priority' must be one of low, normal, urgent",
    "bad-yaml.md": "front matter is not valid YAML",
    "date-not-a-date.md": "'date' 'yesterday at noon' is not an RFC 3339 date-time",
    "date-without-offset.md": "'date' '2026-11-21T09:00:00' is not an RFC 3339 date-time with an offset",
    "date-without-time.md": "'date' '2026-11-21' is not an RFC 3339 date-time",
    "empty-cc.md": "'cc' must be a non-empty list",
    "empty-subject.md": "'subject' must be a non-empty string",
    "empty-to.md": "'to' must be a non-empty list",
    "id-with-colon.md": "invalid message id '20261121T09:00:00Z-m2n4p6'",
    "long-subject.md": "'subject' must be one line of at most 200 characters",
    "missing-from.md": "missing required field 'from'",
    "missing-id.md": "missing required field 'id'",
    "missing-version.md": "'mailslot' must be 1",
    "multi-line-subject.md": "'subject' must be one line",
    "no-front-matter.md": "no front matter",
    "not-a-mapping.md": "front matter must be a YAML mapping",
    "task-not-a-string.md": "'task' must be a string",
    "thread-with-slash.md": "invalid thread id 't-q7r2s3t4/../../agents'",
    "to-climbs-out.md": "'to': invalid agent name '../../etc'",
    "to-not-a-list.md": "'to' must be a non-empty list",
    "to-number.md": "'to' must be a string (quote it): got 42",
    "unclosed-front-matter.md": "no front matter",
    "unquoted-date.md": "'date' must be a quoted RFC 3339 string",
    "uppercase-from.md": "invalid agent name 'Alice'",
    "wrong-version.md": "'mailslot' must be 1 (the protocol version), got 2",
}


def test_the_examples_are_there() -> None:
    assert len(VALID) >= 6
    assert len(ACCEPTED) >= 1
    assert len(INVALID) >= 12
    assert sorted(EXPECTED) == _ids(INVALID), "every invalid example needs exactly one EXPECTED entry"


@pytest.mark.parametrize("path", VALID, ids=_ids(VALID))
def test_valid_example_round_trips(path: Path) -> None:
    raw = path.read_bytes()
    msg = parse(raw)
    assert render(msg) == raw
    assert msg.raw == raw


@pytest.mark.parametrize("path", ACCEPTED, ids=_ids(ACCEPTED))
def test_accepted_example_parses_but_is_not_canonical(path: Path) -> None:
    raw = path.read_bytes()
    msg = parse(raw)
    canonical = render(msg)
    assert canonical != raw, "a canonical file belongs in examples/valid/"
    again = parse(canonical)
    assert render(again) == canonical
    assert (again.id, again.thread, again.sender, again.to, again.cc, again.subject, again.date) == (
        msg.id, msg.thread, msg.sender, msg.to, msg.cc, msg.subject, msg.date,
    )  # fmt: skip
    assert (again.task, again.priority, again.extra) == (msg.task, msg.priority, msg.extra)
    assert again.body.strip() == msg.body.strip()


@pytest.mark.parametrize("path", INVALID, ids=_ids(INVALID))
def test_invalid_example_is_rejected_with_its_reason(path: Path) -> None:
    raw = path.read_bytes()
    first = raw.decode().removeprefix("---\n").splitlines()[0]
    assert re.match(r"(# )?invalid: ", first), "say what is wrong in the first line"
    with pytest.raises(InvalidMessage) as caught:
        parse(raw)
    assert EXPECTED[path.name] in caught.value.message


def _hand_written() -> bytes:
    text = (SPEC / "protocol.md").read_text(encoding="utf-8")
    blocks = re.findall(r"^```markdown hand-written\n(.*?)^```$", text, re.DOTALL | re.MULTILINE)
    assert len(blocks) == 1, "protocol.md needs exactly one ```markdown hand-written block"
    return blocks[0].encode("utf-8")


def test_hand_written_example_is_canonical() -> None:
    raw = _hand_written()
    assert render(parse(raw)) == raw


def test_hand_written_example_is_delivered_read_and_committed(
    room: Mailroom, run: Callable[..., Result]
) -> None:
    raw = _hand_written()
    msg = parse(raw)
    assert msg.sender == "alice"
    assert msg.to == ("bob",)
    box = room.root / "inbox" / "bob"
    staged = box / "tmp" / "draft"
    staged.write_bytes(raw)  # as protocol.md says: write into tmp/, then rename into new/
    os.rename(staged, box / "new" / f"{msg.id}.md")

    listed = run("inbox", agent="bob").stdout
    assert msg.id in listed
    assert msg.subject in listed
    shown = run("read", msg.id, agent="bob").stdout
    assert shown.encode("utf-8") == raw

    seen = f"inbox/bob/cur/{msg.id}.md"
    assert (room.root / seen).read_bytes() == raw
    assert not (box / "new" / f"{msg.id}.md").exists()
    assert seen in git_out(room.root, "log", "--name-only", "--format=%s").splitlines()
    assert git_out(room.root, "status", "--porcelain", "--", "inbox") == ""
