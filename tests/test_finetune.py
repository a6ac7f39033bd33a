"""Fine-tuning on tiny-llama: checkpoints load as hf:<path> and score what was recorded,
training lowers the loss, a cancelled run resumes to the same weights as an uninterrupted
one, replay reproduces it, and bad input fails with one line."""

import json

import numpy as np
import pytest

from emolab.errors import BadInput, Cancelled
from emolab.progress import Progress, RecordingProgress
from emolab.steps import finetune
from emolab.steps.common import new_session

FAST = {"batch_size": 4, "limit": 4, "test_limit": 2, "lr": 3e-3, "max_text_tokens": 24}


def weights(path):
    from safetensors.numpy import load_file

    return load_file(str(path / "model.safetensors"))


@pytest.fixture(scope="module")
def tuned(tmp_path_factory):
    """8 steps, a checkpoint every 4."""
    path = tmp_path_factory.mktemp("ft") / "run"
    session = new_session(path, "tiny-llama")
    progress = RecordingProgress()
    result = finetune.run(session, {**FAST, "steps": 8, "save_every": 4}, progress)
    return session, result, progress


def test_checkpoints_saved_with_accuracy_and_loss(tuned):
    session, result, progress = tuned
    steps = [h["step"] for h in result["history"]]
    assert steps == [0, 4, 8]
    assert [p.name for p in finetune.checkpoints(session.path)] == ["step-000004", "step-000008"]
    for h in result["history"]:
        assert 0.0 <= h["accuracy"] <= 1.0
    first, second = result["history"][1]["loss"], result["history"][2]["loss"]
    assert np.isfinite(first) and second < first  # it learns
    # only the last checkpoint keeps the optimizer state needed to resume
    ckpts = finetune.checkpoints(session.path)
    assert not (ckpts[0] / finetune.TRAINER).exists() and (ckpts[1] / finetune.TRAINER).exists()
    assert any("loss" in desc for desc, _ in progress.tasks)  # progress shows the loss


def test_step_is_logged_with_data_hashes_and_metrics(tuned):
    session, result, _ = tuned
    ev = session.steps()[-1]
    assert ev["kind"] == "finetune" and ev["status"] == "ok"
    assert ev["inputs"]["train_hash"] == result["train_hash"]
    assert ev["params"]["seed"] == 0
    assert set(ev["metrics"]) >= {
        "accuracy/step-000000",
        "accuracy/step-000004",
        "accuracy/step-000008",
        "loss/step-000008",
    }


def test_checkpoint_loads_as_hf_and_scores_what_was_recorded(tuned):
    from emolab.labels import accuracy, resolve
    from emolab.plugins import load_model as load
    from emolab.steps.extract import load_split

    session, result, _ = tuned
    ckpt = finetune.checkpoints(session.path)[-1]
    model = load(f"hf:{ckpt}")
    assert model.d_model == 64 and model.n_layers == 4
    info = finetune.checkpoint_info(ckpt)
    tokens = resolve(model.tokenizer, info["labels"])
    test, _ = load_split("goemotions-ekman", "test", info["labels"], FAST["test_limit"])
    assert accuracy(model, test, tokens) == pytest.approx(info["accuracy"])


class CancelAfter(Progress):
    def __init__(self, n):
        super().__init__()
        self.n, self.seen = n, 0

    def update(self, completed, total=None):
        self.seen += 1
        if self.seen == self.n:
            self.cancel()


def test_cancelled_run_resumes_to_the_uninterrupted_weights(tuned, tmp_path):
    _, straight, _ = tuned
    session = new_session(tmp_path / "cut", "tiny-llama")
    with pytest.raises(Cancelled):
        finetune.run(session, {**FAST, "steps": 8, "save_every": 4}, CancelAfter(6))
    assert session.steps()[-1]["status"] == "failed"
    assert [p.name for p in finetune.checkpoints(session.path)] == ["step-000004"]
    resumed = finetune.run(session, {**FAST, "steps": 8, "save_every": 4})
    assert resumed["resumed_from"] == 4
    assert [h["step"] for h in resumed["history"]] == [0, 4, 8]
    a = weights(finetune.checkpoints(session.path)[-1])
    b = weights(finetune.checkpoints(tuned[0].path)[-1])
    for k in a:
        np.testing.assert_allclose(a[k], b[k], rtol=1e-5, atol=1e-6)
    assert resumed["history"][-1]["accuracy"] == straight["history"][-1]["accuracy"]


def test_resume_refuses_other_settings_and_finished_runs(tuned):
    session, _, _ = tuned
    with pytest.raises(BadInput, match="other settings"):
        finetune.run(session, {**FAST, "lr": 1e-4, "steps": 12, "save_every": 4})
    with pytest.raises(BadInput, match="already fine-tuned to step 8"):
        finetune.run(session, {**FAST, "steps": 8, "save_every": 4})


