"""`emolab compare` on tiny-llama checkpoints: a checkpoint identical to the base reads as
unchanged (cosine 1, same sensitivity, 'holds'), real checkpoints move, the tables and the
chart are written, replay reproduces it, and mismatched sessions fail with one line."""

import json

import numpy as np
import pytest

from emolab.steps import compare, extract, finetune
from emolab.steps.common import new_session

EXTRACT = {"limit": 6, "test_limit": 4}


def fake_checkpoint(folder, step, hidden=None):
    """The tiny base model (or a narrower random one) saved as a checkpoint folder."""
    from emolab.plugins import load_model as load

    model = load("tiny-llama")
    if hidden:
        from transformers import AutoModelForCausalLM

        cfg = model.hf.config.to_dict()
        cfg.update(hidden_size=hidden, intermediate_size=2 * hidden)
        hf = AutoModelForCausalLM.from_config(type(model.hf.config)(**cfg))
    else:
        hf = model.hf
    hf.save_pretrained(folder)
    model.tokenizer.save_pretrained(folder)
    (folder / finetune.INFO).write_text(json.dumps({"step": step, "accuracy": 0.5}))
    return f"hf:{folder}"


@pytest.fixture(scope="module")
def sessions(tmp_path_factory):
    root = tmp_path_factory.mktemp("cmp")
    ft = new_session(root / "ft", "tiny-llama")
    finetune.run(
        ft,
        {"steps": 4, "save_every": 2, "batch_size": 4, "limit": 4, "test_limit": 2, "lr": 3e-3},
    )
    models = {"base": "tiny-llama"}
    for ck in finetune.checkpoints(ft.path):
        models[ck.name] = f"hf:{ck}"
    models["same"] = fake_checkpoint(root / "same-ckpt", 99)
    out = {}
    for name, model in models.items():
        s = new_session(root / name, model)
        extract.run(s, EXTRACT)
        out[name] = s
    return out


def test_compare_checkpoints(sessions, run_cli):
    base = sessions["base"]
    args = [base.path, sessions["step-000002"].path, sessions["step-000004"].path]
    r = run_cli("compare", *args, "--json")
    assert r.exit_code == 0, r.output
    out = json.loads(r.output[r.output.index("{") :])
    assert out["checkpoints"] == ["base", "step-2", "step-4"]
    summary = out["summary"]
    assert summary[0]["cos_base"] == pytest.approx(1.0)
    assert all(-1 < row["cos_base"] < 0.9999 for row in summary[1:])  # training moved them
    assert summary[0]["test_accuracy"] is not None  # the base accuracy from the fine-tune log
    for row in summary:
        assert 0 <= row["probe_acc"] <= 1 and 0 <= row["between_abs_cos"] <= 1
    emotions = out["emotions"]
    assert set(out["verdicts"]) == set(emotions)
    assert {v["verdict"] for v in out["verdicts"].values()} <= {
        "falls",
        "holds",
        "rises",
        "no rise at base",
    }
    own = {
        (r["step"], r["emotion"]): r["slope"] for r in out["sensitivity"] if r["vector"] == "own"
    }
    basev = {
        (r["step"], r["emotion"]): r["slope"] for r in out["sensitivity"] if r["vector"] == "base"
    }
    assert own[(0, "joy")] == basev[(0, "joy")]
    assert own[(4, "joy")] != basev[(4, "joy")]
    from emolab import results

    wide = results.latest(base, "compare", suffix="-sensitivity-by-step.csv").path
    wide = wide.read_text().splitlines()
    assert wide[0].startswith("step,checkpoint,anger/own,anger/base") and len(wide) == 4
    assert "surprise" in results.latest(base, "compare", suffix="-chart.txt").path.read_text()
    ev = base.steps()[-1]
    assert ev["kind"] == "compare" and "sensitivity/own/joy/step-4" in ev["metrics"]


def test_identical_checkpoint_reads_as_unchanged(sessions):
    base = sessions["base"]
    out = compare.run(base, {"others": [str(sessions["same"].path)]})
    same = out["summary"][1]
    assert same["checkpoint"] == "step-99"
    assert same["cos_base"] == pytest.approx(1.0, abs=1e-5)
    assert same["probe_acc"] == pytest.approx(out["summary"][0]["probe_acc"])
    for e in out["emotions"]:
        rows = [r for r in out["sensitivity"] if r["emotion"] == e]
        slopes = {(r["step"], r["vector"]): r["slope"] for r in rows}
        assert slopes[(99, "own")] == pytest.approx(slopes[(0, "own")], abs=1e-4)
        assert slopes[(99, "base")] == pytest.approx(slopes[(0, "own")], abs=1e-4)
        if out["verdicts"][e]["base"] > 0:
            assert out["verdicts"][e]["verdict"] == "holds"


