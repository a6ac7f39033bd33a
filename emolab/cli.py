"""The `emolab` command line: a thin face over `emolab.steps` (no experiment logic here).

Heavy imports (torch, transformers, sklearn) happen inside commands, so `--help` is fast.
"""

from __future__ import annotations

import json
import os
import sys
from datetime import datetime
from pathlib import Path

import click

from .errors import EmolabError


class EmolabGroup(click.Group):
    """Turns user errors into one line on stderr and exit code 2, never a traceback."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except EmolabError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(2)
        except KeyboardInterrupt:
            click.echo("error: interrupted", err=True)
            sys.exit(130)


def out_json(obj) -> None:
    from .session import _jsonable

    click.echo(json.dumps(obj, indent=2, default=_jsonable))


def run_step(step, session, params: dict, as_json: bool, with_session: bool = False):
    """Run a core step with CLI progress. With --json the result is printed here and None
    returned; otherwise the result goes back for the command's own table."""
    from .progress_cli import cli_progress

    with cli_progress(as_json) as progress:
        result = step.run(session, params, progress)
    if not as_json:
        return result
    out_json({"session": str(session.path), **result} if with_session else result)
    return None


def console():
    from rich.console import Console

    return Console(highlight=False)


def default_session_path(model: str) -> Path:
    root = Path(os.environ.get("EMOLAB_SESSIONS", "sessions"))
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    return root / f"{model.replace(':', '_').replace('/', '_')}-{stamp}"


def csv_list(value: str | None) -> list[str] | None:
    if value is None:
        return None
    items = [v.strip() for v in value.split(",") if v.strip()]
    return items


@click.group(cls=EmolabGroup)
@click.version_option(package_name="emolab")
def cli():
    """emolab: find, test and transplant emotion directions in language models."""


# -- listings ------------------------------------------------------------------------
@cli.command()
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
def models(as_json):
    """Models emolab can load here, and why not when it can't."""
    from . import plugins

    reg = plugins.registry()
    rows = []
    for name in reg.names("models"):
        src = reg.get("models", name)
        spec = src.prefix + "<id-or-path>" if src.prefix else name
        ok, why = (True, "") if src.prefix else src.available(name)
        info = src.info(name) if not src.prefix else {}
        rows.append(
            {
                "name": spec,
                "description": src.description,
                "source": src.source,
                "layers": info.get("layers"),
                "d_model": info.get("d_model"),
                "heads": info.get("heads"),
                "available": ok,
                "why_not": why,
                "plugin": reg.plugin_of("models", name).name,
            }
        )
    if as_json:
        return out_json(rows)
    from rich.table import Table

    t = Table("name", "layers", "d_model", "heads", "available", "source")
    for r in rows:
        avail = "yes" if r["available"] else f"no: {r['why_not']}"
        t.add_row(
            r["name"],
            str(r["layers"] or "-"),
            str(r["d_model"] or "-"),
            str(r["heads"] or "-"),
            avail,
            r["source"],
        )
    console().print(t)


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
def datasets(as_json):
    """Datasets and their labels."""
    from . import plugins

    reg = plugins.registry()
    rows = []
    for name in reg.names("datasets"):
        src = reg.get("datasets", name)
        labels = [] if src.prefix else src.labels(name)
        rows.append(
            {
                "name": src.prefix + "<path>" if src.prefix else name,
                "description": src.description,
                "labels": labels,
                "splits": list(src.splits),
            }
        )
    if as_json:
        return out_json(rows)
    from rich.table import Table

    t = Table("name", "labels", "description")
    for r in rows:
        t.add_row(r["name"], ", ".join(r["labels"]) or "(from the file)", r["description"])
    console().print(t)


@cli.command("plugins")
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
def plugins_cmd(as_json):
    """Every plugin: version, hooks, components, and its load error if it is broken."""
    from . import plugins

    reg = plugins.registry()
    rows = [p.as_dict() for p in reg.plugins.values()]
    if as_json:
        return out_json(rows)
    from rich.table import Table

    t = Table("plugin", "version", "source", "components", "status")
    for r in rows:
        comps = "; ".join(f"{k}: {', '.join(v)}" for k, v in r["components"].items())
        t.add_row(
            r["name"],
            r["version"],
            r["source"],
            comps,
            f"[red]broken: {r['error']}[/]" if r["error"] else "ok",
        )
    console().print(t)


