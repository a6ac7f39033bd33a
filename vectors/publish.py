"""Copy one method's vectors out of a session into vectors/, adding to the metadata where
they came from (session, the command that made it) and how good they are (held-out peak).

    .venv/bin/python vectors/publish.py SESSION METHOD OUT.safetensors "COMMAND"
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
from safetensors.numpy import save_file

from emolab import results
from emolab.session import Session


def main(session_path: str, method: str, out: str, command: str) -> None:
    s = Session.open(session_path)
    vectors, meta = s.load_vectors(method)
    found = results.latest(s, "layers", suffix=".json")  # the newest `layers` step's file
    if found is None:
        raise SystemExit(f"{session_path}: run `emolab layers {session_path}` first")
    layers = json.loads(found.path.read_text())
    summ = layers["summary"][method]
    meta = meta.with_extra(
        session=Path(session_path).name,
        command=command,
        peak_layer=summ["peak_layer"],
        peak_acc_heldout=f"{summ['peak_acc']:.4f}",
        peak_acc7_heldout=f"{summ['peak_acc7']:.4f}",
        mean_acc_by_layer=json.dumps(
            {k: round(v, 4) for k, v in summ["mean_acc_by_layer"].items()}
        ),
    )
    save_file(
        {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in vectors.items()},
        out,
        metadata=meta.strings(),
    )
    print(
        f"{out}: {len(vectors)} vectors, {method}, peak layer {summ['peak_layer']} "
        f"acc {summ['peak_acc']:.3f}"
    )


if __name__ == "__main__":
    main(*sys.argv[1:5])
