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
    # two workers serve the random-direction controls and then the cells (started once,
    # model loaded once); none is the driver; released when the sweep ends
    assert len(set(ex.pids)) == 2 and os.getpid() not in ex.pids
    assert ex.pool is None
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
    once, always = ("joy", "residual", 2, 1, 0.3), ("joy", "residual", 2, 1, 2.0)
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


def same_study(a: dict, b: dict) -> None:
    strip = [{k: v for k, v in r.items() if k != "session"} for r in a["rows"]]
    assert strip == [{k: v for k, v in r.items() if k != "session"} for r in b["rows"]]


def test_ray_study_equals_serial(cluster, tmp_path, small_judge, tiny_study):
    from emolab.steps import study

    serial = study.run(tmp_path / "serial", tiny_study(["tiny-llama"]))
    ray_ = study.run(
        tmp_path / "ray", tiny_study(["tiny-llama"]), engine=engine.RayExecutor(workers=2)
    )
    same_study(serial, ray_)


@pytest.mark.real
def test_smollm2_sweep_and_study_on_ray_equal_serial(cluster, tmp_path, small_judge, tiny_study):
    """The real model, kept small: 1 layer, 2 prompts, 6 tokens."""
    from test_batching import artifacts

    from emolab.steps import extract, study, sweep
    from emolab.steps.common import new_session
    from emolab.testing import load_or_skip

    load_or_skip("smollm2-135m")
    s = new_session(tmp_path / "smol", "smollm2-135m")
    extract.run(s, {"emotions": ["joy", "anger"], "layers": "15", "limit": 8, "test_limit": 4})
    grid = {
        "emotions": ["joy", "anger"],
        "layers": [15],
        "alphas": [0.3, 0.6],
        "prompts": ["Tell me about your day.", "Describe the weather."],
        "max_new_tokens": 6,
        "judge_train_limit": 300,
    }
    import shutil

    from emolab.session import Session

    shutil.copytree(s.path, tmp_path / "smol-ray")
    on_ray = Session.open(tmp_path / "smol-ray")
    serial = sweep.run(s, grid)
    distributed = sweep.run(on_ray, grid, engine=engine.RayExecutor(workers=2, max_cells=2))
    assert distributed["rows"] == serial["rows"]
    assert artifacts(on_ray, distributed) == artifacts(s, serial)
    p = tiny_study(["smollm2-135m"], layers="15", alphas=[0.3], max_new_tokens=6)
    same_study(
        study.run(tmp_path / "st-serial", p),
        study.run(tmp_path / "st-ray", p, engine=engine.RayExecutor(workers=2)),
    )
