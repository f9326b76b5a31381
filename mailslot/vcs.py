"""The git adapter: create the mailroom repository and group-commit pending changes.

Commits are made with plumbing (``update-index``, ``write-tree``, ``commit-tree``, ``update-ref``) on
the paths named by the journal, so their cost follows what changed rather than the archive's size.
Every mutation of the repository takes one lock (``.git/mailslot/git.lock``); whoever holds it
commits everything pending, so contention makes fewer, larger commits instead of errors.

Hot paths call git through :func:`git` (one subprocess per command); GitPython is imported only by
:func:`init_repo`, which runs once per mailroom, so ``mailslot inbox`` never pays for it.
"""

from __future__ import annotations

import os
import stat
import subprocess
import time
import unicodedata
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from filelock import AcquireReturnProxy, FileLock, Timeout

from mailslot import journal
from mailslot.errors import Busy, GitError, StorageError
from mailslot.mailroom import Mailroom, write_layout

MAIL_DIRS = ("agents", "inbox", "archive", "rejected")
STALE_INDEX_LOCK_SECONDS = 10.0
_BOT = "mailslot"
T = TypeVar("T")


def _env(author: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        GIT_AUTHOR_NAME=author,
        GIT_AUTHOR_EMAIL=f"{author}@mailslot",
        GIT_COMMITTER_NAME=_BOT,
        GIT_COMMITTER_EMAIL=f"{_BOT}@mailslot",
        LC_ALL="C",
    )
    env.pop("GIT_INDEX_FILE", None)
    env.pop("GIT_DIR", None)
    env.pop("GIT_WORK_TREE", None)
    return env


def git(
    room: Mailroom, *args: str, input: bytes | None = None, author: str = _BOT, check: bool = True
) -> str:
    """Run ``git -C <root> ARGS``; return stdout; raise :class:`GitError` with git's stderr."""
    return git_bytes(room, *args, input=input, author=author, check=check).decode(errors="replace")


def git_bytes(
    room: Mailroom, *args: str, input: bytes | None = None, author: str = _BOT, check: bool = True
) -> bytes:
    """:func:`git`, returning stdout as bytes."""
    try:
        proc = subprocess.run(
            ["git", "-C", str(room.root), *args],
            input=input,
            capture_output=True,
            env=_env(author),
            check=False,
        )
    except FileNotFoundError:
        raise GitError("git is not installed or not on PATH") from None
    if check and proc.returncode != 0:
        stderr = proc.stderr.decode(errors="replace").strip()
        lines = stderr.splitlines()
        first = next(
            (line for line in lines if line.startswith(("fatal:", "error:"))), lines[-1] if lines else ""
        )
        error = GitError(f"git {args[0]} failed: {first or 'exit ' + str(proc.returncode)}")
        error.stderr = stderr
        raise error
    return proc.stdout


_CONTENDED = (
    "index.lock",  # another git holds the index
    "cannot lock ref",  # ... or HEAD
    "but expected",  # HEAD moved under us
    "No such file or directory",  # a file moved between being listed and being read
    "is unavailable",  # a concurrent `git gc`/`repack` moved objects (mktree)
    "is not a valid object",  # ... (commit-tree)
    "unable to create temporary file",  # ... (object directories being pruned)
)
_NO_SPACE = ("Out of diskspace", "No space left on device", "Disk quota exceeded")


def _retrying(room: Mailroom, action: Callable[[], T]) -> T:
    """Run ``action``, retrying while another git process holds the index or HEAD (a human's
    ``git status`` or ``git commit``); a stale ``index.lock`` left by a crashed git is removed."""
    for attempt in range(60):
        try:
            return action()
        except GitError as e:
            if any(word in e.stderr for word in _NO_SPACE):
                raise StorageError(f"git cannot write: the disk is full ({e.message})") from None
            if not any(word in e.stderr for word in _CONTENDED):  # a file that moved meanwhile, too
                raise
            if not _clear_stale_index_lock(room):
                time.sleep(min(0.01 * (attempt + 1), 0.25))
    raise GitError("git index is locked by another git process (.git/index.lock)")


def lock(room: Mailroom, timeout: float = 60.0) -> FileLock:
    """The mailroom's git lock (a fresh, unacquired handle)."""
    room.state_dir.mkdir(parents=True, exist_ok=True)
    return FileLock(str(room.state_dir / "git.lock"), timeout=timeout)


def init_repo(root: Path) -> Mailroom:
    """Create (or adopt) a mailroom at ``root``: git repo on ``main``, layout, first commit.

    Idempotent: an existing mailroom is left as it is. Commits the layout files.
    """
    import git as gitpython  # lazily: only `init` pays for GitPython's import

    if not (root / ".git").exists():
        root.mkdir(parents=True, exist_ok=True)
        gitpython.Repo.init(root, initial_branch="main")
    room = write_layout(root)
    # the index grows with the archive: split it so each update rewrites only the small part
    git(room, "config", "core.splitIndex", "true")
    journal.record(room, ["mailslot.yaml", ".gitignore"], "mailroom: create")
    commit_pending(room)
    return room


