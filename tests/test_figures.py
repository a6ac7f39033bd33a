"""`emolab plot`: every figure kind drawn from sessions the real steps wrote (tiny models),
in png / svg / pdf, with its chance level; bad input is one line and exit 2."""

import json
import shutil

import numpy as np
import pytest

from emolab import figures
from emolab.errors import BadInput
from emolab.figures.geometry import monotone_path
from emolab.session import Session

MAGIC = {"png": b"\x89PNG", "svg": b"<?xml", "pdf": b"%PDF"}


@pytest.fixture(scope="module")
def sweep_session(analysed_session_dir, tmp_path_factory, small_judge):
    from emolab.steps import sweep

    path = tmp_path_factory.mktemp("sweep") / "s"
    shutil.copytree(analysed_session_dir, path)
    s = Session.open(path)
    sweep.run(
        s,
        {
            "emotions": ["joy", "anger"],
            "layers": [1, 2],
            "alphas": [0.2, 2.0],
            "prompts": ["Tell me about your day.", "Describe the weather."],
            "max_new_tokens": 4,
            "judge_train_limit": small_judge,
        },
    )
    return s


@pytest.fixture(scope="module")
def checkpoint_session(tmp_path_factory):
    """A base tiny-llama session compared with one real fine-tune checkpoint of it."""
    from emolab.steps import compare, extract, finetune
    from emolab.steps.common import new_session

    root = tmp_path_factory.mktemp("ckpt")
    ft = new_session(root / "ft", "tiny-llama")
    finetune.run(
        ft, {"steps": 2, "save_every": 2, "batch_size": 4, "limit": 4, "test_limit": 2, "lr": 3e-3}
    )
    sessions = []
    for name, model in [("base", "tiny-llama")] + [
        (ck.name, f"hf:{ck}") for ck in finetune.checkpoints(ft.path)
    ]:
        s = new_session(root / name, model)
        extract.run(s, {"limit": 6, "test_limit": 4})
        sessions.append(s)
    compare.run(sessions[0], {"others": [str(s.path) for s in sessions[1:]]})
    return sessions[0]


def _check_files(paths, fmt):
    assert paths
    for p in paths:
        assert p.read_bytes()[:5].startswith(MAGIC[fmt]), p


@pytest.mark.parametrize("fmt", ["png", "svg", "pdf"])
def test_every_kind_of_the_analysed_session(analysed_session_dir, tmp_path, fmt):
    s = Session.open(analysed_session_dir)
    assert figures.available(s) == ["layers", "cosines", "heads", "align"]
    paths = figures.plot(s, None, fmt, tmp_path)
    assert sorted(p.name for p in paths) == sorted(
        f"{n}.{fmt}" for n in ("layers", "cosines", "heads-joy", "align")
    )
    _check_files(paths, fmt)


def _lines_at(ax, y):
    return [ln for ln in ax.get_lines() if len(ln.get_ydata()) and np.allclose(ln.get_ydata(), y)]


def test_layer_curve_has_chance_bands_surface_and_peaks(analysed_session_dir):
    s = Session.open(analysed_session_dir)
    (drawn,) = figures.draw(s, "layers")
    ax = drawn.figure.axes[0]
    assert ax.get_xlabel() and ax.get_ylabel() == "held-out balanced accuracy"
    assert _lines_at(ax, 0.5), "chance level drawn"
    data = json.loads(figures.results.latest(s, "layers", suffix=".json").path.read_text())
    surface = np.nanmean([r["acc_surface"] for r in data["rows"]])
    assert _lines_at(ax, surface), "surface baseline drawn"
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert {"mean_diff", "logistic"} <= set(labels)
    assert any(t.startswith("random directions") for t in labels)
    assert any(t.startswith("shuffled labels") for t in labels)
    # the split that chose the peak is the one the step records (dev; train for old sessions)
    split = next(iter(data["summary"].values()))["chosen_on"]
    assert split in ("dev", "train") and f"peak layer (chosen on {split} split)" in labels
    stars = [ln for ln in ax.get_lines() if ln.get_marker() == "*" and len(ln.get_xdata())]
    got = sorted((int(ln.get_xdata()[0]), float(ln.get_ydata()[0])) for ln in stars)
    want = sorted((v["peak_layer"], v["peak_acc"]) for v in data["summary"].values())
    assert got == pytest.approx(want)
    assert len(ax.collections) >= 1 + 2  # random band + one shuffled band per method


