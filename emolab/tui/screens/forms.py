"""Dialogs that collect a step's parameters. Every list of component names in them comes
from the plugin registry, so a registered third-party extractor, dataset, model,
intervention, evaluator or aligner appears beside the built-ins with no TUI change."""

from __future__ import annotations

from collections.abc import Sequence

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Select, SelectionList, Static

from ...data import EKMAN6
from ..widgets import SteadyInput


def registry_names(kind: str) -> list[str]:
    """Names of the registered components of `kind` a user can pick as they are (sources
    that need a suffix, such as `hf:` or `csv:`, are typed instead)."""
    from ... import plugins

    table = plugins.registry().components[kind]
    return [n for n in sorted(table) if not getattr(table[n], "prefix", None)]


def registry_choices(kind: str, keep: Sequence[str] = ()) -> list[tuple[str, str]]:
    """(label, name) pairs for a Select; names in `keep` stay even when not registered
    (a model given on the command line, e.g. `hf:gpt2`)."""
    names = list(dict.fromkeys([*keep, *registry_names(kind)]))
    return [(n, n) for n in names]


class FormScreen(ModalScreen[dict | None]):
    """A framed form: fields, an error line, start/cancel; enter in an input submits."""

    BINDINGS = [Binding("escape", "dismiss_form", "cancel")]
    TITLE_TEXT = ""

    def compose(self) -> ComposeResult:
        with Vertical(id="form"):
            yield Label(self.TITLE_TEXT, classes="title")
            yield from self.fields()
            yield Static(id="form-error", classes="error")
            with Horizontal(classes="buttons"):
                yield Button("start", variant="primary", id="start", compact=True)
                yield Button("cancel", id="cancel", compact=True)

    def fields(self) -> ComposeResult:
        yield from ()

    def field(self, label: str, widget) -> Horizontal:
        return Horizontal(Label(f"{label:>9} "), widget, classes="field")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.submit()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "start":
            self.submit()
        else:
            self.dismiss(None)

    def action_dismiss_form(self) -> None:
        self.dismiss(None)

    def fail(self, message: str) -> None:
        self.query_one("#form-error", Static).update(message)

    def submit(self) -> None:
        raise NotImplementedError


class ExtractForm(FormScreen):
    """Model, dataset, emotions, methods, limit -> the extract step's params."""

    TITLE_TEXT = "new extraction (then layer analysis)"

    def __init__(self, model: str) -> None:
        super().__init__()
        self.model = model

    def fields(self) -> ComposeResult:
        yield self.field(
            "model",
            Select(
                registry_choices("models", [self.model]),
                value=self.model,
                allow_blank=False,
                id="f-model",
                compact=True,
            ),
        )
        datasets = registry_names("datasets")
        yield self.field(
            "dataset",
            Select(
                registry_choices("datasets"),
                value="goemotions-ekman" if "goemotions-ekman" in datasets else datasets[0],
                allow_blank=False,
                id="f-dataset",
                compact=True,
            ),
        )
        yield self.field("emotions", SteadyInput(",".join(EKMAN6), id="f-emotions"))
        yield self.field("limit", SteadyInput("60", id="f-limit"))
        yield Label("methods (space toggles)", classes="field-title")
        yield SelectionList[str](
            *[(n, n, n == "mean_diff") for n in registry_names("extractors")],
            id="f-methods",
            compact=True,
        )

    def submit(self) -> None:
        try:
            limit = int(self.query_one("#f-limit", Input).value.strip())
        except ValueError:
            return self.fail("limit must be a whole number")
        if limit < 1:
            return self.fail("limit must be at least 1")
        raw = self.query_one("#f-emotions", Input).value
        emotions = [e.strip() for e in raw.split(",") if e.strip()]
        methods = list(self.query_one("#f-methods", SelectionList).selected)
        if not emotions or not methods:
            return self.fail("pick at least one emotion and one method")
        self.dismiss(
            {
                "model": str(self.query_one("#f-model", Select).value),
                "dataset": str(self.query_one("#f-dataset", Select).value),
                "emotions": emotions,
                "methods": methods,
                "limit": limit,
            }
        )


