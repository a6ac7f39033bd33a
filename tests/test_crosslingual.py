"""Cross-lingual steering on tiny-llama: the table covers every vector/prompt pairing with
a random control, identical 'translations' carry over exactly, and bad text files fail
with one line."""

import json

import pytest

from emolab.steps import crosslingual
from emolab.steps.common import new_session


def test_cli_table_and_artifacts(run_cli, tmp_path):
    r = run_cli(
        "crosslingual", "--model", "tiny-llama", "--session", tmp_path / "x", "--layers", "1,2",
        "--prompts", 4, "--json",
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    out = json.loads(r.output[r.output.index("{") :])
    assert out["layers"] == [1, 2] and out["n_prompts"] == 4
    assert len(out["table"]) == 2 * 2 * 3 * 6  # layers x prompt langs x vectors x emotions
    assert {(c["layer"], c["direction"]) for c in out["carry_over"]} == {
        (1, "ja->en"),
        (1, "en->ja"),
        (2, "ja->en"),
        (2, "en->ja"),
    }
    rand = [r for r in out["table"] if r["vector"] == "random"]
    assert all(r["specific_sd"] > 0 for r in rand)  # 8 draws: a spread, not one direction
    assert all(r["specific_sd"] == 0 for r in out["table"] if r["vector"] != "random")
    assert all(c["random_sd"] > 0 for c in out["carry_over"])
    assert out["label_tokens"]["ja"]["names"]["anger"] == "怒り"
    assert "ja" in out["collisions"]  # the byte-level tiny tokenizer shares first bytes
    from emolab import results
    from emolab.session import Session

    sess = Session.open(tmp_path / "x")
    table = results.latest(sess, "crosslingual", suffix=".csv").path
    assert table.read_text().startswith("layer,vector,prompt,emotion,rise")
    assert results.latest(sess, "crosslingual", suffix="-vectors.safetensors").path.is_file()
    r = run_cli("crosslingual", "--model", "tiny-llama", "--session", tmp_path / "y")
    assert r.exit_code == 0, r.output
    assert "carries over" in r.output and "cos(en, ja)" in r.output
    r = run_cli(
        "crosslingual", "--model", "tiny-llama", "--session", tmp_path / "z", "--random-draws", 0
    )
    assert r.exit_code == 2 and "--random-draws must be at least 1" in r.output


def parallel(tmp_path, same_text: bool):
    rows = []
    for r in crosslingual.read_parallel(None):
        rows.append({**r, "ja": r["en"]} if same_text else r)
    f = tmp_path / "par.jsonl"
    f.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), "utf-8")
    return str(f)


def test_identical_texts_give_identical_vectors_and_full_carry_over(tmp_path):
    session = new_session(tmp_path / "s", "tiny-llama")
    out = crosslingual.run(session, {"texts": parallel(tmp_path, True), "layers": "2"})
    for c in out["cosines"]:
        assert c["cos_en_ja"] == pytest.approx(1.0, abs=1e-5)
    for row in out["table"]:
        if row["vector"] != "random":
            twin = next(
                r
                for r in out["table"]
                if r["prompt"] == row["prompt"]
                and r["emotion"] == row["emotion"]
                and r["vector"] == ("ja" if row["vector"] == "en" else "en")
            )
            assert row["rise"] == pytest.approx(twin["rise"], abs=1e-4)
    for c in out["carry_over"]:
        assert c["foreign"] == pytest.approx(c["own"], abs=1e-4)
    ev = session.steps()[-1]
    assert ev["kind"] == "crosslingual" and "cos_en_ja/joy/L2" in ev["metrics"]


def test_replay_of_crosslingual(tmp_path):
    from emolab.steps.replay import replay

    session = new_session(tmp_path / "s", "tiny-llama")
    crosslingual.run(session, {"layers": "2", "n_prompts": 2})
    _, cmp = replay(session.path, out=tmp_path / "r")
    assert cmp.ok, [r for r in cmp.rows if not r["ok"]]


def write(tmp_path, text):
    f = tmp_path / "bad.jsonl"
    f.write_text(text, encoding="utf-8")
    return f


@pytest.mark.parametrize(
    "content,message",
    [
        ('{"label": "joy", "en": "hi"}\n', "line 1 has no ja"),
        ("not json\n", "line 1 is not valid JSON"),
        ('{"label": "joy", "en": "yay", "ja": "やった"}\n', "no 'anger' rows"),
    ],
)
def test_bad_parallel_file_is_one_line(run_cli, tmp_path, content, message):
    f = write(tmp_path, content)
    r = run_cli("crosslingual", "--model", "tiny-llama", "--session", tmp_path / "s", "--texts", f)
    assert r.exit_code == 2, r.output
    assert message in r.output and len(r.output.strip().splitlines()) == 1


def test_missing_file_and_untranslated_label(run_cli, tmp_path):
    r = run_cli(
        "crosslingual", "--model", "tiny-llama", "--session", tmp_path / "a", "--texts",
        tmp_path / "nope.jsonl",
    )  # fmt: skip
    assert r.exit_code == 2 and "parallel text file not found" in r.output
    rows = [{"label": lab, "en": f"{lab} text", "ja": "テキスト"} for lab in ("awe", "neutral")]
    f = write(tmp_path, "".join(json.dumps(r) + "\n" for r in rows * 2))
    r = run_cli(
        "crosslingual", "--model", "tiny-llama", "--session", tmp_path / "b", "--texts", f,
        "--emotions", "awe",
    )  # fmt: skip
    assert r.exit_code == 2 and "no ja name for label 'awe'" in r.output
