"""Every result of a session as a tidy pandas DataFrame: one row per observation.

Each table is found through the session log (`emolab.results`), never by a file name: the
latest ok step of the table's kind (filtered by its logged params) and the output of that
step the table is made from. Wide artifacts (head maps, CKA matrices) are melted so a row
is one (layer, head) or one (layer_a, layer_b).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING

from . import results
from .errors import BadInput, SessionError, unknown

if TYPE_CHECKING:
    import pandas as pd

    from .session import Session


def _output(session: Session, kind: str, stem: str, suffix: str, filters: dict):
    """The newest output of a `kind` step whose file name starts with `stem`."""
    found = [
        o
        for o in results.outputs(session, kind, suffix=suffix, **filters)
        if o.path.name.startswith(stem) and o.path.is_file()
    ]
    if not found:
        what = f" with {', '.join(f'{k}={v}' for k, v in filters.items())}" if filters else ""
        raise SessionError(f"{session.path}: no {kind} results{what} (run `{kind}` first)")
    return found[-1]


def _csv(kind: str, stem: str | None = None) -> Callable:
    def read(session: Session, **filters) -> pd.DataFrame:
        import pandas as pd

        return pd.read_csv(_output(session, kind, stem or kind, ".csv", filters).path)

    read.__doc__ = f"the `{kind}` step's csv, as written"
    return read


def _json(session: Session, kind: str, stem: str, filters: dict) -> tuple[dict, dict]:
    out = _output(session, kind, stem, ".json", filters)
    return json.loads(out.path.read_text(encoding="utf-8")), out.event


def heads(session: Session, **filters) -> pd.DataFrame:
    """One row per (emotion, method, layer, head): the head map's effect."""
    import pandas as pd

    res, event = _json(session, "heads", "heads-", filters)
    rows = [
        {
            "emotion": res["emotion"],
            "metric": res["metric"],
            "method": method,
            "layer": layer,
            "head": head,
            "effect": value,
            "seq": event["seq"],
        }
        for method, m in res["maps"].items()
        for layer, row in enumerate(m["matrix"])
        for head, value in enumerate(row)
        if value is not None and value == value
    ]
    return pd.DataFrame(rows)


def align(session: Session, **filters) -> pd.DataFrame:
    """One row per (aligner, measure): score, its permutation baseline and p-value; a
    measure the aligner cannot give (a direction map it does not have) is a row with no
    score and the reason in `note`."""
    import pandas as pd

    res, event = _json(session, "align", "align-", filters)
    where = {
        "model_a": res["model_a"],
        "layer_a": res["layer_a"],
        "model_b": res["model_b"],
        "layer_b": res["layer_b"],
        "seq": event["seq"],
    }
    rows = []
    for method, measures in res["methods"].items():
        for measure, v in measures.items():
            if isinstance(v, dict) and "score" in v:
                rows.append(
                    {
                        "method": method,
                        "measure": measure,
                        **{k: v.get(k) for k in ("score", "baseline_mean", "baseline_sd")},
                        "p_value": v.get("p_value"),
                        "draws": v.get("draws"),
                        "note": None,
                        **where,
                    }
                )
        for measure, why in measures.get("not_available", {}).items():
            rows.append({"method": method, "measure": measure, "note": why, **where})
    return pd.DataFrame(rows)


def cka(session: Session, **filters) -> pd.DataFrame:
    """One row per (layer_a, layer_b): linear CKA between the two models' layers."""
    import pandas as pd

    res, _ = _json(session, "align", "align-", filters)
    c = res["cka_layers"]
    return pd.DataFrame(
        [
            {"layer_a": la, "layer_b": lb, "cka": c["matrix"][i][j]}
            for i, la in enumerate(c["layers_a"])
            for j, lb in enumerate(c["layers_b"])
        ]
    )


def steer(session: Session, **filters) -> pd.DataFrame:
    """One row per prompt: baseline and steered text, with the step's settings."""
    import pandas as pd

    out = _output(session, "steer", "steer-", ".jsonl", filters)
    lines = out.path.read_text(encoding="utf-8").splitlines()
    frame = pd.DataFrame([json.loads(line) for line in lines if line.strip()])
    for key in ("emotion", "layer", "alpha"):
        frame[key] = out.params.get(key)
    frame["seq"] = out.seq
    return frame


def metrics(session: Session, kind: str | None = None) -> pd.DataFrame:
    """One row per (step, metric) for every ok step in the log: the numbers any step
    reports, ablations included."""
    import pandas as pd

    rows = [
        {"seq": e["seq"], "kind": e["kind"], "metric": name, "value": value}
        for e in session.steps()
        if e.get("status") == "ok" and (kind is None or e["kind"] == kind)
        for name, value in (e.get("metrics") or {}).items()
    ]
    return pd.DataFrame(rows, columns=["seq", "kind", "metric", "value"])


def log(session: Session, kind: str | None = None) -> pd.DataFrame:
    """One row per closed step: kind, status, duration, params (as logged)."""
    import pandas as pd

    return pd.DataFrame(
        [
            {
                "seq": e["seq"],
                "kind": e["kind"],
                "status": e["status"],
                "duration_s": e.get("duration_s"),
                "params": e.get("params"),
                "outputs": e.get("outputs"),
            }
            for e in session.steps()
            if kind is None or e["kind"] == kind
        ],
        columns=["seq", "kind", "status", "duration_s", "params", "outputs"],
    )


TABLES: dict[str, Callable] = {
    "layers": _csv("layers"),
    "sources": _csv("layers", "sources"),
    "sweep": _csv("sweep", "sweep-"),
    "heads": heads,
    "align": align,
    "cka": cka,
    "steer": steer,
    "crosslingual": _csv("crosslingual"),
    "compare": _csv("compare", "compare_geometry"),
    "sensitivity": _csv("compare", "compare_sensitivity."),
    "metrics": metrics,
    "log": log,
}


def table(session: Session, name: str, **filters) -> pd.DataFrame:
    """The table `name` of a session (see TABLES); `filters` match the step's logged params,
    e.g. `table(s, "heads", emotion="anger")`, `table(s, "layers", dataset="tigges")`."""
    if name not in TABLES:
        raise unknown("table", name, TABLES)
    reader = TABLES[name]
    if reader in (metrics, log) and set(filters) - {"kind"}:
        raise BadInput(f"table '{name}' filters only by kind, not {', '.join(filters)}")
    return reader(session, **filters)


def to_csv(rows: list[dict]) -> str:
    """One row per dict, written by pandas (floats to 4 places): the steps write their csv
    tables here, beside the code that reads them back, so both see one frame."""
    import pandas as pd

    return pd.DataFrame(rows).to_csv(index=False, float_format="%.4f", na_rep="nan")
