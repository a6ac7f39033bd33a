"""Replay compares everything it can: generated texts (first differing token), input file
hashes, plugin versions (--strict), metrics with nulls, interrupted steps skipped and
named; the comparison is written into the replayed session."""

import json
import math

import pytest

from emolab.session import Session
from emolab.steps import replay_compare as rc
from emolab.steps import steer
from emolab.steps.replay import replay

STEER = {"emotion": "joy", "layer": 2, "alpha": 0.5, "max_new_tokens": 4, "prompts": ["Hi there."]}


def test_metrics_with_nulls_nan_and_strings_never_raise():
    cmp = rc.Comparison()
    a = {"x": None, "y": 1.0, "z": float("nan"), "s": "surgical", "gone": 2.0, "n": None}
    b = {"x": None, "y": 1.0000001, "z": float("nan"), "s": "surgical", "n": 3.0}
    rc.metrics(cmp, "t#1", a, b, 1e-3, 1e-4)
    ok = {r["what"].split()[-1]: r["ok"] for r in cmp.rows}
    assert ok == {"x": True, "y": True, "z": True, "s": True, "gone": False, "n": False}
    assert all(isinstance(r["diff"], float) for r in cmp.rows)


def test_first_differing_token_is_shown():
    tok = str.split
    assert rc.first_difference("I am so happy", "I am so sad", tok) == "token 3: 'happy' vs 'sad'"
    assert rc.first_difference("a b", "a b c", tok) == "token 2: end vs 'c'"


def test_replay_compares_generated_texts_and_writes_its_verdict(tiny_session, tmp_path):
    steer.run(tiny_session, STEER)
    new, cmp = replay(tiny_session.path, tmp_path / "same")
    text_rows = [r for r in cmp.rows if " texts " in r["what"]]
    assert text_rows and all(r["ok"] for r in text_rows) and cmp.ok
    saved = json.loads((new.path / "artifacts" / "replay-comparison.json").read_text())
    assert saved["ok"] and saved["compared"] == len(cmp.rows)
    assert Session.open(new.path).manifest["replay_comparison"]["mismatches"] == 0
    # the original's generation is changed: the replay names the text and the first token
    out = tiny_session.path / tiny_session.steps()[-1]["outputs"][0]
    row = json.loads(out.read_text())
    row["steered"] = row["steered"] + " tampered"
    out.write_text(json.dumps(row) + "\n")
    _, cmp = replay(tiny_session.path, tmp_path / "other")
    bad = [r for r in cmp.rows if not r["ok"]]
    assert len(bad) == 1 and " texts steer-" in bad[0]["what"]
    assert "first: text 1, token" in bad[0]["note"] and "vs end" in bad[0]["note"]


def test_interrupted_steps_are_skipped_and_named(tiny_session, tmp_path):
    with open(tiny_session.log_path, "ab") as f:
        f.write(b'{"kind": "steer", "params": {"emotion": "jo')
    new, cmp = replay(tiny_session.path, tmp_path / "r")
    skipped = [r for r in cmp.rows if r["original"] == "interrupted"]
    assert [r["what"] for r in skipped] == ["steer#2"] and cmp.ok
    assert [e["kind"] for e in new.steps()] == ["extract"]


def test_changed_input_file_and_plugin_version(tmp_path, monkeypatch):
    from emolab.steps import extract
    from emolab.steps.common import new_session

    f = tmp_path / "d.csv"
    labels = ("joy", "anger", "neutral")
    rows = [f"a {lab} sentence {i} here,{lab}" for i in range(8) for lab in labels]
    f.write_text("text,label\n" + "\n".join(rows) + "\n")
    s = new_session(tmp_path / "s", "tiny-llama")
    params = {"dataset": f"csv:{f}", "emotions": ["joy", "anger"], "baseline": "neutral"}
    extract.run(s, {**params, "limit": 4, "test_limit": 2})
    _, cmp = replay(s.path, tmp_path / "r1")
    assert cmp.ok and any("input dataset sha256" in r["what"] for r in cmp.rows)
    # a plugin version differs: reported, a mismatch only with strict
    text = s.log_path.read_text()
    ver = s.steps()[-1]["plugins"]["extractors:mean_diff"]["version"]
    s.log_path.write_text(text.replace(f'"version": "{ver}"', '"version": "0.0.1"'))
    _, cmp = replay(s.path, tmp_path / "r2")
    row = next(r for r in cmp.rows if "plugin extractors:mean_diff version" in r["what"])
    assert row["ok"] and row["original"] == "0.0.1" and "without --strict" in row["note"]
    _, cmp = replay(s.path, tmp_path / "r3", strict=True)
    assert not cmp.ok
    # the dataset file changed since: its hash is a mismatch naming the file
    f.write_text("text,label\n" + "\n".join(reversed(rows)) + "\n")
    _, cmp = replay(s.path, tmp_path / "r4")
    row = next(r for r in cmp.rows if "input dataset sha256" in r["what"])
    assert not row["ok"] and str(f.resolve()) in row["note"]


def test_cli_strict_and_one_line_for_a_missing_session(run_cli, tiny_session, tmp_path):
    r = run_cli("replay", tiny_session.path, "--out", tmp_path / "r", "--strict", "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["ok"]
    r = run_cli("replay", tmp_path / "nothing")
    assert r.exit_code == 2 and len(r.output.strip().splitlines()) == 1


@pytest.mark.parametrize("value", [None, math.inf])
def test_metric_row_diffs_are_printable(value):
    from io import StringIO

    from rich.console import Console

    from emolab.report import print_replay

    cmp = rc.Comparison()
    rc.metrics(cmp, "x#1", {"m": value}, {"m": 1.0}, 1e-3, 1e-4)
    con = Console(file=StringIO(), width=120)
    print_replay(con, type("S", (), {"path": "p"})(), cmp)
    assert "mismatch" in con.file.getvalue()
