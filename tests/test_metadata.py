"""Session file metadata: one JSON record under `emolab`, read by one typed reader
(emolab.metadata); an emotion label holding a comma survives; sessions written in the old
flat form still open and give the same results."""

import dataclasses
import json
import shutil

import pytest
from safetensors import safe_open
from safetensors.numpy import save_file

from emolab import metadata
from emolab.errors import SessionError
from emolab.metadata import FileMeta
from emolab.session import Session
from emolab.steps import layers, steer
from emolab.tui.screens.base import session_emotions

STEER = {"emotion": "joy", "layer": 2, "max_new_tokens": 6, "evaluators": ["label_logit_shift"]}


def raw_metadata(path) -> dict:
    with safe_open(str(path), framework="numpy") as f:
        return f.metadata()


def test_extract_writes_one_key_and_reads_it_back(tiny_session):
    raw = raw_metadata(tiny_session.path / "vectors.safetensors")
    assert list(raw) == ["emolab"]
    record = json.loads(raw["emolab"])
    assert record["emotions"] == ["anger", "disgust", "fear", "joy", "sadness", "surprise"]
    assert record["layers"] == [0, 1, 2, 3] and record["method"] == "mean_diff"
    _, meta = tiny_session.load_arrays("activations.safetensors")
    assert meta.hooks == tuple(f"blocks.{i}.hook_resid_post" for i in range(4))
    assert meta.baseline == "neutral" and meta.model == "tiny-llama"


def test_an_emotion_label_with_a_comma(tmp_path):
    """The old comma-joined metadata read 'love, joy' back as 'love' and ' joy'."""
    from emolab.steps import extract
    from emolab.steps.common import new_session

    things = ["garden", "train", "letter", "meeting", "dinner", "movie", "rain", "phone"]
    words = {"love, joy": "warm and glad", "anger": "furious", "neutral": "nothing much"}
    data = tmp_path / "d.jsonl"
    data.write_text(
        "".join(
            json.dumps({"text": f"Entry {i}: I feel {w} about the {t}.", "label": lab}) + "\n"
            for lab, w in words.items()
            for i, t in enumerate(things + [t + "s" for t in things])
        )
    )
    s = new_session(tmp_path / "s", "tiny-llama")
    params = {"dataset": f"jsonl:{data}", "emotions": ["love, joy", "anger"], "limit": 6}
    extract.run(s, {**params, "test_limit": 2})
    assert s.load_vectors()[1].emotions == ("love, joy", "anger")
    assert session_emotions(s) == ["love, joy", "anger"]
    rows = layers.run(s, {})["rows"]
    assert {r["emotion"] for r in rows} == {"love, joy", "anger"}
    res = steer.run(s, {**STEER, "emotion": "love, joy"})
    assert res["steered"] != res["baseline"]


def legacy_strings(meta: FileMeta, hooks: bool) -> dict[str, str]:
    """The flat metadata commit f9c0477 wrote: steps/extract.py's dict of model, dataset,
    position, baseline, source, contrast, emotions and layers (lists comma-joined), plus
    `method` (Session.save_vectors) or `hooks` (the activations file), each value str()."""
    out = {
        "model": meta.model,
        "dataset": meta.dataset,
        "position": meta.position,
        "baseline": meta.baseline,
        "source": meta.source,
        "contrast": meta.contrast,
        "emotions": ",".join(meta.emotions),
        "layers": ",".join(map(str, meta.layers)),
    }
    if hooks:
        out["hooks"] = ",".join(meta.hooks)
    else:
        out["method"] = meta.method
    return out


def make_legacy(session: Session, dst) -> Session:
    """A copy of a real session with its vector and activation files rewritten in the old
    flat form (same tensors, same facts)."""
    shutil.copytree(session.path, dst)
    for path, hooks in ((dst / "vectors.safetensors", False),
                        (dst / "artifacts/activations.safetensors", True)):  # fmt: skip
        with safe_open(str(path), framework="numpy") as f:
            arrays = {k: f.get_tensor(k) for k in f.keys()}
            meta = metadata.read(f.metadata())
        save_file(arrays, str(path), metadata=legacy_strings(meta, hooks))
    return Session.open(dst)


def test_an_old_flat_session_opens_and_gives_the_same_results(tiny_session, tmp_path):
    old = make_legacy(tiny_session, tmp_path / "old")
    assert "emolab" not in raw_metadata(old.path / "vectors.safetensors")
    meta = tiny_session.load_vectors()[1]
    # the extractor's fitted parameters (`params`, chosen on dev) came after f9c0477: an old
    # file has every other fact
    assert "params" in meta.extra
    before = dataclasses.replace(meta, extra={k: v for k, v in meta.extra.items() if k != "params"})
    assert old.load_vectors()[1] == before
    # what the sweep hashes into its resume key: the same as the old code's flat dict
    assert before.flat() == legacy_strings(meta, hooks=False)
    assert (
        old.load_arrays("activations.safetensors")[1]
        == tiny_session.load_arrays("activations.safetensors")[1]
    )
    assert session_emotions(old) == session_emotions(tiny_session)
    assert layers.run(old, {})["rows"] == layers.run(tiny_session, {})["rows"]
    assert steer.run(old, STEER)["steered"] == steer.run(tiny_session, STEER)["steered"]


def test_record_round_trip_and_bad_records():
    meta = FileMeta(
        model="m",
        emotions=("a, b", "c"),
        layers=(3, 1),
        hooks=("blocks.1.hook_resid_post",),
        paths={"blocks.1.hook_resid_post": "fast"},
        extra={"note": "x"},
    )
    assert metadata.read(meta.strings()) == meta
    assert metadata.read({**meta.flat(), **meta.strings()}) == meta  # an export: both forms
    with pytest.raises(SessionError, match=r"^f\.safetensors: corrupt 'emolab' metadata"):
        metadata.read({"emolab": "{not json"}, "f.safetensors")
    with pytest.raises(SessionError, match="layers must be a list of whole numbers"):
        metadata.read({"emolab": json.dumps({"layers": ["1"]})}, "f")
    with pytest.raises(SessionError, match="'layers' is not a list of layer numbers"):
        metadata.read({"layers": "1,two"}, "f")


def test_a_session_with_a_corrupt_record_is_one_line(tiny_session, run_cli):
    path = tiny_session.path / "vectors.safetensors"
    with safe_open(str(path), framework="numpy") as f:
        arrays = {k: f.get_tensor(k) for k in f.keys()}
    save_file(arrays, str(path), metadata={"emolab": "[1, 2"})
    r = run_cli("steer", tiny_session.path, "--emotion", "joy", "--layer", "2")
    assert r.exit_code == 2 and "corrupt 'emolab' metadata" in r.output
    assert len(r.output.strip().splitlines()) == 1
