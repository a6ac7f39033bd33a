"""CLI tables at 80 columns, on sessions the real steps made on tiny-llama: emotion
headers are unique abbreviations ("ang"; "disappo", "disappr", "disg"), never a one-letter
ellipsis; more emotions than 80 columns hold are printed in blocks."""

from __future__ import annotations

import pytest
from rich.console import Console

from emolab.report import abbreviate, blocks, print_layers
from emolab.steps import extract, layers
from emolab.steps.common import new_session

# twelve GoEmotions labels, three of them sharing "dis": more than one 80-column table holds
MANY = [
    "admiration",
    "amusement",
    "anger",
    "annoyance",
    "approval",
    "caring",
    "confusion",
    "curiosity",
    "disappointment",
    "disapproval",
    "disgust",
    "joy",
]


def rendered(result: dict, width: int = 80) -> list[str]:
    con = Console(width=width, record=True, color_system=None)
    print_layers(con, result, "mean_diff")
    return con.export_text().splitlines()


def readable(lines: list[str], width: int = 80) -> None:
    assert all(len(line) <= width for line in lines), max(lines, key=len)
    assert not any("…" in line for line in lines), [ln for ln in lines if "…" in ln]


def test_layer_table_at_80_columns_abbreviates_ekman_headers(run_cli, tiny_session):
    res = run_cli("layers", tiny_session.path, env={"COLUMNS": "80"})
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    readable(lines)
    header = next(ln for ln in lines if ln.split()[:1] == ["L"])
    assert header.split() == [
        "L",
        *["ang", "dis", "fea", "joy", "sad", "sur"],
        *["avg", "rnd", "shf", "7w", "7wr", "7ws", "|v|", "|h|"],
    ]
    assert "ang: anger" in res.output
    cosine = next(ln for ln in lines if ln.split()[:1] == ["ang"])
    assert cosine.split() == ["ang", "dis", "fea", "joy", "sad", "sur"]


@pytest.fixture(scope="module")
def many(tmp_path_factory) -> dict:
    session = new_session(tmp_path_factory.mktemp("many") / "s", "tiny-llama")
    extract.run(session, {"dataset": "goemotions", "emotions": MANY, "limit": 4, "test_limit": 4})
    return layers.run(session, {})


def test_many_emotions_print_in_blocks_with_unique_headers(many):
    lines = rendered({**many, "emotions": MANY})
    readable(lines)
    headers = [ln.split() for ln in lines if ln.split()[:1] == ["L"]]
    assert len(headers) == 2  # two blocks, each led by the layer column
    shown = [h for row in headers for h in row[1:]]
    short = abbreviate(MANY)
    assert shown[: len(MANY)] == [short[e] for e in MANY]
    assert {"disappo", "disappr", "disg", "ann", "amu", "adm"} <= set(shown)
    assert "(1/2)" in "\n".join(lines) and "(2/2)" in "\n".join(lines)
    # every accuracy of every layer is printed once
    n_layers = len({r["layer"] for r in many["rows"]})
    body = [ln for ln in lines if ln.strip()[:1].isdigit() and len(ln.split()) > 3]
    assert len(body) == 2 * n_layers


def test_abbreviate_and_blocks():
    assert abbreviate(["anger", "annoyance", "joy", "jo"]) == {
        "anger": "ang",
        "annoyance": "ann",
        "joy": "joy",
        "jo": "jo",
    }
    assert abbreviate(["fear", "fearful"]) == {"fear": "fear", "fearful": "fearf"}
    assert blocks([3, 3, 3, 3], 8) == [range(0, 2), range(2, 4)]
    assert blocks([10], 4) == [range(0, 1)]  # a column wider than the room still prints
