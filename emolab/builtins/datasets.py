"""Built-in datasets: GoEmotions (28 labels and Ekman-7), the Tigges review template,
and user csv/jsonl files."""

from __future__ import annotations

import random

from ..api import DatasetSource, Example, Param
from ..data import EKMAN6, datafile, read_goemotions, read_user_file, split_examples
from ..hookspecs import hookimpl


class GoEmotions(DatasetSource):
    name = "goemotions"
    description = "GoEmotions (Demszky et al. 2020): Reddit comments, 28 labels, single-label rows"
    folder = "goemotions"

    def labels(self, spec: str) -> list[str]:
        return read_goemotions(self.folder, "train")[0]

    def load(self, spec: str, split: str) -> list[Example]:
        self.check_split(split)
        return read_goemotions(self.folder, split)[1]


class GoEmotionsEkman(GoEmotions):
    name = "goemotions-ekman"
    description = f"GoEmotions mapped to Ekman: {', '.join(EKMAN6)}, neutral"
    folder = "goemotions/ekman"


class TiggesReviews(DatasetSource):
    name = "tigges-reviews"
    description = "Toy movie reviews (Tigges et al. 2023): positive vs negative adjective template"
    template = "I thought this movie was{adj}, I{verb} it. \nConclusion: This movie is"

    def _lists(self) -> dict:
        import yaml

        return yaml.safe_load(datafile("tigges", "prompts.yaml").read_text(encoding="utf-8"))

    def labels(self, spec: str) -> list[str]:
        return ["positive", "negative"]

    def load(self, spec: str, split: str) -> list[Example]:
        """train/test use disjoint adjective lists; dev mixes both with other verbs."""
        self.check_split(split)
        lists = self._lists()
        part = "test" if split == "test" else "train"
        out = []
        for label in ("positive", "negative"):
            adjs = lists[f"{label}_adjectives_{part}"]
            verbs = lists[f"{label}_verbs"]
            rng = random.Random(f"{split}-{label}")
            for adj in adjs:
                verb = rng.choice(verbs)
                out.append(Example(self.template.format(adj=" " + adj, verb=" " + verb), label))
        return out


class UserFile(DatasetSource):
    name = "csv"
    prefix = "csv:"
    description = "Your own csv file with text and label columns: csv:<path>"
    params = (
        Param("text_column", str, "text", "column holding the text"),
        Param("label_column", str, "label", "column holding the label"),
        Param("seed", int, 0, "seed of the per-label shuffle behind the train/dev/test split"),
    )

    def _all(self, spec: str) -> list[Example]:
        kind = self.prefix[:-1]
        return read_user_file(spec[len(self.prefix) :], kind, self.text_column, self.label_column)

    def labels(self, spec: str) -> list[str]:
        return sorted({ex.label for ex in self._all(spec)})

    def load(self, spec: str, split: str) -> list[Example]:
        """A file has no splits: a 70/10/20 split per label, shuffled with `seed`."""
        self.check_split(split)
        return split_examples(self._all(spec), split, int(self.seed))


class UserJsonl(UserFile):
    name = "jsonl"
    prefix = "jsonl:"
    description = "Your own jsonl file with text and label fields: jsonl:<path>"


@hookimpl
def register_datasets(register):
    for source in (GoEmotions(), GoEmotionsEkman(), TiggesReviews(), UserFile(), UserJsonl()):
        register(source)
