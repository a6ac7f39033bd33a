"""Strict reading of users' csv/jsonl files: one case per way a real file goes wrong, each
read through the same dataset source the steps use (`csv:` / `jsonl:`)."""

import json

import pytest

from emolab import plugins
from emolab.data import read_user_file, split_examples
from emolab.errors import BadInput


def read(tmp_path, content: bytes, kind="csv", **cols):
    f = tmp_path / f"d.{kind}"
    f.write_bytes(content)
    return read_user_file(str(f), kind, cols.get("text", "text"), cols.get("label", "label"))


def test_quoted_newline_stays_inside_the_text(tmp_path):
    rows = read(tmp_path, b'text,label\n"I am so happy\ntoday, really",joy\nplain,sad\n')
    assert [(r.text, r.label) for r in rows] == [
        ("I am so happy\ntoday, really", "joy"),
        ("plain", "sad"),
    ]


def test_bom_and_crlf(tmp_path):
    rows = read(tmp_path, "\ufefftext,label\r\nhello there,joy\r\nbye now,sad\r\n".encode())
    assert [(r.text, r.label) for r in rows] == [("hello there", "joy"), ("bye now", "sad")]


def test_u2028_does_not_split_a_row(tmp_path):
    text = "first part\u2028second part"
    rows = read(tmp_path, f"text,label\n{text},joy\n".encode())
    assert [r.text for r in rows] == [text]
    rows = read(
        tmp_path,
        (json.dumps({"text": text, "label": "joy"}, ensure_ascii=False) + "\n").encode(),
        "jsonl",
    )
    assert [r.text for r in rows] == [text]


def test_extra_field_from_an_unquoted_comma_names_the_line(tmp_path):
    with pytest.raises(BadInput, match=r"line 3: 3 fields, the header has 2 \(an unquoted comma"):
        read(tmp_path, b"text,label\nfine,joy\nhappy, really,joy\n")


def test_missing_field_names_the_line(tmp_path):
    with pytest.raises(BadInput, match=r"line 2: 1 fields, the header has 2"):
        read(tmp_path, b"text,label\nno label here\n")


def test_extra_columns_in_the_header_are_fine_and_a_missing_one_is_named(tmp_path):
    rows = read(tmp_path, b"id,text,label,source\n1,hi there,joy,web\n")
    assert [(r.text, r.label) for r in rows] == [("hi there", "joy")]
    with pytest.raises(BadInput, match=r"no column 'label' \(columns: id, text\)"):
        read(tmp_path, b"id,text\n1,hi\n")
    with pytest.raises(BadInput, match="line 1: column 'text' appears twice"):
        read(tmp_path, b"text,text,label\na,b,c\n")


def test_label_zero_is_a_label(tmp_path):
    assert {r.label for r in read(tmp_path, b"text,label\nsome text,0\nother text,1\n")} == {
        "0",
        "1",
    }
    jl = b'{"text": "some text", "label": 0}\n{"text": "other", "label": 1}\n'
    assert [r.label for r in read(tmp_path, jl, "jsonl")] == ["0", "1"]


def test_duplicate_texts(tmp_path):
    rows = read(tmp_path, b"text,label\nsame,joy\nsame,joy\nother,sad\n")
    assert [r.text for r in rows] == ["same", "other"]  # an exact repeat counts once
    with pytest.raises(BadInput, match=r"line 3: the same text as line 2 under another label"):
        read(tmp_path, b"text,label\nsame,joy\nsame,sad\n")


@pytest.mark.parametrize(
    "content,message",
    [
        (b"", "empty file"),
        (b"\n\n  \n", "empty file"),
        (b"text,label\n", r"no examples \(only a header\)"),
        (b"text,label\n,joy\n", "line 2: empty text"),
        (b"text,label\nhello,\n", "line 2: empty label"),
    ],
)
def test_empty_things(tmp_path, content, message):
    with pytest.raises(BadInput, match=message):
        read(tmp_path, content)