def test_replay_reproduces_the_fine_tune(tuned, tmp_path):
    from emolab.steps.replay import replay

    session, _, _ = tuned
    new, cmp = replay(session.path, out=tmp_path / "replayed")
    assert cmp.ok, [r for r in cmp.rows if not r["ok"]]
    assert any(r["what"].endswith("accuracy/step-000008") for r in cmp.rows)
    assert len(finetune.checkpoints(new.path)) == 2


def test_train_layers_freezes_the_rest(tmp_path):
    session = new_session(tmp_path / "top", "tiny-llama")
    finetune.run(session, {**FAST, "steps": 2, "save_every": 2, "train_layers": "3"})
    from emolab.plugins import load_model as load

    base = load("tiny-llama").hf.state_dict()
    tuned = weights(finetune.checkpoints(session.path)[-1])
    changed = {k for k in tuned if not np.array_equal(tuned[k], base[k].numpy())}
    assert changed and all(k.startswith("model.layers.3.") for k in changed)


def test_cli_finetune_json(run_cli, tmp_path):
    r = run_cli(
        "finetune", "--model", "tiny-llama", "--steps", 2, "--save-every", 1,
        "--batch-size", 4, "--limit", 4, "--test-limit", 2, "--out", tmp_path / "f", "--json",
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    out = json.loads(r.output[r.output.index("{") :])
    assert [h["step"] for h in out["history"]] == [0, 1, 2]
    r = run_cli(
        "finetune", "--model", "tiny-llama", "--steps", 3, "--save-every", 1,
        "--batch-size", 4, "--limit", 4, "--test-limit", 2, "--out", tmp_path / "f",
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    assert "resumed from step 2" in r.output and "step-000003" in r.output


def jsonl(tmp_path, rows):
    f = tmp_path / "data.jsonl"
    f.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return f"jsonl:{f}"


BAD = [
    (["--steps", "0"], "steps must be at least 1"),
    (["--lr", "0"], "lr must be positive"),
    (["--labels", "anger,awe"], "has no label awe"),
    (["--train-layers", "9"], "layer 9 out of range"),
]


@pytest.mark.parametrize("args,message", BAD)
def test_bad_finetune_input_is_one_line(run_cli, tmp_path, args, message):
    r = run_cli(
        "finetune", "--model", "tiny-llama", "--out", tmp_path / "f", "--limit", 4,
        "--test-limit", 2, "--steps", 1, *args,
    )  # fmt: skip
    assert r.exit_code == 2, r.output
    assert message in r.output and len(r.output.strip().splitlines()) == 1


def test_dataset_without_labels_is_one_line(run_cli, tmp_path):
    data = jsonl(tmp_path, [{"text": f"sentence number {i}"} for i in range(10)])
    r = run_cli("finetune", "--model", "tiny-llama", "--dataset", data, "--out", tmp_path / "f")
    assert r.exit_code == 2
    assert "line 1: no field 'label'" in r.output and len(r.output.strip().splitlines()) == 1


def test_label_with_no_token_is_one_line(run_cli, tmp_path):
    rows = [{"text": f"a calm sentence {i}", "label": "calm"} for i in range(10)]
    rows += [{"text": f"an invisible sentence {i}", "label": "\u200b"} for i in range(10)]
    data = jsonl(tmp_path, rows)
    r = run_cli(
        "finetune", "--model", "tiny-llama", "--dataset", data, "--out", tmp_path / "f",
        "--steps", 1, "--batch-size", 2,
    )  # fmt: skip
    assert r.exit_code == 2, r.output
    assert "has no token in tiny-llama's tokenizer" in r.output


def test_other_model_in_out_folder_is_one_line(run_cli, tuned):
    session, _, _ = tuned
    r = run_cli("finetune", "--model", "tiny-gpt2", "--out", session.path)
    assert r.exit_code == 2 and "fine-tune of 'tiny-llama'" in r.output


def test_collate_pads_right_and_trains_only_on_answer_tokens():
    # (prompt + answer ids, prompt length): the shape encode_examples gives
    encoded = [([5, 6, 7, 8], 3), ([9, 10], 1)]
    ids, mask, labels = finetune.collate(encoded, [1, 0], pad_id=0, device="cpu")
    assert ids.tolist() == [[9, 10, 0, 0], [5, 6, 7, 8]]
    assert mask.tolist() == [[1, 1, 0, 0], [1, 1, 1, 1]]
    assert labels.tolist() == [[-100, 10, -100, -100], [-100, -100, -100, 8]]
