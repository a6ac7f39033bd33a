"""Cell executors: one interface, three ways to run a grid of independent cells.

A step (a sweep, a study) describes its cells and hands the executor a `Work`: a picklable
object that loads what it needs once per process (`start`) and computes a list of cells
together (`run`). The executor decides how cells are grouped and where they run:

- `Serial`: one cell at a time, in this process (the reference).
- `Batched`: cells of one group (e.g. one layer) `max_cells` at a time in one pass, in this
  process; a Work computes a group exactly as it computes its cells alone.
- `RayExecutor`: long-lived Ray actors, one per GPU or per CPU share, each loading the model
  once; the work (vectors, baselines, the judge) goes to the cluster once with `ray.put`.

Whatever the executor, results come back to the caller in the order the cells were given,
so the caller, the only writer of the session, writes exactly what a serial run writes.
A cell whose worker died is retried once on another worker, then returned as
`{"error": ...}`; an error the user caused (EmolabError) stops the run as it would serially.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Hashable, Iterator, Sequence
from typing import Any, Protocol

from .errors import BadInput, EmolabError

Result = dict[str, Any]


class Work(Protocol):
    """What an executor runs. Must pickle (it travels to Ray workers)."""

    def start(self) -> None:
        """Load the model and anything else heavy; called once per process before `run`."""

    def group(self, cell: Any) -> Hashable:
        """Cells with the same group can be computed in one pass (e.g. the same layer)."""

    def run(self, cells: Sequence[Any]) -> list[Result]:
        """One result per cell, equal to running each cell alone."""


def in_order(n: int, finished: Iterator[tuple[int, Result]]) -> Iterator[tuple[int, Result]]:
    """Re-order (index, result) pairs that finish in any order into index order."""
    held: dict[int, Result] = {}
    nxt = 0
    for i, res in finished:
        held[i] = res
        while nxt in held:
            yield nxt, held.pop(nxt)
            nxt += 1
    if nxt != n:
        raise RuntimeError(f"executor lost cells {sorted(set(range(nxt, n)) - set(held))}")


def groups_of(work: Work, cells: Sequence[Any], max_cells: int) -> list[list[int]]:
    """Indices of `cells` grouped by `work.group`, in first-seen order, at most `max_cells`
    per group."""
    by: dict[Hashable, list[int]] = {}
    for i, c in enumerate(cells):
        by.setdefault(work.group(c), []).append(i)
    out = []
    for idx in by.values():
        out.extend(idx[s : s + max_cells] for s in range(0, len(idx), max_cells))
    return out


def group_order(work: Work, cells: Sequence[Any]) -> list[Any]:
    """`cells` with each group's cells together, groups in first-seen order. A caller that
    hands cells over in this order gets each batch back as soon as it is computed: results
    come back in the order given, so cells given interleaved across groups (a sweep's
    emotion-major grid) would be held until every group before them had run, and a killed
    run would lose them."""
    return [cells[i] for idx in groups_of(work, cells, len(cells) or 1) for i in idx]


class Serial:
    """One cell at a time in this process."""

    name = "serial"

    def describe(self) -> dict:
        return {"engine": self.name}

    def release(self) -> None:
        """Free what `map` kept between calls (nothing in this process)."""

    def map(
        self, work: Work, cells: Sequence[Any], check: Callable[[], None] | None = None
    ) -> Iterator[tuple[int, Result]]:
        work.start()
        for i, cell in enumerate(cells):
            if check:
                check()
            yield i, work.run([cell])[0]


class Batched(Serial):
    """Cells of one group `max_cells` at a time, in one pass each, in this process."""

    name = "batched"

    def __init__(self, max_cells: int = 8) -> None:
        if max_cells < 1:
            raise BadInput("batch of cells must hold at least 1 cell")
        self.max_cells = max_cells

    def describe(self) -> dict:
        return {"engine": self.name, "max_cells": self.max_cells}

    def map(self, work, cells, check=None):
        work.start()

        def finished():
            for idx in groups_of(work, cells, self.max_cells):
                if check:
                    check()
                yield from zip(idx, work.run([cells[i] for i in idx]))

        yield from in_order(len(cells), finished())


# -- Ray -------------------------------------------------------------------------------
def import_ray():
    try:
        import ray
    except ImportError:
        raise BadInput("Ray is not installed here (pip install 'emolab[ray]')") from None
    return ray


def ray_init(address: str | None = None, num_cpus: int = 2) -> bool:
    """Join the cluster at `address` (or RAY_ADDRESS), or start a local one with `num_cpus`
    CPUs and no dashboard. Returns True when this call started Ray (the caller shuts it
    down). Unreachable addresses are one line."""
    ray = import_ray()
    if ray.is_initialized():
        return False
    address = address or os.environ.get("RAY_ADDRESS") or None
    env = {k: v for k, v in os.environ.items() if k.startswith("EMOLAB_")}
    kw: dict[str, Any] = {
        "include_dashboard": False,
        "logging_level": logging.ERROR,
        "log_to_driver": False,
        "runtime_env": {"env_vars": env} if env else None,
    }
    try:
        if address:
            probe(address)
            ray.init(address=address, **kw)
        else:
            os.environ.pop("RAY_ADDRESS", None)  # an empty RAY_ADDRESS means "start one"
            ray.init(num_cpus=num_cpus, **kw)
    except (ConnectionError, TimeoutError, ValueError, RuntimeError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise BadInput(f"cannot reach the Ray cluster at {address or 'local'}: {first}") from None
    return True


def probe(address: str, timeout: float = 3.0) -> None:
    """Ray retries an unreachable head for minutes; a TCP connect says so in seconds."""
    import socket

    if address == "auto":
        return
    hostport = address.split("://", 1)[-1]
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        raise BadInput(f"bad Ray address '{address}' (use HOST:PORT, ray://HOST:PORT or auto)")
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as exc:
        raise BadInput(
            f"cannot reach the Ray cluster at {address}: {exc.strerror or exc}"
        ) from None


_ACTOR = None


def actor_class():
    """The Ray actor that holds one Work (and so one loaded model) for its lifetime."""
    global _ACTOR
    if _ACTOR is None:
        ray = import_ray()

        @ray.remote(max_restarts=0, max_task_retries=0)
        class CellWorker:
            def __init__(self, threads: int) -> None:
                # before torch is imported here: the threads this actor was given
                os.environ["EMOLAB_THREADS"] = str(threads)
                self.work = None

            def start(self, work) -> int:
                from .models import configure_threads

                configure_threads()
                self.work = work
                work.start()
                return os.getpid()

            def run(self, cells):
                return self.work.run(cells)

        _ACTOR = CellWorker
    return _ACTOR


def died(exc: BaseException) -> bool:
    """True for a worker that went away (crash, kill, lost node), not an error in a cell."""
    ray = import_ray()
    return isinstance(
        exc,
        (ray.exceptions.RayActorError, ray.exceptions.WorkerCrashedError),
    ) or type(exc).__name__ in ("ActorDiedError", "ActorUnavailableError", "NodeDiedError")


def user_error(exc: BaseException) -> EmolabError | None:
    """The EmolabError a cell raised inside a worker, if that is what happened."""
    cause = getattr(exc, "cause", None)
    if isinstance(cause, EmolabError):
        return cause
    if isinstance(exc, EmolabError):
        return exc
    return None


class RayExecutor:
    """Cells on Ray actors; results back in order to the driver, the only writer.

    `workers`: how many actors (default: one per GPU for cuda work, else one per
    `threads` CPUs of the cluster). `max_cells`: cells per task, batched inside the actor.
    """

    name = "ray"

    def __init__(
        self,
        address: str | None = None,
        workers: int | None = None,
        threads: int = 1,
        max_cells: int = 8,
        gpus_per_worker: float = 0.0,
    ) -> None:
        if threads < 1:
            raise BadInput("Ray workers need at least 1 thread each")
        if workers is not None and workers < 1:
            raise BadInput("Ray needs at least 1 worker")
        self.address, self.workers, self.threads = address, workers, threads
        self.max_cells, self.gpus = max_cells, gpus_per_worker
        self.started_ray = False
        self.pids: list[int] = []
        # the workers of the last `map`, kept for the next one on the same work (a sweep's
        # random controls, then its cells), so they start and load the model once
        self.pool: tuple[Work, Any, list] | None = None

    def describe(self) -> dict:
        return {
            "engine": self.name,
            "workers": self.workers,
            "threads": self.threads,
            "max_cells": self.max_cells,
            "gpus_per_worker": self.gpus,
        }

    def ship(self, work: Work):
        """Put the work (vectors, baselines, judge) in the object store once."""
        return import_ray().put(work)

    def pool_size(self) -> int:
        ray = import_ray()
        res = ray.cluster_resources()
        if self.gpus:
            have = int(res.get("GPU", 0) // self.gpus)
            if have < 1:
                raise BadInput("the Ray cluster has no GPU for a cuda worker (start one with GPUs)")
        else:
            have = int(res.get("CPU", 1) // self.threads)
        return max(1, min(self.workers or have, have))

    def spawn(self, ref):
        """A new actor holding the work; its start() is awaited by the first task."""
        actor = (
            actor_class().options(num_cpus=self.threads, num_gpus=self.gpus).remote(self.threads)
        )
        return actor, actor.start.remote(ref)

    def map(self, work, cells, check=None):
        self.started_ray = ray_init(self.address) or self.started_ray
        if self.pool is None or self.pool[0] is not work:
            self.release_actors()
            self.pool = (work, self.ship(work), [])
        _, ref, actors = self.pool
        groups = groups_of(work, cells, self.max_cells)
        while len(actors) < (min(self.pool_size(), len(groups)) or 1):
            actors.append(self.spawn(ref))
        finished = False
        try:
            self._wait_started(actors)
            yield from in_order(len(cells), self._dispatch(cells, groups, actors, ref, check))
            finished = True
        finally:
            if not finished:  # cancelled or failed: no worker is left half-way through a task
                self.release_actors()

    def release_actors(self) -> None:
        if self.pool is not None:
            ray = import_ray()
            for actor, _ in self.pool[2]:
                ray.kill(actor)
            self.pool = None

    def release(self) -> None:
        """Stop the workers, and the local cluster if this executor started it."""
        self.release_actors()
        if self.started_ray:
            import_ray().shutdown()
            self.started_ray = False

    def _wait_started(self, actors) -> None:
        ray = import_ray()
        for k, (actor, started) in enumerate(actors):
            if started is None:  # awaited by an earlier map
                continue
            try:
                self.pids.append(ray.get(started))
                actors[k] = (actor, None)
            except Exception as exc:  # a model that does not load or fit, on the worker
                err = user_error(exc)
                if err is not None:
                    raise err from None
                raise BadInput(f"a Ray worker could not start: {one_line(exc)}") from None

    def _dispatch(self, cells, groups, actors, ref, check) -> Iterator[tuple[int, Result]]:
        ray = import_ray()
        queue = [(g, 0, None) for g in groups]  # (indices, tries so far, actor that failed)
        idle = [a for a, _ in actors]
        running: dict = {}  # task ref -> (indices, tries, actor)
        while queue or running:
            if check:
                check()
            while queue and idle:
                idx, tries, bad = queue.pop(0)
                pick = next((a for a in idle if a is not bad), idle[0])
                idle.remove(pick)
                task = pick.run.remote([cells[i] for i in idx])
                running[task] = (idx, tries, pick)
            done, _ = ray.wait(list(running), num_returns=1, timeout=1.0)
            for task in done:
                idx, tries, actor = running.pop(task)
                try:
                    results = ray.get(task)
                except Exception as exc:
                    err = user_error(exc)
                    if err is not None:
                        raise err from None
                    if not died(exc):
                        raise
                    # the worker is gone: a fresh actor takes its place in the pool
                    actors[:] = [(a, st) for a, st in actors if a is not actor]
                    fresh, started = self.spawn(ref)
                    actors.append((fresh, started))
                    idle.append(fresh)
                    if tries == 0:
                        queue.insert(0, (idx, 1, fresh))  # anywhere but the fresh one, if we can
                        continue
                    for i in idx:
                        yield i, {"error": f"worker died twice: {one_line(exc)}"}
                    continue
                idle.append(actor)
                yield from zip(idx, results)


def one_line(exc: BaseException) -> str:
    text = str(getattr(exc, "cause", None) or exc).strip()
    return (text.splitlines() or [type(exc).__name__])[-1][:200]


def executor(
    kind: str = "serial",
    ray_address: str | None = None,
    workers: int | None = None,
    threads: int = 1,
    max_cells: int = 8,
    device: str = "cpu",
):
    """The executor a command asked for (`serial`, `batched` or `ray`)."""
    if kind == "serial":
        return Serial()
    if kind == "batched":
        return Batched(max_cells)
    if kind == "ray":
        import_ray()
        gpus = 1.0 if str(device).startswith("cuda") else 0.0
        return RayExecutor(ray_address, workers, threads, max_cells, gpus)
    raise BadInput(f"unknown engine '{kind}' (serial, batched or ray)")
