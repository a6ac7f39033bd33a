"""Emotion datasets (shipped GoEmotions, the Tigges review template, user csv/jsonl files)
and the prompt templates the steps share."""

from __future__ import annotations

import csv
import hashlib
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


def read_user_file(path: str, kind: str, text_col: str, label_col: str) -> list[Example]:
    """Read a csv or jsonl of labelled texts with one clear error per kind of problem."""
    p = Path(path)
    if not p.is_file():
        raise BadInput(f"dataset file not found: {path}")
    try:
        raw = p.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise BadInput(f"{path}: not UTF-8 text (byte {exc.start})") from None
    rows: list[dict] = []
    if kind == "csv":
        reader = csv.DictReader(raw.splitlines())
        cols = reader.fieldnames or []
        for col in (text_col, label_col):
            if col not in cols:
                raise BadInput(f"{path}: no column '{col}' (columns: {', '.join(cols) or 'none'})")
        rows = list(reader)
    else:
        for i, line in enumerate(raw.splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                raise BadInput(f"{path}: line {i} is not valid JSON") from None
            if not isinstance(row, dict):
                raise BadInput(f"{path}: line {i} is not a JSON object")
            for col in (text_col, label_col):
                if col not in row:
                    raise BadInput(f"{path}: line {i} has no field '{col}'")
            rows.append(row)
    examples = [
        Example(str(r[text_col]).strip(), str(r[label_col]).strip())
        for r in rows
        if str(r[text_col] or "").strip()
    ]
    if not examples:
        raise BadInput(f"{path}: no examples")
    empty = [r[label_col] for r in rows if not str(r[label_col] or "").strip()]
    if empty:
        raise BadInput(f"{path}: {len(empty)} row(s) with an empty label")
    return examples


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
