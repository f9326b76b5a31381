"""fsutil.write_all_new: every file whole and synced, or none of them (and never someone else's)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailslot import fsutil


@pytest.mark.parametrize("count", [5, 3 * fsutil.PARALLEL_MIN])  # one by one; with writer threads
def test_write_all_new_writes_every_file_whole(tmp_path: Path, count: int) -> None:
    out = tmp_path / "out"  # tmp_path also holds the test's isolated HOME
    out.mkdir()
    items = [(out / f"m{i}", f"message {i}\n".encode() * (i + 1)) for i in range(count)]
    fsutil.write_all_new(items)
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p, _ in items)
    assert all(path.read_bytes() == data for path, data in items)


@pytest.mark.parametrize("count", [5, 3 * fsutil.PARALLEL_MIN])
def test_write_all_new_removes_its_own_files_when_one_fails(tmp_path: Path, count: int) -> None:
    out = tmp_path / "out"  # tmp_path also holds the test's isolated HOME
    out.mkdir()
    items = [(out / f"m{i}", b"ours") for i in range(count)]
    theirs = items[count // 2][0]
    theirs.write_bytes(b"theirs")  # already there: O_EXCL refuses it
    with pytest.raises(FileExistsError):
        fsutil.write_all_new(items)
    assert list(out.iterdir()) == [theirs] and theirs.read_bytes() == b"theirs"
