"""Session folders: manifest, append-only step log, vectors, artifacts, all written atomically.

A session survives a crash at any moment. Each step logs a `started` event before it runs
and a closing event (`ok` / `failed`) after; a step with no closing event, or whose last
log line was cut off mid-write (no final newline), reads as `interrupted` and every earlier
step stays usable. Corruption anywhere before the last line is one error naming the file
and line. Only one process writes a session at a time (an inter-process lock around the
whole step: sequence number, appends, artifacts, manifest); a second writer waits
EMOLAB_LOCK_TIMEOUT seconds, then stops with one line. Every file goes through
`emolab.io.atomic_write`; nothing a finished step wrote is overwritten by a later one.
"""

from __future__ import annotations

import json
import os
import platform
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from .errors import BadInput, SessionError
from .io import append_line, atomic_write, sha256_file
from .metadata import FileMeta
from .metadata import read as read_meta
from .version import __version__

SCHEMA_VERSION = 1
VECTORS = "vectors.safetensors"
LOCK = ".lock"
WRITER = ".writer"
DEFAULT_LOCK_TIMEOUT = 10.0

__all__ = ["Session", "atomic_write", "read_vectors", "vector_key"]


def lock_timeout() -> float:
    """Seconds a second writer waits for a busy session (EMOLAB_LOCK_TIMEOUT)."""
    raw = os.environ.get("EMOLAB_LOCK_TIMEOUT")
    if raw is None or not raw.strip():
        return DEFAULT_LOCK_TIMEOUT
    try:
        value = float(raw)
    except ValueError:
        raise BadInput(f"EMOLAB_LOCK_TIMEOUT must be a number of seconds, got {raw!r}") from None
    if not value >= 0:
        raise BadInput(f"EMOLAB_LOCK_TIMEOUT must be >= 0 seconds, got {raw!r}")
    return value


_LOCKS: dict[str, object] = {}
_LOCKS_GUARD = threading.Lock()


def _lock_for(folder: Path):
    """One FileLock object per session folder and process: re-entrant in the thread that
    holds it (a step that writes artifacts), exclusive against other threads and processes."""
    from filelock import FileLock

    key = str(folder.resolve())
    with _LOCKS_GUARD:
        if key not in _LOCKS:
            _LOCKS[key] = FileLock(str(Path(key) / LOCK), thread_local=True)
        return _LOCKS[key]


def _git_rev() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).parent,
            capture_output=True,
            text=True,
            timeout=5,
        )
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def versions() -> dict[str, str]:
    import importlib.metadata as md

    out = {"emolab": __version__, "python": platform.python_version()}
    for dist in ("torch", "transformer_lens", "transformers", "numpy", "scikit-learn"):
        try:
            out[dist] = md.version(dist)
        except md.PackageNotFoundError:
            out[dist] = "absent"
    return out


def vector_key(emotion: str, hook: str) -> str:
    return f"{emotion}/{hook}"