def _clear_stale_index_lock(room: Mailroom) -> bool:
    path = room.git_dir / "index.lock"
    try:
        age = time.time() - path.stat().st_mtime
    except FileNotFoundError:
        return False
    if age < STALE_INDEX_LOCK_SECONDS:
        return False
    path.unlink(missing_ok=True)
    return True


def _one_line(text: str) -> str:
    """A summary as one line git accepts: control characters (NUL, ESC, line breaks) and the
    undecodable bytes of a file name that is not UTF-8 become ``?``."""
    return "".join("?" if unicodedata.category(c) in ("Cc", "Cs") or c in "\u2028\u2029" else c for c in text)


def _message(entries: list[journal.Entry]) -> tuple[str, str]:
    # an entry may hold one summary per line (a batch); each becomes one line of the message
    lines = [_one_line(line) for e in entries for line in e.summary.split("\n") if line]
    lines = list(dict.fromkeys(lines)) or ["mail: sync"]
    authors = {e.author for e in entries if e.author}
    author = authors.pop() if len(authors) == 1 else _BOT
    if len(lines) == 1:
        return lines[0] + "\n", author
    head = f"{lines[0]} (+{len(lines) - 1} more)"
    return head + "\n\n" + "\n".join(lines) + "\n", author


def _update_index(room: Mailroom, paths: list[str]) -> None:
    data = b"".join(os.fsencode(p) + b"\0" for p in paths)  # names that are not UTF-8 survive
    _retrying(room, lambda: git(room, "update-index", "--add", "--remove", "-z", "--stdin", input=data))


def _indexable(room: Mailroom, paths: list[str]) -> list[str]:
    """The paths git can record: files, symlinks and deletions; a directory stands for its files.

    FIFOs, sockets and devices are left out (git cannot hold them, and ``git status`` ignores them),
    so one odd file in the journal can never make every later commit fail.
    """
    out: list[str] = []
    for rel in paths:
        try:
            mode = os.lstat(room.root / rel).st_mode
        except (FileNotFoundError, NotADirectoryError):
            out.append(rel)  # a deletion
            continue
        if stat.S_ISREG(mode) or stat.S_ISLNK(mode):
            out.append(rel)
        elif stat.S_ISDIR(mode):
            for top, dirs, files in os.walk(room.root / rel):
                for name in files + [d for d in dirs if os.path.islink(os.path.join(top, d))]:
                    full = Path(top) / name
                    if stat.S_ISREG(full.lstat().st_mode) or full.is_symlink():
                        out.append(full.relative_to(room.root).as_posix())
    return sorted(set(out))


def _acquire(room: Mailroom, timeout: float, mine: Path | None) -> AcquireReturnProxy[FileLock] | None:
    """Take the git lock; or None as soon as the entry ``mine`` is gone (the holder committed it)."""
    handle = lock(room, timeout)
    deadline = time.monotonic() + timeout
    while True:
        try:
            return handle.acquire(timeout=0.02, poll_interval=0.002)
        except Timeout:
            if mine is not None and not os.path.exists(mine):
                return None
            if time.monotonic() >= deadline:
                raise


def commit_pending(room: Mailroom, *, timeout: float = 60.0, mine: Path | None = None) -> str | None:
    """Commit every journaled change in one commit; return its sha, or None if nothing changed.

    Takes the git lock (waiting up to ``timeout`` s, else :class:`Busy`). Safe to call from any
    number of processes at once; a caller whose entry another process already committed returns None.
    With ``mine`` (the caller's journal entry) it stops waiting for the lock once another process
    has committed that entry, so writers under contention share commits instead of queueing for one each.
    """
    try:
        held = _acquire(room, timeout, mine)
        if held is None:
            return None
        with held:
            entries = journal.pending(room)
            if not entries:
                return None
            paths = _indexable(room, sorted({p for e in entries for p in e.paths}))
            message, author = _message(entries)
            head = _head(room)  # read before the staging starts: see _Stager.before_head_moves
            if head is None:  # the first commit: nothing to build on
                _update_index(room, paths)
                sha = _retrying(room, lambda: _commit_index(room, message, author))
            else:
                # stage (in parallel with building the trees, finished before HEAD moves), so a
                # human's `git commit` meanwhile includes this mail; stage again if a human's git
                # rewrote the index from an older copy while HEAD moved
                stage = _Stager(room, paths)
                first = [head]

                def attempt() -> str | None:
                    stage.again = not first  # HEAD moved, or something else failed: stage again
                    base = first.pop() if first else _head(room)
                    return _commit_changed(room, base, paths, message, author, stage.before_head_moves)

                sha = _retrying(room, attempt)
                stage.finish()
                if paths and _index_stamp(room) != stage.stamp:
                    _update_index(room, paths)
            journal.drop(entries)
    except TimeoutError:
        raise Busy("the mailroom's git lock is held by another process", lock="git.lock") from None
    if sha:
        _post_commit(room)
    return sha


