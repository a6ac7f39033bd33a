"""The steering sweep on the tiny session: csv, best surgical cell, resume, bad input."""

import csv
import json

import numpy as np
import pytest

from emolab.errors import BadInput
from emolab.progress import RecordingProgress
from emolab.steps import sweep


def small(**kw):
    return {
        "emotions": ["joy", "anger"],
        "layers": [1, 2],
        "alphas": [0.2, 2.0],
        "prompts": ["Tell me about your day.", "Describe the weather."],
        "max_new_tokens": 4,
        "judge_train_limit": 300,
        **kw,
    }


def test_sweep_writes_cells_and_resumes(tiny_session, small_judge):
    prog = RecordingProgress()
    res = sweep.run(tiny_session, small(), prog)
    assert res["computed"] == 8 and res["resumed"] == 0
    rows = list(csv.DictReader(open(res["csv"])))
    assert len(rows) == 8
    assert {r["regime"] for r in rows} <= {"surgical", "repetitive", "explosive"}
    for r in res["rows"]:
        assert 0 <= r["judge_agreement"] <= 1
        mean = (r["p_target_minilm"] + r["p_target_tfidf"]) / 2
        assert r["p_target"] == pytest.approx(mean, abs=1e-4)
    for r in res["rows"]:
        assert r["p_target_rise"] == pytest.approx(r["p_target"] - r["p_target_baseline"], abs=1e-4)
    assert any(t[0].startswith("sweep 8 cells") for t in prog.tasks)
    assert res["prompt_halves"] == {"dev": [0], "test": [1]}
    for emo, best in res["best"].items():
        # chosen on the dev prompts alone: no other cell of this emotion does better there
        mine = [r for r in res["rows"] if r["emotion"] == emo]
        assert best["success_dev"] == max(r["success_dev"] for r in mine)
    step = [e for e in tiny_session.steps() if e["kind"] == "sweep"][-1]
    assert step["choices"]["best_cell/joy"]["chosen_on"] == "dev prompts"
    assert "success_test_mean" in step["metrics"]
    for r in res["rows"]:
        for k in ("success_rate", "success_dev", "success_test", "success_random_test"):
            assert 0 <= r[k] <= 1
        # a scenario succeeds only when on target: never more than the top-label share
        assert r["success_rate"] <= r["top_is_target"] + 1e-9
        # ... and only when its text stayed surgical: never more than the surgical share
        for h in ("dev", "test"):
            assert 0 <= r[f"success_{h}"] <= r[f"surgical_{h}"] <= 1
    # the same sweep again: nothing recomputed, same numbers
    again = sweep.run(tiny_session, small())
    assert again["computed"] == 0 and again["resumed"] == 8
    assert again["rows"] == res["rows"]
    # a larger grid computes only the new cells
    more = sweep.run(tiny_session, small(alphas=[0.2, 2.0, 0.5]))
    assert more["computed"] == 4 and more["resumed"] == 8

    def texts(out):
        return tiny_session.artifact(out["csv"].rsplit("/", 1)[1].replace(".csv", "-texts.jsonl"))

    assert len(texts(more).read_text().splitlines()) == 12
    # each step keeps its own table and texts: the larger grid did not touch the first's
    assert len(texts(res).read_text().splitlines()) == 8
    assert len(open(res["csv"]).read().splitlines()) == 1 + 8
    log = [e for e in tiny_session.steps() if e["kind"] == "sweep"]
    assert len(log) == 3 and all(e["status"] == "ok" for e in log)


def test_sweep_bad_input(tiny_session):
    with pytest.raises(BadInput, match="alpha list is empty"):
        sweep.run(tiny_session, small(alphas=[]))
    with pytest.raises(BadInput, match="prompts file is empty"):
        sweep.run(tiny_session, small(prompts=[]))
    with pytest.raises(BadInput, match="out of range"):
        sweep.run(tiny_session, small(layers=[9]))


