"""Sweeps on a local 2-CPU Ray cluster write what a serial run writes; worker deaths are
retried once, then marked failed; bad Ray input is one line."""

import os

import pytest

ray = pytest.importorskip("ray")

from emolab import engine  # noqa: E402
from emolab.errors import BadInput  # noqa: E402


@pytest.fixture(scope="module")
def cluster():
    """One local cluster for the module: Ray start-up costs seconds."""
    started = engine.ray_init(None, num_cpus=2)
    yield
    if started:
        ray.shutdown()


def test_ray_sweep_equals_serial(cluster, tiny_session_dir, tmp_path, small_judge):
    from test_batching import artifacts, session_copy, sweep_params

    from emolab.steps import sweep

    a = session_copy(tiny_session_dir, tmp_path / "a")
    b = session_copy(tiny_session_dir, tmp_path / "b")
    serial = sweep.run(a, sweep_params(), engine=engine.Serial())
    ex = engine.RayExecutor(workers=2, threads=1, max_cells=2)
    distributed = sweep.run(b, sweep_params(), engine=ex)
    assert len(set(ex.pids)) == 2 and os.getpid() not in ex.pids
    assert distributed["rows"] == serial["rows"]
    assert artifacts(b, distributed) == artifacts(a, serial)


def test_bad_ray_input(monkeypatch):
    with pytest.raises(BadInput, match="cannot reach the Ray cluster at 127.0.0.1:9"):
        engine.probe("127.0.0.1:9")
    with pytest.raises(BadInput, match="bad Ray address"):
        engine.probe("nowhere")
    monkeypatch.setitem(__import__("sys").modules, "ray", None)
    with pytest.raises(
        BadInput, match=r"Ray is not installed here \(pip install 'emolab\[ray\]'\)"
    ):
        engine.executor("ray")


class Dying(engine.RayExecutor):
    """Ray executor whose workers die on chosen cells (emolab.testing.DieOnce)."""

    def __init__(self, faults, marker, **kw):
        super().__init__(**kw)
        self.faults, self.marker = faults, marker

    def ship(self, work):
        from emolab.testing import DieOnce

        return super().ship(DieOnce(work, self.faults, self.marker))


def test_dead_worker_retried_then_marked_failed(cluster, tiny_session_dir, tmp_path, small_judge):
    from test_batching import session_copy, sweep_params

    from emolab.steps import sweep

    grid = sweep_params(emotions=["joy"], layers=[2])
    once, always = ("joy", "residual", 2, 0.3), ("joy", "residual", 2, 2.0)
    ref = sweep.run(session_copy(tiny_session_dir, tmp_path / "ref"), grid)
    s = session_copy(tiny_session_dir, tmp_path / "s")
    ex = Dying({once: 1, always: 9}, tmp_path / "deaths", max_cells=1)
    res = sweep.run(s, grid, engine=ex)
    deaths = (tmp_path / "deaths").read_text().splitlines()
    assert deaths.count(repr(once)) == 1 and deaths.count(repr(always)) == 2
    # died once: retried on another worker, its row is the serial one
    assert [r for r in res["rows"] if sweep.cell_key(r) == once] == ref["rows"][:1]
    # died twice: marked failed with the error
    (failed,) = [r for r in res["rows"] if r["regime"] == "failed"]
    assert sweep.cell_key(failed) == always and "died" in failed["error"]
    # resuming computes just the failed cell, and then the table is the serial one
    again = sweep.run(s, grid)
    assert again["computed"] == 1 and again["rows"] == ref["rows"]
