"""List prompt and label first tokens in English and Japanese: collisions are reported, a
bare leading space token is skipped, and a label with nothing visible is refused."""

import json

import pytest

from emolab.data import list_prompt
from emolab.errors import BadInput, UnknownName
from emolab.labels import JA_NAMES, LANGUAGES, parallel_texts, prompt, resolve
from emolab.runner import label_token_ids

EKMAN = ["anger", "disgust", "fear", "joy", "sadness", "surprise", "neutral"]


def test_english_prompt_is_the_shared_list_prompt():
    assert prompt("It rained.", EKMAN) == list_prompt("It rained.", EKMAN)


def test_japanese_prompt_lists_japanese_labels():
    text = prompt("雨が降った。", ["anger", "disgust", "neutral"], "ja")
    assert "怒り、嫌悪、中立" in text
    assert "「雨が降った。」" in text
    assert text.endswith("答え：")


def test_japanese_names_cover_the_issue_list():
    wanted = "怒り 退屈 嫌悪 恐怖 罪悪感 喜び 誇り 安堵 悲しみ 恥 驚き 信頼 中立".split()
    assert sorted(JA_NAMES.values()) == sorted(wanted)


def test_unknown_language_and_untranslated_label():
    with pytest.raises(UnknownName, match="unknown language 'fr'"):
        prompt("x", ["anger"], "fr")
    with pytest.raises(UnknownName, match="no ja name for label 'admiration'"):
        prompt("x", ["admiration"], "ja")


def test_english_ids_match_runner_and_collisions_are_reported(tiny_model):
    tokens = resolve(tiny_model.tokenizer, EKMAN, "en", tiny_model.name)
    assert tokens.ids == label_token_ids(tiny_model, EKMAN)
    # the tiny byte-level tokenizer starts ' sadness' and ' surprise' with the same 'Ġs'
    assert tokens.collisions == [["sadness", "surprise"]]
    assert "sadness (sadness) = surprise (surprise)" in tokens.collision_note()


def test_no_collision_no_note(tiny_model):
    tokens = resolve(tiny_model.tokenizer, ["anger", "joy", "fear"], "en")
    assert tokens.collisions == [] and tokens.collision_note() == ""


def test_japanese_labels_resolve_per_tokenizer_with_collisions(tiny_model):
    tok = tiny_model.tokenizer
    tokens = resolve(tok, EKMAN, "ja", tiny_model.name)
    assert tokens.names["anger"] == "怒り"
    # byte-level: the first byte of 怒 (0xE6) is the first token, shared with 恐 and 悲
    first = tok("怒り", add_special_tokens=False)["input_ids"][0]
    assert tokens.ids["anger"] == first
    groups = {tuple(g) for g in tokens.collisions}
    assert ("anger", "fear", "sadness") in groups and ("disgust", "joy") in groups
    assert "怒り" in tokens.collision_note()


def test_leading_bare_space_token_is_skipped(tiny_model):
    tok = tiny_model.tokenizer
    # ' 怒り' in the tiny tokenizer is 'Ġ' + bytes: the space alone says nothing
    ids = tok(" 怒り", add_special_tokens=False)["input_ids"]
    assert tok.decode([ids[0]]) == " "
    tokens = resolve(tok, ["怒り"], "en")
    assert tokens.ids["怒り"] == ids[1]


@pytest.mark.parametrize("label", ["\u200b", "\u200b\u200c"])
def test_label_with_no_visible_token_is_an_error(tiny_model, label):
    with pytest.raises(BadInput, match="has no token in tiny-llama's tokenizer"):
        resolve(tiny_model.tokenizer, ["anger", label], "en", tiny_model.name)


def test_labels_command_reports_japanese_collisions(run_cli):
    r = run_cli("labels", "--model", "tiny-llama", "--lang", "ja", "--json")
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    assert out["names"]["joy"] == "喜び"
    assert ["disgust", "joy"] in out["collisions"]
    r = run_cli("labels", "--model", "tiny-llama", "--lang", "ja")
    assert r.exit_code == 0 and "labels sharing a first token" in r.output


def test_labels_command_label_with_no_token(run_cli):
    r = run_cli("labels", "--model", "tiny-llama", "--labels", "anger,\u200b")
    assert r.exit_code == 2
    assert "has no token" in r.output and len(r.output.strip().splitlines()) == 1


def test_shipped_parallel_texts_are_paired():
    rows = parallel_texts()
    assert {r["split"] for r in rows} == {"train", "prompt"}
    for r in rows:
        assert r["en"].strip() and r["ja"].strip()
        assert any(ord(c) > 0x3000 for c in r["ja"])  # really Japanese
    labels = {r["label"] for r in rows if r["split"] == "train"}
    assert labels == set(EKMAN)
    assert set(LANGUAGES) == {"en", "ja"}
