"""`emolab classify --eval` on any dataset: the user's own files, other datasets, bad input."""

import json


def test_classify_eval_on_a_user_jsonl_file(run_cli, tmp_path, small_judge):
    f = tmp_path / "mine.jsonl"
    rows = [
        *[(f"I am so happy today, what a gift number {i}", "joy") for i in range(6)],
        *[(f"This is awful, I hate it, {i} times over", "anger") for i in range(6)],
        *[(f"The meeting is at noon in room {i}", "neutral") for i in range(6)],
        *[(f"ok, whatever {i}", "boredom") for i in range(5)],
    ]
    f.write_text("".join(json.dumps({"text": t, "label": lab}) + "\n" for t, lab in rows))
    r = run_cli(
        "classify", "--eval", f"jsonl:{f}", "--split", "all", "--train-limit", small_judge,
        "--json",
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    res = json.loads(r.output)
    assert res["n"] == 18 and res["skipped"] == 5 and res["split"] == "all"
    assert set(res["judges"]) == {"ensemble", "minilm", "tfidf"}
    assert 0 <= res["accuracy"] <= 1
    r = run_cli("classify", "--eval", f"jsonl:{f}", "--train-limit", small_judge)
    assert r.exit_code == 0 and "with labels the judge lacks left out" in r.output
    header = next(line for line in r.output.splitlines() if "macro-F1" in line).split()
    assert header[-7:] == ["ang", "dis", "fea", "joy", "neu", "sad", "sur"]  # report.abbreviate


def test_classify_eval_bad_datasets_are_one_line(run_cli, tmp_path, small_judge):
    r = run_cli("classify", "--eval", "nope", "--train-limit", small_judge)
    assert r.exit_code == 2 and "unknown dataset 'nope'" in r.output
    r = run_cli("classify", "--eval", "tigges-reviews", "--train-limit", small_judge)
    assert r.exit_code == 2 and "shares no label with the ekman judge" in r.output
    assert "Traceback" not in r.output
