"""The joint 7-way probe: one multinomial logistic probe per layer, C and layer chosen on dev,
the test split only reported beside a shuffled-label probe."""

import numpy as np

from emolab.progress import Progress
from emolab.steps import layers
from emolab.steps.joint_probe import CS as joint_probe_grid
from emolab.steps.joint_probe import joint_probe


def planted(seed: int, n: int = 40, d: int = 16, layer2: float = 0.0):
    """Three classes along their own axes at layer 1 (moderate), nothing at layer 0, and
    `layer2` along the same axes at layer 2 (a weak trace in train, strong in test alone)."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(["joy", "anger", "neutral"], n)
    x = rng.standard_normal((len(labels), 3, d))
    for k, e in enumerate(["joy", "anger", "neutral"]):
        x[labels == e, 1, k] += 1.5
        x[labels == e, 2, k] += layer2
    return x.astype(np.float32), labels


def test_dev_chooses_the_layer_and_shuffled_labels_sit_at_chance():
    x_tr, y_tr = planted(0, layer2=1.0)
    x_dev, y_dev = planted(2)
    x_te, y_te = planted(1, layer2=8.0)
    out = joint_probe(x_tr, y_tr, (x_dev, y_dev, "dev"), x_te, y_te, [0, 1, 2], Progress())
    # layer 2 would win on test; dev sees only layer 1's signal
    assert out["peak_layer"] == 1 and out["chosen_on"] == "dev" and out["classes"] == 3
    by = {r["layer"]: r for r in out["rows"]}
    assert by[2]["acc7_probe"] > by[1]["acc7_probe"]  # what choosing on test would pick
    assert out["peak_acc7_probe"] == by[1]["acc7_probe"] > 0.7
    assert by[0]["acc7_probe"] < 0.55  # no signal: near 1/3
    assert out["peak_acc7_probe_shuffled"] < 0.55
    assert out["C"] in joint_probe_grid


def test_layers_step_fits_and_logs_it(tiny_session, run_cli):
    res = layers.run(tiny_session, {})
    probe = res["joint_probe"]
    assert probe["chosen_on"] == "dev" and probe["classes"] == 7
    step = tiny_session.steps()[-1]
    assert step["metrics"]["peak_acc7_probe"] == probe["peak_acc7_probe"]
    assert step["choices"]["peak_layer7_probe"]["value"] == [probe["peak_layer"], probe["C"]]
    assert layers.run(tiny_session, {"joint_probe": False})["joint_probe"] is None
    r = run_cli("layers", str(tiny_session.path))
    assert r.exit_code == 0 and "joint 7-way logistic probe" in r.output, r.output
    r = run_cli("layers", str(tiny_session.path), "--no-joint-probe")
    assert r.exit_code == 0 and "joint 7-way" not in r.output
