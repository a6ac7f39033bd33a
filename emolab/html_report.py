"""One self-contained HTML page per session: every logged step in log order with its
parameters, figures, key tables and whether it can be replayed, for a reader who never ran
the bench. Figures are embedded as data: URIs, there are no scripts and nothing is fetched
from the network, so the file opens anywhere, offline, and can be mailed as it is."""

from __future__ import annotations

import base64
import html
import json
import math
import re
from pathlib import Path

from . import figures, results
from .errors import EmolabError
from .session import Session
from .version import __version__

CSS = """
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;max-width:60rem;margin:2rem auto;
padding:0 1rem;color:#1a1a1a;background:#fff}
h1{font-size:1.5rem;margin-bottom:.2rem} h2{font-size:1.15rem;margin:2.2rem 0 .4rem;
border-bottom:1px solid #ddd;padding-bottom:.2rem} h3{font-size:.95rem;margin:1rem 0 .3rem}
table{border-collapse:collapse;font-size:.85rem;margin:.3rem 0 .8rem}
td,th{border:1px solid #ddd;padding:.15rem .45rem;text-align:left;vertical-align:top}
th{background:#f4f4f4} td.num{text-align:right;font-variant-numeric:tabular-nums}
figure{margin:.8rem 0} figure img{max-width:100%;height:auto;border:1px solid #eee}
figcaption{font-size:.82rem;color:#444} .ok{color:#0a6b3a} .bad{color:#a31515}
.meta{color:#555;font-size:.85rem} code{font-size:.85em;background:#f6f6f6;padding:0 .2em}
"""
MAX_ROWS = 40


def natural(item: tuple[str, object]) -> list:
    """Sort key that reads numbers as numbers: mean_resid_norm/L2 before /L10."""
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", item[0])]


def esc(x) -> str:
    return html.escape(str(x), quote=True)


def fmt(v) -> str:
    if isinstance(v, float):
        return "nan" if math.isnan(v) else f"{v:.4g}"
    if isinstance(v, (list, dict)):
        text = json.dumps(v, ensure_ascii=False)
        return text if len(text) <= 160 else text[:157] + "..."
    return str(v)


def table(header: list[str], rows: list[list], caption: str = "") -> str:
    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    body = []
    for r in rows[:MAX_ROWS]:
        cells = "".join(
            f'<td class="num">{esc(fmt(c))}</td>'
            if isinstance(c, (int, float))
            else f"<td>{esc(fmt(c))}</td>"
            for c in r
        )
        body.append(f"<tr>{cells}</tr>")
    more = (
        f"<p class=meta>({len(rows) - MAX_ROWS} more rows in the csv)</p>"
        if len(rows) > MAX_ROWS
        else ""
    )
    cap = f"<h3>{esc(caption)}</h3>" if caption else ""
    return f"{cap}<table><tr>{head}</tr>{''.join(body)}</table>{more}"


def png_uri(fig) -> str:
    from .figures.style import to_bytes

    data = base64.b64encode(to_bytes(fig, "png", dpi=150)).decode()  # sharp on screen, small
    return f"data:image/png;base64,{data}"


