"""`emolab vectors export`: a session's (or a vector file's) directions as a llama.cpp control
vector (gguf), emolab safetensors, or a plain PyTorch {layer: tensor} file (pt)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from ..hookspecs import hookimpl
from ..metadata import FileMeta


def default_out(source: Path, is_session: bool, rec: FileMeta, fmt: str) -> Path:
    from ..vector_io import SUFFIX

    emotion = rec.extra.get("emotion") or "all"
    method = rec.method or "vectors"
    stem = f"{emotion}-{method}-L{'_'.join(map(str, rec.layers))}"
    if len(stem) > 80:
        stem = f"{emotion}-{method}-{len(rec.layers)}layers"
    folder = source / "exports" if is_session else source.parent
    if not is_session:
        stem = f"{source.stem}-{stem}"
    return folder / f"{stem}{SUFFIX[fmt]}"


@hookimpl
def register_commands(cli):
    @cli.group()
    def vectors():
        """Vectors out of emolab (and, through `steer --vectors`, back in)."""

    @vectors.command("export")
    @click.argument("source")
    @click.option("--format", "fmt", required=True, help="gguf, safetensors or pt")
    @click.option("--method", default=None, help="which vector set (default: the primary)")
    @click.option("--emotion", default=None, help="one emotion (gguf and pt hold one each)")
    @click.option(
        "--layers", default=None, help="all, 15, 2,5,8 or 10-20 (default: the recorded peak)"
    )
    @click.option(
        "--alpha",
        type=float,
        default=None,
        help="bake steer's push (alpha x the layer's mean residual norm) into the file",
    )
    @click.option("--out", default=None, help="file to write (default: SESSION/exports/...)")
    @click.option("--json", "as_json", is_flag=True, help="machine-readable output")
    def export(source, fmt, method, emotion, layers, alpha, out, as_json):
        """Write SOURCE's vectors (a session folder, or a vector file) in FORMAT."""
        from .. import vector_io
        from ..errors import BadInput
        from ..session import Session

        vector_io.check_format(fmt)
        src = Path(source)
        if not src.exists():
            raise BadInput(f"{source}: no such session or vector file")
        is_session = src.is_dir()
        origin = Session.open(src) if is_session else src
        vecs, rec, notes = vector_io.select(origin, fmt, method, emotion, layers, alpha)
        if fmt != "safetensors":
            rec = rec.with_extra(emotion=vector_io.single_emotion(vecs, fmt))
        path = Path(out) if out else default_out(src, is_session, rec, fmt)
        vector_io.write(vecs, rec, fmt, path)
        info = {
            "file": str(path),
            "format": fmt,
            "model": rec.model,
            "method": rec.method,
            "layers": ",".join(map(str, rec.layers)),
            "vectors": len(vecs),
            "notes": notes,
        }
        if as_json:
            click.echo(json.dumps(info))
            return
        for n in notes:
            click.echo(f"note: {n}")
        click.echo(
            f"{path}: {len(vecs)} vector(s), {info['method']} of {info['model']}, layers "
            f"{info['layers']}" + (f", alpha {alpha:g} baked in" if alpha is not None else "")
        )
