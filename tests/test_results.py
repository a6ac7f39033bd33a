"""The log-based result query: found by step kind and params, newest first wins."""

from emolab.results import latest, outputs
from emolab.session import Session


def test_outputs_found_through_the_log(tmp_path):
    s = Session.create(tmp_path / "s", {"name": "tiny"})
    for emotion in ("joy", "anger", "joy"):
        with s.step("heads", {"emotion": emotion}) as rec:
            name = f"heads-{len(s.steps()) + 1}-{emotion}.json"
            s.write_json(name, {"emotion": emotion})
            rec["outputs"] = [f"artifacts/{name}"]
    joy = list(outputs(s, "heads", emotion="joy"))
    assert [o.seq for o in joy] == [1, 3]
    newest = latest(s, "heads", suffix=".json", emotion="joy")
    assert newest is not None and newest.seq == 3 and newest.path.is_file()
    assert latest(s, "heads", emotion="fear") is None
    assert latest(s, "sweep") is None