def test_binary_and_non_utf8_files(tmp_path):
    with pytest.raises(BadInput, match=r"line 1: NUL byte at offset 4 \(a binary file"):
        read(tmp_path, b"\x89PNG\x00\x00\x1a\n")
    with pytest.raises(BadInput, match=r"line 3: not UTF-8 text \(byte \d+\)"):
        read(tmp_path, b"text,label\nok,joy\n\xff\xfe bad,sad\n")


def test_100k_character_text_is_read_whole(tmp_path):
    long = "a" * 100_000 + " end"
    rows = read(tmp_path, f"text,label\n{long},joy\n".encode())
    assert rows[0].text == long
    rows = read(tmp_path, (json.dumps({"text": long, "label": "joy"}) + "\n").encode(), "jsonl")
    assert rows[0].text == long


@pytest.mark.parametrize(
    "line,message",
    [
        (b"{not json", r"line 2: not valid JSON"),
        (b"[1, 2]", r"line 2: not a JSON object"),
        (b'{"text": "x"}', r"line 2: no field 'label'"),
        (b'{"text": ["x"], "label": "a"}', r"line 2: text must be a string or a number, got list"),
        (b'{"text": "x", "label": true}', r"line 2: label must be a string or a number, got bool"),
        (b'{"text": "x", "label": null}', r"line 2: empty label"),
    ],
)
def test_jsonl_errors_carry_the_line_number(tmp_path, line, message):
    with pytest.raises(BadInput, match=message):
        read(tmp_path, b'{"text": "fine", "label": "joy"}\n' + line + b"\n", "jsonl")


def test_jsonl_crlf_and_blank_lines(tmp_path):
    rows = read(
        tmp_path,
        b'{"text": "a b", "label": "joy"}\r\n\r\n{"text": "c d", "label": "sad"}\r\n',
        "jsonl",
    )
    assert [r.label for r in rows] == ["joy", "sad"]


def test_splits_are_shuffled_with_the_seed_and_disjoint(tmp_path):
    f = tmp_path / "d.csv"
    f.write_text("text,label\n" + "".join(f"text {i},{'a' if i % 2 else 'b'}\n" for i in range(40)))
    spec = f"csv:{f}"

    def split(name, seed):
        return [e.text for e in plugins.get("datasets", spec, seed=seed).load(spec, name)]

    train, dev, test = split("train", 0), split("dev", 0), split("test", 0)
    assert len(train) == 28 and len(dev) == 4 and len(test) == 8
    assert not set(train) & set(test) and not set(dev) & set(test)
    in_order = [f"text {i}" for i in range(0, 40, 2)][:14]
    assert [t for t in train if int(t.split()[1]) % 2 == 0] != in_order  # shuffled, not file order
    assert split("train", 0) == train  # same seed, same split
    assert split("train", 1) != train  # the seed matters
    rows = read_user_file(str(f), "csv", "text", "label")
    assert split_examples(rows, "test", 0) == split_examples(rows, "test", 0)


def test_extract_records_the_split_seed_and_the_file_hash(tmp_path):
    from emolab.steps import extract
    from emolab.steps.common import new_session

    f = tmp_path / "d.csv"
    labels = ["joy", "anger", "neutral"]
    f.write_text(
        "text,label\n"
        + "".join(f"a {lab} sentence {i} here,{lab}\n" for i in range(10) for lab in labels)
    )
    s = new_session(tmp_path / "s", "tiny-llama", seed=7)
    extract.run(
        s,
        {
            "dataset": f"csv:{f}",
            "emotions": ["joy", "anger"],
            "baseline": "neutral",
            "limit": 5,
            "test_limit": 2,
        },
    )
    ev = s.steps()[-1]
    assert ev["inputs"]["split_seed"] == 7
    assert ev["inputs"]["dataset"]["path"] == str(f.resolve())
    assert s.manifest["inputs"][str(f.resolve())] == ev["inputs"]["dataset"]["sha256"]
