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
from .row_share import first_hooked_block, head_per_cell, shared_rows


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
            if path == BRIDGE:
                logits = forward(input_ids=ids, attention_mask=mask, use_cache=False).logits
                logits = logits[torch.arange(len(batch)), mask.sum(1) - 1]
            else:
                logits, _ = final_logits(model, ids, mask, use_cache=False)
        out.append(logits.float().cpu().numpy())
    return np.concatenate(out)


def keeps_logits(model: LoadedModel) -> bool:
    """Whether the plain HF model takes `logits_to_keep` positions per row on one device
    (every family the hook map knows does); a model split over devices keeps its hidden
    states where the index tensor is not, so it takes the full head."""
    import inspect

    devices = set((getattr(model.hf, "hf_device_map", None) or {}).values())
    return len(devices) <= 1 and "logits_to_keep" in inspect.signature(model.hf.forward).parameters


def final_logits(model: LoadedModel, ids, mask, **kwargs):
    """Logits at each row's last real position (right padding), `[batch, vocab]`, from the
    plain HF model. Only those positions go through the LM head: SmolLM2's 49k-word head is
    about a fifth of its multiply-adds per position and a `[batch, seq, vocab]` tensor, of
    which one row per text is read. The head is the model's own forward (Gemma's
    logit soft-capping included), so the numbers are those of the full head at that row.
    The model's output comes back beside them (a caller may want its KV cache)."""
    import torch

    last = mask.sum(1) - 1
    if keeps_logits(model):
        out = model.hf(input_ids=ids, attention_mask=mask, logits_to_keep=last[:, None], **kwargs)
        return out.logits[:, 0], out
    out = model.hf(input_ids=ids, attention_mask=mask, **kwargs)
    return out.logits[torch.arange(len(ids), device=last.device), last], out


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


def right_pad(seqs: Sequence[Sequence[int]], pad: int, device):
    """Token id lists as one right-padded `[n, width]` batch and its attention mask, on
    `device` (an empty list is a row of padding)."""
    import torch

    lens = torch.tensor([len(q) for q in seqs])
    ids = torch.full((len(seqs), int(lens.max())), pad, dtype=torch.long)
    for r, q in enumerate(seqs):
        ids[r, : len(q)] = torch.tensor(q, dtype=torch.long)
    mask = (torch.arange(ids.shape[1])[None] < lens[:, None]).long()
    return ids.to(device), mask.to(device)


def token_logprobs(
    model: LoadedModel, contexts: Sequence[str], texts: Sequence[str], batch_size: int = 16
) -> list[float]:
    """Mean log-probability per token of each text given its context (no hooks), `batch_size`
    (context + text) sequences per forward, right-padded: causal attention keeps padding
    out of every real position."""
    import torch

    out = [float("nan")] * len(texts)
    rows = []
    for i, (ctx_text, text) in enumerate(zip(contexts, texts)):
        if not text.strip():
            continue
        c = model.tokenizer(model.with_bos(ctx_text), add_special_tokens=False)["input_ids"]
        t = model.tokenizer(" " + text if ctx_text else text, add_special_tokens=False)["input_ids"]
        rows.append((i, c + t, max(len(c), 1)))
    pad = model.tokenizer.pad_token_id or 0
    for s in range(0, len(rows), batch_size):
        batch = rows[s : s + batch_size]
        ids, mask = right_pad([seq for _, seq, _ in batch], pad, model.device)
        with torch.no_grad():
            logits = model.hf(input_ids=ids, attention_mask=mask, use_cache=False).logits
        logp = logits.float().log_softmax(-1)
        for r, (i, seq, start) in enumerate(batch):
            tgt = ids[r, start : len(seq)]
            lp = logp[r, start - 1 : len(seq) - 1].gather(-1, tgt[:, None]).squeeze(-1)
            out[i] = float(lp.mean())
    return out


def continuation_logprobs(
    model: LoadedModel, contexts: Sequence[str], text_sets: Sequence[Sequence[str]]
) -> list[list[float]]:
    """Mean log-probability per token of each text given its row's context (no hooks), for
    several sets of texts over the same contexts (a baseline and the steered texts of many
    sweep cells). The contexts run once and their KV cache serves every set; each set is one
    forward of its own texts, so a set's numbers depend only on the contexts and that set:
    a cell scored among others gets exactly what it gets alone. Empty texts are NaN."""
    import copy

    import torch

    tok = model.tokenizer
    ctx_ids = [tok(model.with_bos(c), add_special_tokens=False)["input_ids"] for c in contexts]
    if any(not c for c in ctx_ids):
        raise BadInput("a context without tokens cannot condition a continuation")
    pad = tok.pad_token_id or 0
    ids, ctx_mask = right_pad(ctx_ids, pad, model.device)
    lens = ctx_mask.sum(1)
    with torch.no_grad():
        first, ctx_out = final_logits(model, ids, ctx_mask, use_cache=True)
    first = first.float().log_softmax(-1)  # [n, vocab]
    out = []
    for texts in text_sets:
        toks = [
            tok(" " + t, add_special_tokens=False)["input_ids"] if t.strip() else [] for t in texts
        ]
        scores = [float("nan")] * len(toks)
        width = max((len(t) for t in toks), default=0)
        if width:
            tids, tmask = right_pad(toks, pad, model.device)
            with torch.no_grad():
                logits = model.hf(
                    input_ids=tids,
                    attention_mask=torch.cat([ctx_mask, tmask], 1),
                    position_ids=lens[:, None] + torch.arange(width, device=model.device),
                    cache=copy.deepcopy(ctx_out.past_key_values),
                    use_cache=True,
                ).logits
            logp = logits.float().log_softmax(-1)
            for r, t in enumerate(toks):
                if t:
                    tgt = tids[r, : len(t)]
                    pred = torch.cat([first[r : r + 1], logp[r, : len(t) - 1]])
                    scores[r] = float(pred.gather(-1, tgt[:, None]).mean())
        out.append(scores)
    return out


