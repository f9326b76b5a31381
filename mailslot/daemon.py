"""``mailslot watch``: the delivery daemon, one per mailroom per host.

It reacts to filesystem events, rescans on start and periodically (``git pull`` and missed events),
runs taps on a small thread pool (one in flight per pane), and group-commits what it changed.
Idle, it blocks on a queue: no polling while no mail is waiting.
"""

from __future__ import annotations

import os
import queue
import signal
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from types import FrameType

from filelock import Timeout

from mailslot import store
from mailslot.daemon_lock import daemon_lock
from mailslot.engine import Engine, Policy, Report
from mailslot.errors import Busy, MailslotError
from mailslot.mailroom import Mailroom, iter_agents, load_agent
from mailslot.tapper import Notifier
from mailslot.watcher import ALL, Watcher

RESCAN_SECONDS = 30.0
SWEEP_EVERY = 10  # rescans between full `git status` sweeps for files changed by hand


def _stderr(line: str) -> None:
    sys.stderr.write(time.strftime("%H:%M:%S ") + line + "\n")
    sys.stderr.flush()


class Daemon:
    """The watch loop. ``notifier`` taps panes (tests may pass a recorder instead of tmux)."""

    def __init__(
        self,
        room: Mailroom,
        notifier: Notifier,
        policy: Policy | None = None,
        *,
        rescan: float = RESCAN_SECONDS,
        log: Callable[[str], None] = _stderr,
    ) -> None:
        self.room = room
        self.engine = Engine(room, notifier, policy)
        self.rescan = rescan
        self.log = log
        self.events: queue.Queue[tuple[str, float]] = queue.Queue()  # (agent or ALL or "", due)
        self.stopping = threading.Event()
        self.pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="mailslot-tap")
        self.running: dict[str, Future[Report]] = {}
        self.due: dict[str, float] = {}
        self.commit_wanted = threading.Event()
        self._lock = daemon_lock(room)

    def serve(self) -> None:
        """Run until SIGINT/SIGTERM or :meth:`stop`. Raises :class:`Busy` if another daemon runs."""
        try:
            self._lock.acquire()
        except Timeout:
            pid = (
                (self.room.state_dir / "daemon.pid").read_text().strip()
                if (self.room.state_dir / "daemon.pid").exists()
                else "?"
            )
            raise Busy(f"mailslot watch is already running for {self.room.root} (pid {pid})") from None
        (self.room.state_dir / "daemon.pid").write_text(f"{os.getpid()}\n")
        for var in ("TMUX", "TMUX_PANE"):  # taps name their server; never inherit the caller's
            os.environ.pop(var, None)
        watcher = Watcher(self.room.root, lambda agent: self.events.put((agent, 0.0)))
        committer = threading.Thread(target=self._commit_loop, name="mailslot-commit", daemon=True)
        try:
            watcher.start()
            committer.start()
            self.log(f"watching {self.room.root} (pid {os.getpid()})")
            self._loop()
        finally:
            watcher.stop()
            self.pool.shutdown(wait=True)
            self.commit_wanted.set()
            committer.join(timeout=10)
            self._commit()
            (self.room.state_dir / "daemon.pid").unlink(missing_ok=True)
            self._lock.release()
            self.log("stopped")

    def install_signals(self) -> None:
        def handler(signum: int, frame: FrameType | None) -> None:
            self.stop()

        signal.signal(signal.SIGTERM, handler)
        signal.signal(signal.SIGINT, handler)

    def stop(self) -> None:
        self.stopping.set()
        self.events.put(("", 0.0))

    def _later(self, name: str, seconds: float) -> None:
        self.events.put((name, time.monotonic() + seconds))

    def _everyone(self) -> list[str]:
        return sorted(set(store.iter_inboxes(self.room)) | {a.name for a in iter_agents(self.room)})

    def _loop(self) -> None:
        next_scan, scans = 0.0, 0
        while not self.stopping.is_set():
            now = time.monotonic()
            if now >= next_scan:
                if scans % SWEEP_EVERY == 0:
                    self._sweep()
                scans += 1
                for name in self._everyone():
                    self.due[name] = now
                next_scan = now + self.rescan
            wake = min([next_scan, *(at for n, at in self.due.items() if not self._busy(n))])
            try:
                item: tuple[str, float] | None = self.events.get(timeout=max(0.0, wake - time.monotonic()))
            except queue.Empty:
                item = None
            while item is not None:
                name, at = item
                if name == ALL:
                    for each in self._everyone():
                        self.due[each] = 0.0
                elif name:
                    self.due[name] = min(self.due.get(name, float("inf")), at)
                try:
                    item = self.events.get_nowait()
                except queue.Empty:
                    item = None
            self._dispatch()

    def _sweep(self) -> None:
        from mailslot import vcs

        try:
            stale = store.clean_tmp(self.room)
        except Exception as e:  # an unreadable tmp/ must stop neither the sweep nor the daemon
            self.log(f"cleaning tmp/ failed: {type(e).__name__}: {e}")
        else:
            for path in stale:
                self.log(f"removed {self.room.rel(path)} (left in tmp/ by a writer that died)")
        self._commit(vcs.sweep, "sweep", "committed files changed by hand")

    def _busy(self, name: str) -> bool:
        job = self.running.get(name)
        return job is not None and not job.done()

    def _dispatch(self) -> None:
        now = time.monotonic()
        for name, at in list(self.due.items()):
            if at > now or self.stopping.is_set():
                continue
            if self._busy(name):
                continue  # looked at again when its job finishes (the job wakes the loop)
            del self.due[name]
            future = self.pool.submit(self._job, name)
            self.running[name] = future
            future.add_done_callback(lambda _: self.events.put(("", 0.0)))  # runs once done() is True

    def _job(self, name: str) -> Report:
        try:
            card = load_agent(self.room, name) if self.room.card_path(name).is_file() else None
            if card is None:
                _, report = self.engine.collect(name)
            else:
                report = self.engine.run_agent(card)
        except MailslotError as e:
            self.log(f"{name}: {e}")
            self._later(name, 5.0)
            return Report(name, 0, str(e))
        except Exception as e:  # the daemon never dies on one agent's trouble
            self.log(f"{name}: unexpected {type(e).__name__}: {e}")
            self._later(name, 5.0)
            return Report(name, 0, repr(e))
        self._report(report)
        if report.retry_in is not None:
            self._later(name, report.retry_in)
        self.commit_wanted.set()
        return report

    def _report(self, r: Report) -> None:
        for line in r.rejected:
            self.log(f"quarantined {line}")
        for path in r.archived:
            self.log(f"archived late mail {path} (thread is closed)")
        if r.outcome is not None and not r.repeated:
            o = r.outcome
            self.log(
                f"tap {r.agent}: {o.result}{' (' + o.detail + ')' if o.detail else ''}, {r.unseen} unseen"
            )

    def _commit_loop(self) -> None:
        while not self.stopping.is_set():
            self.commit_wanted.wait()
            if self.stopping.is_set():
                return
            time.sleep(0.05)  # let a burst gather into one commit
            self.commit_wanted.clear()
            self._commit()

    def _commit(
        self,
        how: Callable[[Mailroom], str | None] = store.commit,
        what: str = "commit",
        done: str = "committed",
    ) -> None:
        """Commit (or sweep); a failure is logged and retried later, never fatal."""
        try:
            sha = how(self.room)
        except MailslotError as e:
            self.log(f"{what} failed, will retry: {e}")
            return
        if sha:
            self.log(f"{done} {sha[:8]}")
