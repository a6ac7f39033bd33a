"""Vector files out and in: gguf (llama.cpp control vector), safetensors and pt round-trip
exactly, the GGUF has what llama.cpp and repeng read, steering with a re-imported vector
gives the same text, and a file for another model is one line, exit 2."""

import json

import numpy as np
import pytest

from emolab import vector_io
from emolab.errors import BadInput
from emolab.metadata import FileMeta
from emolab.session import Session
from emolab.steps import steer

FORMATS = ("gguf", "safetensors", "pt")
STEER = {"emotion": "joy", "layer": 2, "max_new_tokens": 6, "evaluators": []}


def export(run_cli, session, fmt, out, *extra):
    r = run_cli("vectors", "export", session, "--format", fmt, "--out", out, "--json", *extra)
    assert r.exit_code == 0, r.output
    return json.loads(r.output)


@pytest.mark.parametrize("fmt", FORMATS)
def test_round_trip_is_exact(run_cli, tiny_session, tmp_path, fmt):
    extra = ["--emotion", "joy"] if fmt != "safetensors" else []
    info = export(run_cli, tiny_session.path, fmt, tmp_path / f"v.{fmt}", "--layers", "1-3", *extra)
    assert info["layers"] == "1,2,3"
    back, meta = vector_io.read(tmp_path / f"v.{fmt}")
    orig, orig_meta = tiny_session.load_vectors()
    want = {k: v for k, v in orig.items() if int(k.split(".")[1]) in (1, 2, 3)}
    if fmt != "safetensors":
        want = {k: v for k, v in want.items() if k.startswith("joy/")}
    assert sorted(back) == sorted(want)
    for k in want:
        assert back[k].dtype == np.float32 and np.array_equal(back[k], want[k])
    assert meta.layers == (1, 2, 3) and meta.model == "tiny-llama"
    for key in ("hook", "operation", "scale", "d_model"):
        assert meta.extra[key], key
    assert meta.extra["operation"] == "add"
    assert meta.method == orig_meta.method and meta.extra["file_format"] == fmt


def test_gguf_has_the_fields_llama_cpp_reads(run_cli, tiny_session, tmp_path):
    import gguf

    export(run_cli, tiny_session.path, "gguf", tmp_path / "joy.gguf", "--emotion", "joy",
           "--layers", "all")  # fmt: skip
    r = gguf.GGUFReader(str(tmp_path / "joy.gguf"))
    assert r.fields["general.architecture"].contents() == "controlvector"
    assert r.fields["controlvector.model_hint"].contents()  # repeng's import_gguf needs it
    names = [t.name for t in r.tensors]
    # llama.cpp: direction.N (N >= 1) is added to the output of block N; no slot for block 0
    assert names == ["direction.1", "direction.2", "direction.3"]
    assert r.fields["controlvector.layer_count"].contents() == len(names)
    vecs, _ = tiny_session.load_vectors()
    for t in r.tensors:
        assert t.tensor_type == gguf.GGMLQuantizationType.F32 and list(t.shape) == [64]
        layer = int(t.name.split(".")[1])
        assert np.array_equal(np.asarray(t.data), vecs[f"joy/blocks.{layer}.hook_resid_post"])
    assert r.fields["emolab.hook"].contents() == "blocks.{layer}.hook_resid_post"


def test_pt_is_a_plain_layer_dict(run_cli, tiny_session, tmp_path):
    import torch

    export(run_cli, tiny_session.path, "pt", tmp_path / "joy.pt", "--emotion", "joy",
           "--layers", "2,3")  # fmt: skip
    d = torch.load(tmp_path / "joy.pt", weights_only=True)
    assert list(d) == [2, 3] and all(isinstance(v, torch.Tensor) for v in d.values())
    assert d[2].shape == (64,) and d._metadata["operation"] == "add"


@pytest.mark.parametrize("fmt", FORMATS)
def test_steering_with_the_reimported_vector_gives_the_same_text(
    run_cli, tiny_session, tmp_path, fmt
):
    export(run_cli, tiny_session.path, fmt, tmp_path / f"v.{fmt}", "--emotion", "joy",
           "--layers", "2")  # fmt: skip
    original = steer.run(tiny_session, STEER)
    again = steer.run(tiny_session, {**STEER, "vector_file": str(tmp_path / f"v.{fmt}")})
    assert again["steered"] == original["steered"]
    assert again["steered"] != original["baseline"]  # the push does change the text