def _read_json(out: results.Output | None) -> dict | None:
    if out is None:
        return None
    try:
        return json.loads(out.path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def key_tables(session: Session, ev: dict) -> str:
    """The tables a reader needs for each step kind, from the files the step wrote."""
    kind = ev["kind"]
    mine = [o for o in results.outputs(session, kind) if o.seq == ev["seq"]]
    js = next((o for o in mine if o.relpath.endswith(".json")), None)
    if kind == "layers" and (data := _read_json(js)):
        rows = [
            [m, s["peak_layer"], s["peak_acc"], s["peak_acc7"], figures.accuracy.peak_split(s)]
            for m, s in data["summary"].items()
        ]
        return table(
            ["method", "peak layer", "held-out acc (mean)", "7-way acc", "peak chosen on"],
            rows,
            "Peak layer per method",
        )
    if kind == "steer":
        texts = next((o for o in mine if o.relpath.endswith(".jsonl")), None)
        if texts and texts.path.is_file():
            lines = [json.loads(x) for x in texts.path.read_text(encoding="utf-8").splitlines()]
            return table(
                ["prompt", "unsteered", "steered"],
                [[x["prompt"], x["baseline"], x["steered"]] for x in lines],
                "Generations",
            )
    if kind == "heads" and (data := _read_json(js)):
        out = []
        for method, m in data["maps"].items():
            rows = [
                [i, f"L{t['layer']}H{t['unit']}", t["effect"]] for i, t in enumerate(m["top"], 1)
            ]
            out.append(table(["rank", "head", "effect"], rows, f"Top heads ({method})"))
        return "".join(out)
    if kind == "crosslingual" and (data := _read_json(js)):
        rows = [[c["layer"], c["direction"], c["own"], c["foreign"], c["random"], c["carry_over"]]
                for c in data["carry_over"]]  # fmt: skip
        return table(["layer", "direction", "own", "foreign", "random", "carry-over"], rows,
                     "Carry-over (specific label-logit rise)")  # fmt: skip
    return ""


def replay_status(session: Session, ev: dict) -> str:
    """Can `emolab replay` re-run this step here, and, for a replay, did it match?"""
    from .steps import STEPS
    from .steps.replay import missing_plugins

    if ev.get("status") != "ok":
        return '<p class="bad">failed: not replayed (replay re-runs finished steps only)</p>'
    if ev["kind"] not in STEPS:
        return f'<p class="bad">not replayable: no step kind {esc(ev["kind"])} in this emolab</p>'
    used = {k for k in (ev.get("plugins") or {})}
    missing = [m for m in missing_plugins(session) if any(m.startswith(u) for u in used)]
    if missing:
        return (
            f'<p class="bad">replay needs plugins not installed here: {esc("; ".join(missing))}</p>'
        )
    return '<p class="ok">replayable here: <code>emolab replay</code> re-runs it</p>'


def replay_match(session: Session) -> str:
    """For a replay session: each step's metrics against the original's, rtol 1e-3."""
    origin = session.manifest.get("replay_of")
    if not origin:
        return ""
    try:
        orig = Session.open(origin)
    except EmolabError as exc:
        return f'<p class="bad">replay of {esc(origin)}, which cannot be opened: {esc(exc)}</p>'
    a = [e for e in orig.steps() if e["status"] == "ok"]
    b = [e for e in session.steps() if e["status"] == "ok"]
    rows = []
    for ea, eb in zip(a, b):
        ma, mb = ea.get("metrics", {}), eb.get("metrics", {})
        bad = [
            k
            for k, v in ma.items()
            if k not in mb
            or not (
                (math.isnan(float(v)) and math.isnan(float(mb[k])))
                or abs(float(v) - float(mb[k])) <= 1e-4 + 1e-3 * abs(float(v))
            )
        ]
        rows.append(
            [ea["seq"], ea["kind"], len(ma), "yes" if not bad else f"no: {', '.join(bad[:4])}"]
        )
    return table(["seq", "step", "metrics", "same as the original"], rows, f"Replay of {origin}")


def render(session: Session) -> str:
    """The whole page as one string."""
    try:
        drawn = figures.draw(session)
    except EmolabError:
        drawn = []
    by_seq: dict[int, list] = {}
    with figures.style():
        for d in drawn:
            by_seq.setdefault(d.seq, []).append((d, png_uri(d.figure)))
    m = session.manifest
    model = m.get("model", {})
    rev = (m.get("git_rev") or "?")[:10]
    parts = [
        "<!doctype html><html lang=en><head><meta charset=utf-8>",
        f"<title>emolab session {esc(session.name)}</title><style>{CSS}</style></head><body>",
        f"<h1>emolab session <code>{esc(session.name)}</code></h1>",
        f"<p class=meta>report by emolab {esc(__version__)}; session created "
        f"{esc(m.get('created'))} on {esc(m.get('host'))}, emolab git {esc(rev)}; "
        f"status: {esc(session.status())}</p>",
        table(
            ["model", "layers", "d_model", "heads", "dtype", "device", "weights sha256"],
            [
                [
                    model.get("name"),
                    model.get("layers"),
                    model.get("d_model"),
                    model.get("heads"),
                    model.get("dtype"),
                    model.get("device"),
                    str(model.get("sha256", ""))[:16],
                ]
            ],
        ),  # fmt: skip
        replay_match(session),
    ]
    steps = session.steps()
    if not steps:
        parts.append("<p>No step has been logged in this session yet.</p>")
    for ev in steps:
        dur = ev.get("duration_s")
        parts.append(
            f'<section id="step-{ev["seq"]}"><h2>{ev["seq"]}. {esc(ev["kind"])} '
            f'<span class="{"ok" if ev["status"] == "ok" else "bad"}">({esc(ev["status"])})</span>'
            + (f" <span class=meta>{dur:.1f} s</span>" if isinstance(dur, (int, float)) else "")
            + "</h2>"
        )
        if ev.get("error"):
            parts.append(f'<p class="bad">error: {esc(ev["error"])}</p>')
        params = ev.get("params") or {}
        if params:
            parts.append(table(["parameter", "value"], [[k, v] for k, v in sorted(params.items())],
                               "Parameters"))  # fmt: skip
        else:
            parts.append("<p class=meta>no parameters given: the step's defaults</p>")
        for d, uri in by_seq.get(ev["seq"], []):
            width = int(d.figure.get_size_inches()[0] * 110)  # about print size on screen
            parts.append(
                f'<figure><img src="{uri}" width="{width}" alt="{esc(d.name)} figure" '
                f'data-figure="{esc(d.name)}">'
                f"<figcaption>{esc(d.caption)}</figcaption></figure>"
            )
        parts.append(key_tables(session, ev))
        metrics = ev.get("metrics") or {}
        if metrics:
            rows = [[k, v] for k, v in sorted(metrics.items(), key=natural)]
            parts.append(table(["metric", "value"], rows, "Metrics (as logged)"))
        outs = ev.get("outputs") or []
        if outs:
            parts.append(
                "<p class=meta>files: " + ", ".join(f"<code>{esc(o)}</code>" for o in outs) + "</p>"
            )
        parts.append(replay_status(session, ev))
        parts.append("</section>")
    parts.append("</body></html>\n")
    return "".join(parts)


def write(session: Session, out: Path | None = None) -> Path:
    """Render and write atomically (default SESSION/report.html)."""
    from .io import atomic_write

    path = Path(out) if out is not None else session.path / "report.html"
    atomic_write(path, render(session).encode("utf-8"))
    return path
