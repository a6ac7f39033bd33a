"""The demo's one workflow, shared by `emolab demo` and the TUI: the science in a few minutes.

1. extract Ekman-6 vs neutral (train texts fit the vectors),
2. analyse the layers (the GoEmotions dev split chooses the readout layer),
3. a quick sweep on the dev half of the prompts chooses each emotion's layer and alpha,
4. steer toward joy and one negative emotion on the *test* half of the prompts, which no
   choice has seen, and judge the texts: P(target) and success rate beside the unsteered
   text and a random direction of the same size.

It logs nothing itself: each sub-step logs its own event, so `emolab replay` redoes (and
checks) every choice the demo made.
"""

from __future__ import annotations

from ..data import NEUTRAL_PROMPTS
from ..errors import BadInput
from ..params import Param, defaults, validate
from ..progress import Progress
from ..session import Session
from . import extract, layers, steer, sweep
from .success import prompt_halves

PARAMS = (
    Param("limit", int, 60, "train texts per label", min=4),
    Param("method", str, "mean_diff", "the extractor"),
    Param("position", str, "mean", "token pooling", ("last", "mean", "commas")),
    Param("emotions", list, ["joy", "sadness"], "joy and one negative emotion", item=str),
    Param("alphas", list, [0.3, 0.5], "alphas of the quick dev sweep", item=float),
    Param("prompts", list, list(NEUTRAL_PROMPTS[:8]), "even: dev, odd: test", item=str),
    Param("max_new_tokens", int, 20, "tokens generated per prompt", min=2),
    Param("judge_train_limit", int, 16000, "MiniLM head training texts", min=50),
)
DEFAULTS = defaults(PARAMS)

HOW_TO_READ = (
    "How to read it: success = share of test prompts (never used to choose the layer or "
    "alpha) whose steered text the external judge labels with the target emotion while the "
    "text stays fluent (surgical perplexity and repetition). Compare it with the unsteered "
    "text (what the prompt alone gives) and with a random direction of the same size (what "
    "any push of that size gives): only the gap over both is the emotion direction's effect."
)


def sweep_layers(n_layers: int, peak: int) -> list[int]:
    """A third and half of the depth (where steering works best in the source studies) and
    the readout peak the dev split chose: the quick sweep decides between them."""
    return sorted({n_layers // 3, n_layers // 2, peak})


def run(session: Session, params: dict, progress: Progress | None = None) -> dict:
    progress = progress or Progress()
    p = validate(PARAMS, params, "demo")
    prompts = [str(x) for x in p["prompts"]]
    if len(prompts) < 2:
        raise BadInput("the demo needs at least 2 prompts: a dev half and a test half")
    emotions = list(p["emotions"])
    if not session.steps():
        extract.run(
            session,
            {
                "limit": int(p["limit"]),
                "test_limit": max(int(p["limit"]) // 2, 10),
                "methods": [p["method"]],
                "position": p["position"],
            },
            progress,
        )
    lay = layers.run(session, {}, progress)
    peak = int(lay["summary"][session.methods()[0]]["peak_layer"])
    n_layers = int(session.manifest["model"]["layers"])
    grid = sweep.run(
        session,
        {
            "emotions": emotions,
            "layers": sweep_layers(n_layers, peak),
            "alphas": [float(a) for a in p["alphas"]],
            "prompts": prompts,
            "max_new_tokens": int(p["max_new_tokens"]),
            "judge_train_limit": int(p["judge_train_limit"]),
        },
        progress,
    )
    test_prompts = [prompts[i] for i in prompt_halves(len(prompts))["test"]]
    steered = {}
    for emo in emotions:
        # layer and alpha come from the sweep's dev choice through the log (steer's default)
        steered[emo] = steer.run(
            session,
            {
                "emotion": emo,
                "prompts": test_prompts,
                "max_new_tokens": int(p["max_new_tokens"]),
                "success": True,
                "judge_train_limit": int(p["judge_train_limit"]),
            },
            progress,
        )
    summary = [
        {
            "emotion": emo,
            "layer": res["params"]["layer"],
            "alpha": res["params"]["alpha"],
            "chosen_on": res["choices"].get("layer", {}).get("chosen_on", "given"),
            **{
                k: res["metrics"][k]
                for k in (
                    "p_target_baseline",
                    "p_target",
                    "p_target_random",
                    "success_baseline",
                    "success",
                    "success_random",
                )
            },
        }
        for emo, res in steered.items()
    ]
    return {
        "session": str(session.path),
        "layers": lay,
        "sweep": grid,
        "steer": steered,
        "summary": summary,
        "test_prompts": test_prompts,
        "how_to_read": HOW_TO_READ,
    }
