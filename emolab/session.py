"""Session folders: manifest, append-only step log, vectors, artifacts, all written atomically.

A session cut off mid-step stays readable: each step logs a `started` event before it
runs and a closing event (`ok` / `failed`) after, so an unmatched `started` says where it
stopped. Anything unreadable is an error naming the file; nothing is ever overwritten.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from . import __version__
from .errors import BadInput, SessionError

SCHEMA_VERSION = 1
VECTORS = "vectors.safetensors"


def atomic_write(path: Path, data: bytes) -> None:
    """Write to a temp file in the same folder, fsync, then rename over the target."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


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
        path = Path(path)
        if path.exists() and not path.is_dir():
            raise SessionError(f"{path}: is a file, not a session folder")
        if (path / "manifest.json").exists():
            raise SessionError(f"{path}: a session already exists there (choose a new path)")
        if path.is_dir() and any(path.iterdir()):
            raise SessionError(f"{path}: folder is not empty (choose a new path)")
        (path / "artifacts").mkdir(parents=True, exist_ok=True)
        manifest = {
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
        s = cls(path, manifest)
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
        s = cls(path, manifest)
        s.events()  # validates log.jsonl
        return s

    def save_manifest(self) -> None:
        atomic_write(
            self.path / "manifest.json",
            json.dumps(self.manifest, indent=2, sort_keys=True).encode() + b"\n",
        )

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

    def events(self) -> list[dict]:
        """Every logged event; a truncated or corrupt line is an error naming the file."""
        if not self.log_path.exists():
            return []
        raw = self.log_path.read_bytes()
        events = []
        lines = raw.split(b"\n")
        for i, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                ev = json.loads(line)
            except (json.JSONDecodeError, UnicodeDecodeError):
                what = "truncated" if i == len(lines) else "corrupt"
                raise SessionError(f"{self.log_path}: {what} event on line {i}") from None
            events.append(ev)
        return events

    def steps(self) -> list[dict]:
        """Closed steps (ok or failed), the view replay and the UIs use."""
        return [e for e in self.events() if e.get("status") in ("ok", "failed")]

    def status(self) -> str:
        """'empty', 'ok', or 'interrupted (<kind>)' when a step started and never closed."""
        events = self.events()
        closed = {e["seq"] for e in events if e.get("status") != "started"}
        open_ = [e for e in events if e.get("status") == "started" and e["seq"] not in closed]
        if open_:
            return f"interrupted ({open_[-1]['kind']})"
        return "ok" if events else "empty"

    def _append(self, event: dict) -> None:
        line = json.dumps(event, sort_keys=True, default=_jsonable) + "\n"
        with open(self.log_path, "a", encoding="utf-8") as f:
            f.write(line)
            f.flush()
            os.fsync(f.fileno())

    @contextmanager
    def step(self, kind: str, params: dict, plugins: dict | None = None) -> Iterator[dict]:
        """Log a step: `started` now, then `ok` with what the body put in the yielded record
        (metrics, outputs, inputs), or `failed` with the error."""
        self.events()  # refuse to append to a corrupt log
        seq = 1 + max((e["seq"] for e in self.events()), default=0)
        base = {"seq": seq, "kind": kind, "params": params, "plugins": plugins or {}}
        self._append({**base, "status": "started", "time": time.time()})
        record: dict = {"metrics": {}, "outputs": [], "inputs": {}}
        t0 = time.time()
        try:
            yield record
        except BaseException as exc:
            self._append(
                {
                    **base,
                    **record,
                    "status": "failed",
                    "error": str(exc) or type(exc).__name__,
                    "time": time.time(),
                    "duration_s": time.time() - t0,
                }
            )
            raise
        self._append(
            {**base, **record, "status": "ok", "time": time.time(), "duration_s": time.time() - t0}
        )
        if plugins:
            self.manifest["plugins"].update(plugins)
            self.save_manifest()

    # -- vectors -------------------------------------------------------------------
    def vectors_path(self, method: str | None = None) -> Path:
        primary = self.manifest.get("primary_method")
        if method is None or method == primary:
            return self.path / VECTORS
        return self.path / f"vectors-{method}.safetensors"

    def save_vectors(self, vectors: dict[str, np.ndarray], metadata: dict, method: str) -> Path:
        from safetensors.numpy import save

        if "primary_method" not in self.manifest:
            self.manifest["primary_method"] = method
            self.save_manifest()
        path = self.vectors_path(method)
        meta = {k: str(v) for k, v in {**metadata, "method": method}.items()}
        arrays = {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in vectors.items()}
        atomic_write(path, save(arrays, metadata=meta))
        return path

    def methods(self) -> list[str]:
        primary = self.manifest.get("primary_method")
        others = sorted(
            p.name[len("vectors-") : -len(".safetensors")]
            for p in self.path.glob("vectors-*.safetensors")
        )
        return ([primary] if primary else []) + others

    def load_vectors(self, method: str | None = None) -> tuple[dict[str, np.ndarray], dict]:
        return read_vectors(self.vectors_path(method))

    # -- artifacts -----------------------------------------------------------------
    def artifact(self, name: str) -> Path:
        return self.path / "artifacts" / name

    def write_artifact(self, name: str, data: bytes | str) -> Path:
        path = self.artifact(name)
        atomic_write(path, data.encode() if isinstance(data, str) else data)
        return path

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

    def save_arrays(self, name: str, arrays: dict[str, np.ndarray], metadata: dict) -> Path:
        from safetensors.numpy import save

        return self.write_artifact(
            name,
            save(
                {k: np.ascontiguousarray(v) for k, v in arrays.items()},
                metadata={k: str(v) for k, v in metadata.items()},
            ),
        )

    def load_arrays(self, name: str) -> tuple[dict[str, np.ndarray], dict]:
        return read_vectors(self.artifact(name))


def read_vectors(path: Path) -> tuple[dict[str, np.ndarray], dict]:
    """Read a safetensors file of vectors with its metadata, or a clear error naming it."""
    from safetensors import SafetensorError, safe_open

    if not path.is_file():
        raise SessionError(f"{path}: missing")
    try:
        with safe_open(str(path), framework="numpy") as f:
            meta = f.metadata() or {}
            return {k: f.get_tensor(k) for k in f.keys()}, meta
    except (SafetensorError, OSError, ValueError) as exc:
        raise SessionError(f"{path}: corrupt vectors file ({str(exc).splitlines()[0]})") from None


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
