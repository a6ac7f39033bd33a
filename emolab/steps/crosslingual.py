"""Cross-lingual steering: does a vector read from English text push Japanese answers, and
the reverse?

One source study saw steering in one language leak into another. Here one model reads the
same sentences in English and Japanese (the shipped parallel set, or a user jsonl with
`label`, `en`, `ja` and `split` fields), a mean-difference vector per emotion is fitted in
each language, and each vector steers the list prompt in both languages on neutral texts.
The judge is the rise of the target label's first-token logit in the prompt's language
(English labels after "Answer:", Japanese labels after "答え："). "Carry-over" is the rise a
foreign vector gives over the rise the prompt language's own vector gives; a random
direction of the same size is the chance level.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .. import plugins
from ..capture import capture, resid_hooks
from ..data import EKMAN6
from ..errors import BadInput
from ..labels import LabelTokens, label_logits, parallel_texts, prompt, resolve
from ..metadata import FileMeta
from ..params import Param, defaults, validate
from ..progress import Progress
from ..session import Session
from ..tables import to_csv
from ..units import parse_layers
from .common import session_model
from .guard import fit_directions, guarded
from .readout import unit

LANGS = ("en", "ja")
PARAMS = (
    Param("emotions", list, list(EKMAN6), "emotions", item=str),
    Param("baseline", str, "neutral", "the label every direction points away from"),
    Param("layers", (str, list), None, "layers (default: two thirds of the depth)", item=int),
    Param("alpha", float, 0.3, "relative to the layer's mean residual norm"),
    Param("texts", str, None, "jsonl of parallel rows (default: the shipped set)"),
    Param("n_prompts", int, 8, "prompts steered per language", min=1),
    Param("position", str, "mean", "which token's residual", ("last", "mean", "commas")),
    Param("random_draws", int, 8, "random directions per emotion (the chance level)", min=1),
    Param("seed", int, 0),
)
DEFAULTS = defaults(PARAMS)


def read_parallel(path: str | None) -> list[dict]:
    """Parallel rows (label, en, ja, split), checked field by field."""
    if path is None:
        return [dict(r) for r in parallel_texts()]
    p = Path(path)
    if not p.is_file():
        raise BadInput(f"parallel text file not found: {path}")
    rows = []
    for i, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            raise BadInput(f"{path}: line {i} is not valid JSON") from None
        missing = [k for k in ("label", "en", "ja") if not str(row.get(k) or "").strip()]
        if missing:
            raise BadInput(f"{path}: line {i} has no {', '.join(missing)}")
        rows.append({"split": row.get("split", "train"), **row})
    return rows


def run(session: Session, params: dict, progress: Progress | None = None) -> dict:
    progress = progress or Progress()
    p = validate(PARAMS, params, "crosslingual")
    emotions, baseline = list(p["emotions"]), p["baseline"]
    if not emotions:
        raise BadInput("no emotions given")
    rows = read_parallel(p["texts"])
    train = [r for r in rows if r["split"] == "train"]
    prompts_rows = [r for r in rows if r["split"] == "prompt"][: int(p["n_prompts"])]
    if not prompts_rows:
        prompts_rows = [r for r in train if r["label"] == baseline][: int(p["n_prompts"])]
    have = {r["label"] for r in train}
    for label in [*emotions, baseline]:
        if label not in have:
            raise BadInput(
                f"the parallel texts have no '{label}' rows (labels: {', '.join(sorted(have))})"
            )
    train = [r for r in train if r["label"] in [*emotions, baseline]]
    model = session_model(session)
    labels = [*emotions, baseline]
    tokens: dict[str, LabelTokens] = {
        lang: resolve(model.tokenizer, labels, lang, model.name) for lang in LANGS
    }
    layers = (
        [model.n_layers * 2 // 3]
        if p["layers"] is None
        else parse_layers(p["layers"], model.n_layers)
    )
    p["layers"] = layers
    hooks = resid_hooks(model, layers)
    y = np.array([r["label"] for r in train])
    ext = plugins.registry().get("extractors", "mean_diff")
    reg = plugins.registry()
    rng = np.random.default_rng(int(p["seed"]))

    with session.step("crosslingual", p) as rec:
        acts, vecs = {}, {}
        for lang in LANGS:
            progress.task(f"capture {lang} texts", len(train))
            acts[lang] = capture(
                model,
                [r[lang] for r in train],
                hooks,
                p["position"],
                progress=progress,
                check=progress.check,
            )
            vecs[lang] = {
                e: fit_directions(ext, acts[lang][y == e], acts[lang][y == baseline])
                for e in emotions
            }
        norms = np.full(model.n_layers, np.nan)
        norms[layers] = np.linalg.norm(np.concatenate([acts["en"], acts["ja"]]), axis=-1).mean(0)
        draws = int(p["random_draws"])
        random_vecs = {
            e: rng.standard_normal((draws, len(layers), model.d_model)) for e in emotions
        }
        prompts = {lang: [prompt(r[lang], labels, lang) for r in prompts_rows] for lang in LANGS}
        table, cosines = [], []
        progress.task("steer", len(layers) * len(LANGS) * 3 * len(emotions))
        done = 0
        for li, layer in enumerate(layers):
            inter = reg.get(
                "interventions",
                "residual_add",
                layer=layer,
                alpha=float(p["alpha"]),
                scale="relative",
                positions="all",
            )
            for e in emotions:
                en, ja = vecs["en"][e][li], vecs["ja"][e][li]
                others = [unit(vecs["ja"][o][li]) @ unit(en) for o in emotions if o != e]
                cosines.append(
                    {
                        "layer": layer,
                        "emotion": e,
                        "cos_en_ja": float(unit(en) @ unit(ja)),
                        "cos_en_other_ja": float(np.mean(others)) if others else float("nan"),
                    }
                )
            for target in LANGS:
                clean = label_logits(model, prompts[target], tokens[target], check=progress.check)
                for source in (*LANGS, "random"):
                    for e in emotions:
                        vs = (
                            [d[li] for d in random_vecs[e]]
                            if source == "random"
                            else [vecs[source][e][li]]
                        )
                        rises, specific = [], []
                        for v in vs:
                            progress.check()
                            full = np.zeros((model.n_layers, model.d_model), dtype=np.float32)
                            full[layer] = v
                            hk = guarded(
                                "interventions", inter, "hooks", model, vector=full, norms=norms
                            )
                            shift = (
                                label_logits(model, prompts[target], tokens[target], hk) - clean
                            ).mean(0)
                            col = labels.index(e)
                            rest = [shift[i] for i in range(len(labels)) if i != col]
                            rises.append(float(shift[col]))
                            specific.append(float(shift[col] - np.mean(rest)))
                        table.append(
                            {
                                "layer": layer,
                                "vector": source,
                                "prompt": target,
                                "emotion": e,
                                "rise": float(np.mean(rises)),
                                "specific": float(np.mean(specific)),
                                "specific_sd": float(np.std(specific)) if len(vs) > 1 else 0.0,
                            }
                        )
                        done += 1
                        progress.update(done)
        carry = carry_over(table, layers, emotions)
        tag = f"crosslingual-{rec['seq']:03d}"
        session.save_arrays(
            f"{tag}-vectors.safetensors",
            {
                f"{lang}/{e}/{hook}": vecs[lang][e][i].astype(np.float32)
                for lang in LANGS
                for e in emotions
                for i, hook in enumerate(hooks)
            },
            FileMeta(model=model.name, baseline=baseline, emotions=tuple(emotions)),
        )
        session.write_artifact(f"{tag}.csv", to_csv(table))
        result = {
            "model": model.name,
            "layers": layers,
            "alpha": float(p["alpha"]),
            "emotions": emotions,
            "n_train": len(train),
            "n_prompts": len(prompts_rows),
            "table": table,
            "cosines": cosines,
            "carry_over": carry,
            "label_tokens": {lang: tokens[lang].as_dict() for lang in LANGS},
            "collisions": {
                lang: tokens[lang].collision_note() for lang in LANGS if tokens[lang].collisions
            },
        }
        session.write_json(f"{tag}.json", result)
        rec["outputs"] = [
            f"artifacts/{tag}.csv",
            f"artifacts/{tag}.json",
            f"artifacts/{tag}-vectors.safetensors",
        ]
        for c in carry:
            for key in ("own", "foreign", "random", "carry_over"):
                rec["metrics"][f"{key}/{c['direction']}/L{c['layer']}"] = c[key]
        for c in cosines:
            rec["metrics"][f"cos_en_ja/{c['emotion']}/L{c['layer']}"] = c["cos_en_ja"]
    progress.done()
    return result


def carry_over(table: list[dict], layers: list[int], emotions: list[str]) -> list[dict]:
    """Per layer and prompt language: mean specific rise with the prompt language's own
    vectors, with the other language's, with random ones, and foreign / own."""
    out = []
    for layer in layers:
        for target in LANGS:
            foreign_lang = next(x for x in LANGS if x != target)

            def mean(source, target=target, layer=layer):
                return float(
                    np.mean(
                        [
                            r["specific"]
                            for r in table
                            if r["layer"] == layer
                            and r["prompt"] == target
                            and r["vector"] == source
                        ]
                    )
                )

            own, foreign, rand = mean(target), mean(foreign_lang), mean("random")
            sds = [
                r["specific_sd"]
                for r in table
                if r["layer"] == layer and r["prompt"] == target and r["vector"] == "random"
            ]
            out.append(
                {
                    "layer": layer,
                    "direction": f"{foreign_lang}->{target}",
                    "own": own,
                    "foreign": foreign,
                    "random": rand,
                    # spread of one random direction's rise, averaged over emotions
                    "random_sd": float(np.mean(sds)),
                    "carry_over": foreign / own if own > 0 else float("nan"),
                }
            )
    return out
