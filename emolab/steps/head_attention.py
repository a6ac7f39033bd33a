"""Which heads attend from a text's final position to its comma / clause-end tokens: the
'summary' positions of the sentiment-direction study, flagged beside the head maps."""

from __future__ import annotations

import numpy as np

from ..models import LoadedModel

SUMMARY_CHARS = ",.;:!?"


def summary_token_ids(model: LoadedModel) -> set[int]:
    """Token ids whose text holds punctuation that ends a clause (the 'summary' positions)."""
    tok = model.tokenizer
    return {
        i
        for s, i in tok.get_vocab().items()
        if any(c in tok.convert_tokens_to_string([s]) for c in SUMMARY_CHARS)
    }


def attention_flags(model: LoadedModel, texts, mass_min: float, ratio_min: float) -> dict:
    """Attention from each text's final position to its earlier comma / clause-end tokens,
    per head, as a share of the attention outside the sink, and that share over the share
    uniform attention would give. Plain HF model in eager attention (to get the weights)."""
    import torch

    summary_ids = summary_token_ids(model)
    L, H = model.n_layers, model.n_heads
    mass, ratio, used = np.zeros((L, H)), np.zeros((L, H)), 0
    hf = model.hf
    original = hf.config._attn_implementation
    hf.set_attn_implementation("eager")
    try:
        for text in texts:
            ids, mask = model.encode([text], "right")
            last = int(mask[0].sum()) - 1
            pos = [j for j in range(1, last) if int(ids[0, j]) in summary_ids]
            if not pos:
                continue
            with torch.no_grad():
                att = hf(
                    input_ids=ids, attention_mask=mask, use_cache=False, output_attentions=True
                ).attentions
            for layer, a in enumerate(att):
                row = a[0, :, last, 1 : last + 1].double().cpu().numpy()  # [H, last]
                share = row[:, [j - 1 for j in pos]].sum(1) / (row.sum(1) + 1e-12)
                mass[layer] += share
                ratio[layer] += share / (len(pos) / last)
            used += 1
    finally:
        hf.set_attn_implementation(original)
    if used:
        mass, ratio = mass / used, ratio / used
    flagged = [
        {"layer": int(i), "head": int(j), "mass": float(mass[i, j]), "ratio": float(ratio[i, j])}
        for i in range(L)
        for j in range(H)
        if used and mass[i, j] >= mass_min and ratio[i, j] >= ratio_min
    ]
    flagged.sort(key=lambda r: -r["mass"])
    return {
        "texts_with_summary_tokens": used,
        "mass": mass.tolist(),
        "ratio": ratio.tolist(),
        "flagged": flagged,
        "mass_min": mass_min,
        "ratio_min": ratio_min,
    }
