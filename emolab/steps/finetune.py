"""Fine-tune a model as an emotion classifier under the list prompt, saving checkpoints.

The source study asks whether classifier fine-tuning destroys the pretrained emotion
directions; no checkpoint pair ships offline, so the bench makes its own. The target is
the label after "Answer:", the loss is on the answer tokens only, and each checkpoint is a
plain Hugging Face folder (`hf:<path>` loads it) scored on the test split by the same
first-token argmax `compare` and `label_logit_shift` use.

Runs are deterministic (batch order from the seed and the step number, torch seeded per
step), so a run resumed from its last checkpoint (optimizer state kept there) ends where an
uninterrupted one would, and `emolab replay` can check it.
"""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

import numpy as np

from .. import plugins
from ..api import Example
from ..data import examples_hash, select
from ..errors import BadInput
from ..io import TEMP_PREFIX, atomic_write, recover_dir, replace_dir, temp_dir
from ..labels import LabelTokens, accuracy, answer_ids, prompt, resolve
from ..models import LoadedModel
from ..params import Param, defaults, validate
from ..progress import Progress
from ..session import Session
from ..units import parse_layers
from .common import dataset_source, record_dataset, session_model
from .guard import guarded

PARAMS = (
    Param("dataset", str, "goemotions-ekman", "a registered dataset"),
    Param("labels", list, None, "labels trained (default: every label)", item=str),
    Param("steps", int, 200, "optimizer steps"),
    Param("save_every", int, 50, "steps between checkpoints"),
    Param("batch_size", int, 8, "texts per step"),
    Param("lr", float, 3e-5, "learning rate"),
    Param("weight_decay", float, 0.0, "AdamW weight decay", min=0.0),
    Param("limit", int, 300, "train examples per label (balanced)"),
    Param("test_limit", int, 20, "test examples per label for each checkpoint"),
    Param("max_text_tokens", int, 48, "tokens kept per text"),
    Param("train_layers", (str, list), "all", "only these blocks train", item=int),
    Param("lang", str, "en", "language of the label words"),
    Param("seed", int, 0),
)
DEFAULTS = defaults(PARAMS)
# Settings a resumed run must share with the checkpoint it resumes from.
FIXED = (
    "dataset",
    "labels",
    "batch_size",
    "lr",
    "weight_decay",
    "limit",
    "max_text_tokens",
    "train_layers",
    "lang",
    "seed",
)
CHECKPOINTS = "checkpoints"
INFO = "emolab-checkpoint.json"
TRAINER = "trainer.pt"


def checkpoint_name(step: int) -> str:
    return f"step-{step:06d}"


def checkpoints(folder: Path) -> list[Path]:
    """Saved checkpoint folders of a fine-tune session, in step order."""
    root = Path(folder) / CHECKPOINTS
    if not root.is_dir():
        return []
    for aside in root.glob(f"{TEMP_PREFIX}*.old"):
        recover_dir(root / aside.name[len(TEMP_PREFIX) : -len(".old")])
    return sorted(
        p
        for p in root.iterdir()
        if p.is_dir() and not p.name.startswith(TEMP_PREFIX) and (p / INFO).is_file()
    )


def checkpoint_info(folder: str | Path) -> dict | None:
    """What a checkpoint folder says about itself (None for a folder that is not one)."""
    path = Path(folder) / INFO
    if not path.is_file():
        return None
    return json.loads(path.read_text(encoding="utf-8"))


def dataset_labels(dataset: str, wanted) -> list[str]:
    source = plugins.get("datasets", dataset)
    have = list(guarded("datasets", source, "labels", dataset))
    if not have:
        raise BadInput(f"dataset '{dataset}' has no labels: fine-tuning needs labelled texts")
    if not wanted:
        return have
    wanted = [w.strip() for w in (wanted.split(",") if isinstance(wanted, str) else wanted)]
    missing = [w for w in wanted if w not in have]
    if missing:
        raise BadInput(
            f"dataset '{dataset}' has no label {', '.join(missing)} (labels: {', '.join(have)})"
        )
    if len(wanted) < 2:
        raise BadInput("a classifier needs at least two labels")
    return wanted


def load_examples(
    dataset: str, split: str, labels: list[str], limit: int, seed: int = 0
) -> list[Example]:
    source = dataset_source(dataset, seed)
    groups = select(guarded("datasets", source, "load", dataset, split), labels, limit, dataset)
    empty = [label for label, items in groups.items() if not items]
    if empty:
        raise BadInput(f"dataset '{dataset}' has no '{empty[0]}' examples in split '{split}'")
    return [ex for label in labels for ex in groups[label]]


def clip_text(tokenizer, text: str, max_tokens: int) -> str:
    """At most `max_tokens` tokens of a text, so one long comment cannot blow up a batch."""
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    return text if len(ids) <= max_tokens else tokenizer.decode(ids[:max_tokens]).strip()


