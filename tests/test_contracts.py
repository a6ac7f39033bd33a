"""Typed parameters and components by name: every bad parameter, unknown name or taken name
is one line (exit 2 in the CLI, BadInput/UnknownName in Python) before any model loads."""

from __future__ import annotations

import json

import pytest

from emolab import plugins
from emolab.errors import BadInput, UnknownName
from emolab.params import Param, parse_assignments, validate
from emolab.steps import ablate, steer, sweep


def one_line_exit_2(r, *needles: str) -> None:
    assert r.exit_code == 2, r.output
    lines = r.output.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in r.output, r.output
    for n in needles:
        assert n in lines[0], lines[0]


# -- the validator ---------------------------------------------------------------------
DECL = (
    Param("alpha", float, 0.3, "strength", min=-5.0, max=5.0),
    Param("layer", int, None, "block", min=0),
    Param("scale", str, "relative", "how", ("relative", "absolute")),
    Param("on", bool, False),
    Param("layers", (str, list), "all", "spec", item=int),
    Param("words", list, ["a"], "words", item=str),
)


def test_validate_fills_defaults_and_types_strings():
    out = validate(DECL, {"alpha": "0.5", "on": "yes", "words": "x, y", "layers": "2-4"}, "t")
    assert out == {
        "alpha": 0.5,
        "layer": None,
        "scale": "relative",
        "on": True,
        "layers": "2-4",
        "words": ["x", "y"],
    }
    assert validate(DECL, {"layers": [1, "2"]}, "t")["layers"] == [1, 2]


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({"alpah": 1}, "t has no parameter 'alpah' (has: alpha, layer, scale, on, layers, words)"),
        ({"alpha": "lots"}, "t: parameter 'alpha' must be float, got 'lots'"),
        ({"alpha": 9}, "t: parameter 'alpha' must be at most 5.0, got 9.0"),
        ({"layer": -1}, "t: parameter 'layer' must be at least 0, got -1"),
        ({"layer": 1.5}, "t: parameter 'layer' must be int, got 1.5"),
        ({"scale": "huge"}, "t: parameter 'scale' must be one of relative, absolute, got 'huge'"),
        ({"on": "maybe"}, "t: parameter 'on' must be bool, got 'maybe'"),
        ({"alpha": "nan"}, "t: parameter 'alpha' must be a finite number"),
        ({"scale": None}, "t: parameter 'scale' must be str, got None"),
    ],
)
def test_validate_names_the_parameter_and_what_is_allowed(given, message):
    with pytest.raises(BadInput) as err:
        validate(DECL, given, "t")
    assert str(err.value).startswith(message)


def test_parse_assignments():
    assert parse_assignments(["a=1", "b = x=y"]) == {"a": "1", "b": "x=y"}
    with pytest.raises(BadInput, match="--param takes key=value, got 'alpha'"):
        parse_assignments(["alpha"])


def test_every_step_declares_its_parameters_with_help():
    from emolab.steps import PARAMS, STEPS

    assert set(PARAMS) == set(STEPS)
    for kind, decl in PARAMS.items():
        names = [q.name for q in decl]
        assert len(names) == len(set(names)), kind
        for q in decl:  # every default passes its own declaration
            assert validate(decl, {q.name: q.default}, kind)[q.name] == q.default


# -- steps validate first, before any model loads ---------------------------------------
@pytest.fixture
def no_model(monkeypatch):
    """Loading a model fails the test: validation must come first."""
    import emolab.steps.common as common

    def refuse(*a, **k):
        raise AssertionError("a model was loaded before the parameters were checked")

    monkeypatch.setattr(common, "load", refuse)


def test_steer_typo_is_refused_before_the_model_loads(tiny_session, no_model):
    with pytest.raises(BadInput, match="steer has no parameter 'alpah' \\(has: emotion, layer"):
        steer.run(tiny_session, {"emotion": "joy", "alpah": 1})
    with pytest.raises(UnknownName, match="unknown intervention 'nosuch'"):
        steer.run(tiny_session, {"emotion": "joy", "intervention": "nosuch"})
    with pytest.raises(BadInput, match="residual_add has no parameter 'angle'"):
        steer.run(tiny_session, {"emotion": "joy", "intervention_params": {"angle": "3"}})
    with pytest.raises(UnknownName, match="unknown evaluator 'nosuch'"):
        steer.run(tiny_session, {"emotion": "joy", "evaluators": ["nosuch"]})
    with pytest.raises(UnknownName, match="unknown intervention 'nosuch'"):
        sweep.run(tiny_session, {"emotions": ["joy"], "intervention": "nosuch"})
    with pytest.raises(UnknownName, match="unknown evaluator 'nosuch'"):
        sweep.run(tiny_session, {"emotions": ["joy"], "judge_evaluator": "nosuch"})
    with pytest.raises(BadInput, match="comma_zeroing has no parameter 'bogus'"):
        ablate.run(tiny_session, {"kind": "comma", "intervention_params": {"bogus": 1}})
    assert not tiny_session.steps()[1:]  # only the extraction: nothing was logged


def test_the_log_records_the_complete_validated_parameters(tiny_session):
    steer.run(
        tiny_session,
        {"emotion": "joy", "alpha": "0.5", "prompts": ["Hello there."], "max_new_tokens": 2},
    )
    step = tiny_session.steps()[-1]
    logged = step["params"]
    assert set(logged) == {q.name for q in steer.PARAMS}
    assert logged["alpha"] == 0.5 and logged["intervention"] == "residual_add"
    # a defaulted layer is logged as None, its value and what chose it under `choices`, so
    # a replay re-makes the choice and checks it
    from emolab.steps.shared import default_layer

    assert logged["layer"] is None
    assert tiny_session.steps()[-1]["choices"]["layer"]["value"] == default_layer(tiny_session)