def _slice_ctx(ctx: HookContext, rows: slice) -> HookContext:
    """The hook context of a block of rows: what a cell's hooks see when run alone."""
    from dataclasses import replace

    extra = dict(ctx.extra)
    if "input_ids" in extra:
        extra["input_ids"] = extra["input_ids"][rows]
    return replace(
        ctx,
        attention_mask=None if ctx.attention_mask is None else ctx.attention_mask[rows],
        prompt_lengths=None if ctx.prompt_lengths is None else ctx.prompt_lengths[rows],
        extra=extra,
    )


def routed_hooks(
    cells: Sequence[Sequence[tuple[str, HookFn]]], rows_per_cell: int
) -> list[tuple[str, HookFn]]:
    """One hook per hook name that gives each cell's block of rows to that cell's own hooks.

    Rows are cell-major: cell c owns rows [c * rows_per_cell, (c + 1) * rows_per_cell). Any
    intervention works unchanged (per-row vectors and alphas fall out of it): each hook fn
    sees exactly the activation and context it would see in a run of its cell alone.
    """
    import torch

    names: list[str] = []
    for hooks in cells:
        for name, _ in hooks:
            if name not in names:
                names.append(name)

    def make(name: str) -> HookFn:
        per_cell = [[fn for n, fn in hooks if n == name] for hooks in cells]

        def routed(act, ctx: HookContext):
            parts, changed = [], False
            for c, fns in enumerate(per_cell):
                rows = slice(c * rows_per_cell, (c + 1) * rows_per_cell)
                part = act[rows]
                if fns:
                    sub = _slice_ctx(ctx, rows)
                    for fn in fns:
                        new = fn(part, sub)
                        if new is not None:
                            part, changed = new, True
                parts.append(part)
            return torch.cat(parts) if changed else None

        return routed

    return [(name, make(name)) for name in names]


def generate_cells(
    model: LoadedModel,
    prompts: Sequence[str],
    cells: Sequence[Sequence[tuple[str, HookFn]]],
    max_new_tokens: int = 32,
    batch_size: int = 8,
    use_chat: bool = True,
    check: Callable[[], None] | None = None,
) -> list[list[str]]:
    """`generate` for many cells (one hook list each) over the same prompts in one pass per
    prompt batch: returns one list of texts per cell, equal to `generate(model, prompts,
    cells[c], ...)`. Each prompt batch is encoded once (left padding, the same batches
    `generate` makes, so every row is padded exactly as it would be alone) and repeated for
    every cell; the blocks below the first hooked one run the prompts once for all cells
    (`row_share`)."""
    import torch

    for p in prompts:
        if not p.strip():
            raise BadInput("empty prompt")
    texts = [chat(model, p) if use_chat else p for p in prompts]
    pad = model.tokenizer.pad_token_id
    below = first_hooked_block(model, [name for hooks in cells for name, _ in hooks])
    out: list[list[str]] = [[] for _ in cells]
    for start in range(0, len(texts), batch_size):
        if check:
            check()
        one, one_mask = model.encode(texts[start : start + batch_size], "left")
        n = one.shape[0]
        ids, mask = one.repeat(len(cells), 1), one_mask.repeat(len(cells), 1)
        ctx = HookContext(
            name="",
            attention_mask=mask,
            prompt_lengths=mask.sum(1).tolist(),
            left_padded=True,
            extra={"input_ids": ids},
        )
        with (
            apply_hooks(model, routed_hooks(cells, n), ctx),
            shared_rows(model, below, n, len(cells)),
            torch.no_grad(),
        ):
            gen = model.hf.generate(
                input_ids=ids,
                attention_mask=mask,
                max_new_tokens=max_new_tokens,
                do_sample=False,
                pad_token_id=pad,
            )
        new = model.tokenizer.batch_decode(gen[:, ids.shape[1] :], skip_special_tokens=True)
        for c in range(len(cells)):
            out[c].extend(t.strip() for t in new[c * n : (c + 1) * n])
    return out


def last_logits_cells(
    model: LoadedModel,
    texts: Sequence[str],
    cells: Sequence[Sequence[tuple[str, HookFn]]],
    batch_size: int = 16,
) -> list[np.ndarray]:
    """`last_logits` for many cells in one forward per text batch (right padding, the same
    batches `last_logits` makes): one `[n, vocab]` array per cell; the blocks below the
    first hooked one run the texts once for all cells, and the head runs on each cell's
    rows apart (`row_share`), so each cell's logits are bit-equal to `last_logits`'."""
    import torch

    out: list[list[np.ndarray]] = [[] for _ in cells]
    below = first_hooked_block(model, [name for hooks in cells for name, _ in hooks])
    for start in range(0, len(texts), batch_size):
        one, one_mask = model.encode(list(texts[start : start + batch_size]), "right")
        n = one.shape[0]
        ids, mask = one.repeat(len(cells), 1), one_mask.repeat(len(cells), 1)
        ctx = HookContext(
            name="",
            attention_mask=mask,
            prompt_lengths=mask.sum(1).tolist(),
            extra={"input_ids": ids},
        )
        with (
            apply_hooks(model, routed_hooks(cells, n), ctx),
            shared_rows(model, below, n, len(cells)),
            head_per_cell(model, n, len(cells)),
            torch.no_grad(),
        ):
            last, _ = final_logits(model, ids, mask, use_cache=False)
        last = last.float().cpu().numpy()
        for c in range(len(cells)):
            out[c].append(last[c * n : (c + 1) * n])
    return [np.concatenate(parts) for parts in out]
