"""Generation-based extraction: the model writes short texts expressing each emotion (and a
neutral one), sampled with a fixed seed, and its residual stream is read on the tokens it
wrote (mean over generated tokens, or the last one).

The activations are taken by re-running prompt + generated tokens in one teacher-forced
pass (`capture.capture_spans`): in a causal model that gives exactly the states the model
had while generating each token, without hooking every decoding step.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from ..capture import capture_spans, check_span_position
from ..errors import BadInput
from ..models import LoadedModel
from ..runner import chat

EMOTION_PROMPT = (
    "Write two short sentences about your day from the point of view of someone who "
    "feels strong {emotion}. Express the {emotion} clearly."
)
NEUTRAL_PROMPT = (
    "Write two short sentences about your day in a flat, factual tone, expressing no emotion."
)


def prompt_for(label: str, baseline: str) -> str:
    return NEUTRAL_PROMPT if label == baseline else EMOTION_PROMPT.format(emotion=label)


def _generated_length(row, eos: set[int]) -> int:
    """Tokens up to (not including) the first end/pad token."""
    for j, t in enumerate(row):
        if int(t) in eos:
            return j
    return len(row)


def generation_activations(
    model: LoadedModel,
    labels: Sequence[str],
    baseline: str,
    hooks: Sequence[str],
    position: str = "mean",
    samples: int = 20,
    seed: int = 0,
    max_new_tokens: int = 40,
    temperature: float = 0.9,
    batch_size: int = 16,
    progress: Callable[[int, int], None] | None = None,
    check: Callable[[], None] | None = None,
) -> tuple[np.ndarray, np.ndarray, list[dict]]:
    """`[n, len(hooks), d]` activations on generated tokens, their labels, and the texts."""
    import torch

    check_span_position(position, "--source generation")
    if samples < 2:
        raise BadInput("--source generation needs at least 2 samples per label")
    tok = model.tokenizer
    eos = {i for i in (tok.eos_token_id, tok.pad_token_id) if i is not None}
    gen_eos = getattr(model.hf.generation_config, "eos_token_id", None)
    eos |= {gen_eos} if isinstance(gen_eos, int) else set(gen_eos or [])
    xs, ys, records = [], [], []
    total, done = len(labels) * samples, 0
    for li, label in enumerate(labels):
        prompt = chat(model, prompt_for(label, baseline))
        p_ids = tok(model.with_bos(prompt), add_special_tokens=False, return_tensors="pt")[
            "input_ids"
        ]
        p_ids = p_ids.to(model.device)
        plen = p_ids.shape[1]
        for start in range(0, samples, batch_size):
            if check:
                check()
            b = min(batch_size, samples - start)
            torch.manual_seed(seed * 1_000_003 + li * 1009 + start)
            with torch.no_grad():
                gen = model.hf.generate(
                    input_ids=p_ids.repeat(b, 1),
                    attention_mask=torch.ones(b, plen, dtype=torch.long, device=model.device),
                    do_sample=True,
                    temperature=temperature,
                    top_p=0.95,
                    max_new_tokens=max_new_tokens,
                    pad_token_id=tok.pad_token_id,
                )
            new = gen[:, plen:]
            lens = [_generated_length(row, eos) for row in new]
            keep_rows = [r for r, n in enumerate(lens) if n >= 1]
            if not keep_rows:
                done += b
                continue
            prompt_ids = p_ids[0].tolist()
            pooled = capture_spans(
                model,
                [prompt_ids + new[r, : lens[r]].tolist() for r in keep_rows],
                [plen] * len(keep_rows),
                hooks,
                position,
                batch_size=len(keep_rows),
            )
            for i, r in enumerate(keep_rows):
                xs.append(pooled[i])
                ys.append(label)
                records.append(
                    {
                        "label": label,
                        "prompt": prompt_for(label, baseline),
                        "text": tok.decode(new[r, : lens[r]], skip_special_tokens=True),
                    }
                )
            done += b
            if progress:
                progress(done, total)
    y = np.array(ys)
    for label in labels:
        if (y == label).sum() < 2:
            raise BadInput(
                f"the model wrote fewer than 2 non-empty texts for '{label}' "
                "(raise --limit or max_new_tokens)"
            )
    x = np.stack(xs).astype(np.float32)
    if not np.isfinite(x).all():
        raise BadInput("generation activations contain NaN or inf")
    return x, y, records
