"""Emotion datasets (shipped GoEmotions, the Tigges review template, user csv/jsonl files)
and the prompt templates the steps share."""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections import Counter
from collections.abc import Sequence
from functools import lru_cache
from importlib import resources
from pathlib import Path

from .api import Example
from .errors import BadInput, UnknownName

EKMAN6 = ("anger", "disgust", "fear", "joy", "sadness", "surprise")

LIST_PROMPT = (
    "Consider the following emotions: {labels}. Which emotion does this context express? "
    "Context: '{text}' Answer:"
)

# Frames a labelled text is read in for context-agnostic directions (steps/contexts.py):
# bare, quoted as a message, as a diary line, as a transcript turn.
CONTEXT_TEMPLATES = (
    "{text}",
    'My friend sent me this message: "{text}"',
    "Diary, Tuesday evening. {text}",
    "Transcript of a phone call. Caller: {text}",
)

# Neutral prompts for steering: open enough that an emotion can colour the continuation.
NEUTRAL_PROMPTS = (
    "Write one sentence about your morning.",
    "Describe the weather today.",
    "Tell me about the last meal you ate.",
    "Write a short note to a coworker about a meeting.",
    "Describe the room you are in.",
    "What did you do last weekend?",
    "Write a sentence about a train journey.",
    "Describe a walk in the park.",
    "Tell me about your neighbour.",
    "Write a sentence about a letter you received.",
    "Describe the view from a window.",
    "Write about a phone call you had yesterday.",
    "Tell me about a book on the table.",
    "Describe a visit to the grocery store.",
    "Write a sentence about the news this morning.",
    "Tell me about a birthday party.",
    "Describe your commute to work.",
    "Write about a package that arrived.",
    "Tell me about a dog in the street.",
    "Describe an old photograph.",
)


def datafile(*parts: str) -> Path:
    """Path of a file shipped inside the package (never ../shared)."""
    return Path(str(resources.files("emolab").joinpath("datafiles", *parts)))


def list_prompt(text: str, labels: Sequence[str]) -> str:
    return LIST_PROMPT.format(labels=", ".join(labels), text=text)


def examples_hash(examples: Sequence[Example]) -> str:
    """A content hash of labelled texts: two sessions holding the same texts agree on it."""
    h = hashlib.sha256()
    for ex in examples:
        h.update(ex.label.encode() + b"\t" + ex.text.encode() + b"\n")
    return h.hexdigest()


@lru_cache(maxsize=8)
def read_goemotions(folder: str, split: str) -> tuple[list[str], list[Example]]:
    """Single-label rows of a GoEmotions-style split: (label names, examples)."""
    base = datafile(*folder.split("/"))
    names = (base / "labels.txt").read_text(encoding="utf-8").split()
    out = []
    with open(base / f"{split}.tsv", encoding="utf-8") as f:
        for row in csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE):
            ids = row[1].split(",")
            if len(ids) == 1:
                out.append(Example(row[0], names[int(ids[0])]))
    return names, out


MAX_FIELD = 10_000_000  # characters in one csv field (the csv module's default is 131,072)


def _decode(path: str, raw: bytes) -> str:
    """UTF-8 text of a user file (a BOM is dropped); binary or other encodings are refused
    with the line and byte where reading stopped."""
    if b"\x00" in raw:
        pos = raw.index(b"\x00")
        line = raw.count(b"\n", 0, pos) + 1
        raise BadInput(
            f"{path}: line {line}: NUL byte at offset {pos} (a binary file, not csv/jsonl text)"
        )
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise BadInput(f"{path}: line {line}: not UTF-8 text (byte {exc.start})") from None


def _cell(value, what: str, where: str) -> str:
    """A text or label value: strings and numbers (a label `0` is a label), nothing else."""
    if value is None:
        return ""
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise BadInput(f"{where}: {what} must be a string or a number, got {type(value).__name__}")
    return str(value).strip()


def _csv_rows(path: str, text: str, text_col: str, label_col: str):
    """(line, text, label) per record, through the csv module: quoted fields may hold
    commas, newlines and U+2028; a record with more or fewer fields than the header is an
    error naming its line."""
    csv.field_size_limit(MAX_FIELD)
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = next(reader, None)
        if header is None or not any(h.strip() for h in header):
            raise BadInput(f"{path}: empty file (no header line)")
        header = [h.strip() for h in header]
        dupes = sorted({h for h in header if header.count(h) > 1})
        if dupes:
            raise BadInput(f"{path}: line 1: column '{dupes[0]}' appears twice in the header")
        for col in (text_col, label_col):
            if col not in header:
                raise BadInput(f"{path}: no column '{col}' (columns: {', '.join(header)})")
        ti, li = header.index(text_col), header.index(label_col)
        start = reader.line_num + 1
        for row in reader:
            line, start = start, reader.line_num + 1
            if not row:
                continue
            if len(row) != len(header):
                raise BadInput(
                    f"{path}: line {line}: {len(row)} fields, the header has {len(header)}"
                    + (" (an unquoted comma? quote the text)" if len(row) > len(header) else "")
                )
            yield line, row[ti], row[li]
    except csv.Error as exc:
        raise BadInput(f"{path}: line {reader.line_num}: bad csv ({exc})") from None


