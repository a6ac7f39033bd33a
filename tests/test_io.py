"""The one write helper: atomic files, folders swapped in without a gap, hashing."""

import hashlib
import os

import pytest

from emolab import io


def test_atomic_write_replaces_whole_files_and_cleans_up(tmp_path):
    target = tmp_path / "sub" / "a.txt"
    io.atomic_write(target, "one")
    io.atomic_write(target, b"two")
    io.atomic_write(target, (c for c in (b"th", b"ree")))
    assert target.read_text() == "three"
    assert os.listdir(target.parent) == ["a.txt"]


@pytest.mark.parametrize("mask", [0o022, 0o027, 0o077])
def test_written_files_get_the_mode_a_plain_write_gets(tmp_path, mask):
    """mkstemp makes 0600 files; an atomic write ends with 0666 less the umask, as open()
    would, and a temp folder with 0777 less the umask, as mkdir would."""
    old = os.umask(mask)
    try:
        io.atomic_write(tmp_path / "atomic", "x")
        (tmp_path / "plain").write_text("x")
        folder = io.temp_dir(tmp_path, "ckpt")
        (tmp_path / "made").mkdir()
    finally:
        os.umask(old)
    mode = lambda p: (tmp_path / p).stat().st_mode & 0o777  # noqa: E731
    assert mode("atomic") == mode("plain") == 0o666 & ~mask
    assert mode(folder.name) == mode("made") == 0o777 & ~mask


def test_a_failed_write_keeps_the_old_file(tmp_path):
    target = tmp_path / "a.txt"
    io.atomic_write(target, "old")

    def chunks():
        yield b"new"
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        io.atomic_write(target, chunks())
    assert target.read_text() == "old"
    assert os.listdir(tmp_path) == ["a.txt"]


def test_replace_dir_never_leaves_no_copy(tmp_path):
    final = tmp_path / "ckpt"
    first = io.temp_dir(tmp_path, "ckpt")
    (first / "w").write_text("1")
    io.replace_dir(first, final)
    second = io.temp_dir(tmp_path, "ckpt")
    (second / "w").write_text("2")
    io.replace_dir(second, final)
    assert (final / "w").read_text() == "2"
    assert os.listdir(tmp_path) == ["ckpt"]
    # a kill between the two renames leaves the old copy aside; recover_dir puts it back
    os.replace(final, tmp_path / f"{io.TEMP_PREFIX}ckpt.old")
    io.recover_dir(final)
    assert (final / "w").read_text() == "2"


def test_sha256_and_memo(tmp_path):
    f = tmp_path / "w.bin"
    f.write_bytes(b"x" * 3_000_000)
    want = hashlib.sha256(b"x" * 3_000_000).hexdigest()
    memo = tmp_path / "memo.json"
    assert io.sha256_file(f) == want
    assert io.file_sha256(f, memo) == want
    memo.write_text("{broken")
    assert io.file_sha256(f, memo) == want


def test_append_line_wants_a_whole_line(tmp_path):
    with pytest.raises(ValueError):
        io.append_line(tmp_path / "log", "no newline")
    io.append_line(tmp_path / "log", "a\n")
    io.append_line(tmp_path / "log", "b\n")
    assert (tmp_path / "log").read_text() == "a\nb\n"


def test_commit_file_moves_a_streamed_file_into_place(tmp_path):
    tmp = tmp_path / ".part"
    tmp.write_bytes(b"archive")
    io.commit_file(tmp, tmp_path / "a.tar.gz")
    assert os.listdir(tmp_path) == ["a.tar.gz"]
