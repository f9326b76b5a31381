"""Chaos fixtures: the ``chaos`` marker, subprocess clean-up, and the per-scenario figures.

Every scenario records one line of figures (runs, messages checked, faults injected, lost); at the
end of the session they are printed and written to ``<pytest basetemp>/last-run.json``.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from .harness import FULL

_FIGURES: list[dict[str, Any]] = []
_WRITTEN: list[Path] = []


def pytest_configure(config: pytest.Config) -> None:
    # pyproject.toml should list it too: "chaos: fault-injection scenarios (MAILSLOT_CHAOS=full: long form)"
    config.addinivalue_line("markers", "chaos: fault-injection scenarios (MAILSLOT_CHAOS=full: long form)")


@pytest.fixture(scope="session", autouse=True)
def _last_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    start = time.monotonic()
    yield
    if not _FIGURES:
        return
    path = tmp_path_factory.getbasetemp() / "last-run.json"
    data = {
        "mode": "full" if FULL else "short",
        "seconds": round(time.monotonic() - start, 1),
        "scenarios": _FIGURES,
    }
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    _WRITTEN.append(path)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not _FIGURES:
        return
    terminalreporter.section(f"chaos figures ({'full' if FULL else 'short'})")
    for f in _FIGURES:
        extra = "".join(f", {k} {v}" for k, v in f.items() if k not in _MAIN)
        terminalreporter.write_line(
            f"{f['scenario']}: scenarios {f['runs']}, messages checked {f['messages']}, "
            f"faults injected {f['faults']}, lost {f['lost']}{extra} ({f['seconds']}s)"
        )
    for path in _WRITTEN:
        terminalreporter.write_line(f"figures written to {path}")


_MAIN = ("scenario", "runs", "messages", "faults", "lost", "seconds", "details")  # details: JSON only


@pytest.fixture
def figures(request: pytest.FixtureRequest) -> Callable[..., None]:
    """``figures(runs=, messages=, faults=, lost=0, **extra)``: record this scenario's summary line."""
    start = time.monotonic()

    def record(*, runs: int, messages: int, faults: int, lost: int = 0, **extra: Any) -> None:
        line = {
            "scenario": request.node.name,
            "runs": runs,
            "messages": messages,
            "faults": faults,
            "lost": lost,
            **extra,
            "seconds": round(time.monotonic() - start, 1),
        }
        _FIGURES.append(line)
        print(json.dumps(line))

    return record


@pytest.fixture
def procs() -> Iterator[list[subprocess.Popen[Any]]]:
    """Processes a test starts; any still running at the end is killed (by its own pid)."""
    started: list[subprocess.Popen[Any]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
