"""Circuit modulation on the tiny Llama: head and MLP-neuron circuits from the session's own
maps (made by running `heads`), their random-circuit controls, resume and staleness, steer
--circuit, and steering with the context-agnostic vectors of `contexts`."""

from __future__ import annotations

import csv
import json

import pytest

from emolab.errors import BadInput
from emolab.progress import RecordingProgress
from emolab.steps import contexts, heads, shared, steer, sweep

PROMPTS = ["Tell me about your day.", "Describe the weather."]


def grid(**kw) -> dict:
    return {
        "emotions": ["joy", "anger"],
        "layers": [2],
        "alphas": [0.3],
        "prompts": PROMPTS,
        "max_new_tokens": 4,
        "judge_train_limit": 300,
        "circuits": [2],
        "circuit_factors": [1.0, 3.0],
        "circuit_kinds": ["heads", "neurons"],
        **kw,
    }


def mapped(session, emotions=("joy", "anger"), **kw) -> None:
    for e in emotions:
        heads.run(
            session,
            {"emotion": e, "layer": 3, "n_texts": 3, "neurons": True, "top_k": 3, **kw},
        )


def test_neuron_circuits_need_a_neuron_map(tiny_session):
    heads.run(tiny_session, {"emotion": "joy", "layer": 3, "n_texts": 3})
    assert shared.circuit_units(tiny_session, "joy", 2, "heads")[0]
    with pytest.raises(BadInput, match="no neuron map for 'joy'.*--neurons"):
        sweep.run(tiny_session, grid(emotions=["joy"], circuit_kinds=["neurons"]))
    with pytest.raises(BadInput, match="unknown circuit kind 'mlp'"):
        sweep.run(tiny_session, grid(circuit_kinds=["mlp"]))


def test_circuit_units_come_from_the_latest_map_with_a_seeded_random_control(tiny_session):
    res = heads.run(
        tiny_session,
        {
            "emotion": "joy",
            "layer": 3,
            "n_texts": 3,
            "neurons": True,
            "top_k": 3,
            "method": "checked",
            "enhance": 2.0,
        },
    )
    # the circuits `heads --enhance` reads out on neutral texts are the ones the sweep scales
    assert res["enhance"]["circuit"]["units"] == shared.circuit_units(tiny_session, "joy", 3)[0]
    neuron_circuit = res["neurons"]["enhance"]["circuit"]
    assert neuron_circuit["kind"] == "neurons" and len(neuron_circuit["per_unit"]) == 3
    assert neuron_circuit["units"] == shared.circuit_units(tiny_session, "joy", 3, "neurons")[0]
    assert "neurons/enhance/circuit_shift" in tiny_session.steps()[-1]["metrics"]
    for kind in ("heads", "neurons"):
        spec, info = shared.circuit_units(tiny_session, "joy", 3, kind)
        units = spec.split(",")
        assert len(units) == 3 and len(set(units)) == 3
        assert info["kind"] == kind and info[kind] == spec
        assert info["effects"] == sorted(info["effects"], reverse=True) and info["effects"][-1] > 0
        rand = info["random"].split(",")
        assert len(set(rand)) == 3
        # the random units lie where the map has values: heads up to the readout layer
        assert all(int(u.split(".")[0]) <= 3 for u in rand)
        assert shared.circuit_units(tiny_session, "joy", 3, kind)[1]["random"] == info["random"]
    assert shared.circuit_units(tiny_session, "joy", 3, "heads")[1]["map"] == "checked"
    result = tiny_session.read_json(f"heads-{tiny_session.steps()[-1]['seq']:03d}-joy.json")
    best = max(result["neurons"]["top"], key=lambda t: t["exact"])
    if best["exact"] > 0:  # the exact check replaces the estimate in the neuron ranking
        _, info = shared.circuit_units(tiny_session, "joy", 3, "neurons")
        assert f"{best['layer']}.{best['unit']}" in info["neurons"].split(",")