def _jsonl_rows(path: str, text: str, text_col: str, label_col: str):
    """(line, text, label) per line. Lines end at \\n only: JSON strings may hold U+2028."""
    for i, line in enumerate(text.split("\n"), 1):
        line = line.rstrip("\r")
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError as exc:
            raise BadInput(f"{path}: line {i}: not valid JSON ({str(exc).split(':')[0]})") from None
        if not isinstance(row, dict):
            raise BadInput(f"{path}: line {i}: not a JSON object")
        for col in (text_col, label_col):
            if col not in row:
                raise BadInput(f"{path}: line {i}: no field '{col}'")
        yield i, row[text_col], row[label_col]


def read_user_file(path: str, kind: str, text_col: str, label_col: str) -> list[Example]:
    """Read a csv or jsonl of labelled texts strictly: every problem is one error naming
    the file and line. Exact duplicates are kept once; one text under two labels is an
    error (it would sit in both classes, maybe in train and test)."""
    if kind not in ("csv", "jsonl"):
        raise BadInput(f"unknown file kind '{kind}' (known: csv, jsonl)")
    p = Path(path)
    if not p.is_file():
        raise BadInput(f"dataset file not found: {path}")
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise BadInput(f"{path}: cannot read ({exc.strerror})") from None
    if not raw.strip():
        raise BadInput(f"{path}: empty file")
    text = _decode(path, raw)
    rows = (_csv_rows if kind == "csv" else _jsonl_rows)(path, text, text_col, label_col)
    examples: list[Example] = []
    seen: dict[str, tuple[int, str]] = {}
    for line, t, lab in rows:
        where = f"{path}: line {line}"
        t, lab = _cell(t, "text", where), _cell(lab, "label", where)
        if not t:
            raise BadInput(f"{where}: empty text")
        if not lab:
            raise BadInput(f"{where}: empty label")
        if t in seen:
            first, first_label = seen[t]
            if first_label != lab:
                raise BadInput(
                    f"{where}: the same text as line {first} under another label "
                    f"('{lab}' vs '{first_label}')"
                )
            continue
        seen[t] = (line, lab)
        examples.append(Example(t, lab))
    if not examples:
        raise BadInput(f"{path}: no examples (only a header)")
    return examples


SPLIT_SHARES = (0.7, 0.8)  # train up to 70 %, dev to 80 %, test the rest, per label


def split_examples(examples: Sequence[Example], split: str, seed: int) -> list[Example]:
    """One split of a file with none: per label, a shuffle seeded by (seed, label), then
    70/10/20. The seed is the session's, so the split is recorded and reproducible."""
    import random

    by: dict[str, list[Example]] = {}
    for ex in examples:
        by.setdefault(ex.label, []).append(ex)
    out = []
    for label, items in by.items():
        items = list(items)
        random.Random(f"{seed}:{label}").shuffle(items)
        n = len(items)
        cut1, cut2 = round(n * SPLIT_SHARES[0]), round(n * SPLIT_SHARES[1])
        if n < 3:
            cut1 = cut2 = n - 1 if n > 1 else n
        parts = {"train": items[:cut1], "dev": items[cut1:cut2], "test": items[cut2:]}
        out.extend(parts[split])
    return out


def by_label(examples: Sequence[Example]) -> dict[str, list[Example]]:
    out: dict[str, list[Example]] = {}
    for ex in examples:
        out.setdefault(ex.label, []).append(ex)
    return out


def select(
    examples: Sequence[Example], labels: Sequence[str], limit: int | None, name: str
) -> dict[str, list[Example]]:
    """Up to `limit` examples of each wanted label, in file order; an empty class is an error."""
    groups = by_label(examples)
    counts = Counter(ex.label for ex in examples)
    out = {}
    for label in labels:
        if label not in groups:
            raise UnknownName(
                f"dataset '{name}' has no label '{label}' (labels: {', '.join(sorted(counts))})"
            )
        out[label] = groups[label][:limit] if limit else groups[label]
    return out
