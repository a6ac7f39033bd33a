"""One look for every figure: sizes that read at one column of a two-column paper, a
colour-blind-safe palette, and the savefig that writes png / svg / pdf atomically.

Figures are built as plain `matplotlib.figure.Figure` objects on the Agg canvas, never
through pyplot, so rendering holds no global state and needs no display.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

FORMATS = ("png", "svg", "pdf")

# Okabe & Ito (2008): distinguishable under the common colour-vision deficiencies.
PALETTE = (
    "#0072B2",  # blue
    "#E69F00",  # orange
    "#009E73",  # bluish green
    "#CC79A7",  # reddish purple
    "#56B4E9",  # sky blue
    "#D55E00",  # vermillion
    "#F0E442",  # yellow
    "#000000",  # black
)
GREY = "#7f7f7f"
DIVERGING = "RdBu_r"  # ColorBrewer, colour-blind safe; centred at 0 by a symmetric range
SEQUENTIAL = "cividis"  # perceptually uniform and readable with colour-vision deficiency

COLUMN_IN = 3.5  # one column of a two-column paper, inches
WIDE_IN = 7.0  # the full text width

STYLE = {
    "font.size": 8,
    "axes.titlesize": 8,
    "axes.labelsize": 8,
    "xtick.labelsize": 7,
    "ytick.labelsize": 7,
    "legend.fontsize": 6.5,
    "legend.frameon": False,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.linewidth": 0.6,
    "lines.linewidth": 1.2,
    "lines.markersize": 3.5,
    "savefig.dpi": 300,
    "savefig.bbox": "tight",
    "savefig.pad_inches": 0.02,
    "svg.fonttype": "none",  # text stays text in the svg
    "pdf.fonttype": 42,  # embedded TrueType, editable in a paper's figure pipeline
    "svg.hashsalt": "emolab",  # same figure, same svg bytes
}


@contextmanager
def style() -> Iterator[None]:
    """Build and save figures inside this, so every artist picks up the house style."""
    with matplotlib.rc_context(STYLE):
        yield


def figure(width: float = COLUMN_IN, height: float = 2.4, **subplots) -> tuple[Figure, object]:
    """A Figure on the Agg canvas and its axes (`subplots` as for Figure.subplots)."""
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig, fig.subplots(**subplots)


def colour(i: int) -> str:
    return PALETTE[i % len(PALETTE)]


def to_bytes(fig: Figure, fmt: str, dpi: float | None = None) -> bytes:
    buf = io.BytesIO()
    metadata = {"Software": None} if fmt == "png" else {"Date": None} if fmt == "svg" else {}
    if fmt == "pdf":
        metadata = {"CreationDate": None, "Producer": None}
    extra = {"dpi": dpi} if dpi else {}  # default: STYLE's savefig.dpi
    fig.savefig(buf, format=fmt, metadata=metadata, **extra)
    return buf.getvalue()


def save(fig: Figure, path: Path, fmt: str) -> Path:
    """Write the figure atomically (a cut-off run never leaves half a file)."""
    from ..io import atomic_write

    atomic_write(path, to_bytes(fig, fmt))
    return path