def test_sweep_scales_heads_and_neurons_beside_random_circuits(tiny_session, small_judge):
    mapped(tiny_session)
    prog = RecordingProgress()
    res = sweep.run(tiny_session, grid(), prog)
    names = [r["intervention"] for r in res["rows"] if r["emotion"] == "joy"]
    assert names == ["residual", "circuit-top2", "circuit-top2", "neurons-top2", "neurons-top2"]
    # one random direction, and per kind and factor one random circuit serving both emotions
    assert ("random controls (5)", 5) in prog.tasks
    for r in res["rows"]:
        if r["intervention"] == "residual":
            continue
        kind = "neurons" if r["intervention"].startswith("neurons-") else "heads"
        assert r["heads"] == shared.circuit_units(tiny_session, r["emotion"], 2, kind)[0]
        for k in ("success_random_dev", "success_random_test"):
            assert 0 <= r[k] <= 1
        if r["alpha"] == 1.0:
            # scaling by 1 changes nothing: the circuit, its random control and the baseline
            # are the same text, judged alike
            assert r["p_target_rise"] == 0 and r["perplexity_ratio"] == pytest.approx(1)
            assert r["success_random_dev"] == r["success_dev"]
            assert r["success_random_test"] == r["success_test"]
    assert set(res["best_neurons"]) == set(res["best_circuit"]) == {"joy", "anger"}
    step = tiny_session.steps()[-1]
    assert "best_neurons_success_random_test/joy" in step["metrics"]
    rows = list(csv.DictReader(open(res["csv"])))
    assert [r["intervention"] for r in rows].count("neurons-top2") == 4
    from rich.console import Console

    from emolab.commands.sweep import print_sweep

    con = Console(record=True, width=220)
    print_sweep(con, res)
    text = con.export_text()
    assert "joy 2 neurons x3" in text and "joy 2 heads x3" in text
    assert "| neurons circuit best success test" in text

    # resumed: nothing computed; a new neuron map that changes the units makes those stale
    again = sweep.run(tiny_session, grid())
    assert again["computed"] == 0
    assert json.dumps(again["rows"]) == json.dumps(res["rows"])  # NaN columns compare too
    before = {(r["emotion"], r["intervention"]): r["heads"] for r in res["rows"]}
    heads.run(
        tiny_session,
        {"emotion": "joy", "layer": 1, "n_texts": 3, "neurons": True, "top_k": 3},
    )
    stale = sweep.run(tiny_session, grid())
    changed = {
        cell: units
        for cell, units in before.items()
        if cell[1] != "residual"
        and units != shared.circuit_units(tiny_session, cell[0], 2, shared.circuit_kind(cell[1]))[0]
    }
    assert {e for e, _ in changed} == {"joy"}  # anger's maps did not change
    assert ("joy", "neurons-top2") in changed
    assert stale["computed"] == 2 * len(changed)  # both factors of every changed circuit
    for r in stale["rows"]:
        if (r["emotion"], r["intervention"]) in changed:
            assert r["heads"] != changed[(r["emotion"], r["intervention"])]


def test_steer_circuit_of_neurons_with_a_random_circuit(tiny_session, small_judge):
    mapped(tiny_session, emotions=("joy",))
    base = {
        "emotion": "joy",
        "layer": 2,
        "circuit": 2,
        "circuit_kind": "neurons",
        "prompts": PROMPTS,
        "max_new_tokens": 4,
        "success": True,
        "judge_train_limit": 300,
    }
    out = steer.run(tiny_session, {**base, "circuit_factor": 1.0})
    info = out["circuit_units"]
    assert info["kind"] == "neurons" and out["params"]["intervention"] == "enhance"
    assert out["steered"] == out["baseline"] == out["random"]  # x1 is the identity
    m = out["metrics"]
    assert m["success_random"] == m["success"] and m["p_target_random"] == m["p_target"]
    scaled = steer.run(tiny_session, {**base, "circuit_factor": 40.0})
    assert scaled["steered"] != scaled["baseline"]
    assert scaled["random"] != scaled["steered"]  # other units, other text
    step = tiny_session.steps()[-1]
    assert step["inputs"]["circuit_units"]["neurons"] == info["neurons"]
    from rich.console import Console

    from emolab.report import print_steer

    con = Console(record=True, width=200)
    print_steer(con, scaled)
    text = " ".join(con.export_text().split())  # the title wraps
    assert f"top 2 neurons x40 ({info['neurons']})" in text
    assert f"random circuit ({info['random']})" in text


def test_sweep_steers_with_context_agnostic_vectors(tiny_session, small_judge):
    contexts.run(tiny_session, {"layers": [1, 2], "limit": 6, "test_limit": 3})
    res = sweep.run(
        tiny_session,
        grid(method="context_agnostic", layers=[1, 2], alphas=[0.3, 2.0], circuits=[]),
    )
    assert res["computed"] == 8
    assert {r["source"] for r in res["rows"]} == {"context_agnostic"}
    for r in res["rows"]:
        assert r["error"] == "" and 0 <= r["success_rate"] <= 1
        assert 0 <= r["success_random_test"] <= 1
    assert set(res["best"]) == {"joy", "anger"}
    # a layer the context-agnostic set lacks is refused with one line
    with pytest.raises(BadInput, match="no 'joy' vector at layer 3 in context_agnostic"):
        sweep.run(tiny_session, grid(method="context_agnostic", layers=[3], circuits=[]))
    # steer defaults to the sweep's dev choice for that set
    chosen = res["best"]["joy"]
    out = steer.run(
        tiny_session,
        {"emotion": "joy", "method": "context_agnostic", "prompts": PROMPTS, "max_new_tokens": 3},
    )
    assert (out["params"]["layer"], out["params"]["alpha"]) == (chosen["layer"], chosen["alpha"])
    assert out["choices"]["layer"]["chosen_on"] == "sweep, dev prompts"


def test_cli_circuit_kind_is_checked_before_any_model_loads(run_cli, tiny_session):
    r = run_cli("sweep", tiny_session.path, "--circuits", "2", "--circuit-kind", "heads,mlp")
    assert r.exit_code == 2 and "unknown circuit kind 'mlp'" in r.output
    assert "Traceback" not in r.output
    r = run_cli("steer", tiny_session.path, "--emotion", "joy", "--circuit", "2",
                "--circuit-kind", "mlp")  # fmt: skip
    assert r.exit_code == 2 and "mlp" in r.output
