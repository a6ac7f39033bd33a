"""Property-based tests (hypothesis): whatever a csv/jsonl file or a damaged session file
holds, emolab answers with examples / a session or one EmolabError, never a traceback.

pytest runs each property on a few dozen examples; `make faults` (tests/faults.py) runs the
same properties with hundreds each and counts them.
"""

from __future__ import annotations

import csv
import io
import json
import shutil
import tempfile
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from emolab.data import read_user_file
from emolab.errors import EmolabError

COUNT: Counter = Counter()
SESSION: Path | None = None  # a finished tiny session to damage (set by pytest or faults.py)

# characters that break naive readers: quotes, separators, line breaks of every kind, BOM, NUL
NASTY = st.sampled_from(list(",\"'\n\r\t\u2028\u2029\ufeff\x00\\{}[]:0 é日"))
TEXT = st.text(st.one_of(NASTY, st.characters(codec="utf-8")), max_size=40)


def _file(data: bytes, suffix: str) -> Path:
    f = Path(tempfile.mkdtemp()) / f"d{suffix}"
    f.write_bytes(data)
    return f


def _read(path: Path, kind: str):
    try:
        return read_user_file(str(path), kind, "text", "label")
    except EmolabError:
        return None
    finally:
        shutil.rmtree(path.parent, ignore_errors=True)


@st.composite
def csv_bytes(draw):
    """Mostly well-formed csv (written by the csv module, optional BOM/CRLF), sometimes
    with raw bytes spliced in."""
    rows = draw(st.lists(st.tuples(TEXT, TEXT), max_size=8))
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator=draw(st.sampled_from(["\n", "\r\n"])))
    w.writerow(draw(st.sampled_from([["text", "label"], ["label", "text", "x"], ["text"]])))
    w.writerows(rows)
    data = (draw(st.sampled_from(["", "\ufeff"])) + buf.getvalue()).encode()
    if draw(st.booleans()):
        at = draw(st.integers(0, len(data)))
        data = data[:at] + draw(st.binary(max_size=12)) + data[at:]
    return data, rows


def check_csv(case) -> None:
    COUNT["csv_files"] += 1
    data, _rows = case
    out = _read(_file(data, ".csv"), "csv")
    assert out is None or all(ex.text and ex.label for ex in out)


@st.composite
def roundtrip_rows(draw):
    """Rows the csv module writes and any strict reader must read back exactly."""
    cell = st.text(st.one_of(NASTY.filter(lambda c: c != "\x00"), st.characters()), min_size=1)
    cell = cell.map(str.strip).filter(lambda s: s and "\x00" not in s and "\r" not in s)
    rows = draw(st.lists(st.tuples(cell, cell), min_size=1, max_size=6, unique_by=lambda r: r[0]))
    return rows


def check_csv_roundtrip(rows) -> None:
    COUNT["csv_roundtrip"] += 1
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["text", "label"])
    w.writerows(rows)
    try:
        out = _read(_file(buf.getvalue().encode(), ".csv"), "csv")
    except UnicodeEncodeError:  # lone surrogates cannot be written as UTF-8 at all
        return
    assert out is not None and [(e.text, e.label) for e in out] == list(rows)


JSON_VALUE = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
    max_leaves=6,
)


@st.composite
def jsonl_bytes(draw):
    lines = []
    for _ in range(draw(st.integers(0, 6))):
        obj = draw(
            st.one_of(
                st.fixed_dictionaries({"text": JSON_VALUE, "label": JSON_VALUE}),
                JSON_VALUE,
            )
        )
        lines.append(json.dumps(obj, ensure_ascii=draw(st.booleans())))
    data = "\n".join(lines).encode("utf-8", errors="surrogatepass")
    if draw(st.booleans()):
        at = draw(st.integers(0, len(data)))
        data = data[:at] + draw(st.binary(max_size=12)) + data[at:]
    return data


def check_jsonl(data) -> None:
    COUNT["jsonl_files"] += 1
    out = _read(_file(data, ".jsonl"), "jsonl")
    assert out is None or all(ex.text and ex.label for ex in out)


@st.composite
def damage(draw):
    """A cut, a splice of random bytes, or a replaced manifest, at a random place."""
    what = draw(st.sampled_from(["cut_log", "splice_log", "manifest"]))
    if what == "manifest":
        return what, draw(
            st.one_of(st.binary(max_size=40), JSON_VALUE.map(lambda v: json.dumps(v).encode()))
        )
    return what, (draw(st.floats(0, 1)), draw(st.binary(min_size=1, max_size=16)))


def check_session(case) -> None:
    """Open a damaged copy of a real session: a session or one SessionError. A log cut
    anywhere keeps every step that closed before the cut."""
    from emolab import results
    from emolab.session import Session

    COUNT["session_files"] += 1
    assert SESSION is not None
    what, arg = case
    tmp = Path(tempfile.mkdtemp())
    try:
        s = tmp / "s"
        s.mkdir()
        for name in ("manifest.json", "log.jsonl"):
            shutil.copy(SESSION / name, s / name)
        log = (s / "log.jsonl").read_bytes()
        if what == "manifest":
            (s / "manifest.json").write_bytes(arg)
        else:
            frac, junk = arg
            at = int(frac * len(log))
            (s / "log.jsonl").write_bytes(log[:at] + (junk if what == "splice_log" else b""))
        try:
            opened = Session.open(s)
            opened.status()
            opened.interrupted()
            list(results.outputs(opened))
        except EmolabError:
            assert what != "cut_log", "a cut log must still open"
            return
        if what == "cut_log":
            whole = log[: int(arg[0] * len(log))].count(b"\n")
            kept = [e for e in Session.open(SESSION).events()][:whole]
            closed = {e["seq"] for e in kept if e["status"] in ("ok", "failed")}
            assert closed <= {e["seq"] for e in opened.steps()}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


PROPERTIES = {
    "csv_files": (csv_bytes(), check_csv),
    "csv_roundtrip": (roundtrip_rows(), check_csv_roundtrip),
    "jsonl_files": (jsonl_bytes(), check_jsonl),
    "session_files": (damage(), check_session),
}


def run_property(name: str, n: int) -> int:
    """Run one property on `n` generated cases (derandomized: CI sees the same cases)."""
    strategy, check = PROPERTIES[name]
    test = settings(
        max_examples=n,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )(given(strategy)(check))
    before = COUNT[name]
    test()
    return COUNT[name] - before


@pytest.mark.parametrize("name", ["csv_files", "csv_roundtrip", "jsonl_files"])
def test_user_files_never_raise_anything_but_emolab_errors(name):
    assert run_property(name, 40) >= 40


def test_damaged_session_files_open_or_fail_with_one_error(tiny_session_dir):
    global SESSION
    SESSION = Path(tiny_session_dir)
    assert run_property("session_files", 40) >= 40