# -- experiments ---------------------------------------------------------------------
@cli.command()
@click.option("--model", "model_name", default="smollm2-135m", show_default=True)
@click.option("--dataset", default="goemotions-ekman", show_default=True)
@click.option(
    "--emotions", default=None, help="default: the Ekman six, or the dataset's own labels"
)
@click.option("--baseline", default=None, help="default: neutral, or the dataset's last label")
@click.option(
    "--contrast",
    default="baseline",
    show_default=True,
    type=click.Choice(["baseline", "others", "all"]),
    help="fit each emotion against the baseline, the other emotions, or all classes",
)
@click.option(
    "--method",
    "methods",
    default="mean_diff",
    show_default=True,
    help="one or more extractors, comma-separated",
)
@click.option("--layers", default="all", show_default=True, help="all, 5, 2,5,8 or 10-20")
@click.option(
    "--position", default="last", show_default=True, type=click.Choice(["last", "mean", "commas"])
)
@click.option("--limit", default=100, show_default=True, type=int, help="train examples per label")
@click.option(
    "--test-limit", default=50, show_default=True, type=int, help="held-out examples per label"
)
@click.option(
    "--dev-limit", default=None, type=int, help="dev examples per label (default: --test-limit)"
)
@click.option("--batch-size", default=16, show_default=True, type=int)
@click.option(
    "--source",
    default="comprehension",
    show_default=True,
    type=click.Choice(["comprehension", "generation"]),
    help="read labelled text, or read what the model writes when asked for each emotion",
)
@click.option("--session", "session_path", default=None, help="session folder (new)")
@click.option("--device", default="cpu", show_default=True)
@click.option("--json", "as_json", is_flag=True)
def extract(
    model_name,
    dataset,
    emotions,
    baseline,
    contrast,
    methods,
    layers,
    position,
    limit,
    test_limit,
    dev_limit,
    batch_size,
    source,
    session_path,
    device,
    as_json,
):
    """Extract one direction per emotion at every chosen layer."""
    from .steps import extract as step
    from .steps.common import open_or_create

    if limit < 1 or test_limit < 1 or (dev_limit is not None and dev_limit < 1):
        raise click.BadParameter("limits must be at least 1")
    path = Path(session_path) if session_path else default_session_path(model_name)
    session = open_or_create(path, model_name, device)
    params = {
        "dataset": dataset,
        "emotions": csv_list(emotions) if emotions else None,
        "baseline": baseline,
        "contrast": contrast,
        "methods": csv_list(methods),
        "layers": layers,
        "position": position,
        "limit": limit,
        "test_limit": test_limit,
        "dev_limit": dev_limit,
        "batch_size": batch_size,
        "source": source,
    }
    result = run_step(step, session, params, as_json, with_session=True)
    if result is None:
        return
    click.echo(f"session: {session.path}")
    click.echo(
        f"extracted {', '.join(result['emotions'])} vs {result['baseline']} with "
        f"{', '.join(params['methods'])} at {len(result['layers'])} layers "
        f"({result['n_train']} train / {result['n_test']} test texts)"
    )
    click.echo(f"next: emolab layers {session.path}")


@cli.command()
@click.argument("session_path")
@click.option("--dataset", default=None, help="score the vectors on another dataset's test split")
@click.option("--method", default=None, help="show this method (default: the session's first)")
@click.option(
    "--source",
    default="comprehension",
    show_default=True,
    type=click.Choice(["comprehension", "generation"]),
    help="generation: also fit on the model's own writing and compare (Wilcoxon)",
)
@click.option("--json", "as_json", is_flag=True)
def layers(session_path, dataset, method, source, as_json):
    """Per-layer table: held-out accuracy with its baselines, norms, cosines."""
    from .session import Session
    from .steps import layers as step

    session = Session.open(session_path)
    params = {"dataset": dataset} if dataset else {}
    if source != "comprehension":
        params["source"] = source
    result = run_step(step, session, params, as_json, with_session=True)
    if result is None:
        return
    from .report import print_layers

    print_layers(console(), result, method or session.methods()[0])