def _post_commit(room: Mailroom) -> None:
    """Plumbing commits run no hooks: start the installed post-commit trampoline ourselves, unless a
    daemon is watching (it sees the files anyway)."""
    hook = room.state_dir / "hooks" / "post-commit"
    if not hook.exists() or os.environ.get("MAILSLOT_NO_HOOKS"):
        return
    from mailslot.daemon_lock import is_running

    if is_running(room):
        return
    subprocess.Popen(
        [str(hook)],
        cwd=room.root,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def _index_stamp(room: Mailroom) -> tuple[int, int, int] | None:
    try:
        info = (room.git_dir / "index").stat()
    except FileNotFoundError:
        return None
    return info.st_ino, info.st_size, info.st_mtime_ns


def _head(room: Mailroom) -> tuple[str, str] | None:
    """HEAD's commit and tree, or None before the first commit."""
    out = [
        x
        for x in git(room, "rev-parse", "HEAD^{commit}", "HEAD^{tree}", "--", check=False).split()
        if x != "--"
    ]
    return (out[0], out[1]) if len(out) == 2 else None


def _commit_changed(
    room: Mailroom,
    head: tuple[str, str] | None,
    paths: list[str],
    message: str,
    author: str,
    before_head_moves: Callable[[], None],
) -> str | None:
    from mailslot import trees

    if head is None or not paths:
        return None
    return trees.commit_paths(room, head[0], head[1], paths, message, author, before_head_moves)


class _Stager:
    """``update-index`` of the journaled paths, run in the background while the trees are built."""

    def __init__(self, room: Mailroom, paths: list[str]) -> None:
        self.room, self.paths = room, paths
        self.stamp: tuple[int, int, int] | None = None
        self.again = False  # set for every attempt after the first
        self.proc: subprocess.Popen[bytes] | None = None
        if paths:
            self.proc = subprocess.Popen(
                ["git", "-C", str(room.root), "update-index", "--add", "--remove", "-z", "--stdin"],
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                env=_env(_BOT),
            )
            assert self.proc.stdin is not None
            self.proc.stdin.write(b"".join(os.fsencode(p) + b"\0" for p in paths))
            self.proc.stdin.close()

    def finish(self) -> None:
        """Wait for the staging; redo it with retries if it failed (a lock held by another git)."""
        if self.proc is not None:
            failed = self.proc.wait() != 0
            self.proc = None
            if failed:
                _update_index(self.room, self.paths)
            self.stamp = _index_stamp(self.room)

    def before_head_moves(self) -> None:
        """Called before each attempt moves HEAD. A retry may mean HEAD moved since the staging began,
        perhaps by a `git commit` that read the index before this staging (git commit reads first,
        locks after): it then wrote that older index back, without this mail. Staging again before
        the next attempt keeps a human's next commit from deleting the mail from HEAD."""
        self.finish()
        if self.again:
            _update_index(self.room, self.paths)
            self.stamp = _index_stamp(self.room)


def _commit_index(room: Mailroom, message: str, author: str) -> str | None:
    tree = git(room, "write-tree").strip()
    head = git(room, "rev-parse", "-q", "--verify", "HEAD^{commit}", check=False).strip()
    if head and git(room, "rev-parse", f"{head}^{{tree}}").strip() == tree:
        return None
    parents = ["-p", head] if head else []
    sha = git(room, "commit-tree", tree, *parents, input=message.encode(), author=author).strip()
    git(
        room,
        "update-ref",
        "-m",
        f"commit: {message.splitlines()[0]}",
        "HEAD",
        sha,
        *([head] if head else []),
    )
    return sha


def uncommitted(room: Mailroom) -> list[str]:
    """Paths under the mail directories that differ from HEAD or are untracked (a full scan)."""
    out = git(
        room,
        "--no-optional-locks",  # never take index.lock from under a concurrent commit
        "status",
        "--porcelain=v1",
        "-z",
        "--untracked-files=all",
        "--no-renames",
        "--",
        *MAIL_DIRS,
    )
    paths = []
    for item in out.split("\0"):
        if len(item) > 3:
            paths.append(item[3:])
    return paths


def sweep(room: Mailroom, summary: str = "mail: sync files written by hand") -> str | None:
    """Journal every uncommitted change under the mail directories, then commit them all."""
    paths = uncommitted(room)
    if paths:
        journal.record(room, paths, summary)
    return commit_pending(room)
