"""The `emolab` command line: a thin face over `emolab.steps` (no experiment logic here).

Heavy imports (torch, transformers, sklearn) happen inside commands, so `--help` is fast.
"""

from __future__ import annotations

import sys

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


@click.group(cls=EmolabGroup)
@click.version_option(package_name="emolab")
def cli():
    """emolab: find, test and transplant emotion directions in language models."""


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
