"""Forward passes and generation with TL-named hooks attached.

The plain HF model runs them when every hook is a fast point; any other TL name sends the
whole batch through the TransformerBridge (`hooks.route`). Generation through the bridge
runs without the KV cache: with transformers 5.24 / transformer_lens 4.3 the bridge's
cached generation departs from HF's after the first new token, uncached it agrees.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from .api import HookContext, HookFn
from .errors import BadInput
from .hooks import BRIDGE, apply_hooks, forward_module, route
from .models import LoadedModel


def label_token_ids(model: LoadedModel, labels: Sequence[str]) -> dict[str, int]:
    """First token of ' <label>' for each label (what follows 'Answer:')."""
    out = {}
    for label in labels:
        ids = model.tokenizer(" " + label, add_special_tokens=False)["input_ids"]
        if not ids:
            raise BadInput(f"label '{label}' has no token in {model.name}'s tokenizer")
        out[label] = ids[0]
    return out


def token_ids(model: LoadedModel, words: Sequence[str]) -> list[int]:
    """First token of each ' word' (deduplicated, order kept)."""
    ids = []
    for w in words:
        toks = model.tokenizer(" " + w.strip(), add_special_tokens=False)["input_ids"]
        if toks and toks[0] not in ids:
            ids.append(toks[0])
    if not ids:
        raise BadInput("no tokens for the given words")
    return ids


def last_logits(
    model: LoadedModel,
    texts: Sequence[str],
    hooks: Sequence[tuple[str, HookFn]] = (),
    batch_size: int = 16,
    check: Callable[[], None] | None = None,
) -> np.ndarray:
    """Next-token logits at each text's real last position, `[n, vocab]` float32."""
    import torch

    path = route(model, [name for name, _ in hooks])
    forward = forward_module(model, path)
    out = []
    for start in range(0, len(texts), batch_size):
        if check:
            check()
        batch = list(texts[start : start + batch_size])
        ids, mask = model.encode(batch, "right")
        ctx = HookContext(
            name="",
            attention_mask=mask,
            prompt_lengths=mask.sum(1).tolist(),
            extra={"input_ids": ids},
        )
        with apply_hooks(model, hooks, ctx, via=path), torch.no_grad():
            logits = forward(input_ids=ids, attention_mask=mask, use_cache=False).logits
        last = mask.sum(1) - 1
        out.append(logits[torch.arange(len(batch)), last].float().cpu().numpy())
    return np.concatenate(out)


def chat(model: LoadedModel, prompt: str) -> str:
    """Wrap a user prompt in the model's chat template when it has one."""
    tok = model.tokenizer
    if getattr(tok, "chat_template", None):
        return tok.apply_chat_template(
            [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True
        )
    return prompt


def generate(
    model: LoadedModel,
    prompts: Sequence[str],
    hooks: Sequence[tuple[str, HookFn]] = (),
    max_new_tokens: int = 32,
    batch_size: int = 8,
    use_chat: bool = True,
    check: Callable[[], None] | None = None,
    on_batch: Callable[[int, list[str]], None] | None = None,
    on_text: Callable[[int, str], None] | None = None,
) -> list[str]:
    """Greedy continuations (left padding, batched), hooks active for every step.
    `on_text(i, text_so_far)` streams each prompt's continuation as tokens arrive."""
    import torch

    for p in prompts:
        if not p.strip():
            raise BadInput("empty prompt")
    texts = [chat(model, p) if use_chat else p for p in prompts]
    pad = model.tokenizer.pad_token_id
    path = route(model, [name for name, _ in hooks])
    forward = forward_module(model, path)
    out: list[str] = []
    for start in range(0, len(texts), batch_size):
        if check:
            check()
        ids, mask = model.encode(texts[start : start + batch_size], "left")
        ctx = HookContext(
            name="",
            attention_mask=mask,
            prompt_lengths=mask.sum(1).tolist(),
            left_padded=True,
            extra={"input_ids": ids},
        )
        with apply_hooks(model, hooks, ctx, via=path), torch.no_grad():
            gen = forward.generate(
                input_ids=ids,
                attention_mask=mask,
                max_new_tokens=max_new_tokens,
                do_sample=False,
                pad_token_id=pad,
                use_cache=path != BRIDGE,
                streamer=RowStreamer(model.tokenizer, start, on_text) if on_text else None,
            )
        new = model.tokenizer.batch_decode(gen[:, ids.shape[1] :], skip_special_tokens=True)
        batch = [t.strip() for t in new]
        out.extend(batch)
        if on_batch:
            on_batch(start, batch)
    return out


class RowStreamer:
    """HF generation streamer for a whole batch (HF's own streamers take one row): decodes
    each row's new tokens so far and hands them to `on_text(row_index, text)`."""

    def __init__(self, tokenizer, offset: int, on_text: Callable[[int, str], None]) -> None:
        self.tokenizer, self.offset, self.on_text = tokenizer, offset, on_text
        self.rows: list[list[int]] | None = None

    def put(self, value) -> None:
        if self.rows is None:  # the first call carries the prompt
            self.rows = [[] for _ in range(value.shape[0])]
            return
        for i, tok in enumerate(value.reshape(len(self.rows), -1)[:, -1].tolist()):
            self.rows[i].append(tok)
            text = self.tokenizer.decode(self.rows[i], skip_special_tokens=True)
            self.on_text(self.offset + i, text.strip())

    def end(self) -> None:
        pass


def token_logprobs(
    model: LoadedModel, contexts: Sequence[str], texts: Sequence[str]
) -> list[float]:
    """Mean log-probability per token of each text given its context (no hooks)."""
    import torch

    out = []
    for ctx_text, text in zip(contexts, texts):
        if not text.strip():
            out.append(float("nan"))
            continue
        c = model.tokenizer(model.with_bos(ctx_text), add_special_tokens=False)["input_ids"]
        t = model.tokenizer(" " + text if ctx_text else text, add_special_tokens=False)["input_ids"]
        ids = torch.tensor([c + t], device=model.device)
        with torch.no_grad():
            logp = model.hf(input_ids=ids, use_cache=False).logits.float().log_softmax(-1)
        start = max(len(c), 1)
        tgt = ids[0, start:]
        lp = logp[0, start - 1 : -1].gather(-1, tgt[:, None]).squeeze(-1)
        out.append(float(lp.mean()))
    return out
