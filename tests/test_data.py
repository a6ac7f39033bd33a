import pytest

from emolab import plugins
from emolab.errors import BadInput


def load(spec, split="train", **params):
    return plugins.get("datasets", spec, **params).load(spec, split)


def test_goemotions_single_label_splits():
    train = load("goemotions-ekman")
    assert {e.label for e in train} == {
        "anger",
        "disgust",
        "fear",
        "joy",
        "neutral",
        "sadness",
        "surprise",
    }
    assert len(load("goemotions", "test")) > 4000


def test_tigges_template_and_disjoint_splits():
    train, test = load("tigges-reviews"), load("tigges-reviews", "test")
    assert train[0].text.startswith("I thought this movie was ")
    assert train[0].text.endswith("\nConclusion: This movie is")
    assert "  " not in train[0].text
    adj = lambda ex: ex.text.split("was ")[1].split(",")[0]  # noqa: E731
    assert not {adj(e) for e in train} & {adj(e) for e in test}


def test_user_csv_and_jsonl(tmp_path):
    f = tmp_path / "d.csv"
    f.write_text(
        "sentence,emo\n" + "".join(f"text number {i},{'a' if i % 2 else 'b'}\n" for i in range(20))
    )
    rows = load(f"csv:{f}", text_column="sentence", label_column="emo")
    assert {r.label for r in rows} == {"a", "b"} and len(rows) == 14
    j = tmp_path / "d.jsonl"
    j.write_text(
        '{"text": "今日はとても嬉しい", "label": "joy"}\n{"text": "悲しい", "label": "sad"}\n'
    )
    assert load(f"jsonl:{j}")[0].text == "今日はとても嬉しい"


@pytest.mark.parametrize(
    "content,message",
    [
        (b"text,label\n", "no examples"),
        (b"words,label\nhello,a\n", "no column 'text'"),
        (b"text,label\nhello,\n", "empty label"),
        (b"text,label\n\xff\xfe bad,a\n", "not UTF-8"),
    ],
)
def test_bad_user_files(tmp_path, content, message):
    f = tmp_path / "bad.csv"
    f.write_bytes(content)
    with pytest.raises(BadInput, match=message):
        load(f"csv:{f}")


def test_bad_jsonl_and_missing_file(tmp_path):
    j = tmp_path / "bad.jsonl"
    j.write_text('{"text": "x", "label": "a"}\n{oops\n')
    with pytest.raises(BadInput, match="line 2: not valid JSON"):
        load(f"jsonl:{j}")
    with pytest.raises(BadInput, match="not found"):
        load(f"jsonl:{tmp_path / 'none.jsonl'}")
