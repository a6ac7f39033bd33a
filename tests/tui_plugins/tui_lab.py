"""A single-file plugin for the TUI tests: a model with SmolLM2's grid of 30 layers x 9
heads (random weights, tiny width) and a third-party evaluator, both registered through
the hooks like any plugin, so the screens are tested on what a deep model's steps write
and a plugin's evaluator is picked from the registry in the TUI."""

from emolab.api import Evaluator, Run
from emolab.builtins.models import TinyLlama
from emolab.hookspecs import hookimpl


class TinyDeep(TinyLlama):
    name = "tiny-deep"
    description = "A random 30-layer Llama with 9 heads (SmolLM2's grid), d=72: screen tests"
    shape = {"layers": 30, "d_model": 72, "heads": 9}

    def config(self, vocab: int):
        from transformers import LlamaConfig

        return LlamaConfig(
            vocab_size=vocab,
            hidden_size=72,
            intermediate_size=144,
            num_hidden_layers=30,
            num_attention_heads=9,
            num_key_value_heads=3,
            max_position_embeddings=512,
            architectures=["LlamaForCausalLM"],
            pad_token_id=vocab - 2,
            eos_token_id=vocab - 1,
            bos_token_id=vocab - 1,
        )


class LengthChange(Evaluator):
    name = "length_change"
    description = "Steered minus baseline text length in characters (a plugin's evaluator)"

    def evaluate(self, run: Run) -> dict[str, float]:
        steered = sum(len(t) for t in run.steered_texts) / len(run.steered_texts)
        base = sum(len(t) for t in run.baseline_texts) / len(run.baseline_texts)
        return {"length_change": float(steered - base)}


@hookimpl
def register_models(register):
    register(TinyDeep())


@hookimpl
def register_evaluators(register):
    register(LengthChange())
