"""Commits whose cost follows what changed: trees are written only for the changed directories.

``git write-tree`` reads the whole index, whose size grows with the archive forever (12 MB and
~55 ms at 100,000 messages). Here the new root tree is built from HEAD's trees: blobs for the
changed files (one ``hash-object``), the old trees of their directories (one ``cat-file --batch``),
the new trees (one ``mktree --batch``), then ``commit-tree`` and ``update-ref``. Callers update the
index for the same paths afterwards, so ``git status`` stays clean.
"""

from __future__ import annotations

import os
import stat
import tempfile
from collections.abc import Callable
from pathlib import PurePosixPath

from mailslot.mailroom import Mailroom

try:  # CPython's built-in SHA-1: no OpenSSL load
    from _sha1 import sha1  # type: ignore[import-not-found]
except ImportError:  # pragma: no cover
    from hashlib import sha1

Entry = tuple[str, str]  # (mode as git writes it, hex sha)
TREE = "40000"
PACK_OVER = 32  # more changed files than this go into one packfile, not as many loose objects


def _parse_tree(data: bytes) -> dict[str, Entry]:
    entries: dict[str, Entry] = {}
    i = 0
    while i < len(data):
        space = data.index(b" ", i)
        nul = data.index(b"\0", space)
        name = data[space + 1 : nul].decode("utf-8", "surrogateescape")
        entries[name] = (data[i:space].decode(), data[nul + 1 : nul + 21].hex())
        i = nul + 21
    return entries


def _order(item: tuple[str, Entry]) -> bytes:
    name, (mode, _) = item  # git sorts a tree by name, a subtree as if its name ended in "/"
    return name.encode("utf-8", "surrogateescape") + (b"/" if mode == TREE else b"")


def _tree_sha(entries: dict[str, Entry]) -> tuple[str, bytes]:
    body = b"".join(
        f"{mode} ".encode() + name.encode("utf-8", "surrogateescape") + b"\0" + bytes.fromhex(sha)
        for name, (mode, sha) in sorted(entries.items(), key=_order)
    )
    return sha1(b"tree %d\0" % len(body) + body).hexdigest(), body


def _old_trees(room: Mailroom, head_tree: str, dirs: list[str]) -> dict[str, dict[str, Entry]]:
    from mailslot.vcs import git_bytes

    query = "".join((f"{head_tree}:{d}" if d else head_tree) + "\n" for d in dirs).encode()
    out = git_bytes(room, "cat-file", "--batch", input=query)
    trees: dict[str, dict[str, Entry]] = {}
    pos = 0
    for d in dirs:
        end = out.index(b"\n", pos)
        header = out[pos:end].split()
        pos = end + 1
        if len(header) == 3:
            size = int(header[2])
            if header[1] == b"tree":
                trees[d] = _parse_tree(out[pos : pos + size])
            pos += size + 1
        if d not in trees:
            trees[d] = {}
    return trees


def _blobs(room: Mailroom, paths: list[str]) -> dict[str, Entry | None]:
    """What each path is now: ``(mode, blob sha)``, or None where it is gone (or not storable)."""
    from mailslot.vcs import git

    found: dict[str, Entry | None] = {}
    to_hash: list[tuple[str, str, str]] = []  # (path, mode, file to hash)
    with tempfile.TemporaryDirectory(prefix="mailslot-links-") as scratch:
        for rel in paths:
            try:
                info = os.lstat(room.root / rel)
            except (FileNotFoundError, NotADirectoryError):
                found[rel] = None
                continue
            if stat.S_ISREG(info.st_mode):
                to_hash.append((rel, "100755" if info.st_mode & 0o111 else "100644", str(room.root / rel)))
            elif stat.S_ISLNK(info.st_mode):  # a symlink is stored as a blob of its target text
                text = os.path.join(scratch, str(len(to_hash)))
                with open(text, "wb") as fh:
                    fh.write(os.fsencode(os.readlink(room.root / rel)))
                to_hash.append((rel, "120000", text))
            else:
                found[rel] = None
        if len(to_hash) > PACK_OVER:
            shas = _pack_blobs(room, [f for _, _, f in to_hash])
        elif to_hash:
            listing = b"".join(os.fsencode(f) + b"\n" for _, _, f in to_hash)
            shas = git(room, "hash-object", "-w", "--no-filters", "--stdin-paths", input=listing).split()
        else:
            shas = []
        for (rel, mode, _), sha in zip(to_hash, shas, strict=True):
            found[rel] = (mode, sha)
    return found


def _pack_blobs(room: Mailroom, files: list[str]) -> list[str]:
    """Store many blobs as one packfile (``fast-import``) instead of one loose-object file each."""
    from mailslot.vcs import git, git_bytes

    stream, shas = [], []
    for name in files:
        with open(name, "rb") as fh:
            data = fh.read()
        shas.append(sha1(b"blob %d\0" % len(data) + data).hexdigest())
        stream.append(b"blob\ndata %d\n" % len(data) + data + b"\n")
    git_bytes(room, "fast-import", "--quiet", "--done", input=b"".join(stream) + b"done\n")
    git(room, "gc", "--auto", "--quiet")  # packs add up: let git consolidate them when it wants to
    return shas


def commit_paths(
    room: Mailroom,
    head: str,
    head_tree: str,
    paths: list[str],
    message: str,
    author: str,
    before_head_moves: Callable[[], None] = lambda: None,
) -> str | None:
    """Commit the working-tree state of ``paths`` on top of ``head``; None if nothing changed.

    Writes objects and moves HEAD (``update-ref`` checks it still is ``head``, so a concurrent
    commit raises :class:`GitError` for the caller to retry). Does not touch the index.
    """
    from mailslot.vcs import git

    now = _blobs(room, paths)
    dirs = {""}
    for rel in paths:
        dirs.update(p.as_posix() for p in PurePosixPath(rel).parents if p.as_posix() != ".")
    ordered = sorted(dirs, key=lambda d: (-d.count("/") - (d != ""), d))  # deepest first, root last
    trees = _old_trees(room, head_tree, ordered)
    for rel, entry in now.items():
        parent, name = rel.rsplit("/", 1) if "/" in rel else ("", rel)
        if entry is None:
            trees[parent].pop(name, None)
        else:
            trees[parent][name] = entry
    batch: list[bytes] = []
    root_sha = head_tree
    for d in ordered:
        entries = trees[d]
        if d and not entries:
            parent, name = d.rsplit("/", 1) if "/" in d else ("", d)
            trees[parent].pop(name, None)  # git keeps no empty directories
            continue
        sha, _ = _tree_sha(entries)
        batch.append(
            b"".join(
                f"{'040000' if mode == TREE else mode} {'tree' if mode == TREE else 'blob'} {s}\t".encode()
                + name.encode("utf-8", "surrogateescape")
                + b"\0"
                for name, (mode, s) in sorted(entries.items(), key=_order)
            )
        )
        if d:
            parent, name = d.rsplit("/", 1) if "/" in d else ("", d)
            trees[parent][name] = (TREE, sha)
        else:
            root_sha = sha
    if root_sha == head_tree:
        return None
    written = git(room, "mktree", "-z", "--batch", input=b"\0".join(batch)).split()
    if written[-1] != root_sha:  # our tree encoding must agree with git's, byte for byte
        raise RuntimeError(f"tree mismatch: computed {root_sha}, git wrote {written[-1]}")
    sha = git(room, "commit-tree", root_sha, "-p", head, input=message.encode(), author=author).strip()
    before_head_moves()
    git(room, "update-ref", "-m", f"commit: {message.splitlines()[0]}", "HEAD", sha, head)
    return sha
