import json

import numpy as np
import pytest

from emolab.errors import SessionError
from emolab.metadata import FileMeta
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


def test_torn_last_line_is_the_interrupted_step_and_earlier_steps_stay(tmp_path):
    s = make(tmp_path)
    with s.step("extract", {}):
        pass
    good = s.log_path.read_bytes()
    s.log_path.write_bytes(good + b'{"kind": "steer", "params": {"alpha"')
    reopened = Session.open(s.path)
    assert reopened.status() == "interrupted (steer)"
    assert [e["kind"] for e in reopened.steps()] == ["extract"]
    cut = reopened.interrupted()
    assert [(e["seq"], e["kind"], e["status"]) for e in cut] == [(2, "steer", "interrupted")]
    # the next step closes the fragment off as an event, never glues a line to it
    with reopened.step("layers", {}) as rec:
        assert rec["seq"] == 3
    again = Session.open(s.path)
    assert [(e["seq"], e["status"]) for e in again.events()] == [
        (1, "started"),
        (1, "ok"),
        (2, "interrupted"),
        (3, "started"),
        (3, "ok"),
    ]
    assert again.log_path.read_bytes().startswith(good)


def test_torn_closing_event_interrupts_the_open_step(tmp_path):
    s = make(tmp_path)
    with s.step("extract", {}):
        pass
    s._append({"seq": 2, "kind": "sweep", "status": "started", "params": {}})
    with open(s.log_path, "ab") as f:
        f.write(b'{"duration_s": 1.5, "inp')
    reopened = Session.open(s.path)
    assert reopened.status() == "interrupted (sweep)"
    assert [e["seq"] for e in reopened.interrupted()] == [2]


@pytest.mark.parametrize(
    "bad", [b"{not json", b"[1, 2]", b'{"seq": "1", "kind": "x", "status": "ok"}', b"\xff\xfe"]
)
def test_corruption_before_the_last_line_is_one_error_naming_file_and_line(tmp_path, bad):
    s = make(tmp_path)
    with s.step("extract", {}):
        pass
    good = s.log_path.read_bytes()
    s.log_path.write_bytes(good + bad + b"\n" + good)
    before = s.log_path.read_bytes()
    with pytest.raises(SessionError, match=r"log.jsonl: line 3 is corrupt"):
        Session.open(s.path)
    with pytest.raises(SessionError), s.step("steer", {}):
        pass
    assert s.log_path.read_bytes() == before


def test_step_hands_its_seq_and_records_input_hashes(tmp_path):
    s = make(tmp_path)
    data = tmp_path / "d.csv"
    data.write_text("text,label\nhi there,joy\n")
    with s.step("extract", {}) as rec:
        assert rec["seq"] == 1
        digest = s.add_input(rec, "dataset", data)
    ev = s.steps()[0]
    assert ev["inputs"]["dataset"] == {"path": str(data.resolve()), "sha256": digest}
    assert Session.open(s.path).manifest["inputs"] == {str(data.resolve()): digest}


def test_corrupt_vectors_missing_manifest_unknown_schema(tmp_path):
    s = make(tmp_path)
    s.save_vectors({"joy/blocks.0.hook_resid_post": np.ones(4)}, FileMeta(), "mean_diff")
    vecs, meta = s.load_vectors()
    assert meta.method == "mean_diff" and vecs["joy/blocks.0.hook_resid_post"].shape == (4,)
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
    assert not [p for p in s.path.iterdir() if p.name.startswith(".tmp-")]
    assert s.read_json("a.json") == {"x": 1}


HOLD = """
import sys, time
from emolab.session import Session
s = Session.open(sys.argv[1])
with s.writing():
    print("held", flush=True)
    time.sleep(float(sys.argv[2]))
"""


def hold_lock(path, seconds):
    import os
    import subprocess
    import sys

    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(path), str(seconds)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": os.getcwd()},
    )
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_a_second_writer_waits_then_stops_with_one_line(tmp_path, monkeypatch):
    s = make(tmp_path)
    proc = hold_lock(s.path, 30)
    try:
        monkeypatch.setenv("EMOLAB_LOCK_TIMEOUT", "0.3")
        with pytest.raises(
            SessionError, match=r"another emolab process is writing this session \(pid"
        ):
            with s.step("steer", {}):
                pass
        assert s.events() == []
    finally:
        proc.kill()
        proc.wait()
    with s.step("steer", {}) as rec:  # a killed holder frees the lock
        assert rec["seq"] == 1


def test_writer_waits_for_a_short_holder(tmp_path, monkeypatch):
    s = make(tmp_path)
    proc = hold_lock(s.path, 0.5)
    monkeypatch.setenv("EMOLAB_LOCK_TIMEOUT", "20")
    with s.step("steer", {}) as rec:
        assert rec["seq"] == 1
    proc.wait()


def test_bad_lock_timeout_is_bad_input(tmp_path, monkeypatch):
    from emolab.errors import BadInput

    s = make(tmp_path)
    monkeypatch.setenv("EMOLAB_LOCK_TIMEOUT", "soon")
    with pytest.raises(BadInput, match="EMOLAB_LOCK_TIMEOUT"):
        s.write_json("a.json", {})


def test_busy_session_exits_2_from_the_cli(tiny_session, run_cli, monkeypatch):
    proc = hold_lock(tiny_session.path, 30)
    try:
        monkeypatch.setenv("EMOLAB_LOCK_TIMEOUT", "0.2")
        res = run_cli("layers", tiny_session.path)
    finally:
        proc.kill()
        proc.wait()
    assert res.exit_code == 2
    assert "another emolab process is writing this session" in res.output
    assert "Traceback" not in res.output


def test_create_over_what_a_killed_create_left(tmp_path):
    path = tmp_path / "s"
    (path / "artifacts").mkdir(parents=True)
    (path / ".tmp-manifest.json.x1").write_text("{")
    Session.create(path, {"name": "tiny-llama"})
    assert Session.open(path).status() == "empty"
    other = tmp_path / "o"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    with pytest.raises(SessionError, match="folder is not empty"):
        Session.create(other, {"name": "tiny-llama"})


CREATE = """
import sys, time
import emolab.session as S
real = S.versions
def slow():  # widens the window between "is anything there?" and the manifest write
    time.sleep(1.0)
    return real()
S.versions = slow
time.sleep(max(0.0, float(sys.argv[2]) - time.time()))  # both start together
try:
    S.Session.create(sys.argv[1], {"name": sys.argv[3]})
    print("created")
except S.SessionError as exc:
    print(f"refused: {exc}")
"""


def test_two_processes_creating_one_session_one_gets_it(tmp_path):
    """Without the lock both saw an empty folder and both wrote a manifest: the second
    silently replaced the first's session."""
    import os
    import subprocess
    import sys
    import time

    path, start = tmp_path / "new", time.time() + 3
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", CREATE, str(path), str(start), name],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONPATH": os.getcwd(), "EMOLAB_LOCK_TIMEOUT": "30"},
        )
        for name in ("first", "second")
    ]
    outs = [p.communicate(timeout=60) for p in procs]
    lines = sorted(out.strip() for out, _ in outs)
    assert all(err == "" for _, err in outs), outs
    assert lines[0] == "created"
    assert lines[1] == f"refused: {path}: a session already exists there (choose a new path)"
    winner = ("first", "second")[[o.strip() for o, _ in outs].index("created")]
    assert Session.open(path).model_name == winner
