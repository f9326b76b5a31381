#!/usr/bin/env python3
"""mailslot benchmark suite: prints a table and writes ``bench/results.json``.

    .venv/bin/python bench/run.py [--quick] [--only NAME[,NAME]] [--idle-seconds S] [--keep]

Every figure is a distribution over repeated runs (median, p95, min..max, stdev, n); comparisons
are ratios of figures measured in the same invocation. Fixtures (mailrooms with N archived
messages) are written straight to disk in the canonical format and committed once, cached in a
temporary directory for the run, and reset to their base commit between figures.
See bench/README.md for what each figure means.
"""

from __future__ import annotations

import argparse
import compileall
import contextlib
import cProfile
import io
import json
import os
import platform
import pstats
import resource
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mailslot import names, registry, store, threads, vcs
from mailslot.mailroom import Mailroom, ensure_inbox
from mailslot.message import compose

BENCH = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent
MAILSLOT = str(BIN / "mailslot")
PY = sys.executable
AGENTS = ("alice", "bob", "carol")
SUBJECT = "Review the login fix before the release"
BODY = (
    "The session cookie is now set with SameSite=Lax; please check the redirect after login\n"
    "and the logout path. Tests are in tests/test_auth.py. Reply when done.\n"
)
FIGURES = ("cli", "commit", "throughput", "inbox", "close", "tap", "idle", "bytes")
pc = time.perf_counter


# --- configuration ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Config:
    quick: bool
    runs: int  # repetitions of the per-operation figures
    small: int  # archived messages of the "100" fixture
    medium: int  # ... of the "10k" fixture
    large: int | None  # ... of the "100k" fixture (None: skipped)
    unseen: int  # unseen messages in one inbox (figure 4)
    inbox_runs: int
    senders: int
    sends_each: int
    lib_n: int
    throughput_runs: int
    taps: int
    confirm_taps: int
    idle_seconds: float
    idle_agents: int
    tap_control: bool = True  # tmux through a control-mode client, as `mailslot watch` does

    @classmethod
    def make(cls, quick: bool, idle_seconds: float | None, runs: int | None, large: int | None) -> Config:
        if quick:
            c = cls(True, 5, 100, 2_000, None, 2_000, 3, 8, 4, 100, 1, 5, 3, 10.0, 20)
        else:
            c = cls(False, 20, 100, 10_000, 100_000, 10_000, 10, 8, 15, 500, 3, 20, 10, 60.0, 20)
        changes: dict[str, Any] = {}
        if idle_seconds is not None:
            changes["idle_seconds"] = idle_seconds
        if runs is not None:
            changes["runs"] = runs
        if large is not None:
            changes["large"] = large or None
        return cls(**{**c.__dict__, **changes})


def human(n: int) -> str:
    return f"{n // 1000}k" if n >= 1000 and n % 1000 == 0 else str(n)


# --- statistics and results ---------------------------------------------------------------------


@dataclass(frozen=True)
class Goal:
    op: str  # "<=", ">=", "<", "=="
    value: float
    stat: str = "median"  # which statistic is checked
    p95: float | None = None  # and, if given, p95 <= this

    def text(self, unit: str) -> str:
        return (
            f"{self.op} {self.value:g}{'' if unit in ('x', '') else ' '}{unit}"
            + (f" ({self.stat})" if self.stat != "median" else "")
            + (f", p95 <= {self.p95:g}" if self.p95 is not None else "")
        )

    def check(self, value: float) -> bool:
        return {
            "<=": value <= self.value,
            ">=": value >= self.value,
            "<": value < self.value,
            "==": value == self.value,
        }[self.op]


def summarize(samples: list[float]) -> dict[str, float]:
    xs = sorted(samples)
    if not xs:
        return {}
    p95 = statistics.quantiles(xs, n=20, method="inclusive")[18] if len(xs) > 1 else xs[0]
    return {
        "median": statistics.median(xs),
        "p95": p95,
        "min": xs[0],
        "max": xs[-1],
        "mean": statistics.fmean(xs),
        "stdev": statistics.stdev(xs) if len(xs) > 1 else 0.0,
    }


@dataclass
class Figure:
    key: str
    label: str
    unit: str
    samples: list[float]
    goal: Goal | None = None
    notes: str = ""
    value: float | None = None  # a single derived value (ratios) instead of a distribution

    def stats(self) -> dict[str, float]:
        if self.value is not None:
            return {"median": self.value}
        return summarize(self.samples)

    def ok(self) -> bool | None:
        st = self.stats()
        if self.goal is None or not st:
            return None
        within = self.goal.p95 is None or st.get("p95", st["median"]) <= self.goal.p95
        return self.goal.check(st.get(self.goal.stat, st["median"])) and within

    def as_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "label": self.label,
            "unit": self.unit,
            **{k: round(v, 4) for k, v in self.stats().items()},
            "runs": len(self.samples) if self.value is None else None,
            "goal": self.goal.text(self.unit) if self.goal else None,
            "ok": self.ok(),
            "notes": self.notes,
            "samples": [round(s, 4) for s in self.samples],
        }


@dataclass
class Results:
    figures: list[Figure] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    shared: dict[str, Any] = field(default_factory=dict)  # passed between figures, not written

    def add(
        self,
        key: str,
        label: str,
        unit: str,
        samples: list[float],
        goal: Goal | None = None,
        notes: str = "",
    ) -> Figure:
        fig = Figure(key, label, unit, list(samples), goal, notes)
        self.figures.append(fig)
        print(f"  {row(fig)}", flush=True)
        return fig

    def ratio(self, key: str, label: str, num: Figure, den: Figure, goal: Goal | None = None) -> Figure:
        a, b = num.stats()["median"], den.stats()["median"]
        fig = Figure(key, label, "x", [], goal, f"median {num.key} / median {den.key}", a / b if b else 0.0)
        self.figures.append(fig)
        print(f"  {row(fig)}", flush=True)
        return fig


def fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    digits = {"ms": 1, "msg/s": 0, "%": 2, "MB": 1, "B": 0, "x": 2, "": 0}.get(unit, 1)
    return f"{value:,.{digits}f}"


def row(fig: Figure) -> str:
    st = fig.stats()
    ok = fig.ok()
    spread = "-" if fig.value is not None else f"{fmt(st['min'], fig.unit)}..{fmt(st['max'], fig.unit)}"
    runs = "-" if fig.value is not None else str(len(fig.samples))
    return (
        f"{fig.label:<56} {fmt(st.get('median'), fig.unit):>9} {fmt(st.get('p95'), fig.unit):>9} "
        f"{fig.unit:<5} {spread:>19} {runs:>5}  {fig.goal.text(fig.unit) if fig.goal else '':<14} "
        f"{'' if ok is None else ('ok' if ok else 'MISS')}"
    )


HEADER = f"{'figure':<56} {'median':>9} {'p95':>9} {'unit':<5} {'min..max':>19} {'runs':>5}  {'goal':<14} ok?"


# --- environment and process helpers ------------------------------------------------------------


def isolate(tmp: Path) -> None:
    """Private HOME, git identity and config; no inherited tmux, agent or git location."""
    home = tmp / "home"
    home.mkdir(parents=True, exist_ok=True)
    gitconfig = home / ".gitconfig"
    gitconfig.write_text(
        "[user]\n\tname = Bench\n\temail = bench@example.invalid\n[init]\n\tdefaultBranch = main\n"
    )
    os.environ.update(
        HOME=str(home),
        XDG_DATA_HOME=str(home / ".local" / "share"),
        GIT_CONFIG_GLOBAL=str(gitconfig),
        GIT_CONFIG_NOSYSTEM="1",
        MAILSLOT_HOST="benchhost",
        MAILSLOT_NO_HOOKS="1",
    )
    for var in (
        "TMUX",
        "TMUX_PANE",
        "MAILSLOT_AGENT",
        "MAILSLOT_ROOT",
        "GIT_DIR",
        "GIT_WORK_TREE",
        "GIT_INDEX_FILE",
    ):
        os.environ.pop(var, None)


