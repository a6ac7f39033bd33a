"""The one way emolab writes a file, and the one way it hashes one.

Every file the bench writes (artifacts, manifests, vectors, caches, checkpoints) goes
through `atomic_write`: the bytes go to a temp file in the target's folder, are fsynced,
renamed over the target, and the folder itself is fsynced so the rename survives a power
cut. A reader therefore sees the old file or the new one, never half of either, whatever
moment the process is killed at. Folders (fine-tune checkpoints, model caches) are built
under a temp name and swapped in with `replace_dir`, which removes the old folder only
after its successor is in place.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path

# temp files and folders start with this, so a listing can skip leftovers of a killed write
TEMP_PREFIX = ".tmp-"


def fsync_dir(folder: Path) -> None:
    """Make a rename or a new file in `folder` durable (a no-op where folders cannot be
    opened, e.g. Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def umask() -> int:
    """The process umask. Linux reports it in /proc (no change needed to read it, so safe
    beside other threads); elsewhere it is read by setting it, briefly, to 022."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def default_mode(folder: bool = False) -> int:
    """The permissions a plain `open()` (or `mkdir`) gives: 0666 (0777) less the umask, so
    group and others can read under the usual 022, not mkstemp's private 0600 (0700)."""
    return (0o777 if folder else 0o666) & ~umask()


def atomic_write(path: str | Path, data: bytes | str | Iterable[bytes]) -> Path:
    """Write `data` (bytes, text, or an iterable of byte chunks for files too big to hold
    twice) to `path` so that a crash at any moment leaves the old or the new file. The file
    gets the mode a plain write would (`default_mode`), so a shared session stays readable."""
    path = Path(path)
    if isinstance(data, str):
        data = data.encode("utf-8")
    chunks = [data] if isinstance(data, (bytes, bytearray, memoryview)) else data
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f"{TEMP_PREFIX}{path.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            os.chmod(tmp, default_mode())
            for chunk in chunks:
                f.write(chunk)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    fsync_dir(path.parent)
    return path


def commit_file(tmp: str | Path, final: str | Path) -> Path:
    """Finish a file a streaming writer (e.g. `tarfile`) built at `tmp` beside `final`:
    fsync it, rename it over `final`, fsync the folder."""
    with open(tmp, "rb+") as f:
        os.fsync(f.fileno())
    os.replace(tmp, final)
    fsync_dir(Path(final).parent)
    return Path(final)


def append_line(path: str | Path, line: str) -> None:
    """Append one newline-terminated line and fsync it: the only write that is not a
    rename, kept for the append-only step log, whose reader treats an unterminated last
    line as the step that was interrupted."""
    if not line.endswith("\n"):
        raise ValueError("a log line must end with a newline")
    path = Path(path)
    new = not path.exists()
    with open(path, "a", encoding="utf-8") as f:
        f.write(line)
        f.flush()
        os.fsync(f.fileno())
    if new:
        fsync_dir(path.parent)


def temp_dir(parent: str | Path, name: str) -> Path:
    """A fresh temp folder beside the final one (same file system, so the rename is atomic)."""
    parent = Path(parent)
    parent.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(dir=parent, prefix=f"{TEMP_PREFIX}{name}."))
    os.chmod(folder, default_mode(folder=True))
    return folder


def sync_tree(folder: Path) -> None:
    """fsync every file under `folder` and the folders themselves (files written by third
    party savers, e.g. `save_pretrained`, before the folder is renamed into place)."""
    for root, _dirs, files in os.walk(folder):
        for name in files:
            with open(os.path.join(root, name), "rb") as f:
                os.fsync(f.fileno())
        fsync_dir(Path(root))


def replace_dir(tmp: Path, final: Path) -> Path:
    """Move the finished folder `tmp` to `final`. An existing `final` is first renamed
    aside and deleted only once the new one is in place, so some complete copy exists at
    every moment."""
    sync_tree(tmp)
    old = None
    if final.exists():
        old = final.with_name(f"{TEMP_PREFIX}{final.name}.old")
        if old.exists():
            shutil.rmtree(old)
        os.replace(final, old)
    os.replace(tmp, final)
    fsync_dir(final.parent)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return final


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of a file's bytes, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def file_sha256(path: str | Path, memo: Path | None = None) -> str:
    """sha256 of a file, remembered in the json table `memo` by path, size and mtime, so a
    1 GB weight file is hashed once, not on every model load."""
    import json

    path = Path(path)
    if memo is None:
        return sha256_file(path)
    st = path.stat()
    key = f"{path.resolve()}:{st.st_size}:{st.st_mtime_ns}"
    try:
        table = json.loads(memo.read_text(encoding="utf-8")) if memo.is_file() else {}
    except (ValueError, OSError):
        table = {}  # a damaged memo only costs a re-hash
    if not isinstance(table, dict):
        table = {}
    if key not in table:
        table[key] = sha256_file(path)
        atomic_write(memo, json.dumps(table))
    return table[key]


def recover_dir(final: Path) -> None:
    """Undo a `replace_dir` killed between its two renames: put the old folder back."""
    old = final.with_name(f"{TEMP_PREFIX}{final.name}.old")
    if not final.exists() and old.is_dir():
        os.replace(old, final)
