import json

import numpy as np
import pytest

from emolab.errors import SessionError
from emolab.session import Session


def make(tmp_path):
    return Session.create(tmp_path / "s", {"name": "tiny-llama", "layers": 4})


def test_step_logs_started_and_closed_events(tmp_path):
    s = make(tmp_path)
    with s.step("extract", {"a": 1}) as rec:
        rec["metrics"]["x"] = 1.5
    events = s.events()
    assert [e["status"] for e in events] == ["started", "ok"]
    assert s.steps()[0]["metrics"] == {"x": 1.5}
    assert s.status() == "ok"


def test_failed_step_is_logged_and_reraised(tmp_path):
    s = make(tmp_path)
    with pytest.raises(ValueError), s.step("extract", {}):
        raise ValueError("boom")
    assert s.steps()[0]["status"] == "failed"
    assert s.steps()[0]["error"] == "boom"


def test_a_session_cut_off_mid_step_stays_readable(tmp_path):
    s = make(tmp_path)
    s._append({"seq": 1, "kind": "extract", "status": "started", "params": {}})
    reopened = Session.open(s.path)
    assert reopened.status() == "interrupted (extract)"


def test_truncated_log_is_a_clear_error_and_nothing_is_overwritten(tmp_path):
    s = make(tmp_path)
    with s.step("extract", {}):
        pass
    good = s.log_path.read_bytes()
    s.log_path.write_bytes(good + b'{"seq": 2, "kind": "ste')
    before = s.log_path.read_bytes()
    with pytest.raises(SessionError, match=r"log.jsonl: truncated event on line 3"):
        Session.open(s.path)
    with pytest.raises(SessionError), s.step("steer", {}):
        pass
    assert s.log_path.read_bytes() == before


def test_corrupt_vectors_missing_manifest_unknown_schema(tmp_path):
    s = make(tmp_path)
    s.save_vectors({"joy/blocks.0.hook_resid_post": np.ones(4)}, {}, "mean_diff")
    vecs, meta = s.load_vectors()
    assert meta["method"] == "mean_diff" and vecs["joy/blocks.0.hook_resid_post"].shape == (4,)
    (s.path / "vectors.safetensors").write_bytes(b"\x00garbage")
    with pytest.raises(SessionError, match="vectors.safetensors: corrupt"):
        s.load_vectors()
    manifest = json.loads((s.path / "manifest.json").read_text())
    manifest["schema_version"] = 99
    (s.path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(SessionError, match="unknown schema version 99"):
        Session.open(s.path)
    (s.path / "manifest.json").write_text("{not json")
    with pytest.raises(SessionError, match="corrupt manifest"):
        Session.open(s.path)
    (s.path / "manifest.json").unlink()
    with pytest.raises(SessionError, match="missing manifest"):
        Session.open(s.path)


def test_session_path_that_is_a_file(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(SessionError, match="is a file"):
        Session.create(f, {"name": "x"})
    with pytest.raises(SessionError, match="is a file"):
        Session.open(f)


def test_atomic_write_leaves_no_temp_files(tmp_path):
    s = make(tmp_path)
    s.write_json("a.json", {"x": 1})
    assert sorted(p.name for p in (s.path / "artifacts").iterdir()) == ["a.json"]
    assert s.read_json("a.json") == {"x": 1}
