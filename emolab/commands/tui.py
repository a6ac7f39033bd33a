"""`emolab tui`, `install`, `uninstall` and `export`: the lab bench, plugin packages, and a
session in one archive for a remote GPU box."""

from __future__ import annotations

import importlib.metadata as md
import subprocess
import sys
import tarfile
from pathlib import Path

import click

from ..errors import BadInput, EmolabError, UnknownName
from ..hookspecs import hookimpl
from ..io import commit_file


class PipFailed(EmolabError):
    """pip could not install or remove a package."""


def _pip(args: list[str]) -> subprocess.CompletedProcess:
    """pip in emolab's own environment (the interpreter running emolab), never another one."""
    return subprocess.run(
        [sys.executable, "-m", "pip", *args],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
    )


def _last_error(proc: subprocess.CompletedProcess) -> str:
    lines = [ln.strip() for ln in (proc.stderr + proc.stdout).splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("ERROR")]
    return (errors or lines or ["no output"])[-1]


def _emolab_entry_points() -> dict[str, str]:
    """entry-point name -> distribution name, for every installed emolab plugin package."""
    md_eps = md.entry_points(group="emolab")
    return {ep.name: (ep.dist.metadata["Name"] if ep.dist else "?") for ep in md_eps}


def install_packages(
    targets: list[str], editable: bool = False, upgrade: bool = False, no_deps: bool = False
) -> list[str]:
    """pip install into emolab's environment; returns the emolab plugins that appeared."""
    import importlib

    before = set(_emolab_entry_points())
    args = ["install", "--no-build-isolation", "--disable-pip-version-check"]
    args += ["--upgrade"] if upgrade else []
    args += ["--no-deps"] if no_deps else []
    for target in targets:
        args += ["-e", target] if editable else [target]
    proc = _pip(args)
    if proc.returncode != 0:
        raise PipFailed(f"pip install {' '.join(targets)} failed: {_last_error(proc)}")
    importlib.invalidate_caches()
    return sorted(set(_emolab_entry_points()) - before)


def uninstall_packages(names: list[str]) -> None:
    for name in names:
        if name.lower() == "emolab":
            raise BadInput("refusing to uninstall emolab itself (use pip directly)")
        try:
            md.distribution(name)
        except md.PackageNotFoundError:
            raise UnknownName(f"package '{name}' is not installed here") from None
    proc = _pip(["uninstall", "-y", "--disable-pip-version-check", *names])
    if proc.returncode != 0:
        raise PipFailed(f"pip uninstall {' '.join(names)} failed: {_last_error(proc)}")


def export_session(
    session_path: str | Path, out: str | Path | None = None, activations: bool = True
) -> tuple[Path, int, int]:
    """One .tar.gz of a session folder (top-level folder = the session's name), so it can be
    copied to a GPU box, replayed there and copied back. Returns (archive, files, bytes)."""
    from ..session import Session

    session = Session.open(session_path)
    archive = Path(out) if out else Path(f"{session.name}.tar.gz")
    if archive.exists():
        raise BadInput(f"{archive}: already exists (choose another --out)")
    if archive.resolve().is_relative_to(session.path.resolve()):
        raise BadInput(f"{archive}: cannot write the archive inside the session folder")
    files = sorted(p for p in session.path.rglob("*") if p.is_file() and not p.name.startswith("."))
    if not activations:
        files = [p for p in files if p.name != "activations.safetensors"]
    tmp = archive.with_name(f".{archive.name}.part")
    try:
        with tarfile.open(tmp, "w:gz") as tar:
            for p in files:
                tar.add(p, arcname=f"{session.name}/{p.relative_to(session.path).as_posix()}")
        commit_file(tmp, archive)
    finally:
        tmp.unlink(missing_ok=True)
    return archive, len(files), archive.stat().st_size


@hookimpl
def register_commands(cli):
    from ._common import console, out_json

    @cli.command()
    @click.argument("session_path", required=False)
    @click.option("--root", default=None, help="folder of sessions to list (default: sessions/)")
    @click.option(
        "--model",
        default="smollm2-135m",
        show_default=True,
        help="default model of the new-extraction form",
    )
    @click.option("--json", "as_json", is_flag=True, help="accepted for uniformity; no effect")
    def tui(session_path, root, model, as_json):
        """The terminal lab bench: sessions, layers, heads, steering, plugins, log."""
        if not (sys.stdin.isatty() and sys.stdout.isatty()):
            raise BadInput(
                "emolab tui needs a terminal (for scripts use the other commands, "
                "e.g. emolab replay)"
            )
        from ..tui.app import EmolabApp

        EmolabApp(session_path, root, model).run()

    @cli.command()
    @click.argument("targets", nargs=-1, required=True)
    @click.option("-e", "--editable", is_flag=True, help="install a local folder in place")
    @click.option("-U", "--upgrade", is_flag=True)
    @click.option("--no-deps", is_flag=True, help="do not install the package's dependencies")
    @click.option("--json", "as_json", is_flag=True)
    def install(targets, editable, upgrade, no_deps, as_json):
        """Install plugin packages (a path or a PyPI name) into emolab's own environment."""
        added = install_packages(list(targets), editable, upgrade, no_deps)
        if as_json:
            return out_json({"installed": list(targets), "new_plugins": added})
        click.echo(
            f"installed {' '.join(targets)}"
            + (f"; new plugins: {', '.join(added)}" if added else "")
        )
        click.echo("see them with: emolab plugins")

    @cli.command()
    @click.argument("names", nargs=-1, required=True)
    @click.option("--json", "as_json", is_flag=True)
    def uninstall(names, as_json):
        """Remove plugin packages from emolab's environment."""
        uninstall_packages(list(names))
        if as_json:
            return out_json({"uninstalled": list(names)})
        click.echo(f"uninstalled {' '.join(names)}")

    @cli.command()
    @click.argument("session_path")
    @click.option("--out", default=None, help="archive path (default: ./<session>.tar.gz)")
    @click.option(
        "--no-activations",
        is_flag=True,
        help="leave out the cached activations (replay recomputes them)",
    )
    @click.option("--json", "as_json", is_flag=True)
    def export(session_path, out, no_activations, as_json):
        """Pack a session folder into one .tar.gz (copy it to a GPU box and replay there)."""
        archive, n, size = export_session(session_path, out, not no_activations)
        if as_json:
            return out_json({"archive": str(archive), "files": n, "bytes": size})
        console().print(f"wrote {archive} ({n} files, {size / 1e6:.1f} MB)")
        console().print(
            f"on the GPU box: tar xzf {archive.name} && "
            f"emolab replay {archive.name.removesuffix('.tar.gz')} --device cuda"
        )