def test_cli_table_names_falls_or_holds(sessions, run_cli):
    r = run_cli("compare", sessions["base"].path, sessions["same"].path)
    assert r.exit_code == 0, r.output
    assert "steering sensitivity per emotion" in r.output
    assert "sensitivity holds:" in r.output or "no rise at base" in r.output
    assert "steering sensitivity (label-logit rise per alpha" in r.output


def test_replay_of_compare(sessions, tmp_path):
    from emolab.steps.replay import replay

    base = sessions["base"]
    compare.run(base, {"others": [str(sessions["step-000004"].path)]})
    _, cmp = replay(base.path, out=tmp_path / "replay")
    assert cmp.ok, [r for r in cmp.rows if not r["ok"]]
    assert any("sensitivity/own/joy/step-4" in r["what"] for r in cmp.rows)


def test_different_width_points_to_align(sessions, run_cli, tmp_path):
    narrow = new_session(tmp_path / "narrow", fake_checkpoint(tmp_path / "n-ckpt", 5, hidden=32))
    extract.run(narrow, EXTRACT)
    r = run_cli("compare", sessions["base"].path, narrow.path)
    assert r.exit_code == 2
    assert "use `emolab align`" in r.output and len(r.output.strip().splitlines()) == 1


def test_different_texts_is_one_line(sessions, run_cli, tmp_path):
    other = new_session(tmp_path / "other", "tiny-llama")
    extract.run(other, {"limit": 5, "test_limit": 4})
    r = run_cli("compare", sessions["base"].path, other.path)
    assert r.exit_code == 2 and "different train texts" in r.output


@pytest.mark.parametrize(
    "extra,message",
    [
        ([], "at least one checkpoint session"),
        (["--alphas", "0"], "alphas must be non-zero"),
        (["--alphas", "x"], "bad --alphas"),
        (["--layer", "9"], "layer 9 was not extracted"),
    ],
)
def test_bad_compare_input(sessions, run_cli, extra, message):
    others = [] if not extra else [sessions["step-000002"].path]
    r = run_cli("compare", sessions["base"].path, *others, *extra)
    assert r.exit_code == 2, r.output
    assert message in r.output


def test_same_step_twice_is_one_line(sessions, run_cli):
    s = sessions["step-000002"].path
    r = run_cli("compare", sessions["base"].path, s, s)
    assert r.exit_code == 2 and "same training step" in r.output


def test_within_similarity_known_values():
    x = np.array([[1.0, 0.0], [2.0, 0.0], [3.0, 0.0]])
    assert compare.within_similarity(x, np.zeros(2)) == pytest.approx(1.0)
    y = np.array([[1.0, 0.0], [-1.0, 0.0]])
    assert compare.within_similarity(y, np.zeros(2)) == pytest.approx(-1.0)


def test_tui_compare_screen_draws_the_sensitivity_bars(sessions):
    import asyncio

    from emolab.tui.app import EmolabApp

    base = sessions["base"]
    out = compare.run(
        base, {"others": [str(sessions["step-000002"].path), str(sessions["step-000004"].path)]}
    )

    async def main():
        app = EmolabApp(base.path, root=base.path.parent)
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.press("7")
            await pilot.pause()
            assert app.current_mode == "compare"
            title = str(app.screen.query_one("#compare-title").render())
            assert f"L{out['layer']} over 3 checkpoints" in title
            assert app.screen.query_one("#compare").row_count == len(out["emotions"])
            chart = str(app.screen.query_one("#compare-chart").render())
            assert chart.startswith(out["emotions"][0]) and "step-4" in chart
            own = next(
                r["slope"]
                for r in out["sensitivity"]
                if r["step"] == 4 and r["emotion"] == out["emotions"][0] and r["vector"] == "own"
            )
            assert f"{own:+6.2f}" in chart
            await pilot.press("down")
            chart = str(app.screen.query_one("#compare-chart").render())
            assert chart.startswith(out["emotions"][1])

    asyncio.run(main())
