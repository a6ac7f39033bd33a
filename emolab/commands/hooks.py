"""`emolab hooks --model M`: the model's TransformerLens hook names and the path each takes."""

from __future__ import annotations

import re

import click

from ..hookspecs import hookimpl

LAYER = re.compile(r"^blocks\.(\d+)\.")


def grouped(rows: list[dict]) -> list[dict]:
    """One row per name pattern (`blocks.{L}.attn.hook_pattern`) with the layers it spans."""
    out: dict[str, dict] = {}
    for r in rows:
        m = LAYER.match(r["name"])
        key = LAYER.sub("blocks.{L}.", r["name"])
        entry = out.setdefault(key, {**r, "name": key, "layers": []})
        if m:
            entry["layers"].append(int(m.group(1)))
    return list(out.values())


def span(layers: list[int]) -> str:
    if not layers:
        return "-"
    return f"{min(layers)}-{max(layers)}" if len(layers) > 1 else str(layers[0])


@hookimpl
def register_commands(cli):
    from ._common import console, out_json

    @cli.command("hooks")
    @click.option("--model", "model_name", default="smollm2-135m", show_default=True)
    @click.option("--device", default="cpu", show_default=True)
    @click.option("--json", "as_json", is_flag=True, help="every name, one entry each")
    def hooks_cmd(model_name, device, as_json):
        """TransformerLens hook names of a model: `fast` ones run on the plain HF model, the
        rest through the TransformerBridge. Any of them works in `extract --hooks` and in
        interventions."""
        from ..hooks import vocabulary
        from ..plugins import load_model as load

        rows = vocabulary(load(model_name, device))
        if as_json:
            return out_json(rows)
        from rich.table import Table

        t = Table("name", "path", "layers", "shape a hook receives")
        for r in sorted(grouped(rows), key=lambda r: (r["path"] != "fast", r["name"])):
            shape = ", ".join(map(str, r["shape"])) if r["shape"] else "not run by a forward"
            t.add_row(r["name"], r["path"], span(r["layers"]), f"({shape})")
        console().print(t)
        fast = sum(r["path"] == "fast" for r in rows)
        bridge = len(rows) - fast
        console().print(f"{len(rows)} names on {model_name}: {fast} fast, {bridge} bridge")