def test_peak_split_is_read_from_the_summary_when_recorded():
    assert figures.accuracy.peak_split({"peak_split": "dev"}) == "dev"
    assert figures.accuracy.peak_split({"peak_layer": 3}) == "test"


def test_cosines_raw_beside_mean_centred(analysed_session_dir):
    s = Session.open(analysed_session_dir)
    (drawn,) = figures.draw(s, "cosines")
    titles = [ax.get_title() for ax in drawn.figure.axes]
    assert "class centroids, raw" in titles and "class centroids, mean-centred" in titles
    im = drawn.figure.axes[0].images[0]
    assert im.get_clim() == (-1, 1)


def test_head_map_is_centred_at_zero_and_labels_top_heads(analysed_session_dir):
    s = Session.open(analysed_session_dir)
    (drawn,) = figures.draw(s, "heads")
    ax = drawn.figure.axes[0]
    lo, hi = ax.images[0].get_clim()
    assert lo == -hi and hi > 0
    notes = [t.get_text() for t in ax.texts]
    assert notes and notes[0] == "1"  # the rank sits inside its own cell, never beside it
    top = ax.texts[0].get_position()
    assert ax.patches[0].get_xy() == (top[0] - 0.5, top[1] - 0.5)
    assert f"1: L{int(top[1])}H{int(top[0])} " in ax.get_xlabel()


def test_sweep_grid_marks_regimes_and_chance(sweep_session, tmp_path):
    paths = figures.plot(sweep_session, "sweep", "png", tmp_path)
    _check_files(paths, "png")
    (drawn,) = figures.draw(sweep_session, "sweep")
    panels = [ax for ax in drawn.figure.axes if ax.images]
    assert len(panels) == 2  # joy, anger
    for ax in panels:
        assert ax.images[0].get_array().shape == (2, 2)  # layers x alphas
        assert "unsteered" in ax.get_title()
    rows = figures.read_csv(figures.results.latest(sweep_session, "sweep", suffix=".csv").path)
    n_marked = sum(r["regime"] != "surgical" for r in rows)
    marked = sum(
        t.get_text().endswith(("\nR", "\nE")) for ax in panels for t in ax.texts
    )  # fmt: skip
    assert marked == n_marked
    # outlined: the cell each emotion's dev prompts chose (from the log's choices)
    choices = figures.results.latest(sweep_session, "sweep", suffix=".csv").event["choices"]
    for ax in panels:
        emo = ax.get_title().split(" (")[0]
        layer, alpha = choices[f"best_cell/{emo}"]["value"]
        (box,) = [p for p in ax.patches if not p.get_fill()]
        x, y = box.get_xy()
        layers = [int(t.get_text()) for t in ax.get_yticklabels()]
        alphas = [float(t.get_text()) for t in ax.get_xticklabels()]
        assert (layers[round(y + 0.5)], alphas[round(x + 0.5)]) == (layer, alpha)
    assert "chosen on the dev prompts" in drawn.caption


def test_alignment_has_monotone_path_and_baselines(analysed_session_dir):
    (drawn,) = figures.draw(Session.open(analysed_session_dir), "align")
    ax, bx = drawn.figure.axes[0], drawn.figure.axes[1]
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "monotone correspondence" in labels
    assert any("permutation baseline" in t.get_text() for t in bx.get_legend().get_texts())


def test_monotone_path_is_the_best_non_decreasing_one():
    import itertools

    rng = np.random.default_rng(0)
    for _ in range(20):
        m = rng.random((4, 5))
        path = monotone_path(m)
        assert all(a <= b for a, b in itertools.pairwise(path))
        best = max(
            sum(m[i, j] for i, j in enumerate(p))
            for p in itertools.product(range(5), repeat=4)
            if all(a <= b for a, b in itertools.pairwise(p))
        )
        assert sum(m[i, j] for i, j in enumerate(path)) == pytest.approx(best)