def test_sweep_cli_errors(run_cli, tiny_session, tmp_path):
    r = run_cli("sweep", tiny_session.path, "--alphas", "", "--json")
    assert r.exit_code == 2 and "alpha list is empty" in r.output
    r = run_cli("sweep", tiny_session.path, "--alphas", "0.1,x")
    assert r.exit_code == 2 and "bad alpha list" in r.output
    empty = tmp_path / "p.txt"
    empty.write_text("\n# only a comment\n")
    r = run_cli("sweep", tiny_session.path, "--prompts", empty)
    assert r.exit_code == 2 and "is empty" in r.output
    r = run_cli("sweep", tiny_session.path, "--prompts", tmp_path / "nope.txt")
    assert r.exit_code == 2 and "not found" in r.output


def test_sweep_cli_table_and_json(run_cli, tiny_session, small_judge, tmp_path):
    prompts = tmp_path / "p.txt"
    prompts.write_text("Tell me about your day.\nDescribe the weather.\n")
    args = (
        "sweep",
        tiny_session.path,
        "--emotions",
        "joy",
        "--layers",
        "2",
        "--alphas",
        "0.3",
        "--prompts",
        prompts,
        "--max-new-tokens",
        "4",
        "--judge-train-limit",
        "300",
    )
    r = run_cli(*args)
    assert r.exit_code == 0, r.output
    assert "steering sweep" in r.output and "joy" in r.output
    r = run_cli(*args, "--json")
    res = json.loads(r.output)
    assert res["resumed"] == 1 and res["judge"]["accuracy"] > 0


def test_best_surgical_needs_a_surgical_share():
    cells = [
        {"emotion": "joy", "regime": "surgical", "surgical_share": 0.2, "p_target_rise": 0.9},
        {"emotion": "joy", "regime": "surgical", "surgical_share": 0.8, "p_target_rise": 0.3},
        {"emotion": "joy", "regime": "explosive", "surgical_share": 0.0, "p_target_rise": 0.99},
        {"emotion": "fear", "regime": "repetitive", "surgical_share": 0.0, "p_target_rise": 0.5},
    ]
    best = sweep.best_surgical(cells)
    assert best["joy"]["p_target_rise"] == 0.3 and best["fear"] is None
    assert sweep.best_surgical(cells, 0.0)["joy"]["p_target_rise"] == 0.9


def test_sweep_judges_circuit_modulation_beside_residual_steering(tiny_session, small_judge):
    from emolab.steps import heads, shared

    with pytest.raises(BadInput, match="no head map for 'joy'"):
        sweep.run(tiny_session, small(circuits=[2]))
    heads.run(tiny_session, {"emotion": "joy", "compare": True, "layer": 3, "n_texts": 3})
    grid = small(
        emotions=["joy"], layers=[2], alphas=[0.3], circuits=[2], circuit_factors=[1.0, 3.0]
    )
    res = sweep.run(tiny_session, grid)
    kinds = [(r["intervention"], r["layer"], r["alpha"]) for r in res["rows"]]
    assert kinds == [("residual", 2, 0.3), ("circuit-top2", -1, 1.0), ("circuit-top2", -1, 3.0)]
    spec = shared.circuit_units(tiny_session, "joy", 2)[0]
    identity, scaled = res["rows"][1:]
    assert identity["heads"] == scaled["heads"] == spec
    # scaling heads by 1 changes nothing: same texts as the baseline, same judge numbers
    assert identity["p_target_rise"] == 0 and identity["perplexity_ratio"] == pytest.approx(1)
    assert identity["label_logit_shift"] == pytest.approx(0, abs=1e-4)
    assert set(res["best_circuit"]) == {"joy"}
    rows = list(csv.DictReader(open(res["csv"])))
    assert [r["intervention"] for r in rows].count("circuit-top2") == 2
    again = sweep.run(tiny_session, grid)
    assert again["computed"] == 0
    assert json.dumps(again["rows"]) == json.dumps(res["rows"])
    from rich.console import Console

    from emolab.commands.sweep import print_sweep

    con = Console(record=True, width=200)
    print_sweep(con, res)
    text = con.export_text()
    assert "2 heads" in text and "x3" in text  # circuit rows: k heads, factor
    assert "joy: residual best" in text and "| heads circuit best" in text
    best = res["best"]["joy"]
    assert f"joy: L{best['layer']} alpha {best['alpha']:g} (chosen on 1 dev prompts)" in text
    assert "success on test prompts, mean of 1 emotions" in text
    assert "L-1" not in text
    narrow = Console(record=True, width=80)
    print_sweep(narrow, res)
    assert "…" not in narrow.export_text()  # 80 columns: blocks, not cut headers
    step = tiny_session.steps()[-1]
    assert "interventions:enhance" in step["plugins"]


