"""Distributed alignment search with a 1-d subspace (Geiger et al.; Tigges et al. for sentiment).

Under the emotion-listing prompt (`data.LIST_PROMPT`), the component along a unit direction
u of block L's residual at the last token is swapped between an emotion input and a
neutral input (interchange intervention); u is learned by gradient descent so that the
swap moves the answer toward the source input's label (cross-entropy over the label
tokens, both swap directions). It starts from the mean difference of the extraction
activations and is sign-fixed toward the emotion at the end.

It needs the model, so it declares `needs_model` and the extract step hands it a context
(model, hook names, the texts behind the activations, the label set). The earlier tokens
of each prompt never change under a last-token intervention, so their key/value cache is
computed once and only the last token is re-run per step: that keeps DAS affordable on a CPU.
"""

from __future__ import annotations

import copy

import numpy as np

from ...api import Extractor, Param
from ...errors import BadInput
from .checks import check_classes, orient


class DAS(Extractor):
    name = "das"
    description = "1-d distributed alignment search: interchange along u moves the label logit"
    needs_model = True
    params = (
        Param("pairs", int, 12, "emotion/neutral prompt pairs per emotion"),
        Param("steps", int, 15, "Adam steps per layer"),
        Param("lr", float, 0.01),
        Param("seed", int, 0),
    )

    def fit(self, pos: np.ndarray, neg: np.ndarray) -> np.ndarray:
        raise BadInput("das needs the model and texts: run it through `emolab extract`")

    def fit_in_context(self, pos: np.ndarray, neg: np.ndarray, context: dict) -> np.ndarray:
        import torch

        from ...capture import capture
        from ...data import list_prompt
        from ...hooks import apply_hooks, parse
        from ...runner import label_token_ids

        check_classes(self.name, pos, neg, 1)
        model, hooks = context["model"], list(context["hooks"])
        labels, emotion, baseline = context["labels"], context["emotion"], context["baseline"]
        pos_texts, neg_texts = context["pos_texts"], context["neg_texts"]
        check = context.get("check") or (lambda: None)
        rng = np.random.default_rng(self.seed)
        k = min(self.pairs, len(pos), len(neg))
        ip = rng.choice(len(pos), k, replace=False)
        ineg = rng.choice(len(neg), k, replace=False)
        emo_prompts = [list_prompt(pos_texts[i], labels) for i in ip]
        neu_prompts = [list_prompt(neg_texts[i], labels) for i in ineg]
        bases = neu_prompts + emo_prompts  # source of row i is row (i + k) mod 2k
        ids_of = label_token_ids(model, labels)
        label_ids = torch.tensor([ids_of[lab] for lab in labels], device=model.device)
        target = torch.tensor(
            [labels.index(emotion)] * k + [labels.index(baseline)] * k, device=model.device
        )

        last = capture(model, bases, hooks, "last", batch_size=2 * k)  # [2k, H, d]
        sources = torch.tensor(np.concatenate([last[k:], last[:k]]), device=model.device)
        ids, mask = model.encode(bases, "left")
        posn = (mask.cumsum(-1) - 1).clamp(min=0)
        base = model.hf.base_model
        head = model.hf.get_output_embeddings().weight[label_ids].detach()
        init = pos.mean(0) - neg.mean(0)

        grads = [p.requires_grad for p in model.hf.parameters()]
        for p in model.hf.parameters():
            p.requires_grad_(False)
        out = []
        try:
            with torch.no_grad():
                prefix = base(
                    input_ids=ids[:, :-1],
                    attention_mask=mask[:, :-1],
                    position_ids=posn[:, :-1],
                    use_cache=True,
                ).past_key_values
            for li, hook in enumerate(hooks):
                check()
                layer, _ = parse(model, hook)
                theta = torch.tensor(init[li], dtype=torch.float32, device=model.device)
                theta = (theta / theta.norm().clamp(min=1e-8)).requires_grad_(True)
                opt = torch.optim.Adam([theta], lr=self.lr)
                src = sources[:, li]

                def swap(act, _ctx, theta=theta, src=src):
                    u = theta / theta.norm()
                    h = act[:, -1]
                    new = h + ((src - h) @ u)[:, None] * u
                    return torch.cat([act[:, :-1], new[:, None]], dim=1)

                with apply_hooks(model, [(f"blocks.{layer}.hook_resid_post", swap)]):
                    for _ in range(self.steps):
                        hidden = base(
                            input_ids=ids[:, -1:],
                            attention_mask=mask,
                            position_ids=posn[:, -1:],
                            past_key_values=copy.deepcopy(prefix),
                            use_cache=True,
                        ).last_hidden_state[:, -1]
                        loss = torch.nn.functional.cross_entropy(hidden @ head.T, target)
                        opt.zero_grad()
                        loss.backward()
                        opt.step()
                u = (theta / theta.norm()).detach().cpu().numpy()
                out.append(orient(u, pos[:, li], neg[:, li]))
        finally:
            for p, g in zip(model.hf.parameters(), grads, strict=True):
                p.requires_grad_(g)
        return np.stack(out).astype(np.float32)