def test_checkpoints_and_crosslingual(checkpoint_session, crosslingual_session_dir, tmp_path):
    paths = figures.plot(checkpoint_session, "checkpoints", "svg", tmp_path)
    _check_files(paths, "svg")
    (drawn,) = figures.draw(checkpoint_session, "checkpoints")
    ax = drawn.figure.axes[0]
    assert ax.get_xlabel() == "fine-tune step" and _lines_at(ax, 0.0)
    drawn.figure.canvas.draw()  # the legend sits under the axes, never over the lines
    assert ax.get_legend().get_window_extent().y1 < ax.get_window_extent().y0
    xl = Session.open(crosslingual_session_dir)
    paths = figures.plot(xl, None, "pdf", tmp_path)
    assert [p.name for p in paths] == ["crosslingual.pdf"]
    _check_files(paths, "pdf")
    (drawn,) = figures.draw(xl, "crosslingual")
    ax = drawn.figure.axes[0]
    foreign = ax.containers[1]  # own, foreign, random: the % is foreign / own
    assert foreign.get_label() == "other language's"
    tops = {round(b.get_x() + b.get_width() / 2, 6): max(b.get_height(), 0.0) for b in foreign}
    labels = [t for t in ax.texts if t.get_text().endswith("%")]
    assert labels
    for t in labels:  # on its own bar, not floating above the random band
        x, y = t.get_position()
        assert tops[round(x, 6)] == pytest.approx(y)


def test_cli_plot(run_cli, analysed_session_dir, tmp_path):
    r = run_cli("plot", analysed_session_dir, "layers", "--format", "svg", "--out", tmp_path)
    assert r.exit_code == 0, r.output
    assert (tmp_path / "layers.svg").read_text().lstrip().startswith("<?xml")
    r = run_cli("plot", analysed_session_dir, "--out", tmp_path / "all", "--json")
    assert r.exit_code == 0, r.output
    assert len(json.loads(r.output)["figures"]) == 4


@pytest.mark.parametrize(
    "args, message",
    [
        (["sweep"], "no sweep results to plot"),
        (["checkpoints"], "no compare results to plot"),
        (["nonsense"], "unknown figure 'nonsense'"),
        (["layers", "--format", "jpeg"], "unknown figure format 'jpeg'"),
    ],
)
def test_cli_plot_bad_input(run_cli, analysed_session_dir, tmp_path, args, message):
    r = run_cli("plot", analysed_session_dir, *args, "--out", tmp_path)
    assert r.exit_code == 2
    assert message in r.output and len(r.output.strip().splitlines()) == 1


def test_cli_plot_session_with_nothing_to_plot(run_cli, tiny_session, tmp_path):
    r = run_cli("plot", tiny_session.path, "--out", tmp_path)
    assert r.exit_code == 2 and "no results to plot" in r.output
    r = run_cli("plot", tmp_path / "missing")
    assert r.exit_code == 2 and "no such session" in r.output


def test_plot_a_published_vector_file(run_cli, analysed_session_dir, tmp_path):
    """vectors/publish.py's files record their accuracy by layer: `plot FILE` draws it with
    the cosines at the recorded peak; a plain session vector file is refused in one line."""
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location(
        "publish", Path(__file__).parent.parent / "vectors" / "publish.py"
    )
    publish = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(publish)
    out = tmp_path / "tiny-set.safetensors"
    publish.main(str(analysed_session_dir), "mean_diff", str(out), "emolab extract ...")
    from emolab import results
    from emolab.session import read_vectors

    _, meta = read_vectors(out)
    layers = results.latest(Session.open(analysed_session_dir), "layers", suffix=".json")
    summary = json.loads(layers.path.read_text())["summary"]["mean_diff"]
    assert meta.extra["peak_chosen_on"] == "dev" and summary["chosen_on"] == "dev"
    assert int(meta.extra["peak_layer"]) == summary["peak_layer"]  # dev's pick, test reported
    assert float(meta.extra["peak_acc_test"]) == pytest.approx(summary["peak_acc"], abs=1e-4)
    assert float(meta.extra["peak_acc_dev"]) == pytest.approx(summary["peak_acc_select"], abs=1e-4)
    drawn = figures.accuracy.vector_set(*read_vectors(out), "tiny-set")
    legend = [t.get_text() for t in drawn.axes[0].get_legend().get_texts()]
    assert "mean_diff, dev" in legend and "peak layer (chosen on dev)" in legend
    with pytest.raises(BadInput, match="has no lda"):
        publish.main(str(analysed_session_dir), "lda", str(tmp_path / "x.safetensors"), "c")
    r = run_cli("plot", out, "--out", tmp_path / "figs")
    assert r.exit_code == 0, r.output
    assert (tmp_path / "figs" / "tiny-set.png").read_bytes()[:4] == b"\x89PNG"
    r = run_cli("plot", analysed_session_dir / "vectors.safetensors", "--out", tmp_path)
    assert r.exit_code == 2 and "records no accuracy by layer" in r.output
