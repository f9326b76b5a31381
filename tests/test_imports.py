"""Agents call the CLI for every action: the reading commands must not pay for heavy imports."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from click.testing import CliRunner

from mailslot.cli import cli
from mailslot.mailroom import Mailroom

HEAVY = ("git", "libtmux", "watchdog")
PROBE = """
import json, sys
from mailslot.cli import cli
try:
    cli(sys.argv[1:], prog_name="mailslot")
except SystemExit:
    pass
print(json.dumps(sorted({m.split(".")[0] for m in sys.modules} & set(%r))), file=sys.stderr)
"""


@pytest.mark.parametrize(
    "args", [["inbox"], ["inbox", "--all"], ["read", "ID"], ["send", "bob", "-s", "x", "-m", "y"]]
)
def test_reading_and_sending_do_not_import_git_python_or_libtmux(room: Mailroom, args: list[str]) -> None:
    mid = (
        CliRunner()
        .invoke(
            cli,
            ["send", "bob", "-s", "s", "-m", "b"],
            env={"MAILSLOT_AGENT": "alice"},
            catch_exceptions=False,
        )
        .stdout.split()[0]
    )
    args = [mid if a == "ID" else a for a in args]
    proc = subprocess.run(
        [sys.executable, "-c", PROBE % (HEAVY,), *args],
        capture_output=True,
        text=True,
        env={**os.environ, "MAILSLOT_AGENT": "bob"},
    )
    assert proc.returncode == 0, proc.stderr
    loaded = json.loads(proc.stderr.strip().splitlines()[-1])
    assert loaded == [], f"{args[0]} imported {loaded}"