# -- the CLI: one line, exit 2 ----------------------------------------------------------
def test_cli_bad_parameters_are_one_line(run_cli, tiny_session):
    s = tiny_session.path
    r = run_cli("steer", s, "--emotion", "joy", "--param", "alpah=1")
    one_line_exit_2(r, "residual_add has no parameter 'alpah'", "alpha")
    r = run_cli("steer", s, "--emotion", "joy", "--param", "alpha=strong")
    one_line_exit_2(r, "residual_add: parameter 'alpha' must be float, got 'strong'")
    r = run_cli("steer", s, "--emotion", "joy", "--intervention", "nosuch")
    one_line_exit_2(r, "unknown intervention 'nosuch'", "residual_add")
    r = run_cli("steer", s, "--emotion", "joy", "--param", "alpha")
    one_line_exit_2(r, "--param takes key=value")
    r = run_cli("steer", s, "--emotion", "joy", "--evaluators", "nosuch")
    one_line_exit_2(r, "unknown evaluator 'nosuch'")
    r = run_cli("sweep", s, "--emotions", "joy", "--judge", "nosuch")
    one_line_exit_2(r, "unknown evaluator 'nosuch'")
    r = run_cli("sweep", s, "--emotions", "joy", "--intervention", "nosuch")
    one_line_exit_2(r, "unknown intervention 'nosuch'")
    r = run_cli("ablate", s, "--kind", "sideways")
    one_line_exit_2(r, "parameter 'kind' must be one of comma, patch, direction, head")
    assert not tiny_session.steps()[1:]


def test_cli_steer_with_a_named_intervention_and_its_params(run_cli, tiny_session):
    r = run_cli(
        "steer",
        tiny_session.path,
        "--emotion",
        "joy",
        "--layer",
        "2",
        "--intervention",
        "residual_add",
        "--param",
        "to_layer=3",
        "--max-new-tokens",
        "2",
        "--prompt",
        "Hello there.",
        "--json",
    )
    assert r.exit_code == 0, r.output
    logged = tiny_session.steps()[-1]["params"]
    assert logged["intervention_params"] == {"to_layer": "3"}


def test_sweep_judge_is_any_registered_evaluator(tiny_session):
    res = sweep.run(
        tiny_session,
        {
            "emotions": ["joy"],
            "layers": [2],
            "alphas": [0.5],
            "prompts": ["Describe the room.", "Tell me about lunch."],
            "max_new_tokens": 3,
            "judge_evaluator": "label_logit_shift",
        },
    )
    (row,) = res["rows"]
    assert row["intervention"] == "residual" and row["regime"] in (
        "surgical",
        "repetitive",
        "explosive",
    )
    assert row["p_target"] != row["p_target"]  # NaN: this judge reports no P(target)
    step = tiny_session.steps()[-1]
    assert "evaluators:label_logit_shift" in step["plugins"]
    assert "evaluators:classifier" not in step["plugins"]


def test_ablate_kind_by_its_intervention_name(tiny_session):
    res = ablate.run(
        tiny_session, {"kind": "head_ablation", "heads": "1.0", "limit": 2, "control_seeds": 0}
    )
    assert res["params"]["kind"] == "head" and res["params"]["intervention"] == "head_ablation"


def test_dataset_params_reach_the_dataset(run_cli, tmp_path):
    f = tmp_path / "mine.csv"
    rows = ["body,feel"] + [
        f"{w} text number {i} here,{lab}"
        for i in range(10)
        for w, lab in (("happy", "joy"), ("plain", "neutral"))
    ]
    f.write_text("\n".join(rows) + "\n")
    args = ["extract", "--model", "tiny-llama", "--dataset", f"csv:{f}", "--emotions", "joy"]
    args += ["--limit", "4", "--test-limit", "2"]
    r = run_cli(*args, "--session", tmp_path / "t", "--dataset-param", "colour=red")
    one_line_exit_2(r, "csv has no parameter 'colour' (has: text_column, label_column")
    assert not (tmp_path / "t").exists()  # refused before the session (and model) existed
    args += ["--session", tmp_path / "s"]
    r = run_cli(*args)
    one_line_exit_2(r, "no column 'text'")
    r = run_cli(
        *args, "--dataset-param", "text_column=body", "--dataset-param", "label_column=feel"
    )
    assert r.exit_code == 0, r.output
    logged = json.loads((tmp_path / "s" / "log.jsonl").read_text().splitlines()[-1])["params"]
    assert logged["dataset_params"] == {"text_column": "body", "label_column": "feel"}


# -- a name that is already taken -------------------------------------------------------
COLLIDE = """
from emolab.api import Intervention
from emolab.hookspecs import hookimpl


class Impostor(Intervention):
    name = "residual_add"
    description = "registers a built-in's name"

    def hooks(self, model, **context):
        raise AssertionError("the impostor must never run")


@hookimpl
def register_interventions(register):
    register(Impostor())
"""


def test_a_taken_name_is_reported_and_keeps_the_builtin(plugin_dir, run_cli):
    (plugin_dir / "impostor.py").write_text(COLLIDE)
    plugins.reset()  # run_cli built one before the file was there
    reg = plugins.registry()
    assert reg.plugin_of("interventions", "residual_add").source == "builtin"
    info = reg.plugins["impostor"]
    assert info.collisions == [
        "intervention 'residual_add' is already registered by "
        "emolab.builtins.interventions (kept theirs)"
    ]
    r = run_cli("plugins", "--json")
    row = next(p for p in json.loads(r.output) if p["name"] == "impostor")
    assert row["collisions"] == info.collisions and row["components"] == {}
    r = run_cli("plugins", "--check")
    one_line_exit_2(r, "impostor: intervention 'residual_add' is already registered")
