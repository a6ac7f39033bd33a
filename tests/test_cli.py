"""The command line: listings, the tiny end-to-end path, and one-line errors for bad input."""

import json
import subprocess
import sys

import pytest


def test_models_datasets_plugins_json(run_cli):
    models = json.loads(run_cli("models", "--json").output)
    names = {m["name"] for m in models}
    assert {"smollm2-135m", "gemma3-270m", "hf:<id-or-path>", "tiny-llama", "tiny-gpt2"} <= names
    tiny = next(m for m in models if m["name"] == "tiny-llama")
    assert (tiny["layers"], tiny["d_model"], tiny["heads"], tiny["available"]) == (4, 64, 4, True)
    datasets = json.loads(run_cli("datasets", "--json").output)
    ekman = next(d for d in datasets if d["name"] == "goemotions-ekman")
    assert ekman["labels"] == ["anger", "disgust", "fear", "joy", "neutral", "sadness", "surprise"]
    assert len(next(d for d in datasets if d["name"] == "goemotions")["labels"]) == 28
    plugins = json.loads(run_cli("plugins", "--json").output)
    builtin = {p["name"]: p for p in plugins}
    assert "mean_diff" in builtin["emolab.builtins.extractors"]["components"]["extractors"]
    assert all(p["error"] is None for p in plugins)


def test_extract_layers_steer_replay_on_tiny(run_cli, tmp_path):
    s = tmp_path / "s"
    r = run_cli(
        "extract",
        "--model",
        "tiny-llama",
        "--limit",
        "8",
        "--test-limit",
        "4",
        "--session",
        s,
        "--json",
    )
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["n_train"] == 7 * 8
    r = run_cli("layers", s, "--json")
    out = json.loads(r.output)
    assert {row["layer"] for row in out["rows"]} == {0, 1, 2, 3}
    assert {"acc", "acc_random", "acc_shuffled", "vector_norm", "resid_norm"} <= set(out["rows"][0])
    from emolab import results
    from emolab.session import Session

    assert results.latest(Session.open(s), "layers", suffix=".csv") is not None
    r = run_cli("layers", s)  # the table: every accuracy beside its chance levels
    assert r.exit_code == 0, r.output
    assert "7ws" in r.output and "surface-feature baseline" in r.output
    r = run_cli(
        "steer",
        s,
        "--emotion",
        "joy",
        "--layer",
        "2",
        "--alpha",
        "0.5",
        "--max-new-tokens",
        "4",
        "--prompt",
        "Tell me about your day.",
        "--json",
    )
    assert r.exit_code == 0, r.output
    res = json.loads(r.output)
    assert "label_logit_shift" in res["metrics"] and len(res["steered"]) == 1
    r = run_cli("replay", s, "--out", tmp_path / "again", "--json")
    rep = json.loads(r.output)
    assert r.exit_code == 0 and rep["ok"] and rep["compared"] > 20
    manifest = json.loads((tmp_path / "again" / "manifest.json").read_text())
    assert manifest["replay_of"] == str(s.resolve())


def test_replay_detects_a_mismatch(run_cli, tiny_session, tmp_path):
    lines = tiny_session.log_path.read_text().splitlines()
    ev = json.loads(lines[-1])
    ev["metrics"]["n_train"] = 999
    lines[-1] = json.dumps(ev)
    tiny_session.log_path.write_text("\n".join(lines) + "\n")
    r = run_cli("replay", tiny_session.path, "--out", tmp_path / "r", "--json")
    assert r.exit_code == 1
    assert any("n_train" in m["what"] for m in json.loads(r.output)["mismatches"])


BAD = [
    (["extract", "--model", "nope"], "unknown model 'nope'"),
    (["extract", "--model", "tiny-llama", "--dataset", "nope"], "unknown dataset 'nope'"),
    (["extract", "--model", "tiny-llama", "--emotions", "joy,glee"], "has no label 'glee'"),
    (["extract", "--model", "tiny-llama", "--method", "magic"], "unknown extractor 'magic'"),
    (["extract", "--model", "tiny-llama", "--layers", "0,7"], "layer 7 out of range"),
    (
        ["extract", "--model", "tiny-llama", "--dataset", "csv:/no/such.csv"],
        "dataset file not found",
    ),
]


@pytest.mark.parametrize("args,message", BAD)
def test_bad_extract_input_is_one_line(run_cli, tmp_path, args, message):
    r = run_cli(*args, "--session", tmp_path / "s")
    assert r.exit_code == 2
    assert message in r.output
    assert "Traceback" not in r.output


@pytest.mark.parametrize(
    "args,message",
    [
        (["--emotion", "glee"], "unknown emotion 'glee'"),
        (["--emotion", "joy", "--layer", "11"], "layer 11 out of range"),
        (["--emotion", "joy", "--prompt", "  "], "empty prompt"),
        (["--emotion", "joy", "--evaluators", "vibes"], "unknown evaluator 'vibes'"),
    ],
)
def test_bad_steer_input_is_one_line(run_cli, tiny_session, args, message):
    r = run_cli("steer", tiny_session.path, *args)
    assert r.exit_code == 2, r.output
    assert message in r.output


def test_alpha_not_a_number(run_cli, tiny_session):
    r = run_cli("steer", tiny_session.path, "--emotion", "joy", "--alpha", "lots")
    assert r.exit_code == 2 and "lots" in r.output


def test_vector_of_the_wrong_width(run_cli, tiny_session, tmp_path):
    import numpy as np
    from safetensors.numpy import save_file

    f = tmp_path / "wide.safetensors"
    save_file({"joy/blocks.1.hook_resid_post": np.ones(99, np.float32)}, str(f))
    r = run_cli("steer", tiny_session.path, "--emotion", "joy", "--layer", "1", "--vectors", f)
    assert r.exit_code == 2 and "width 99" in r.output


def test_session_errors(run_cli, tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    r = run_cli("layers", f)
    assert r.exit_code == 2 and "is a file" in r.output
    r = run_cli("extract", "--model", "tiny-llama", "--session", f)
    assert r.exit_code == 2 and "is a file" in r.output
    r = run_cli("replay", tmp_path / "missing")
    assert r.exit_code == 2 and "no such session" in r.output


def test_help_does_not_import_heavy_libraries():
    code = (
        "import sys; from emolab.cli import main; sys.argv=['emolab','--help'];\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "heavy = [m for m in ('torch', 'sklearn', 'scipy', 'transformers', 'textual')"
        " if m in sys.modules]\n"
        "assert not heavy, f'imported on the help path: {heavy}'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)


def test_hf_source_loads_a_local_folder_and_reports_a_missing_one(
    run_cli, tiny_model, tmp_path, monkeypatch
):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    folder = tmp_path / "tiny-hf"
    tiny_model.hf.save_pretrained(folder)
    tiny_model.tokenizer.save_pretrained(folder)
    r = run_cli(
        "extract",
        "--model",
        f"hf:{folder}",
        "--emotions",
        "joy",
        "--limit",
        "4",
        "--test-limit",
        "2",
        "--session",
        tmp_path / "s",
        "--json",
    )
    assert r.exit_code == 0, r.output
    manifest = json.loads((tmp_path / "s" / "manifest.json").read_text())
    assert manifest["model"]["sha256"] and manifest["model"]["layers"] == 4
    r = run_cli("extract", "--model", "hf:no-such-org/no-such-model", "--session", tmp_path / "t")
    assert r.exit_code == 2 and "could not be loaded" in r.output