def test_baked_alpha_is_the_push_steer_adds(run_cli, tiny_session, tmp_path):
    """--alpha A writes A x the layer's mean residual norm x unit(v): steering with it at
    absolute scale 1 (llama.cpp's --control-vector) matches `steer --alpha A`."""
    export(run_cli, tiny_session.path, "gguf", tmp_path / "b.gguf", "--emotion", "joy",
           "--layers", "2", "--alpha", "3")  # fmt: skip
    vecs, meta = vector_io.read(tmp_path / "b.gguf")
    v = tiny_session.load_vectors()[0]["joy/blocks.2.hook_resid_post"]
    norm = json.loads((tiny_session.path / "artifacts/layer_norms.json").read_text())
    want = 3 * norm["mean_resid_norm"][2] * v / np.linalg.norm(v)
    assert np.allclose(vecs["joy/blocks.2.hook_resid_post"], want, rtol=1e-6)
    assert meta.extra["scale"] == "absolute" and meta.extra["baked_alpha"] == "3"
    a = steer.run(tiny_session, {**STEER, "alpha": 3.0})
    b = steer.run(tiny_session, {**STEER, "alpha": 1.0, "scale": "absolute",
                                 "vector_file": str(tmp_path / "b.gguf")})  # fmt: skip
    assert a["steered"] == b["steered"]


def test_a_repeng_gguf_steers(tiny_session, tmp_path):
    """A control vector written the way repeng's export_gguf writes it (no emolab keys,
    model_hint a model_type, direction.{i} for hidden layer i) is taken as the asked emotion."""
    import gguf

    v = tiny_session.load_vectors()[0]["joy/blocks.2.hook_resid_post"]
    w = gguf.GGUFWriter(str(tmp_path / "repeng.gguf"), "controlvector")
    w.add_string("controlvector.model_hint", "llama")
    w.add_uint32("controlvector.layer_count", 1)
    w.add_tensor("direction.2", v)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    vecs, meta = vector_io.read(tmp_path / "repeng.gguf", emotion="joy")
    assert list(vecs) == ["joy/blocks.2.hook_resid_post"] and meta.extra["model_hint"] == "llama"
    original = steer.run(tiny_session, STEER)
    again = steer.run(tiny_session, {**STEER, "vector_file": str(tmp_path / "repeng.gguf")})
    assert again["steered"] == original["steered"]


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_vector_of_another_width_is_one_line(run_cli, tiny_session, tmp_path, fmt):
    wide = {"joy/blocks.2.hook_resid_post": np.ones(99, np.float32)}
    f = vector_io.write(wide, FileMeta(model="big-model"), fmt, tmp_path / f"w.{fmt}")
    r = run_cli("steer", tiny_session.path, "--emotion", "joy", "--layer", "2", "--vectors", f)
    assert r.exit_code == 2
    assert "width 99" in r.output and "made for big-model" in r.output
    assert "width 64" in r.output and len(r.output.strip().splitlines()) == 1


@pytest.mark.parametrize(
    "args, message",
    [
        (["--format", "onnx"], "unknown vector format 'onnx'"),
        (["--format", "gguf"], "choose one emotion with --emotion"),
        (["--format", "pt", "--emotion", "joy", "--layers", "0"], None),
        (["--format", "gguf", "--emotion", "joy", "--layers", "0"], "cannot hold layer 0"),
        (["--format", "gguf", "--emotion", "rage", "--layers", "1"], "unknown emotion 'rage'"),
        (["--format", "pt", "--emotion", "joy", "--layers", "9"], "no vector at layer 9"),
        (["--format", "pt", "--emotion", "joy", "--method", "pca"], "no 'pca' vectors"),
    ],
)
def test_export_bad_input(run_cli, tiny_session, tmp_path, args, message):
    r = run_cli("vectors", "export", tiny_session.path, *args, "--out", tmp_path / "x")
    if message is None:
        assert r.exit_code == 0, r.output
        return
    assert r.exit_code == 2 and message in r.output, r.output
    assert len(r.output.strip().splitlines()) == 1