@cli.command()
@click.argument("session_path")
@click.option("--emotion", required=True)
@click.option(
    "--layer", type=int, default=None, help="default: the sweep's or layer analysis's dev choice"
)
@click.option("--alpha", type=float, default=None, help="default: the sweep's dev choice, or 0.3")
@click.option(
    "--success",
    is_flag=True,
    help="judge the texts: success rate beside the unsteered text and a random direction",
)
@click.option("--judge-train-limit", type=int, default=16000, show_default=True)
@click.option(
    "--scale",
    type=click.Choice(["relative", "absolute"]),
    default="relative",
    show_default=True,
    help="relative: alpha x the layer's mean residual norm",
)
@click.option(
    "--positions",
    type=click.Choice(["all", "prompt", "generated"]),
    default="all",
    show_default=True,
)
@click.option("--prompt", "prompts", multiple=True, help="prompt(s); default: 4 neutral prompts")
@click.option("--method", default=None, help="which vector set of the session")
@click.option("--vectors", "vector_file", default=None, help="a published vector file instead")
@click.option("--max-new-tokens", type=int, default=24, show_default=True)
@click.option("--evaluators", default="label_logit_shift", show_default=True)
@click.option("--json", "as_json", is_flag=True)
@click.option(
    "--circuit",
    type=int,
    default=None,
    help="enhance the emotion's top-k heads (from `emolab heads`) instead of adding v",
)
@click.option(
    "--factor",
    "circuit_factor",
    type=float,
    default=2.0,
    show_default=True,
    help="multiplier for --circuit heads",
)
def steer(
    session_path,
    emotion,
    layer,
    alpha,
    scale,
    positions,
    prompts,
    method,
    vector_file,
    max_new_tokens,
    evaluators,
    as_json,
    success=False,
    judge_train_limit=16000,
    circuit=None,
    circuit_factor=2.0,
):
    """Generate with h + alpha*v and compare with the unsteered text."""
    from .session import Session
    from .steps import steer as step

    session = Session.open(session_path)
    params = {
        "emotion": emotion,
        "layer": layer,
        "alpha": alpha,
        "scale": scale,
        "positions": positions,
        "method": method,
        "vector_file": vector_file,
        "max_new_tokens": max_new_tokens,
        "evaluators": csv_list(evaluators),
        "circuit": circuit,
        "circuit_factor": circuit_factor,
        "success": success,
        "judge_train_limit": judge_train_limit,
    }
    if prompts:
        params["prompts"] = list(prompts)
    result = run_step(step, session, params, as_json)
    if result is None:
        return
    from .report import print_steer

    print_steer(console(), result)


@cli.command()
@click.argument("session_path")
@click.option(
    "--out", default=None, help="new session folder (default: <session>-replay, -replay-2...)"
)
@click.option("--device", default="cpu", show_default=True)
@click.option("--rtol", type=float, default=1e-3, show_default=True)
@click.option("--atol", type=float, default=1e-4, show_default=True)
@click.option("--json", "as_json", is_flag=True)
def replay(session_path, out, device, rtol, atol, as_json):
    """Re-run a session's log into a new session; exit 1 if anything differs."""
    from .progress_cli import cli_progress
    from .steps.replay import replay as run_replay

    with cli_progress(as_json) as progress:
        new, cmp = run_replay(session_path, out, device, rtol, atol, progress)
    bad = [r for r in cmp.rows if not r["ok"]]
    if as_json:
        out_json(
            {
                "session": str(new.path),
                "replay_of": session_path,
                "ok": cmp.ok,
                "compared": len(cmp.rows),
                "mismatches": bad,
                "rows": cmp.rows,
            }
        )
    else:
        from .report import print_replay

        print_replay(console(), new, cmp)
    sys.exit(0 if cmp.ok else 1)


@cli.command()
@click.option("--model", "model_name", default="smollm2-135m", show_default=True)
@click.option("--limit", default=60, show_default=True, type=int)
@click.option("--session", "session_path", default=None)
def demo(model_name, limit, session_path):
    """The main job: extract Ekman-6 vs neutral, analyse layers, steer toward joy and anger."""
    from .progress_cli import cli_progress
    from .report import print_layers, print_steer
    from .steps import extract, layers, steer
    from .steps.common import open_or_create

    con = console()
    path = Path(session_path) if session_path else default_session_path(model_name)
    con.rule(f"emolab demo on {model_name}")
    session = open_or_create(path, model_name)
    with cli_progress(False) as progress:
        extract.run(session, {"limit": limit, "test_limit": max(limit // 2, 10)}, progress)
        result = layers.run(session, {}, progress)
    print_layers(con, result, "mean_diff")
    peak = result["summary"]["mean_diff"]["peak_layer"]
    for emotion in ("joy", "anger"):
        with cli_progress(False) as progress:
            res = steer.run(session, {"emotion": emotion, "layer": peak, "alpha": 0.3}, progress)
        print_steer(con, res)
    con.rule("saved")
    con.print(f"session: {session.path}")
    con.print(f"replay it (anywhere, no terminal needed): emolab replay {session.path}")


def main() -> None:
    from . import plugins

    try:
        plugins.registry().add_commands(cli)
    except EmolabError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    cli()


if __name__ == "__main__":
    main()