class Session:
    """One session folder. Create with `Session.create`, open with `Session.open`."""

    def __init__(self, path: Path, manifest: dict) -> None:
        self.path = path
        self.manifest = manifest

    # -- creating and opening ------------------------------------------------------
    @classmethod
    def create(cls, path: str | Path, model_meta: dict, seed: int = 0, **extra) -> Session:
        """A new session at `path`. The check that nothing is there and the manifest write
        happen under the session lock, so of two processes creating the same new session one
        gets it and the other the one-line 'already exists' error (not a lost manifest)."""
        path = Path(path)
        _check_new(path)  # before the lock, so a refused folder gets no lock file
        path.mkdir(parents=True, exist_ok=True)
        s = cls(path, {})
        with s.writing():
            _check_new(path)
            (path / "artifacts").mkdir(exist_ok=True)
            s.manifest = {
                "schema_version": SCHEMA_VERSION,
                "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "host": platform.node(),
                "git_rev": _git_rev(),
                "versions": versions(),
                "plugins": {},
                "model": model_meta,
                "seed": seed,
                "inputs": {},
                "replay_of": None,
                **extra,
            }
            s.save_manifest()
        return s

    @classmethod
    def open(cls, path: str | Path) -> Session:
        path = Path(path)
        if not path.exists():
            raise SessionError(f"{path}: no such session")
        if not path.is_dir():
            raise SessionError(f"{path}: is a file, not a session folder")
        mpath = path / "manifest.json"
        if not mpath.is_file():
            raise SessionError(f"{mpath}: missing manifest (not a session folder?)")
        try:
            manifest = json.loads(mpath.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise SessionError(f"{mpath}: corrupt manifest (not valid JSON)") from None
        if not isinstance(manifest, dict) or "schema_version" not in manifest:
            raise SessionError(f"{mpath}: not an emolab manifest (no schema_version)")
        if manifest["schema_version"] != SCHEMA_VERSION:
            raise SessionError(
                f"{mpath}: unknown schema version {manifest['schema_version']!r} "
                f"(this emolab reads version {SCHEMA_VERSION})"
            )
        model = manifest.get("model")
        if not isinstance(model, dict) or not isinstance(model.get("name"), str):
            raise SessionError(f"{mpath}: not an emolab manifest (no model name)")
        s = cls(path, manifest)
        s.events()  # validates log.jsonl
        return s

    def save_manifest(self) -> None:
        with self.writing():
            atomic_write(
                self.path / "manifest.json",
                json.dumps(self.manifest, indent=2, sort_keys=True).encode() + b"\n",
            )

    def update_manifest(self, mutate) -> None:
        """Read-modify-write of the manifest under the lock, from the copy on disk, so a
        change another process made since this one opened the session is kept."""
        with self.writing():
            try:
                disk = json.loads((self.path / "manifest.json").read_text(encoding="utf-8"))
            except (OSError, ValueError):
                disk = self.manifest
            mutate(disk)
            self.manifest = disk
            self.save_manifest()

    # -- one writer at a time --------------------------------------------------------
    @contextmanager
    def writing(self) -> Iterator[None]:
        """Hold the session's inter-process write lock (re-entrant in this thread); a busy
        session is waited for EMOLAB_LOCK_TIMEOUT seconds, then a SessionError says who
        holds it."""
        from filelock import Timeout

        lock = _lock_for(self.path)
        timeout = lock_timeout()
        try:
            lock.acquire(timeout=timeout)
        except Timeout:
            holder = ""
            try:
                holder = (self.path / WRITER).read_text(encoding="utf-8").strip()
            except OSError:
                pass
            raise SessionError(
                f"{self.path}: another emolab process is writing this session"
                + (f" ({holder})" if holder else "")
                + f"; waited {timeout:g}s (set EMOLAB_LOCK_TIMEOUT to wait longer)"
            ) from None
        try:
            if lock.lock_counter == 1:
                cmd = " ".join(os.path.basename(a) for a in sys.argv[:3])
                atomic_write(self.path / WRITER, f"pid {os.getpid()}: {cmd}\n")
            yield
        finally:
            lock.release()

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def model_name(self) -> str:
        return self.manifest["model"]["name"]

    # -- the log -------------------------------------------------------------------
    @property
    def log_path(self) -> Path:
        return self.path / "log.jsonl"

    def _read_log(self) -> tuple[list[dict], bytes]:
        """(valid events, torn tail bytes): the tail is a last line without its newline,
        i.e. an append cut off by a crash; anything unreadable before it is an error."""
        if not self.log_path.exists():
            return [], b""
        raw = self.log_path.read_bytes()
        body, sep, tail = raw.rpartition(b"\n")
        if not sep:
            body, tail = b"", raw
        events = []
        for i, line in enumerate(body.split(b"\n"), 1) if body else ():
            if not line.strip():
                continue
            try:
                ev = json.loads(line)
            except (ValueError, UnicodeDecodeError):
                ev = None
            if not _valid_event(ev):
                raise SessionError(
                    f"{self.log_path}: line {i} is corrupt (not an emolab event); the steps "
                    "after it cannot be trusted, so the session is refused"
                )
            events.append(ev)
        return events, tail if tail.strip() else b""

    def events(self) -> list[dict]:
        """Every logged event; a torn last line becomes an `interrupted` event for the step
        it belonged to (its `torn` field keeps the bytes that were written)."""
        events, tail = self._read_log()
        if tail:
            events.append(_torn_event(events, tail))
        return events

    def steps(self) -> list[dict]:
        """Closed steps (ok or failed), the view replay and the UIs use."""
        return [e for e in self.events() if e.get("status") in ("ok", "failed")]

    def interrupted(self) -> list[dict]:
        """The last event of every step that started and never closed with ok / failed."""
        last: dict[int, dict] = {}
        for e in self.events():
            last[e["seq"]] = e
        return [e for e in last.values() if e.get("status") in ("started", "interrupted")]

    def status(self) -> str:
        """'empty', 'ok', or 'interrupted (<kind>)' when a step started and never closed."""
        events = self.events()
        cut = self.interrupted()
        if cut:
            return f"interrupted ({cut[-1]['kind']})"
        return "ok" if events else "empty"

    def _append(self, event: dict) -> None:
        """Append one event under the lock. A torn tail left by a crash is first closed off
        as an `interrupted` event (whole log rewritten atomically), so a new line is never
        glued to a fragment."""
        with self.writing():
            events, tail = self._read_log()
            if tail:
                fixed = [*events, _torn_event(events, tail)]
                atomic_write(
                    self.log_path,
                    "".join(json.dumps(e, sort_keys=True, default=_jsonable) + "\n" for e in fixed),
                )
            append_line(self.log_path, json.dumps(event, sort_keys=True, default=_jsonable) + "\n")

    @contextmanager
    def step(self, kind: str, params: dict, plugins: dict | None = None) -> Iterator[dict]:
        """Log a step: `started` now, then `ok` with what the body put in the yielded record
        (metrics, outputs, inputs), or `failed` with the error. The whole step holds the
        write lock; its sequence number is `record["seq"]`, the one to name artifacts by."""
        with self.writing():
            seq = 1 + max((e["seq"] for e in self.events()), default=0)
            base = {"seq": seq, "kind": kind, "params": params, "plugins": plugins or {}}
            self._append({**base, "status": "started", "time": time.time()})
            record: dict = {"seq": seq, "metrics": {}, "outputs": [], "inputs": {}}
            t0 = time.time()
            try:
                yield record
            except BaseException as exc:
                self._append(
                    {
                        **record,
                        **base,
                        "status": "failed",
                        "error": str(exc) or type(exc).__name__,
                        "time": time.time(),
                        "duration_s": time.time() - t0,
                    }
                )
                raise
            self._append(
                {
                    **record,
                    **base,
                    "status": "ok",
                    "time": time.time(),
                    "duration_s": time.time() - t0,
                }
            )
            files = {
                v["path"]: v["sha256"]
                for v in record["inputs"].values()
                if isinstance(v, dict) and "path" in v and "sha256" in v
            }
            if plugins or files:

                def merge(m: dict) -> None:
                    m.setdefault("plugins", {}).update(plugins or {})
                    m.setdefault("inputs", {}).update(files)

                self.update_manifest(merge)

    def add_input(self, record: dict, role: str, path: str | Path) -> str:
        """Record the sha256 of a file a step reads (a dataset, a --vectors file, another
        session's activations) in its log event; the manifest's `inputs` collects them."""
        p = Path(path)
        if not p.is_file():
            raise BadInput(f"{role} file not found: {path}")
        digest = sha256_file(p)
        record.setdefault("inputs", {})[role] = {"path": str(p.resolve()), "sha256": digest}
        return digest

    # -- vectors -------------------------------------------------------------------
    def vectors_path(self, method: str | None = None) -> Path:
        primary = self.manifest.get("primary_method")
        if method is None or method == primary:
            return self.path / VECTORS
        return self.path / f"vectors-{method}.safetensors"

    def save_vectors(self, vectors: dict[str, np.ndarray], meta: FileMeta, method: str) -> Path:
        from dataclasses import replace

        from safetensors.numpy import save

        if "primary_method" not in self.manifest:
            self.update_manifest(lambda m: m.setdefault("primary_method", method))
        path = self.vectors_path(method)
        strings = replace(meta, method=method).strings()
        arrays = {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in vectors.items()}
        with self.writing():
            return atomic_write(path, save(arrays, metadata=strings))

    def methods(self) -> list[str]:
        primary = self.manifest.get("primary_method")
        others = sorted(
            p.name[len("vectors-") : -len(".safetensors")]
            for p in self.path.glob("vectors-*.safetensors")
        )
        return ([primary] if primary else []) + others

    def load_vectors(self, method: str | None = None) -> tuple[dict[str, np.ndarray], FileMeta]:
        return read_vectors(self.vectors_path(method))

    # -- artifacts -----------------------------------------------------------------
    def artifact(self, name: str) -> Path:
        return self.path / "artifacts" / name

    def write_artifact(self, name: str, data: bytes | str) -> Path:
        with self.writing():
            return atomic_write(self.artifact(name), data)

    def write_json(self, name: str, obj) -> Path:
        return self.write_artifact(name, json.dumps(obj, indent=1, default=_jsonable))

    def read_json(self, name: str):
        path = self.artifact(name)
        if not path.is_file():
            raise SessionError(f"{path}: missing (run the step that makes it first)")
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError:
            raise SessionError(f"{path}: corrupt (not valid JSON)") from None

    def save_arrays(self, name: str, arrays: dict[str, np.ndarray], meta: FileMeta) -> Path:
        from safetensors.numpy import save

        return self.write_artifact(
            name,
            save({k: np.ascontiguousarray(v) for k, v in arrays.items()}, metadata=meta.strings()),
        )

    def load_arrays(self, name: str) -> tuple[dict[str, np.ndarray], FileMeta]:
        return read_vectors(self.artifact(name))


def read_vectors(path: Path) -> tuple[dict[str, np.ndarray], FileMeta]:
    """Read a safetensors file of vectors with its metadata record (`emolab.metadata`,
    old flat sessions too), or a clear error naming it."""
    from safetensors import SafetensorError, safe_open

    if not path.is_file():
        raise SessionError(f"{path}: missing")
    try:
        with safe_open(str(path), framework="numpy") as f:
            raw = f.metadata() or {}
            arrays = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError, ValueError) as exc:
        raise SessionError(f"{path}: corrupt vectors file ({str(exc).splitlines()[0]})") from None
    return arrays, read_meta(raw, path)