def sh(*args: str, env: dict[str, str] | None = None, input: bytes | None = None) -> bytes:
    proc = subprocess.run(list(args), env=env, input=input, capture_output=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(
            f"{' '.join(args[:4])}... failed ({proc.returncode}): {proc.stderr.decode()[-500:]}"
        )
    return proc.stdout


def git(root: Path, *args: str) -> str:
    return sh("git", "-C", str(root), *args).decode()


def tmux(sock: str, *args: str) -> str:
    return sh("tmux", "-S", sock, "-f", "/dev/null", *args).decode()


def cli_env(root: Path, agent: str) -> dict[str, str]:
    return {**os.environ, "MAILSLOT_ROOT": str(root), "MAILSLOT_AGENT": agent}


def child_cpu() -> float:
    """CPU seconds of all waited-for child processes so far (user + system)."""
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


LAST_CPU: list[float] = [0.0]  # CPU seconds of the last run_cli process tree
LAST_COMMITTED: list[float] = [0.0]  # seconds from the start of the last run_cli until its commit


def run_cli(root: Path, agent: str, *args: str) -> tuple[float, bytes]:
    """Run ``mailslot ARGS`` as a new process; return its wall time (s) and stdout.

    The CPU time of the process and its git children is left in ``LAST_CPU[0]``.
    """
    env = cli_env(root, agent)
    c0 = child_cpu()
    t0 = pc()
    proc = subprocess.run(
        [MAILSLOT, *args], env=env, stdin=subprocess.DEVNULL, capture_output=True, check=False
    )
    dt = pc() - t0
    LAST_CPU[0] = child_cpu() - c0
    if proc.returncode != 0:
        raise RuntimeError(f"mailslot {' '.join(args)} failed: {proc.stderr.decode()[-500:]}")
    # the CLI answers first and commits in a detached child: wait (untimed for the answer) until the
    # journal is empty, so runs never overlap, and keep the time until committed
    journal_dir = root / ".git" / "mailslot" / "journal"
    wait_for(lambda: not any(journal_dir.glob("*.json")), 30, "the deferred commit")
    LAST_COMMITTED[0] = pc() - t0
    return dt, proc.stdout


def wait_for(pred: Callable[[], Any], timeout: float, what: str, interval: float = 0.005) -> Any:
    deadline = pc() + timeout
    while True:
        value = pred()
        if value:
            return value
        if pc() > deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def new_message(sender: str = "alice", to: str = "bob", thread: str | None = None, subject: str = SUBJECT):
    return compose(sender=sender, to=[to], subject=subject, body=BODY, thread=thread)


# --- fixtures -----------------------------------------------------------------------------------


def _write_chunk(root: str, where: str, counts: list[int]) -> int:
    """Worker: write ``counts[i]`` messages of one fresh thread each, canonical bytes via compose."""
    written = 0
    for count in counts:
        tid = names.new_thread_id()
        if where == "archive":
            folder = Path(root, "archive", names.archive_shard(tid), tid)
        else:
            folder = Path(root, "inbox", where, "new")
        folder.mkdir(parents=True, exist_ok=True)
        for j in range(count):
            if where == "archive":
                sender, to = ("alice", "bob") if j % 2 == 0 else ("bob", "alice")
            else:
                sender, to = "alice", where
            subject = SUBJECT if j == 0 or where != "archive" else "Re: " + SUBJECT
            msg = compose(sender=sender, to=[to], subject=subject, body=BODY, thread=tid)
            with open(folder / f"{msg.id}.md", "xb") as fh:
                fh.write(msg.raw)
            written += 1
    return written


def write_messages(root: Path, where: str, n: int, per_thread: int = 20) -> int:
    counts = [per_thread] * (n // per_thread) + ([n % per_thread] if n % per_thread else [])
    workers = max(os.cpu_count() or 1, 1)
    chunks = [counts[i :: workers * 4] for i in range(workers * 4)]
    chunks = [c for c in chunks if c]
    if n < 2000 or workers == 1:
        return sum(_write_chunk(str(root), where, c) for c in chunks)
    with ProcessPoolExecutor(max_workers=workers) as pool:
        return sum(pool.map(_write_chunk, [str(root)] * len(chunks), [where] * len(chunks), chunks))


@dataclass
class Fixture:
    """A mailroom at ``root`` whose base commit holds ``archived`` archived (+ ``unseen``) messages."""

    room: Mailroom
    base: str
    archived: int
    unseen: int
    build_seconds: float

    @property
    def root(self) -> Path:
        return self.room.root

    def reset(self) -> None:
        """Back to the base commit: index, work tree, no journal, no ledger, no stray files."""
        git(self.root, "reset", "-q", "--hard", self.base)
        git(self.root, "clean", "-fdq", "--", "inbox", "archive", "rejected", "agents")
        state = self.room.state_dir
        shutil.rmtree(state / "journal", ignore_errors=True)
        shutil.rmtree(state / "panes", ignore_errors=True)
        for name in ("ledger.json", "taps.log", "daemon.pid"):
            (state / name).unlink(missing_ok=True)
        for agent in AGENTS:
            ensure_inbox(self.room, agent)


class Fixtures:
    """Builds each fixture once per run, under ``tmp``, and hands it out reset."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.cache: dict[tuple[int, int], Fixture] = {}

    def get(self, archived: int, unseen: int = 0) -> Fixture:
        key = (archived, unseen)
        if key not in self.cache:
            self.cache[key] = self.build(archived, unseen)
        fx = self.cache[key]
        fx.reset()
        return fx

    def build(self, archived: int, unseen: int, name: str = "") -> Fixture:
        t0 = pc()
        root = self.tmp / (name or f"room-a{archived}-u{unseen}")
        print(f"  building fixture: {archived:,} archived, {unseen:,} unseen ...", end="", flush=True)
        room = vcs.init_repo(root)
        for agent in AGENTS:
            registry.register(room, agent, no_pane=True)
        if archived:
            write_messages(root, "archive", archived)
        if unseen:
            write_messages(root, "bob", unseen, per_thread=1)
        git(root, "add", "-A")
        git(
            root,
            "-c",
            "gc.auto=0",
            "commit",
            "-q",
            "--allow-empty",
            "-m",
            f"bench: {archived} archived, {unseen} unseen",
        )
        base = git(root, "rev-parse", "HEAD").strip()
        dt = pc() - t0
        print(f" {dt:.1f} s", flush=True)
        return Fixture(room, base, archived, unseen, dt)


# --- instrumentation ----------------------------------------------------------------------------


@contextlib.contextmanager
def git_timings() -> Iterator[list[tuple[str, float]]]:
    """Record (subcommand, seconds) of every git command the git adapter runs."""
    original = vcs.git
    record: list[tuple[str, float]] = []

    def timed(room: Mailroom, *args: str, **kwargs: Any) -> str:
        t0 = pc()
        try:
            return original(room, *args, **kwargs)
        finally:
            record.append((args[0], pc() - t0))

    vcs.git = timed  # type: ignore[assignment]
    try:
        yield record
    finally:
        vcs.git = original  # type: ignore[assignment]


def breakdown(per_run: list[list[tuple[str, float]]]) -> dict[str, float]:
    """Median ms per git subcommand (summed within a run) over runs."""
    sums: list[dict[str, float]] = []
    for run in per_run:
        acc: dict[str, float] = defaultdict(float)
        for cmd, dt in run:
            acc[cmd] += dt
        sums.append(acc)
    keys = sorted({k for s in sums for k in s})
    return {k: round(statistics.median(s.get(k, 0.0) for s in sums) * 1000, 2) for k in keys}


def profile_top(prof: cProfile.Profile, wanted: dict[str, tuple[str, str]]) -> dict[str, float]:
    """Cumulative ms of selected functions, ``label -> (file suffix, function name)``."""
    stats = pstats.Stats(prof, stream=io.StringIO())
    out: dict[str, float] = {}
    for label, (suffix, func) in wanted.items():
        total = 0.0
        for (filename, _line, name), (_cc, _nc, _tt, ct, _callers) in stats.stats.items():  # type: ignore[attr-defined]
            if name == func and filename.endswith(suffix):
                total = max(total, ct)
        out[label] = round(total * 1000, 1)
    out["total"] = round(stats.total_tt * 1000, 1)  # type: ignore[attr-defined]
    return out


@contextlib.contextmanager
def environ(**values: str) -> Iterator[None]:
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def profile_cli(root: Path, agent: str, *args: str) -> cProfile.Profile:
    """Run one CLI command in-process under cProfile (stdout discarded; imports already paid)."""
    from mailslot.cli import run  # main() without its final os._exit

    prof = cProfile.Profile()
    with (
        environ(MAILSLOT_ROOT=str(root), MAILSLOT_AGENT=agent),
        open(os.devnull, "w") as null,
        contextlib.redirect_stdout(null),
    ):
        try:
            prof.enable()
            run(list(args))
        finally:
            prof.disable()
    return prof


IMPORT_CHECK = r"""
import json, os, sys
out = os.environ.pop("BENCH_IMPORTS_OUT")
from mailslot.cli import run
code = run(json.loads(sys.argv[1]))  # main() without its final os._exit
heavy = sorted({m.split(".")[0] for m in sys.modules} & {"git", "libtmux", "watchdog", "frontmatter"})
with open(out, "w") as fh:
    json.dump({"code": code, "heavy": heavy, "modules": len(sys.modules)}, fh)
"""


def imports_of(root: Path, agent: str, tmp: Path, *args: str) -> dict[str, Any]:
    out = tmp / f"imports-{secrets.token_hex(4)}.json"
    env = {**cli_env(root, agent), "BENCH_IMPORTS_OUT": str(out)}
    sh(PY, "-c", IMPORT_CHECK, json.dumps(list(args)), env=env)
    data: dict[str, Any] = json.loads(out.read_text())
    out.unlink()
    return data


def importtime_top(module: str, top: int = 10) -> list[tuple[str, float]]:
    """The slowest imports one or two levels under ``module`` (cumulative ms), from ``-X importtime``."""
    proc = subprocess.run([PY, "-X", "importtime", "-c", f"import {module}"], capture_output=True, text=True)
    rows = []
    for line in proc.stderr.splitlines():
        parts = line.split("|")
        if not line.startswith("import time:") or len(parts) != 3:
            continue
        name = parts[2]
        depth = (len(name) - len(name.lstrip(" ")) - 1) // 2
        if depth in (1, 2):
            try:
                rows.append(("  " * (depth - 1) + name.strip(), int(parts[1]) / 1000))
            except ValueError:
                continue
    return sorted(rows, key=lambda r: -r[1])[:top]


# --- 1. CLI wall time ---------------------------------------------------------------------------


def bench_cli(cfg: Config, fx: Fixtures, res: Results) -> None:
    f = fx.get(cfg.medium)
    root, size = f.root, human(cfg.medium)
    samples: dict[str, list[float]] = defaultdict(list)
    inbox_bytes: list[int] = []
    for i in range(cfg.runs + 2):  # two warm-up rounds, interleaved so noise hits all alike
        keep = i >= 2
        t0 = pc()
        sh(PY, "-c", "pass")
        t_pass = pc() - t0
        t0 = pc()
        sh(PY, "-c", "import mailslot.cli")
        t_import = pc() - t0
        t_send, _ = run_cli(root, "alice", "send", "carol", "-s", SUBJECT, "-m", BODY)
        c_send = LAST_CPU[0]
        t_send_committed = LAST_COMMITTED[0]
        store.deliver(f.room, new_message())
        t_inbox, out = run_cli(root, "bob", "inbox")
        c_inbox = LAST_CPU[0]
        if len(out.splitlines()) != 1:
            raise RuntimeError(f"inbox printed {out!r}, expected one line")
        msg = new_message()
        store.deliver(f.room, msg)
        t_read, out_read = run_cli(root, "bob", "read", msg.id)
        c_read = LAST_CPU[0]
        if out_read != msg.raw:
            raise RuntimeError("read printed something other than the message")
        if keep:
            for k, v in (
                ("pass", t_pass),
                ("import", t_import),
                ("send", t_send),
                ("inbox", t_inbox),
                ("read", t_read),
                ("send_cpu", c_send),
                ("send_committed", t_send_committed),
                ("inbox_cpu", c_inbox),
                ("read_cpu", c_read),
            ):
                samples[k].append(v * 1000)
            inbox_bytes.append(len(out))
    res.shared["inbox_bytes_1"] = inbox_bytes
    ms = {k: v for k, v in samples.items()}
    res.add("startup.python", "floor: python -c pass", "ms", ms["pass"])
    imp = res.add("startup.import_cli", "floor: python -c 'import mailslot.cli'", "ms", ms["import"])
    res.add("cli.send", f"mailslot send, new process, {size} archived", "ms", ms["send"], Goal("<=", 100))
    res.add(
        "cli.send_committed", "  send: start -> its commit made (deferred child)", "ms", ms["send_committed"]
    )
    inbox = res.add(
        "cli.inbox",
        f"mailslot inbox (1 unseen), new process, {size} archived",
        "ms",
        ms["inbox"],
        Goal("<=", 100),
    )
    res.add(
        "cli.read",
        f"mailslot read (fresh msg), new process, {size} archived",
        "ms",
        ms["read"],
        Goal("<=", 100),
    )
    res.ratio("cli.inbox_over_import", "  ratio inbox / import floor", inbox, imp)
    for cmd in ("send", "inbox", "read"):
        res.add(
            f"cli.{cmd}_cpu",
            f"  CPU time of `{cmd}` + its git children (load-proof)",
            "ms",
            ms[f"{cmd}_cpu"],
        )

    checks = {}
    msg = new_message()
    store.deliver(f.room, msg)
    for name, agent, args in (
        ("send", "alice", ("send", "carol", "-s", SUBJECT, "-m", "x")),
        ("inbox", "bob", ("inbox",)),
        ("read", "bob", ("read", msg.id)),
    ):
        checks[name] = imports_of(root, agent, fx.tmp, *args)
    clean = [n for n in ("inbox", "read") if not checks[n]["heavy"] and checks[n]["code"] in (0, None)]
    res.add(
        "cli.no_heavy_imports",
        "inbox and read import neither git nor libtmux (1=yes)",
        "",
        [1.0 if len(clean) == 2 else 0.0],
        Goal("==", 1),
        notes="heavy modules loaded after the command: "
        + "; ".join(f"{n}: {', '.join(c['heavy']) or 'none'}" for n, c in checks.items()),
    )
    res.details["cli"] = {
        "archived": cfg.medium,
        "imports_after_command": checks,
        "importtime_top_level_ms(import mailslot.cli)": importtime_top("mailslot.cli"),
    }


# --- 2. commit cost -----------------------------------------------------------------------------


def bench_commit(cfg: Config, fx: Fixtures, res: Results) -> None:
    sizes = [s for s in (cfg.small, cfg.medium, cfg.large) if s]
    rooms = {s: fx.get(s) for s in sizes}
    total: dict[int, list[float]] = defaultdict(list)
    commit_only: dict[int, list[float]] = defaultdict(list)
    gits: dict[int, list[list[tuple[str, float]]]] = defaultdict(list)
    for i in range(cfg.runs + 3):
        for s in sizes:  # interleaved: drift hits every size alike
            room = rooms[s].room
            msg = new_message(thread=None)
            with git_timings() as rec:
                t0 = pc()
                store.deliver(room, msg, commit_now=False)
                t1 = pc()
                sha = vcs.commit_pending(room)
                t2 = pc()
            if sha is None:
                raise RuntimeError("nothing was committed")
            if i >= 3:
                total[s].append((t2 - t0) * 1000)
                commit_only[s].append((t2 - t1) * 1000)
                gits[s].append(rec)
    figs = {}
    for s in sizes:
        figs[s] = res.add(f"commit.one.{s}", f"deliver + commit 1 msg, {human(s)} archived", "ms", total[s])
    for s in sizes:
        res.add(f"commit.only.{s}", f"  of which commit_pending, {human(s)} archived", "ms", commit_only[s])
    big = cfg.large or cfg.medium
    res.ratio(
        f"commit.ratio.{big}_{cfg.small}",
        f"ratio commit {human(big)} / {human(cfg.small)}",
        figs[big],
        figs[cfg.small],
        Goal("<=", 2.0),
    )
    res.details["commit"] = {
        "git_ms_median_per_subcommand": {str(s): breakdown(gits[s]) for s in sizes},
        "index_bytes": {str(s): (rooms[s].root / ".git" / "index").stat().st_size for s in sizes},
        "git_processes_per_commit": {str(s): len(gits[s][0]) for s in sizes},
    }
    if cfg.large:
        res.details["commit"]["what_if"] = what_if_commit(cfg, rooms[cfg.large], res)


WHAT_IFS = {
    "split": "core.splitIndex",
    "v4": "index.version=4",
    "split+v4": "splitIndex + version 4",
}


@contextlib.contextmanager
def index_mode(f: Fixture, mode: str) -> Iterator[None]:
    """Repository configuration of a what-if (the product's code is unchanged); reverted after."""
    if "v4" in mode:
        git(f.root, "update-index", "--index-version", "4")
    if "split" in mode:
        git(f.root, "config", "core.splitIndex", "true")
        git(f.root, "update-index", "--split-index")
    try:
        yield
    finally:
        if "split" in mode:
            git(f.root, "update-index", "--no-split-index")
            git(f.root, "config", "--unset", "core.splitIndex")
        if "v4" in mode:
            git(f.root, "update-index", "--index-version", "2")


def what_if_commit(cfg: Config, f: Fixture, res: Results) -> dict[str, Any]:
    """The commit figure on the big fixture under each what-if index configuration."""
    out: dict[str, Any] = {}
    for mode, label in WHAT_IFS.items():
        samples, gits = [], []
        with index_mode(f, mode):
            for i in range(cfg.runs + 3):
                with git_timings() as rec:
                    t0 = pc()
                    store.deliver(f.room, new_message(), commit_now=False)
                    vcs.commit_pending(f.room)
                    dt = pc() - t0
                if i >= 3:
                    samples.append(dt * 1000)
                    gits.append(rec)
            index_bytes = (f.root / ".git" / "index").stat().st_size
        res.add(
            f"whatif.commit.{mode}",
            f"  what-if {label}: commit 1 msg, {human(f.archived)}",
            "ms",
            samples,
            notes="repository config only, for the fix suggestion",
        )
        out[mode] = {"git_ms_median_per_subcommand": breakdown(gits), "index_bytes": index_bytes}
    return out


# --- 3. throughput ------------------------------------------------------------------------------


def count_files(folder: Path) -> int:
    return sum(1 for e in os.scandir(folder) if e.name.endswith(".md"))


def bench_throughput(cfg: Config, fx: Fixtures, res: Results) -> None:
    f = fx.get(cfg.medium)
    root, size = f.root, human(cfg.medium)
    carol_new = root / "inbox" / "carol" / "new"
    script = (
        'for i in $(seq "$N"); do "$MAILSLOT" send carol -s "Throughput $i" -m "bench" >/dev/null '
        "|| exit 1; done"
    )

    cpu: dict[int, list[float]] = defaultdict(list)  # CPU ms per message (bash + mailslot + git)

    def senders(count: int, each: int) -> tuple[float, int]:
        """``count`` processes, each a shell loop of ``each`` sends: msg/s and commits made."""
        before = count_files(carol_new)
        commits = int(git(root, "rev-list", "--count", "HEAD"))
        procs = []
        c0 = child_cpu()
        t0 = pc()
        for k in range(count):
            env = {**cli_env(root, AGENTS[k % 2]), "N": str(each), "MAILSLOT": MAILSLOT}
            procs.append(subprocess.Popen(["bash", "-c", script], env=env, stderr=subprocess.PIPE))
        errors = [p.communicate()[1] for p in procs]
        if any(p.returncode for p in procs):
            raise RuntimeError(f"a sender failed: {[e.decode()[-300:] for e in errors if e]}")
        # the CLI commits in detached children: the clock stops when the last message is committed
        wait_for(lambda: not store_journal(f.room), 60, "the deferred commits")
        dt = pc() - t0
        n = count * each
        cpu[count].append((child_cpu() - c0) / n * 1000)
        if count_files(carol_new) - before != n or vcs.uncommitted(f.room) or store_journal(f.room):
            raise RuntimeError("not every CLI message was delivered and committed")
        return n / dt, int(git(root, "rev-list", "--count", "HEAD")) - commits

    cli_rates, commits_made, one_rates = [], [], []
    for _ in range(cfg.throughput_runs):  # alternated, so load from elsewhere hits both alike
        rate, commits = senders(cfg.senders, cfg.sends_each)
        cli_rates.append(rate)
        commits_made.append(commits)
        one_rates.append(senders(1, cfg.sends_each)[0])
    n = cfg.senders * cfg.sends_each
    many = res.add(
        "throughput.cli",
        f"{cfg.senders} concurrent CLI senders x {cfg.sends_each} sends, {size} archived",
        "msg/s",
        cli_rates,
        notes=f"commits per run: {commits_made} for {n} messages each (group commits); CPU per message "
        f"(process trees) median {statistics.median(cpu[cfg.senders]):.0f} ms",
    )
    one = res.add(
        "throughput.cli_1", f"  reference: 1 CLI sender x {cfg.sends_each} sends", "msg/s", one_rates
    )
    res.ratio("throughput.cli_scaling", f"  ratio {cfg.senders} senders / 1 sender", many, one)
    lib, batched, many = [], [], []
    for _ in range(cfg.throughput_runs):
        t0 = pc()
        for _ in range(cfg.lib_n):
            store.deliver(f.room, new_message(to="carol"))
        lib.append(cfg.lib_n / (pc() - t0))
        t0 = pc()
        for _ in range(cfg.lib_n):
            store.deliver(f.room, new_message(to="carol"), commit_now=False)
        vcs.commit_pending(f.room)
        batched.append(cfg.lib_n / (pc() - t0))
        t0 = pc()  # composing included, as above
        store.deliver_many(f.room, [new_message(to="carol") for _ in range(cfg.lib_n)])
        many.append(cfg.lib_n / (pc() - t0))
        if store_journal(f.room):
            raise RuntimeError("journal not empty after library sends")
    res.add(
        "throughput.library",
        f"library compose+deliver (commits each), N={cfg.lib_n}, {size}",
        "msg/s",
        lib,
        notes="the default deliver() commits before it returns: one git commit (~20-35 ms) per message",
    )
    res.add(
        "throughput.library_batched",
        f"library, deliver(commit_now=False) + 1 commit, N={cfg.lib_n}",
        "msg/s",
        batched,
        notes="one fsync'd copy and one journal entry per call; see the fsync row for this disk's floor",
    )
    res.add(
        "throughput.library_many",
        f"library, store.deliver_many (one entry, one commit), N={cfg.lib_n}",
        "msg/s",
        many,
        Goal(">=", 1000),
        notes="the library's send path for many messages (the goal row)",
    )
    fsync = fsync_latencies(f.root / "inbox" / "carol" / "tmp", cfg.lib_n)
    res.add(
        "throughput.fsync",
        "  floor: create+write+fsync one message-sized file, this disk",
        "ms",
        fsync,
        notes="every durable one-by-one deliver() pays this once; 1000/median = its msg/s ceiling",
    )
    # where the time of one library send goes (profiling evidence)
    prof = cProfile.Profile()
    prof.enable()
    for _ in range(100):
        store.deliver(f.room, new_message(to="carol"), commit_now=False)
    vcs.commit_pending(f.room)
    prof.disable()
    prof_commit = cProfile.Profile()
    prof_commit.enable()
    for _ in range(20):
        store.deliver(f.room, new_message(to="carol"))
    prof_commit.disable()
    wanted = {
        "compose (render+parse)": ("message.py", "compose"),
        "deliver": ("store.py", "deliver"),
        "load_agent (cards)": ("mailroom.py", "load_agent"),
        "write_new (fsync)": ("fsutil.py", "write_new"),
        "posix.fsync": ("~", "<built-in method posix.fsync>"),
        "journal.record": ("journal.py", "record"),
        "commit_pending": ("vcs.py", "commit_pending"),
    }
    res.details["throughput"] = {
        "profile_100_batched_sends_ms": profile_top(prof, wanted),
        "profile_20_committing_sends_ms": profile_top(prof_commit, wanted),
        "cpu_ms_per_cli_message": {f"{k} senders": [round(c, 1) for c in v] for k, v in cpu.items()},
        "fsync_experiment_ms": fsync_experiment(f.root / "inbox" / "carol" / "tmp", cfg.lib_n),
    }


def fsync_latencies(folder: Path, n: int) -> list[float]:
    """ms to create, write and fsync each of n message-sized files (what one deliver() must do)."""
    data = new_message().raw
    out = []
    for i in range(n):
        path = folder / f"bench-fsync-{i}"
        t0 = pc()
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        os.write(fd, data)
        os.fsync(fd)
        os.close(fd)
        out.append((pc() - t0) * 1000)
        path.unlink()
    return out


def fsync_experiment(folder: Path, n: int) -> dict[str, float]:
    """Cost of n message-sized files: write+fsync each (as deliver does) vs write all, then fsync all."""
    data = new_message().raw
    out = {}
    for mode in ("write_fsync_each", "write_all_then_fsync_all", "write_no_fsync"):
        paths = [folder / f"bench-{mode}-{i}" for i in range(n)]
        t0 = pc()
        fds = []
        for p in paths:
            fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            os.write(fd, data)
            if mode == "write_fsync_each":
                os.fsync(fd)
                os.close(fd)
            else:
                fds.append(fd)
        for fd in fds:
            if mode == "write_all_then_fsync_all":
                os.fsync(fd)
            os.close(fd)
        out[mode] = round((pc() - t0) * 1000, 1)
        for p in paths:
            p.unlink()
    out["files"] = n
    return out


def store_journal(room: Mailroom) -> list[Any]:
    from mailslot import journal

    return journal.pending(room)


# --- 4. inbox with many unseen ------------------------------------------------------------------


def bench_inbox(cfg: Config, fx: Fixtures, res: Results) -> None:
    f = fx.get(0, cfg.unseen)
    new, cur = f.root / "inbox" / "bob" / "new", f.root / "inbox" / "bob" / "cur"

    def restore() -> None:
        for e in list(os.scandir(cur)):
            os.rename(e.path, new / e.name)
        f.reset()

    samples, per_msg = [], []
    page = 50  # the default --limit: the oldest 50 are listed and seen, the rest counted
    for i in range(cfg.inbox_runs + 1):
        dt, out = run_cli(f.root, "bob", "inbox")
        lines = out.splitlines()
        more = f"(+{cfg.unseen - page} more; run mailslot inbox again)".encode()
        if len(lines) != page + 1 or lines[-1] != more:
            raise RuntimeError(f"inbox listed {len(lines)} lines, expected {page} and {more!r}")
        if i >= 1:
            samples.append(dt * 1000)
            per_msg.append(sum(len(x) + 1 for x in lines[:page]) / page)
        restore()
    size = human(cfg.unseen)
    res.add(
        "inbox.many_unseen",
        f"mailslot inbox, {size} unseen in one inbox, new process",
        "ms",
        samples,
        Goal("<=", 150),
        notes="lists the oldest 50 (the default page) and says how many more wait; moves those 50 to "
        "cur/ and commits them (deferred); fixture restored between runs (not timed)",
    )
    res.shared["inbox_bytes_many"] = per_msg
    # evidence: the same command in-process under cProfile
    with git_timings() as rec:
        prof = profile_cli(f.root, "bob", "inbox")
    restore()
    wanted = {
        "store.inbox": ("store.py", "inbox"),
        "scan+parse (store._stored)": ("store.py", "_stored"),
        "message.parse": ("message.py", "parse"),
        "yaml load": ("yaml/__init__.py", "load"),
        "read_regular": ("fsutil.py", "read_regular"),
        "mark_seen": ("store.py", "mark_seen"),
        "move_noclobber": ("fsutil.py", "move_noclobber"),
        "commit (vcs.commit_pending)": ("vcs.py", "commit_pending"),
        "render lines (click.echo)": ("click/utils.py", "echo"),
        "_age": ("cli.py", "_age"),
    }
    res.details["inbox_many_unseen"] = {
        "unseen": cfg.unseen,
        "profile_in_process_ms": profile_top(prof, wanted),
        "git_ms_in_process": breakdown([rec]),
    }


# --- 5. closing a thread ------------------------------------------------------------------------


def bench_close(cfg: Config, fx: Fixtures, res: Results) -> None:
    sizes = [s for s in (cfg.medium, cfg.large) if s]
    rooms = {s: fx.get(s) for s in sizes}
    samples: dict[int, list[float]] = defaultdict(list)
    gits: dict[int, list[list[tuple[str, float]]]] = defaultdict(list)
    for i in range(cfg.runs + 2):
        for s in sizes:
            room = rooms[s].room
            tid = close_fixture_thread(room)
            with git_timings() as rec:
                t0 = pc()
                done = threads.close(room, tid, "alice")
                dt = pc() - t0
            if done.moved != 20 or count_files(room.archive_dir(tid)) != 20:
                raise RuntimeError(f"close moved {done.moved}")
            if i >= 2:
                samples[s].append(dt * 1000)
                gits[s].append(rec)
    for s in sizes:
        res.add(
            f"close.{s}",
            f"close a 20-message thread, {human(s)} archived",
            "ms",
            samples[s],
            Goal("<=", 100),
        )
    res.details["close"] = {"git_ms_median_per_subcommand": {str(s): breakdown(gits[s]) for s in sizes}}
    if cfg.large:  # evidence for the fix suggestion: the same close with a split index
        f = rooms[cfg.large]
        what_if, what_gits = [], []
        with index_mode(f, "split"):
            for i in range(cfg.runs + 2):
                tid = close_fixture_thread(f.room)
                with git_timings() as rec:
                    t0 = pc()
                    threads.close(f.room, tid, "alice")
                    dt = pc() - t0
                if i >= 2:
                    what_if.append(dt * 1000)
                    what_gits.append(rec)
        res.add(
            "whatif.close.split",
            f"  what-if core.splitIndex: close, {human(cfg.large)}",
            "ms",
            what_if,
            notes="repository config only, for the fix suggestion",
        )
        res.details["close"]["what_if_split_git_ms"] = breakdown(what_gits)


def close_fixture_thread(room: Mailroom) -> str:
    """Deliver and commit a fresh 20-message thread between alice and bob; return its id."""
    tid = names.new_thread_id()
    for j in range(20):
        sender, to = ("alice", "bob") if j % 2 == 0 else ("bob", "alice")
        store.deliver(room, new_message(sender, to, thread=tid), commit_now=False)
    vcs.commit_pending(room)
    return tid


# --- 6. tap latency -----------------------------------------------------------------------------

AGENT_PY = r"""
import sys
CLEAR = "\x1b[2J\x1b[H"
sys.stdout.write(CLEAR + "fake agent ready\n")
sys.stdout.flush()
while True:
    try:
        line = input("> ")
    except EOFError:
        break
    sys.stdout.write(CLEAR + "got: " + line.strip()[-6:] + "\n")
    sys.stdout.flush()
"""

POLLER_PY = r"""
import json, re, subprocess, sys, time
sock, pane = sys.argv[1], sys.argv[2]
def capture():
    return subprocess.run(["tmux", "-S", sock, "capture-pane", "-p", "-t", pane],
                          capture_output=True, text=True).stdout
print("ready", flush=True)
for line in sys.stdin:
    cmd = json.loads(line)
    pattern = re.compile(cmd["visible"])
    capture()
    print("armed", flush=True)
    deadline = time.perf_counter() + cmd.get("timeout", 20)
    nonce = visible = submitted = None
    polls, spent = 0, 0.0
    while time.perf_counter() < deadline:
        t0 = time.perf_counter()
        text = capture()
        now = time.perf_counter()
        polls += 1
        spent += now - t0
        if nonce is None:
            m = pattern.search(text)
            if m:
                nonce, visible = m.group(1), now
        if nonce is not None and ("got: " + nonce) in text:
            submitted = now
            break
    print(json.dumps({"nonce": nonce, "visible": visible, "submitted": submitted,
                      "poll_ms": 1000 * spent / max(polls, 1)}), flush=True)
"""


class Poller:
    """A separate process that polls ``capture-pane`` tightly (no GIL shared with the daemon)."""

    def __init__(self, script: Path, sock: str, pane: str) -> None:
        self.proc = subprocess.Popen(
            [PY, str(script), sock, pane], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.stdin, self.stdout = self.proc.stdin, self.proc.stdout
        if self.stdout.readline().strip() != "ready":
            raise RuntimeError("poller did not start")

    def arm(self, visible: str) -> None:
        self.stdin.write(json.dumps({"visible": visible}) + "\n")
        self.stdin.flush()
        if self.stdout.readline().strip() != "armed":
            raise RuntimeError("poller not armed")

    def result(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.stdout.readline())
        if data["visible"] is None or data["submitted"] is None:
            raise RuntimeError(f"tap text never showed up / was never read: {data}")
        return data

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.stdin.close()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def new_socket() -> str:
    return f"/tmp/mailslot-bench-{os.getpid()}-{secrets.token_hex(4)}.sock"


def kill_tmux(sock: str) -> None:
    subprocess.run(["tmux", "-S", sock, "kill-server"], capture_output=True, check=False)
    Path(sock).unlink(missing_ok=True)


def bench_tap(cfg: Config, fx: Fixtures, res: Results, cleanup: list[Callable[[], None]]) -> None:
    from mailslot import tmux as mtmux
    from mailslot.daemon import Daemon
    from mailslot.engine import Policy
    from mailslot.profiles import profile
    from mailslot.tapper import TmuxNotifier

    work = fx.tmp / "tap"
    work.mkdir(exist_ok=True)
    (work / "agent.py").write_text(AGENT_PY)
    (work / "poller.py").write_text(POLLER_PY)
    f = fx.build(0, 0, "room-tap")  # its own small mailroom: bob gets a pane
    room = f.room
    sock = new_socket()
    cleanup.append(lambda: kill_tmux(sock))
    tmux(sock, "new-session", "-d", "-s", "bench", "-x", "160", "-y", "40", PY, str(work / "agent.py"))
    pane = tmux(sock, "display-message", "-p", "-t", "bench", "#{pane_id}").strip()
    wait_for(
        lambda: ">" in tmux(sock, "capture-pane", "-p", "-t", pane).splitlines(), 10, "the agent's prompt"
    )
    registry.register(room, "bob", target=pane, sock=sock)
    settle_ms = profile("generic").settle_ms

    current: dict[str, Any] = {}
    records: list[dict[str, Any]] = []
    lock = threading.Lock()
    orig_text, orig_enter = mtmux.send_text, mtmux.send_enter

    def send_text(p: str, s: str | None, text: str) -> bool:
        t0 = pc()
        ok = orig_text(p, s, text)
        current["text"] = (t0, pc(), text)
        return ok

    def send_enter(p: str, s: str | None) -> bool:
        current.setdefault("enters", []).append(pc())
        return orig_enter(p, s)

    class TimedNotifier(TmuxNotifier):
        def _gate(self, p: str, s: str | None, prof: Any, urgent: bool) -> Any:
            t0 = pc()
            out = super()._gate(p, s, prof, urgent)
            current["gate"] = (t0, pc())
            return out

        def tap(self, p: str, s: str | None, prof: Any, line: str, *, urgent: bool) -> Any:
            current.clear()
            current["called"] = pc()
            out = super().tap(p, s, prof, line, urgent=urgent)
            current.update(done=pc(), result=out.result, line=line)
            with lock:
                records.append(dict(current))
            return out

    mtmux.send_text, mtmux.send_enter = send_text, send_enter  # type: ignore[assignment]
    logs: list[str] = []
    policy = Policy(retap_after=3600, budget=1_000_000, loop_taps=1_000_000)
    daemon = Daemon(room, TimedNotifier(), policy, rescan=3600, log=logs.append)
    runner = threading.Thread(target=daemon.serve, name="bench-daemon", daemon=True)
    mtmux.use_control(cfg.tap_control)  # as `mailslot watch` does: one persistent tmux client
    poller: Poller | None = None
    try:
        runner.start()
        wait_for(lambda: any("watching" in line for line in logs), 15, "the daemon to start")
        poller = Poller(work / "poller.py", sock, pane)
        last_output = [pc()]

        def quiet() -> None:  # tmux's window_activity must be >= 2 s old: no idle confirmation
            time.sleep(max(0.0, last_output[0] + 2.1 - pc()))

        def mailslot_tap() -> dict[str, float]:
            assert poller is not None
            n = len(records)
            poller.arm(r"\[mailslot\][^\n]*?(#t[a-z0-9]{4})")
            store.deliver(room, new_message(), commit_now=False)
            t_land = pc()  # the link into new/ happened just before (then only a journal write)
            seen = poller.result()
            wait_for(lambda: len(records) > n, 15, "the tap to finish")
            rec = records[-1]
            if rec["result"] != "submitted" or not rec["line"].endswith(seen["nonce"]):
                raise RuntimeError(f"unexpected tap: {rec}")
            store.inbox(room, "bob")  # the agent reads its mail: the next message taps afresh
            last_output[0] = seen["submitted"]
            return {
                "visible": (seen["visible"] - t_land) * 1000,
                "submitted": (seen["submitted"] - t_land) * 1000,
                "detect": (rec["called"] - t_land) * 1000,
                "gate": (rec["gate"][1] - rec["gate"][0]) * 1000,
                "typed": (rec["text"][1] - t_land) * 1000,
                "send_keys": (rec["text"][1] - rec["text"][0]) * 1000,
                "settle": (rec["enters"][0] - rec["text"][1]) * 1000,
                "bytes": float(len(rec["line"])),
                "poll_ms": seen["poll_ms"],
            }

        def orchestrator_send() -> dict[str, float]:
            assert poller is not None
            nonce = "#o" + secrets.token_hex(2)
            text = f"[orch] 1 new for bob from alice. Run: mailslot inbox -a bob {nonce}"
            poller.arm(r"\[orch\][^\n]*?(#o[a-z0-9]{4})")
            env = {k: v for k, v in os.environ.items() if k != "TMUX"}
            t0 = pc()
            subprocess.run(["tmux", "-S", sock, "send-keys", "-t", pane, text], env=env, check=True)
            time.sleep(0.5)
            subprocess.run(["tmux", "-S", sock, "send-keys", "-t", pane, "Enter"], env=env, check=True)
            seen = poller.result()
            last_output[0] = seen["submitted"]
            return {
                "visible": (seen["visible"] - t0) * 1000,
                "submitted": (seen["submitted"] - t0) * 1000,
            }

        taps: list[dict[str, float]] = []
        orch: list[dict[str, float]] = []
        quiet()
        mailslot_tap()  # warm-up (first libtmux/tmux calls, caches)
        for _ in range(cfg.taps):  # interleaved: same machine state for both
            quiet()
            taps.append(mailslot_tap())
            quiet()
            orch.append(orchestrator_send())
        confirmed = [mailslot_tap() for _ in range(cfg.confirm_taps)]  # agent just printed: confirm
    finally:
        mtmux.send_text, mtmux.send_enter = orig_text, orig_enter  # type: ignore[assignment]
        if poller is not None:
            poller.close()
        daemon.stop()
        runner.join(timeout=20)
        mtmux.use_control(False)
        kill_tmux(sock)

    def col(rows: list[dict[str, float]], k: str) -> list[float]:
        return [r[k] for r in rows]

    vis = res.add(
        "tap.visible",
        "tap: landed in new/ -> text visible (idle agent)",
        "ms",
        col(taps, "visible"),
        Goal("<=", 10, p95=50),
        notes="quiet pane (>=2 s since output): no idle confirmation; settle is after this point; "
        + (
            "tmux through the daemon's control-mode client"
            if cfg.tap_control
            else "a tmux process per command"
        ),
    )
    res.add("tap.detect", "  of which: landed -> notifier.tap() called", "ms", col(taps, "detect"))
    res.add("tap.gate", "  of which: gate (probe + capture, no confirm)", "ms", col(taps, "gate"))
    res.add("tap.send_keys", "  of which: send-keys -l (libtmux)", "ms", col(taps, "send_keys"))
    res.add(
        "tap.settle",
        f"settle: typed -> Enter sent (profile settle_ms={settle_ms})",
        "ms",
        col(taps, "settle"),
    )
    sub = res.add(
        "tap.submitted", "tap: landed -> agent read the line (incl. settle)", "ms", col(taps, "submitted")
    )
    res.add(
        "tap.visible_confirm",
        "tap visible, pane active <2 s ago (idle confirmation)",
        "ms",
        col(confirmed, "visible"),
        notes=f"gate sleeps {TmuxNotifier().confirm * 1000:.0f} ms and re-reads the screen",
    )
    res.add("tap.gate_confirm", "  of which: gate incl. confirmation", "ms", col(confirmed, "gate"))
    ovis = res.add(
        "orch.visible", "Tmux-Orchestrator send-keys: start -> text visible", "ms", col(orch, "visible")
    )
    osub = res.add(
        "orch.submitted", "Tmux-Orchestrator: start -> read (sleep 0.5, Enter)", "ms", col(orch, "submitted")
    )
    res.ratio("tap.ratio_visible", "ratio tap visible / orchestrator visible", vis, ovis)
    res.ratio("tap.ratio_submitted", "ratio tap submitted / orchestrator submitted", sub, osub)
    res.shared["tap_bytes"] = col(taps, "bytes") + col(confirmed, "bytes")
    res.details["tap"] = {
        "poll_period_ms_median": statistics.median(col(taps, "poll_ms")),
        "profile_settle_ms": settle_ms,
        "confirm_ms": TmuxNotifier().confirm * 1000,
        "daemon_log_tail": logs[-5:],
    }


# --- 7. daemon idle cost ------------------------------------------------------------------------


def proc_cpu_seconds(pid: int) -> tuple[float, float]:
    """(own utime+stime, waited-for children's cutime+cstime) in seconds, from /proc/<pid>/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    own = (int(fields[11]) + int(fields[12])) / tick
    children = (int(fields[13]) + int(fields[14])) / tick
    return own, children


def proc_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def bench_idle(cfg: Config, fx: Fixtures, res: Results, cleanup: list[Callable[[], None]]) -> None:
    f = fx.get(cfg.medium)
    sock = new_socket()
    cleanup.append(lambda: kill_tmux(sock))
    tmux(sock, "new-session", "-d", "-s", "idle", "-x", "80", "-y", "24", "cat")
    for _ in range(cfg.idle_agents - 1):
        tmux(sock, "new-window", "-t", "idle", "cat")
    panes = tmux(sock, "list-panes", "-s", "-t", "idle", "-F", "#{pane_id}").split()
    for i, pane in enumerate(panes):
        registry.register(f.room, f"idle-{i:02d}", target=pane, sock=sock)
    log = fx.tmp / "watch.log"
    with open(log, "wb") as fh:
        proc = subprocess.Popen(
            [MAILSLOT, "watch"], env=cli_env(f.root, "alice"), stdout=fh, stderr=fh, start_new_session=True
        )

    def stop() -> None:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    cleanup.append(stop)
    try:
        wait_for(lambda: b"watching" in log.read_bytes(), 30, "mailslot watch to start", 0.05)
        if f"(pid {proc.pid})".encode() not in log.read_bytes():
            raise RuntimeError("the measured pid is not the daemon's own")
        time.sleep(3.0)  # let the start-up scan and sweep finish
        window = 5.0 if cfg.idle_seconds >= 30 else 2.0
        cpu_windows, rss = [], []
        own0, kids0 = proc_cpu_seconds(proc.pid)
        start = last = pc()
        prev = own0 + kids0
        while pc() - start < cfg.idle_seconds:
            time.sleep(max(0.0, min(1.0, start + cfg.idle_seconds - pc())))
            rss.append(proc_rss_mb(proc.pid))
            if pc() - last >= window - 0.01:
                own, kids = proc_cpu_seconds(proc.pid)
                cpu_windows.append((own + kids - prev) / (pc() - last) * 100)
                prev, last = own + kids, pc()
        own1, kids1 = proc_cpu_seconds(proc.pid)
        elapsed = pc() - start
        if proc.poll() is not None:
            raise RuntimeError(f"mailslot watch exited: {log.read_text()[-500:]}")
        hwm = 0.0
        for line in Path(f"/proc/{proc.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                hwm = int(line.split()[1]) / 1024
    finally:
        stop()
        kill_tmux(sock)
    avg = (own1 - own0 + kids1 - kids0) / elapsed * 100
    res.add(
        "idle.cpu",
        f"watch idle, {len(panes)} agents w/ panes, CPU per {window:g} s window",
        "%",
        cpu_windows,
        notes=f"over {elapsed:.0f} s: {avg:.3f} % of a core (own {100 * (own1 - own0) / elapsed:.3f} %, "
        f"git children {100 * (kids1 - kids0) / elapsed:.3f} %); /proc tick = 10 ms",
    )
    res.add(
        "idle.cpu_avg",
        f"  watch idle CPU, average over {cfg.idle_seconds:g} s",
        "%",
        [avg],
        Goal("<", 1.0),
    )
    res.add(
        "idle.rss",
        "watch idle RSS (VmRSS, sampled each second)",
        "MB",
        rss,
        Goal("<=", 80, "max"),
        notes=f"VmHWM {hwm:.1f} MB",
    )
    res.details["idle"] = {
        "seconds": round(elapsed, 1),
        "agents": len(panes),
        "archived": cfg.medium,
        "vm_hwm_mb": round(hwm, 1),
        "rescan_seconds": 30,
        "log_tail": log.read_text(errors="replace").splitlines()[-5:],
    }
    fx.get(cfg.medium)  # drop the idle agents again


# --- 8. bytes -----------------------------------------------------------------------------------


def bench_bytes(cfg: Config, fx: Fixtures, res: Results) -> None:
    from mailslot import tapline

    tap = res.shared.get("tap_bytes")
    how_tap = "lines typed by the tap figure"
    if not tap:
        tap = [
            float(len(tapline.build("bob", 1, ["alice"], "tabcd"))),
            float(len(tapline.build("backend", 3, ["frontend", "reviewer", "qa"], "tabcd"))),
            float(len(tapline.build("backend-api", 7, ["frontend", "reviewer", "qa", "docs"], "tabcd"))),
        ]
        how_tap = "built with tapline.build for typical names (tap figure not run)"
    res.add("bytes.tap", "bytes typed into a pane per tap", "B", tap, Goal("<=", 120, "max"), notes=how_tap)
    longest = "a" * 32  # the longest valid agent names, 3 senders, urgent
    worst = tapline.build(longest, 99, [longest, "b" * 32, "c" * 32, "d"], "tabcd", urgent=True)
    res.add(
        "bytes.tap_worst",
        "  worst case: 32-char agent names, urgent",
        "B",
        [float(len(worst))],
        Goal("<=", 120, "max"),
        notes=f"tapline.MAX_LEN is {tapline.MAX_LEN}: {worst}",
    )
    per_msg = res.shared.get("inbox_bytes_1") or []
    how = f"one-line inbox outputs of the cli figure, subject of {len(SUBJECT)} chars"
    if not per_msg:
        f = fx.get(cfg.small)
        per_msg = []
        for _ in range(5):
            store.deliver(f.room, new_message())
            per_msg.append(len(run_cli(f.root, "bob", "inbox")[1]))
        how = f"5 one-line inbox outputs, subject of {len(SUBJECT)} chars"
    res.add(
        "bytes.inbox",
        "bytes printed by inbox per message",
        "B",
        [float(b) for b in per_msg],
        Goal("<=", 120, "max"),
        notes=how + f"; the line minus its subject is {max(per_msg) - len(SUBJECT)} B",
    )


# --- main ---------------------------------------------------------------------------------------


def compile_package() -> str:
    """Write the package's bytecode, as ``pip install`` does for an installed package.

    An editable install in an environment with PYTHONDONTWRITEBYTECODE=1 (this sandbox) would
    otherwise compile every module from source in each new process (~15 ms of every CLI call) and
    measure a cost no installed copy pays."""
    import mailslot

    folder = Path(mailslot.__file__).parent
    ok = compileall.compile_dir(str(folder), quiet=1)
    flag = os.environ.get("PYTHONDONTWRITEBYTECODE", "")
    return f"compiled {folder} ({'ok' if ok else 'errors'}); PYTHONDONTWRITEBYTECODE={flag!r}"


def machine() -> dict[str, Any]:
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "git": sh("git", "--version").decode().strip(),
        "tmux": sh("tmux", "-V").decode().strip(),
        "kernel": platform.release(),
        "loadavg_start": os.getloadavg(),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small sizes and few runs (a smoke run)")
    ap.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="NAME",
        help=f"run only these figures (repeatable or comma-separated): {', '.join(FIGURES)}",
    )
    ap.add_argument("--idle-seconds", type=float, help="daemon idle window (default 60, quick 10)")
    ap.add_argument("--runs", type=int, help="repetitions of the per-operation figures (default 20)")
    ap.add_argument("--large", type=int, help="size of the big fixture (default 100000; 0 skips it)")
    ap.add_argument("--out", type=Path, default=BENCH / "results.json", help="where to write the JSON")
    ap.add_argument("--keep", action="store_true", help="keep the temporary fixtures directory")
    args = ap.parse_args(argv)
    only = [n.strip() for item in args.only for n in item.split(",") if n.strip()]
    unknown = set(only) - set(FIGURES)
    if unknown:
        ap.error(f"unknown figure(s) {', '.join(sorted(unknown))}; choose from {', '.join(FIGURES)}")
    selected = [n for n in FIGURES if not only or n in only]
    for tool in ("git", "tmux"):
        if shutil.which(tool) is None:
            ap.error(f"{tool} is required")
    cfg = Config.make(args.quick, args.idle_seconds, args.runs, args.large)
    tmp = Path(tempfile.mkdtemp(prefix="mailslot-bench-"))
    isolate(tmp)
    fx = Fixtures(tmp)
    res = Results()
    cleanup: list[Callable[[], None]] = []
    started = time.time()
    meta = {"started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "quick": cfg.quick, "config": cfg.__dict__}
    meta.update(machine())
    meta["bytecode"] = compile_package()
    print(f"mailslot bench ({'quick' if cfg.quick else 'full'}): {', '.join(selected)}; fixtures in {tmp}")
    print(HEADER)
    failures: dict[str, str] = {}
    try:
        for name in selected:
            print(f"[{name}]", flush=True)
            res.details.setdefault("loadavg_at_figure_start", {})[name] = os.getloadavg()
            t0 = pc()
            try:
                if name == "tap":
                    bench_tap(cfg, fx, res, cleanup)
                elif name == "idle":
                    bench_idle(cfg, fx, res, cleanup)
                else:
                    globals()[f"bench_{name}"](cfg, fx, res)
            except Exception as e:  # one broken figure must not lose the others
                failures[name] = f"{type(e).__name__}: {e}"
                print(f"  FAILED: {failures[name]}", flush=True)
            res.details.setdefault("seconds_per_figure", {})[name] = round(pc() - t0, 1)
    finally:
        for fn in reversed(cleanup):
            with contextlib.suppress(Exception):
                fn()
        meta["fixture_build_seconds"] = {
            f"{a}+{u}": round(f.build_seconds, 1) for (a, u), f in fx.cache.items()
        }
        meta["loadavg_end"] = os.getloadavg()
        meta["total_seconds"] = round(time.time() - started, 1)
        if args.keep:
            print(f"fixtures kept in {tmp}")
        else:
            print(f"removing {tmp} ...", flush=True)
            shutil.rmtree(tmp, ignore_errors=True)
    out = {
        "meta": meta,
        "figures": [f.as_json() for f in res.figures],
        "details": res.details,
        "failures": failures,
    }
    args.out.write_text(json.dumps(out, indent=2, default=str) + "\n")
    print()
    print(HEADER)
    for fig in res.figures:
        print(row(fig))
    missed = [f.key for f in res.figures if f.ok() is False]
    print(
        f"\n{len(res.figures)} figures, {len(missed)} missed their goal"
        + (f" ({', '.join(missed)})" if missed else "")
        + f"; {meta['total_seconds']} s; results in {args.out}"
    )
    if failures:
        print(f"FAILED figures: {failures}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
