"""`emolab study` on the tiny models: the combined table, resume after a kill, replayable
sessions, the same table on Ray as serially, and bad input."""

import csv
import json

import pytest

from emolab.errors import BadInput, Cancelled
from emolab.progress import Progress
from emolab.steps import study


class KillAtSweep(Progress):
    """Stops the study (as Ctrl-C would) when the second model's sweep starts."""

    def __init__(self):
        super().__init__()
        self.sweeps = 0

    def task(self, description, total):
        if description.startswith("sweep "):
            self.sweeps += 1
            if self.sweeps == 2:
                self.cancel()


def kinds(path):
    from emolab.session import Session

    return [e["kind"] for e in Session.open(path).steps() if e["status"] == "ok"]


def test_study_table_resume_and_replay(tmp_path, small_judge, tiny_study):
    out = tmp_path / "study"
    with pytest.raises(Cancelled):
        study.run(out, tiny_study(), KillAtSweep())
    assert kinds(out / "tiny-llama") == ["extract", "layers", "sweep"]
    assert kinds(out / "tiny-gpt2") == ["extract", "layers"]
    res = study.run(out, tiny_study())  # continues: only the missing sweep runs
    assert kinds(out / "tiny-llama") == ["extract", "layers", "sweep"]
    assert kinds(out / "tiny-gpt2") == ["extract", "layers", "sweep"]
    rows = list(csv.DictReader(open(out / "study.csv")))
    assert [r["model"] for r in rows] == ["tiny-llama", "tiny-gpt2"]
    for r, full in zip(rows, res["rows"]):
        assert int(r["peak_layer"]) in (1, 2) and r["sweep_layer"] == r["peak_layer"]
        assert r["success_test"] == "nan" or 0 <= float(r["success_test"]) <= 1
        assert sum(int(r[k]) for k in ("surgical", "repetitive", "explosive", "failed")) == 4
        assert float(r["acc_random"]) < 1 and r["acc_generation"] != ""
        assert full["session"].endswith(r["model"])
    assert json.loads((out / "study.json").read_text())["params"]["emotions"] == ["joy", "anger"]
    from rich.console import Console

    from emolab.commands.study import print_study

    con = Console(record=True, width=80)
    print_study(con, res)
    assert "…" not in con.export_text()  # 80 columns: the table in blocks, no cut headers
    again = study.run(out, tiny_study())  # all done: nothing logged twice, same table
    assert again["rows"] == res["rows"] and kinds(out / "tiny-gpt2").count("sweep") == 1
    from emolab.steps.replay import replay

    _, cmp = replay(out / "tiny-gpt2", tmp_path / "replayed")
    assert cmp.ok, [r for r in cmp.rows if not r["ok"]]


def test_study_bad_input(tmp_path, tiny_study):
    with pytest.raises(BadInput, match="no models given"):
        study.run(tmp_path / "s", tiny_study(models=[]))
    with pytest.raises(Exception, match="unknown model 'nope'"):
        study.run(tmp_path / "s", tiny_study(models=["nope"]))
    with pytest.raises(BadInput, match="prompts must be 1-20"):
        study.run(tmp_path / "s", tiny_study(prompts=0))
    (tmp_path / "f").write_text("x")
    with pytest.raises(BadInput, match="is a file"):
        study.run(tmp_path / "f", tiny_study())


def test_default_emotions_are_the_most_frequent_single_label_ones():
    top = study.default_emotions("goemotions", "neutral", 20)
    assert len(top) == 20 and "neutral" not in top and len(set(top)) == 20
    assert top[:3] == study.default_emotions("goemotions", "neutral", 3)


def test_study_cli(run_cli, tmp_path):
    r = run_cli("study", "--models", "", "--out", tmp_path / "s")
    assert r.exit_code == 2 and "no models given" in r.output
    r = run_cli("study", "--models", "tiny-llama", "--out", tmp_path / "s", "--ray", "bad")
    assert r.exit_code == 2 and "bad Ray address" in r.output