def encode_examples(tokenizer, examples, tokens: LabelTokens, lang: str, max_tokens: int):
    """(prompt ids + answer ids, number of prompt ids) per example."""
    from ..models import bos_prefix

    bos, out = bos_prefix(tokenizer), []
    for ex in examples:
        text = clip_text(tokenizer, ex.text, max_tokens)
        p = tokenizer(bos + prompt(text, tokens.labels, lang), add_special_tokens=False)[
            "input_ids"
        ]
        a = answer_ids(tokenizer, ex.label, lang)
        out.append((p + a, len(p)))
    return out


def batch_indices(n: int, batch_size: int, step: int, seed: int) -> np.ndarray:
    """The examples of training step `step` (1-based): epochs of seeded permutations, so the
    order depends only on (seed, step) and a resumed run sees the same batches."""
    per_epoch = max(n // batch_size, 1)
    epoch, k = divmod(step - 1, per_epoch)
    perm = np.random.default_rng([seed, epoch]).permutation(n)
    return perm[k * batch_size : (k + 1) * batch_size]


def collate(encoded, idx, pad_id: int, device: str):
    """Right-padded ids, mask, and labels that are -100 except on answer tokens."""
    import torch
    from torch.nn.utils.rnn import pad_sequence

    rows = [encoded[i] for i in idx]
    seqs = [torch.tensor(seq, dtype=torch.long) for seq, _ in rows]
    answers = [torch.tensor([-100] * n + seq[n:], dtype=torch.long) for seq, n in rows]
    ids = pad_sequence(seqs, batch_first=True, padding_value=pad_id)
    mask = pad_sequence([torch.ones_like(s) for s in seqs], batch_first=True, padding_value=0)
    labels = pad_sequence(answers, batch_first=True, padding_value=-100)
    return ids.to(device), mask.to(device), labels.to(device)


def trainable(hf, model: LoadedModel, spec) -> list:
    """Parameters that train: all, or only those of the chosen blocks."""
    if spec in (None, "all"):
        params = list(hf.parameters())
    else:
        from ..models import getpath

        layers = parse_layers(spec, model.n_layers)
        blocks = getpath(hf, model.arch.blocks)
        for prm in hf.parameters():
            prm.requires_grad_(False)
        params = [prm for layer in layers for prm in blocks[layer].parameters()]
    for prm in params:
        prm.requires_grad_(True)
    return params


def wrap(base: LoadedModel, hf, name: str) -> LoadedModel:
    """The model under training, seen through the same API the steps use."""
    return LoadedModel(name, hf, base.tokenizer, dict(base.meta), base.device)


def save_checkpoint(folder: Path, hf, tokenizer, info: dict, trainer_state: dict) -> Path:
    """Build a checkpoint in a temp folder beside its final name, then swap it in
    (`io.replace_dir`): a cut-off save leaves the previous checkpoints whole. Older
    checkpoints drop their optimizer state (only the last resumes), and only once the new
    one is in place."""
    import io as bytes_io

    import torch

    root = folder / CHECKPOINTS
    final = root / checkpoint_name(info["step"])
    for stale in root.glob(f"{TEMP_PREFIX}step-*") if root.is_dir() else ():
        if not stale.name.endswith(".old"):
            shutil.rmtree(stale, ignore_errors=True)  # a save killed earlier
    tmp = temp_dir(root, final.name)
    hf.save_pretrained(tmp, safe_serialization=True)
    tokenizer.save_pretrained(tmp)
    buf = bytes_io.BytesIO()
    torch.save(trainer_state, buf)
    atomic_write(tmp / TRAINER, buf.getvalue())
    atomic_write(tmp / INFO, json.dumps(info, indent=1))
    replace_dir(tmp, final)
    for old in checkpoints(folder):
        if old != final and (old / TRAINER).exists():
            (old / TRAINER).unlink()
    return final


def load_trainer_state(path: Path) -> dict:
    """The optimizer state of a checkpoint, loaded without unpickling arbitrary objects."""
    import pickle

    import torch

    try:
        return torch.load(path, weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise BadInput(f"{path}: unreadable optimizer state ({first[:160]})") from None


def run(session: Session, params: dict, progress: Progress | None = None) -> dict:
    import torch

    progress = progress or Progress()
    p = validate(PARAMS, params, "finetune")
    for key in ("steps", "save_every", "batch_size", "limit", "test_limit", "max_text_tokens"):
        if int(p[key]) < 1:
            raise BadInput(f"{key.replace('_', '-')} must be at least 1, got {p[key]}")
    if not float(p["lr"]) > 0:
        raise BadInput(f"lr must be positive, got {p['lr']}")
    steps, seed = int(p["steps"]), int(p["seed"])
    base = session_model(session)
    if p["train_layers"] not in (None, "all"):
        parse_layers(p["train_layers"], base.n_layers)
    labels = dataset_labels(p["dataset"], p["labels"])
    p["labels"] = labels
    tokens = resolve(base.tokenizer, labels, p["lang"], base.name)
    train = load_examples(p["dataset"], "train", labels, int(p["limit"]), seed)
    test = load_examples(p["dataset"], "test", labels, int(p["test_limit"]), seed)
    if len(train) < int(p["batch_size"]):
        raise BadInput(f"{len(train)} training examples, fewer than one batch of {p['batch_size']}")
    hashes = {"train_hash": examples_hash(train), "test_hash": examples_hash(test)}
    config = {k: p[k] for k in FIXED}

    saved = checkpoints(session.path)
    resume = saved[-1] if saved else None
    start, losses, history = 0, [], []
    if resume is not None:
        info = checkpoint_info(resume)
        if not (resume / TRAINER).is_file():
            raise BadInput(f"{resume}: no optimizer state to resume from (use a new --out)")
        diff = [k for k in FIXED if info["config"].get(k) != config[k]]
        if diff or info.get("train_hash") != hashes["train_hash"]:
            what = ", ".join(f"{k} {info['config'].get(k)!r} vs {config[k]!r}" for k in diff)
            raise BadInput(
                f"{session.path} holds a fine-tune with other settings ({what or 'other data'});"
                " use a new --out"
            )
        start = int(info["step"])
        if start >= steps:
            raise BadInput(
                f"{session.path} is already fine-tuned to step {start}; "
                f"ask for more --steps to continue, or use a new --out"
            )
        history = info["history"]
    encoded = encode_examples(base.tokenizer, train, tokens, p["lang"], int(p["max_text_tokens"]))
    pad_id = base.tokenizer.pad_token_id

    with session.step("finetune", p) as rec:
        rec["inputs"] = {**hashes, "split_seed": seed}
        record_dataset(session, rec, p["dataset"])
        if resume is None:
            progress.task(f"test accuracy of the base model ({len(test)} texts)", 1)
            base_acc = accuracy(base, test, tokens, p["lang"], check=progress.check)
            history = [{"step": 0, "loss": None, "accuracy": base_acc, "path": None}]
            if base.reload is not None:
                hf = base.reload()
            else:
                hf = copy.deepcopy(base.hf)
            opt_state = None
        else:
            from transformers import AutoModelForCausalLM

            hf = AutoModelForCausalLM.from_pretrained(str(resume), dtype=torch.float32)
            hf.to(base.device)
            state = load_trainer_state(resume / TRAINER)
            opt_state = state["optimizer"]
            rec["resumed_from"] = start
        work = wrap(base, hf, f"{base.name}@finetune")
        params_ = trainable(hf, base, p["train_layers"])
        opt = torch.optim.AdamW(params_, lr=float(p["lr"]), weight_decay=float(p["weight_decay"]))
        if opt_state is not None:
            opt.load_state_dict(opt_state)
        save_every = int(p["save_every"])
        step = start
        while step < steps:
            stop = min(steps, (step // save_every + 1) * save_every)
            last = f", loss {np.mean(losses[-save_every:]):.3f}" if losses else ""
            progress.task(f"train steps {step + 1}-{stop} of {steps}{last}", stop - step)
            hf.train()
            window = []
            first = step
            while step < stop:
                progress.check()
                step += 1
                torch.manual_seed(seed * 1_000_003 + step)
                idx = batch_indices(len(encoded), int(p["batch_size"]), step, seed)
                ids, mask, target = collate(encoded, idx, pad_id, base.device)
                loss = hf(input_ids=ids, attention_mask=mask, labels=target, use_cache=False).loss
                loss.backward()
                torch.nn.utils.clip_grad_norm_(params_, 1.0)
                opt.step()
                opt.zero_grad(set_to_none=True)
                window.append(float(loss.detach()))
                losses.append(window[-1])
                progress.update(step - first)
            hf.eval()
            progress.task(f"test accuracy at step {step} ({len(test)} texts)", 1)
            with torch.no_grad():
                acc = accuracy(work, test, tokens, p["lang"], check=progress.check)
            where = session.path / CHECKPOINTS / checkpoint_name(step)
            history.append(
                {"step": step, "loss": float(np.mean(window)), "accuracy": acc, "path": str(where)}
            )
            info = {
                "step": step,
                "base_model": base.name,
                "base_sha256": base.meta.get("sha256"),
                "config": config,
                "history": history,
                "loss": float(np.mean(window)),
                "accuracy": acc,
                "labels": labels,
                "label_tokens": tokens.as_dict(),
                **hashes,
            }
            save_checkpoint(session.path, hf, base.tokenizer, info, {"optimizer": opt.state_dict()})
        progress.done()
        metrics = {}
        for h in history:
            name = checkpoint_name(h["step"])
            metrics[f"accuracy/{name}"] = h["accuracy"]
            if h["loss"] is not None:
                metrics[f"loss/{name}"] = h["loss"]
        rec["metrics"] = metrics
        rec["outputs"] = [f"{CHECKPOINTS}/{checkpoint_name(h['step'])}" for h in history[1:]]
    del hf, opt
    return {
        "model": base.name,
        "dataset": p["dataset"],
        "labels": labels,
        "steps": steps,
        "resumed_from": start or None,
        "history": history,
        "chance": 1 / len(labels),
        "collisions": tokens.collisions,
        "collision_note": tokens.collision_note(),
        "n_train": len(train),
        "n_test": len(test),
        **hashes,
    }
