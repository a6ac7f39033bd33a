"""Copy one method's vectors out of a session into vectors/, adding to the metadata where
they came from (session, the command that made it) and how good they are: the peak layer
the session's `layers` step chose on the dev split, with its dev accuracy and the test
accuracy reported there. A session whose peak was chosen on test (made before extract
captured a dev split) is refused: a published number must not be the best of 30 test draws.

    .venv/bin/python vectors/publish.py SESSION METHOD OUT.safetensors "COMMAND"
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
from safetensors.numpy import save_file

from emolab import results
from emolab.errors import BadInput, EmolabError
from emolab.session import Session


def _by_layer(curve: dict) -> str:
    return json.dumps({str(k): round(float(v), 4) for k, v in curve.items()})


def main(session_path: str, method: str, out: str, command: str) -> None:
    s = Session.open(session_path)
    found = results.latest(s, "layers", suffix=".json")  # the newest `layers` step's file
    if found is None:
        raise BadInput(f"{session_path}: run `emolab layers {session_path}` first")
    summary = json.loads(found.path.read_text())["summary"]
    if method not in summary:
        raise BadInput(
            f"{session_path}: its layers step has no {method} (has: {', '.join(summary)})"
        )
    summ = summary[method]
    if summ.get("chosen_on") != "dev":
        raise BadInput(
            f"{session_path}: its peak layers were chosen on {summ.get('chosen_on', 'test')}, "
            "not dev (re-extract with a dev split and run `emolab layers` again)"
        )
    vectors, meta = s.load_vectors(method)
    meta = meta.with_extra(
        session=Path(session_path).name,
        command=command,
        peak_layer=summ["peak_layer"],
        peak_chosen_on="dev",
        peak_acc_dev=f"{summ['peak_acc_select']:.4f}",
        peak_acc_test=f"{summ['peak_acc']:.4f}",
        peak_layer7=summ["peak_layer7"],
        peak_acc7_test=f"{summ['peak_acc7']:.4f}",
        mean_acc_by_layer=_by_layer(summ["mean_acc_by_layer"]),
        mean_acc_dev_by_layer=_by_layer(summ["mean_acc_select_by_layer"]),
    )
    save_file(
        {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in vectors.items()},
        out,
        metadata=meta.strings(),
    )
    print(
        f"{out}: {len(vectors)} vectors, {method}, peak layer {summ['peak_layer']} (dev) "
        f"dev acc {summ['peak_acc_select']:.3f}, test acc {summ['peak_acc']:.3f}"
    )


if __name__ == "__main__":
    try:
        if len(sys.argv) != 5:
            raise BadInput("usage: " + __doc__.strip().splitlines()[-1].strip())
        main(*sys.argv[1:5])
    except EmolabError as exc:  # bad input: one line, exit 2, no traceback
        print(exc, file=sys.stderr)
        sys.exit(2)
