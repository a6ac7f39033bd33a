"""The hook map on tiny random models of every architecture it claims (built offline from
config objects), dtypes and devices, and the one line for an unknown architecture."""

import numpy as np
import pytest

from emolab import plugins
from emolab.errors import BadInput
from emolab.hooks import POINTS, apply_hooks
from emolab.models import LoadedModel, cast, tolerance
from emolab.plugins import load_model as load

SMALL = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=3, num_attention_heads=4)


def configs():
    import transformers as tf

    kv = dict(num_key_value_heads=2, max_position_embeddings=64)
    return {
        "llama": tf.LlamaConfig(**SMALL, **kv),
        "qwen2": tf.Qwen2Config(**SMALL, **kv),
        "mistral": tf.MistralConfig(**SMALL, **kv),
        "gemma": tf.GemmaConfig(**SMALL, **kv, head_dim=8),
        "gemma2": tf.Gemma2Config(**SMALL, **kv, head_dim=8),
        "gemma3_text": tf.Gemma3TextConfig(**SMALL, **kv, head_dim=8),
        "phi": tf.PhiConfig(**SMALL, max_position_embeddings=64),
        "phi3": tf.Phi3Config(**SMALL, **kv),
        "gpt2": tf.GPT2Config(n_embd=32, n_layer=3, n_head=4, n_positions=64),
        "gpt_neox": tf.GPTNeoXConfig(**SMALL, max_position_embeddings=64),
    }


def tiny(model_type: str) -> LoadedModel:
    import torch
    from transformers import AutoModelForCausalLM

    from emolab.builtins.models import tiny_tokenizer

    tok = tiny_tokenizer()
    cfg = configs()[model_type]
    cfg.vocab_size = len(tok)
    cfg.pad_token_id = len(tok) - 2
    torch.manual_seed(0)
    hf = AutoModelForCausalLM.from_config(cfg).eval()
    return LoadedModel(f"tiny-{model_type}", hf, tok, {"dtype": "float32"})


@pytest.mark.parametrize("model_type", sorted(configs()))
def test_every_hook_point_on_every_architecture(model_type):
    import torch

    model = tiny(model_type)
    assert model.config.model_type == model_type
    ids, mask = model.encode(["Hello there, friend.", "Hi."], "right")
    with torch.no_grad():
        ref = model.hf(input_ids=ids, attention_mask=mask, output_hidden_states=True)
    seen = {}

    def keep(name):
        def fn(act, ctx):
            seen[name] = act.detach().clone()

        return fn

    names = [f"blocks.1.{p}" for p in POINTS]
    with apply_hooks(model, [(n, keep(n)) for n in names]), torch.no_grad():
        model.hf(input_ids=ids, attention_mask=mask)
    assert set(seen) == set(names)
    d, heads = model.d_model, model.n_heads
    assert seen["blocks.1.hook_resid_post"].shape == (*ids.shape, d)
    assert seen["blocks.1.attn.hook_z"].shape == (*ids.shape, heads, model.d_head)
    torch.testing.assert_close(seen["blocks.1.hook_resid_post"], ref.hidden_states[2])
    torch.testing.assert_close(seen["blocks.1.hook_resid_pre"], ref.hidden_states[1])
    # steering through the map moves the logits; the hooks leave with the context
    v = np.ones((model.n_layers, d), dtype=np.float32)
    steer = plugins.get("interventions", "residual_add", layer=1, alpha=5.0, scale="absolute")
    with apply_hooks(model, steer.hooks(model, vector=v)), torch.no_grad():
        moved = model.hf(input_ids=ids, attention_mask=mask).logits
    assert not torch.allclose(moved, ref.logits)
    with torch.no_grad():
        torch.testing.assert_close(model.hf(input_ids=ids, attention_mask=mask).logits, ref.logits)


def test_unknown_architecture_is_one_line():
    model = tiny("llama")
    model.hf.config.model_type = "mamba-ish"
    with pytest.raises(BadInput, match="'mamba-ish' has no hook map: emolab needs the paths of"):
        _ = model.blocks


def test_dtype_and_device(tmp_path):
    import torch

    from emolab.steps.common import new_session

    bf = load("tiny-llama", "cpu", "bfloat16")
    assert next(bf.hf.parameters()).dtype == torch.bfloat16
    assert load("tiny-llama", "cpu", "bfloat16") is bf  # once per (name, device, dtype)
    assert load("tiny-llama").meta["dtype"] == "float32"
    s = new_session(tmp_path / "s", "tiny-llama", "auto", dtype="bfloat16")
    assert s.manifest["model"]["dtype"] == "bfloat16"
    assert s.manifest["model"]["device"] == ("cuda" if torch.cuda.is_available() else "cpu")
    assert tolerance("bfloat16") > tolerance("float32")
    with pytest.raises(BadInput, match="unknown dtype 'int3'"):
        load("tiny-llama", "cpu", "int3")
    with pytest.raises(BadInput, match="unknown device 'tpu'"):
        load("tiny-llama", "tpu")
    if not torch.cuda.is_available():
        with pytest.raises(BadInput, match="torch sees no CUDA device"):
            load("tiny-llama", "cuda")
    assert cast(bf, "bfloat16") is bf


def test_cli_dtype_errors(run_cli, tmp_path):
    r = run_cli("extract", "--model", "tiny-llama", "--dtype", "int8", "--session", tmp_path / "x")
    assert r.exit_code == 2 and "int8" in r.output


@pytest.mark.real
def test_smollm2_in_bfloat16_on_cpu(tmp_path):
    import torch

    from emolab.steps import extract, steer
    from emolab.steps.common import new_session
    from emolab.testing import load_or_skip

    f32 = load_or_skip("smollm2-135m")
    bf = load("smollm2-135m", "cpu", "bfloat16")
    assert (
        next(bf.hf.parameters()).dtype == torch.bfloat16 and bf.meta["sha256"] == f32.meta["sha256"]
    )
    s = new_session(tmp_path / "bf", "smollm2-135m", dtype="bfloat16")
    assert s.manifest["model"]["dtype"] == "bfloat16"
    extract.run(s, {"emotions": ["joy"], "layers": "15", "limit": 8, "test_limit": 4})
    res = steer.run(s, {"emotion": "joy", "layer": 15, "alpha": 0.3, "max_new_tokens": 8})
    assert all(t.strip() for t in res["steered"])
    # bfloat16 is the same model, a few bits short: its logits track float32's
    from emolab.runner import last_logits

    texts = ["Tell me about your day.", "I am so happy to see you!"]
    x, y = last_logits(f32, texts), last_logits(bf, texts)
    for a, b in zip(x, y):
        assert np.corrcoef(a, b)[0, 1] > 0.99


def test_a_model_that_does_not_fit_is_one_line(monkeypatch):
    import torch

    from emolab.builtins.models import TinyGPT2
    from emolab.errors import ModelUnavailable

    def oom(self, spec, device="cpu"):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(TinyGPT2, "load", oom)
    with pytest.raises(ModelUnavailable, match="'tiny-gpt2' does not fit on cpu in float16"):
        load("tiny-gpt2", "cpu", "float16")
