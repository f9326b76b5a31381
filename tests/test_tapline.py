"""Only the sanitized template ever reaches a pane: property tests over hostile mail."""

from __future__ import annotations

import re
import string

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from recorder import Recorder

from mailslot import registry, store, tapline, vcs
from mailslot.engine import Engine, Policy
from mailslot.errors import MailslotError
from mailslot.mailroom import Agent, Mailroom, save_agent
from mailslot.message import compose

SAFE = re.compile(r"[\x20-\x7e]+")
names = st.from_regex(r"[a-z0-9][a-z0-9_-]{0,31}", fullmatch=True)
hostile = st.text(
    alphabet=st.sampled_from(
        list("!/;$`|&<>'\"\\#@?-\x00\x03\x1b\x15\r\n\t\u202e\u00a0é漢🙂") + list(string.printable)
    ),
    max_size=300,
)


def assert_safe(line: str, agent: str) -> None:
    tapline.check(line)
    assert SAFE.fullmatch(line) and len(line) < 150
    assert line[0] not in "!/#@?>-"
    assert not set(line) & set(";$`|&<>'\"\\")
    assert line.endswith(f" -a {agent} #{line[-5:]}")


@settings(max_examples=200, deadline=None)
@given(agent=names, senders=st.lists(names, min_size=1, max_size=6), count=st.integers(0, 10_000))
def test_built_lines_always_match_the_grammar(agent: str, senders: list[str], count: int) -> None:
    line = tapline.build(agent, count, senders, tapline.new_nonce(), urgent=count % 2 == 0)
    assert_safe(line, agent)


@pytest.mark.parametrize(
    "line",
    [
        "!rm -rf ~",
        "/exit",
        "[mailslot] 1 new from alice. Run: mailslot inbox -a bob #tabcd; rm -rf ~",
        "[mailslot] 1 new from alice. Run: mailslot inbox -a bob #tabcd\x1b[A",
        "[mailslot] 1 new from $(id). Run: mailslot inbox -a bob #tabcd",
        "[mailslot] 1 new from alice. Run: mailslot inbox -a bob #tabcd" + " " * 100,
        "[mailslot] 1 new from alice. Run: mailslot inbox -a Bob #tabcd",
    ],
)
def test_check_refuses_anything_else(line: str) -> None:
    with pytest.raises(ValueError):
        tapline.check(line)


def test_build_refuses_an_invalid_agent_name() -> None:
    with pytest.raises(MailslotError):
        tapline.build("bob; rm", 1, ["alice"], "tabcd")


@pytest.fixture(scope="module")
def shared_room(tmp_path_factory: pytest.TempPathFactory) -> Mailroom:
    return vcs.init_repo(tmp_path_factory.mktemp("room") / "mailroom")


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    agent=names,
    sender=names,
    subject=hostile.map(lambda s: s.replace("\n", " ").replace("\r", " ").strip()[:200] or "x"),
    body=hostile,
    big=st.booleans(),
)
def test_any_mail_taps_only_the_template(
    shared_room: Mailroom, agent: str, sender: str, subject: str, body: str, big: bool
) -> None:
    if agent == sender:
        sender = sender[:-1] + ("a" if sender[-1] != "a" else "b") if len(sender) > 1 else sender + "x"
    room = shared_room
    registry.register(room, sender, no_pane=True)
    save_agent(room, Agent(name=agent, program="claude", host="testhost", pane="%1", socket="/nonexistent"))
    body = body * 40 if big else body  # up to ~10 kB
    try:
        msg = compose(sender=sender, to=[agent], subject=subject, body=body)
    except MailslotError:
        return  # a subject the format refuses is refused before it could ever tap
    store.deliver(room, msg)
    rec = Recorder()
    Engine(room, rec, Policy()).run([agent])
    store.inbox(room, agent)  # read, so the next example's mail taps afresh
    assert len(rec.lines) == 1
    assert_safe(rec.lines[0], agent)
    words = [w for w in re.split(r"\W+", subject) if len(w) > 3 and w not in rec.lines[0]]
    assert all(w not in rec.lines[0] for w in words)