def test_bad_files_are_one_line(run_cli, tiny_session, tmp_path):
    junk = tmp_path / "junk.gguf"
    junk.write_bytes(b"GGUF\x03\x00\x00\x00garbage")
    with pytest.raises(BadInput, match="unreadable gguf"):
        vector_io.read(junk)
    r = run_cli("steer", tiny_session.path, "--emotion", "joy", "--vectors", junk)
    assert r.exit_code == 2 and "unreadable gguf" in r.output
    r = run_cli("steer", tiny_session.path, "--emotion", "joy", "--vectors", tmp_path / "none.pt")
    assert r.exit_code == 2 and "not found" in r.output
    text = tmp_path / "notes.txt"
    text.write_text("hello there, not a vector file at all")
    with pytest.raises(BadInput, match="not a gguf, safetensors or pt"):
        vector_io.read(text)


def test_export_from_a_published_file(run_cli, tiny_session, tmp_path):
    """A vector file is a source too (vectors/ sets ship without their sessions)."""
    src = tiny_session.path / "vectors.safetensors"
    info = export(run_cli, src, "pt", tmp_path / "f.pt", "--emotion", "anger", "--layers", "1")
    assert info["vectors"] == 1
    back, _ = vector_io.read(tmp_path / "f.pt")
    assert np.array_equal(
        back["anger/blocks.1.hook_resid_post"],
        Session.open(tiny_session.path).load_vectors()[0]["anger/blocks.1.hook_resid_post"],
    )
    r = run_cli("vectors", "export", src, "--format", "pt", "--emotion", "anger", "--alpha",
                "1", "--out", tmp_path / "g.pt")  # fmt: skip
    assert r.exit_code == 2 and "--alpha needs a session" in r.output


@pytest.mark.real
def test_smollm2_steers_the_same_with_each_reexported_published_vector(run_cli, tmp_path):
    """The shipped SmolLM2 set, exported to gguf / safetensors / pt and read back, steers
    the real model to exactly the text the shipped file gives."""
    from emolab.steps import extract
    from emolab.steps.common import new_session
    from emolab.testing import load_or_skip

    load_or_skip("smollm2-135m")
    from pathlib import Path

    published = Path(__file__).parent.parent / "vectors" / "smollm2-135m-ekman.safetensors"
    s = new_session(tmp_path / "smol", "smollm2-135m")
    extract.run(s, {"limit": 3, "test_limit": 2, "layers": "15"})  # for the layer norms
    params = {**STEER, "layer": 15, "alpha": 0.4, "max_new_tokens": 12,
              "prompts": ["Write one sentence about your morning."]}  # fmt: skip
    original = steer.run(s, {**params, "vector_file": str(published)})
    for fmt in FORMATS:
        out = tmp_path / f"joy.{fmt}"
        export(run_cli, published, fmt, out, "--emotion", "joy", "--layers", "15")
        again = steer.run(s, {**params, "vector_file": str(out)})
        assert again["steered"] == original["steered"], fmt
    assert original["steered"] != original["baseline"]


@pytest.mark.parametrize("fmt", FORMATS)
def test_python_api_reads_every_format(run_cli, tiny_session, tmp_path, fmt):
    """VectorSet.from_file: the Python face of `steer --vectors`, same push as the session's."""
    import torch

    from emolab.plugins import load_model as load
    from emolab.vectors import VectorSet

    export(run_cli, tiny_session.path, fmt, tmp_path / f"v.{fmt}", "--emotion", "joy",
           "--layers", "2")  # fmt: skip
    from_file = VectorSet.from_file(tmp_path / f"v.{fmt}")["joy"]
    own = VectorSet.from_session(tiny_session)["joy"]
    assert np.array_equal(from_file.at(2), own.at(2)) and from_file.layers == [2]
    model = load("tiny-llama")
    ids = model.tokenizer("hello there", return_tensors="pt")["input_ids"]
    outs = []
    for vec in (from_file, own):
        with vec.apply(model.hf, layer=2, alpha=0.5, scale="absolute"), torch.no_grad():
            outs.append(model.hf(input_ids=ids).logits)
    assert torch.equal(outs[0], outs[1])