def _check_new(path: Path) -> None:
    """Refuse a path where a new session cannot go: a file, a session, a folder in use."""
    if path.exists() and not path.is_dir():
        raise SessionError(f"{path}: is a file, not a session folder")
    if (path / "manifest.json").exists():
        raise SessionError(f"{path}: a session already exists there (choose a new path)")
    if path.is_dir() and any(not _leftover(p) for p in path.iterdir()):
        raise SessionError(f"{path}: folder is not empty (choose a new path)")


def _leftover(p: Path) -> bool:
    """What a `create` killed before its manifest was written leaves: an empty artifacts
    folder, the lock, temp files. A new session may be created over them."""
    if p.name.startswith("."):
        return True
    return p.name == "artifacts" and p.is_dir() and not any(p.iterdir())


def _valid_event(ev) -> bool:
    return (
        isinstance(ev, dict)
        and isinstance(ev.get("seq"), int)
        and not isinstance(ev.get("seq"), bool)
        and isinstance(ev.get("kind"), str)
        and isinstance(ev.get("status"), str)
    )


def _torn_event(events: list[dict], tail: bytes) -> dict:
    """The `interrupted` event a torn last line stands for. It closes the open step when
    the fragment was that step's closing event, else it is the step whose `started` line
    was being written."""
    text = tail.decode("utf-8", errors="replace")
    open_ = {e["seq"]: e for e in events}
    last = events[-1] if events else None
    if last is not None and last.get("status") == "started":
        seq, kind = last["seq"], last["kind"]
    else:
        seq = 1 + max(open_, default=0)
        found = re.search(r'"kind": "([^"\\]*)"', text)
        kind = found.group(1) if found else "unknown"
    return {"seq": seq, "kind": kind, "status": "interrupted", "torn": text[:200]}


def _jsonable(obj):
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def check_width(vector: np.ndarray, d_model: int, what: str) -> None:
    if vector.shape[-1] != d_model:
        raise BadInput(f"{what} has width {vector.shape[-1]}, the model's residual is {d_model}")
