"""The options that say how a command's cells run (one process, batched, or on Ray) and on
what device and dtype its model loads; shared by `sweep` and `study`."""

from __future__ import annotations

import click

from ..models import DEVICES, DTYPES


def engine_options(fn):
    """--ray [ADDRESS], --workers, --batch-cells: how cells run; never changes a number."""
    for opt in reversed(
        (
            click.option(
                "--ray",
                "ray_address",
                is_flag=False,
                flag_value="",
                default=None,
                metavar="[ADDRESS]",
                help="run cells on Ray: join ADDRESS (or RAY_ADDRESS), else start a local "
                "2-CPU cluster",
            ),
            click.option(
                "--workers",
                type=int,
                default=None,
                help="Ray workers (default: one per GPU for cuda, else one per CPU)",
            ),
            click.option(
                "--batch-cells",
                type=int,
                default=8,
                show_default=True,
                help="cells of one layer generated together in one pass (1: one at a time)",
            ),
        )
    ):
        fn = opt(fn)
    return fn


def model_options(fn):
    """--device and --dtype for every command that loads a model."""
    fn = click.option(
        "--dtype",
        type=click.Choice(DTYPES),
        default="float32",
        show_default=True,
        help="weights and activations (bfloat16/float16 halve the memory)",
    )(fn)
    return click.option(
        "--device",
        type=click.Choice(DEVICES),
        default="cpu",
        show_default=True,
        help="auto: cuda when torch sees one, else cpu",
    )(fn)


def make_engine(ray_address, workers, batch_cells, device: str = "cpu"):
    from ..engine import executor

    if ray_address is not None:
        import os

        from ..engine import probe

        address = ray_address or os.environ.get("RAY_ADDRESS") or None
        if address:  # a bad address fails now, not after the models have loaded
            probe(address)
        return executor("ray", address, workers, 1, batch_cells, device)
    return executor("serial" if batch_cells == 1 else "batched", max_cells=batch_cells)