class SteerOptions(FormScreen):
    """The intervention that steers and the evaluators that judge it, from the registry."""

    TITLE_TEXT = "steering options"

    def __init__(
        self, intervention: str, evaluators: Sequence[str], max_new_tokens: int, span: int = 1
    ) -> None:
        super().__init__()
        self.intervention = intervention
        self.evaluators = list(evaluators)
        self.max_new_tokens = max_new_tokens
        self.span = span

    def fields(self) -> ComposeResult:
        yield self.field(
            "steer by",
            Select(
                registry_choices("interventions", [self.intervention]),
                value=self.intervention,
                allow_blank=False,
                id="f-intervention",
                compact=True,
            ),
        )
        yield self.field("tokens", SteadyInput(str(self.max_new_tokens), id="f-tokens"))
        # layers L..L+span-1, alpha split over them: the push a sweep's span cell gives
        yield self.field("span", SteadyInput(str(self.span), id="f-span"))
        yield Label("evaluators (space toggles)", classes="field-title")
        yield SelectionList[str](
            *[(n, n, n in self.evaluators) for n in registry_names("evaluators")],
            id="f-evaluators",
            compact=True,
        )

    def submit(self) -> None:
        try:
            tokens = int(self.query_one("#f-tokens", Input).value.strip())
        except ValueError:
            return self.fail("tokens must be a whole number")
        if not 1 <= tokens <= 512:
            return self.fail("tokens must be between 1 and 512")
        try:
            span = int(self.query_one("#f-span", Input).value.strip())
        except ValueError:
            return self.fail("span must be a whole number of layers")
        if span < 1:
            return self.fail("span must be at least 1 layer")
        self.dismiss(
            {
                "intervention": str(self.query_one("#f-intervention", Select).value),
                "evaluators": list(self.query_one("#f-evaluators", SelectionList).selected),
                "max_new_tokens": tokens,
                "span": span,
            }
        )


class AlignForm(FormScreen):
    """Which registered aligner (or all), its parameters and how many permutation draws ->
    the align step. Parameters are checked against the aligner's declaration here, so a
    typo is a line in the form, not a failed step."""

    TITLE_TEXT = "align the open session (A) with the highlighted one (B)"

    def __init__(self, session_a: str, session_b: str) -> None:
        super().__init__()
        self.pair = f"A {session_a}  ·  B {session_b}"

    def fields(self) -> ComposeResult:
        yield Label(self.pair, classes="field-title")
        yield self.field(
            "aligner",
            Select(
                [("all", "all"), *registry_choices("aligners")],
                value="all",
                allow_blank=False,
                id="f-aligner",
                compact=True,
            ),
        )
        yield self.field("params", SteadyInput("", placeholder="key=value ...", id="f-params"))
        yield self.field("draws", SteadyInput("200", id="f-draws"))

    def submit(self) -> None:
        from ... import plugins
        from ...errors import EmolabError
        from ...params import parse_assignments

        try:
            draws = int(self.query_one("#f-draws", Input).value.strip())
        except ValueError:
            return self.fail("draws must be a whole number")
        if draws < 1:
            return self.fail("draws must be at least 1")
        method = str(self.query_one("#f-aligner", Select).value)
        raw = self.query_one("#f-params", Input).value.replace(",", " ").split()
        form: dict = {"method": method, "draws": draws}
        if raw:
            if method == "all":
                return self.fail("parameters belong to one aligner: pick it instead of all")
            try:
                given = parse_assignments(raw, "params")
                plugins.get("aligners", method, **given)
            except EmolabError as exc:
                return self.fail(str(exc))
            form["aligner_params"] = {method: given}
        self.dismiss(form)