def test_sweep_circuit_bad_sizes(tiny_session):
    with pytest.raises(BadInput, match="parameter 'circuits' must be at least 1"):
        sweep.run(tiny_session, small(circuits=[0]))
    with pytest.raises(BadInput, match="factor list is empty"):
        sweep.run(tiny_session, small(circuits=[2], circuit_factors=[]))


class CancelAtCells(RecordingProgress):
    """Cancels the sweep once its random controls are done, as the cells start: a kill
    at the point where a resume used to redo every control."""

    def task(self, description: str, total: int) -> None:
        super().task(description, total)
        if description.startswith("sweep "):
            self.cancel()


def test_resumed_sweep_keeps_its_random_controls(tiny_session, small_judge, tmp_path):
    import shutil

    from emolab.errors import Cancelled
    from emolab.session import Session

    shutil.copytree(tiny_session.path, tmp_path / "copy")
    other = Session.open(tmp_path / "copy")
    grid = small(alphas=[0.3, 1.0])
    whole = sweep.run(tiny_session, grid)  # the uninterrupted sweep
    with pytest.raises(Cancelled):
        sweep.run(other, grid, CancelAtCells())
    caches = list(other.path.glob("artifacts/sweep-random-*.json"))
    assert len(caches) == 1 and len(json.loads(caches[0].read_text())) == 4  # 2 layers x 2 alphas
    prog = RecordingProgress()
    resumed = sweep.run(other, grid, prog)
    assert not any(t[0].startswith("random controls") for t in prog.tasks)
    assert resumed["computed"] == 8
    assert resumed["rows"] == whole["rows"]
    # an unreadable cache is only a cache: the controls are made again, same numbers
    caches[0].write_text("{not json")
    for f in other.path.glob("artifacts/sweep-*.csv"):
        f.unlink()
    prog = RecordingProgress()
    again = sweep.run(other, grid, prog)
    assert any(t[0].startswith("random controls") for t in prog.tasks)
    assert again["rows"] == whole["rows"]


def test_shipped_prompt_file_extends_the_built_in_prompts():
    """`datafiles/prompts/neutral-60.txt` reads through the same parser as `--prompts`:
    the 20 built-in prompts first (so their dev/test halves are the default ones), then 40
    new ones, no prompt twice, 30 per half."""
    from emolab.commands.sweep import _prompts_file
    from emolab.data import NEUTRAL_PROMPTS, datafile
    from emolab.steps.success import prompt_halves

    prompts = _prompts_file(str(datafile("prompts", "neutral-60.txt")))
    assert prompts[:20] == list(NEUTRAL_PROMPTS) and len(set(prompts)) == len(prompts) == 60
    assert {k: len(v) for k, v in prompt_halves(len(prompts)).items()} == {"dev": 30, "test": 30}


def test_sweep_does_not_report_a_label_shift_it_cannot_measure(tiny_session, small_judge):
    # --positions generated: the label-list readout reads an unsteered prompt, so its shift
    # is missing ('-' in the table), not 0.00; the judged columns are still measured
    res = sweep.run(tiny_session, small(layers=[1], alphas=[2.0], positions="generated"))
    for r in res["rows"]:
        assert np.isnan(r["label_logit_shift"]) and np.isnan(r["label_logit_shift_vs_others"])
        assert np.isfinite(r["p_target"]) and np.isfinite(r["success_rate"])
    full = sweep.run(tiny_session, small(layers=[1], alphas=[2.0]))
    assert all(np.isfinite(r["label_logit_shift"]) for r in full["rows"])
