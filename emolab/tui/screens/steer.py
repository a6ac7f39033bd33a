"""The steer screen: one prompt generated with and without h + alpha*v, side by side, each
pane with the judge's verdict on it (P(target emotion), success) and the other
evaluators' metrics below. Everything shown is what the steer step returned and logged."""

from __future__ import annotations

import json
from pathlib import Path

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import Input, Static

from ... import results
from ...data import NEUTRAL_PROMPTS
from ..widgets import SteadyInput, printable
from .base import LabScreen
from .forms import SteerOptions, registry_names

JUDGE = "classifier"


def judge_available() -> bool:
    """The external judge needs its encoder wheel; without it steering is judged by the
    model's own label logits only (and the screen says so)."""
    from ...classifier import encoder_dir
    from ...errors import EmolabError

    try:
        encoder_dir()
    except EmolabError:
        return False
    return True


def default_evaluators() -> list[str]:
    names = ["label_logit_shift"]
    if JUDGE in registry_names("evaluators") and judge_available():
        names.append(JUDGE)
    return names


def verdicts(metrics: dict, target: str) -> tuple[Text, Text]:
    """The judge's verdict on the baseline and on the steered texts: P(target) from the
    classifier evaluator, and the steer step's success rate (top label = target and the text
    still surgical) beside the unsteered text and a random direction of the same size."""
    if "p_target" not in metrics:
        off = Text("not judged (o: evaluators)", style="dim")
        return off, off.copy()

    def line(p: float | None, won: float | None, rise=None, random=None) -> Text:
        """Two lines that fit a pane at 80 columns: P(target) (and its rise), success."""
        text = Text("judge ", style="dim")
        text.append(f"P({target}) ", style="dim")
        text.append("-" if p is None else f"{p:.2f}", style="bold")
        if rise is not None:
            text.append(f" ({rise:+.2f})", style="green" if rise > 0 else "red")
        text.append("\n")
        if won is not None:
            text.append("success ", style="dim")
            text.append(f"{100 * won:.0f}%", style="bold")
            if random is not None:
                text.append(f" (random dir {100 * random:.0f}%)", style="dim")
        return text

    p, base = metrics["p_target"], metrics.get("p_target_baseline")
    rise = metrics.get("p_target_rise", None if base is None else p - base)
    return (
        line(base, metrics.get("success_baseline")),
        line(p, metrics.get("success"), rise, metrics.get("success_random")),
    )


def layer_range(layer, span: int) -> str:
    """'10' for one layer, '10-12' for a span of three (as the sweep table writes it)."""
    return str(layer) if span <= 1 or layer is None else f"{layer}-{int(layer) + span - 1}"


class PromptInput(SteadyInput):
    """The prompt box: enter generates, esc hands the keys back to the screen."""

    BINDINGS = [Binding("escape", "leave", "done editing")]

    def action_leave(self) -> None:
        self.screen.set_focus(None)


class SteerScreen(LabScreen):
    MODE = "steer"
    AUTO_FOCUS = ""  # keys step the parameters; `p` focuses the prompt
    BINDINGS = [
        Binding("p", "prompt", "prompt"),
        Binding("e", "emotion", "emotion"),
        Binding("left_square_bracket", "layer(-1)", "layer", key_display="[ ]"),
        Binding("right_square_bracket", "layer(1)", "layer+", show=False),
        Binding("minus", "alpha(-1)", "alpha", key_display="- +"),
        Binding("equals_sign,plus", "alpha(1)", "alpha+", show=False),
        Binding("o", "options", "options"),
        Binding("g", "generate", "generate"),
    ]
    ALPHA_STEP = 0.05

    def __init__(self) -> None:
        super().__init__()
        self.emotion_i = 0
        self.steer_layer: int | None = None
        self.alpha = 0.3
        self.span = 1  # layers steered from steer_layer on (a sweep can choose more)
        self.max_new_tokens = 32
        self.intervention = "residual_add"
        self.evaluators: list[str] | None = None
        self.session_path: Path | None = None

    def body(self) -> ComposeResult:
        yield PromptInput(
            NEUTRAL_PROMPTS[0],
            id="prompt",
            placeholder="prompt (p to edit, enter to generate)",
        )
        yield Static(id="steer-params", classes="title")
        with Horizontal(id="steer-out"):
            with VerticalScroll(classes="pane"):
                yield Static("baseline", classes="pane-title")
                yield Static(id="baseline-judge", classes="judge")
                yield Static(id="baseline")
            with VerticalScroll(classes="pane"):
                yield Static("steered", classes="pane-title", id="steered-title")
                yield Static(id="steered-judge", classes="judge")
                yield Static(id="steered")
        yield Static(id="steer-metrics")

    def refresh_data(self) -> None:
        session = self.lab.session
        if self.evaluators is None:
            self.evaluators = default_evaluators()
        if session is not None and session.path != self.session_path:
            from ...steps.steer import default_setting

            self.session_path = session.path
            emotions = self.session_emotions()
            self.emotion_i = emotions.index("joy") if "joy" in emotions else 0
            self.steer_layer = None
            if emotions:  # where the steer step itself would steer (sweep or layers choice)
                setting = default_setting(session, emotions[self.emotion_i])
                self.steer_layer, self.alpha = setting["layer"], setting["alpha"]
                self.span = setting["span"]
            self.show_logged(session)
        self.show_params()

    def show_params(self) -> None:
        session = self.lab.session
        emotions = self.session_emotions()
        params = self.query_one("#steer-params", Static)
        if session is None or not emotions:
            params.update(self.no_session_text("this session has no vectors yet"))
            return
        n_layers = session.manifest["model"].get("layers", "?")
        params.update(
            Text.assemble(
                ("emotion ", "dim"),
                (emotions[self.emotion_i], "bold cyan"),
                (" (e) · layer ", "dim"),
                (layer_range(self.steer_layer, self.span), "bold cyan"),
                (f"/{n_layers} ([ ]) · alpha ", "dim"),
                (f"{self.alpha:.2f}", "bold cyan"),
                (" (- +) · judge ", "dim"),
                ("on" if JUDGE in (self.evaluators or []) else "off", "bold cyan"),
                (" (o)", "dim"),
            )
        )

    def action_prompt(self) -> None:
        self.query_one("#prompt", Input).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.set_focus(None)
        self.action_generate()

    def action_emotion(self) -> None:
        emotions = self.session_emotions()
        if emotions:
            self.emotion_i = (self.emotion_i + 1) % len(emotions)
            self.show_params()

    def action_layer(self, step: int) -> None:
        session = self.lab.session
        if session is None or self.steer_layer is None:
            return
        n_layers = int(session.manifest["model"]["layers"])
        # the whole span stays inside the model
        self.steer_layer = max(0, min(n_layers - self.span, self.steer_layer + step))
        self.show_params()

    def set_span(self, span: int) -> None:
        """A span that would run past the last layer starts lower (the steer step refuses
        one that runs past it; the screen keeps the setting steerable instead)."""
        session = self.lab.session
        if session is None or self.steer_layer is None:
            self.span = span
            return
        n_layers = int(session.manifest["model"]["layers"])
        self.span = min(span, n_layers)
        self.steer_layer = min(self.steer_layer, n_layers - self.span)

    def action_alpha(self, step: int) -> None:
        self.alpha = round(self.alpha + step * self.ALPHA_STEP, 4)
        self.show_params()

    def action_options(self) -> None:
        def chosen(form: dict | None) -> None:
            if form:
                self.intervention = form["intervention"]
                self.evaluators = form["evaluators"]
                self.max_new_tokens = form["max_new_tokens"]
                self.set_span(form["span"])
                self.show_params()

        options = SteerOptions(
            self.intervention, self.evaluators or [], self.max_new_tokens, self.span
        )
        self.app.push_screen(options, chosen)

    def action_generate(self) -> None:
        session = self.need_session()
        emotions = self.session_emotions()
        if session is None or not emotions:
            return
        params = {
            "emotion": emotions[self.emotion_i],
            "layer": self.steer_layer,
            "alpha": self.alpha,
            "span": self.span,
            "prompts": [self.query_one("#prompt", Input).value],
            "max_new_tokens": self.max_new_tokens,
            "evaluators": list(self.evaluators or []),
            "intervention": self.intervention,
        }
        if JUDGE in params["evaluators"]:  # the step's success rate, by the same judge
            from ... import plugins

            judge = plugins.registry().get("evaluators", JUDGE)
            params.update(success=True, judge=judge.judge, judge_train_limit=judge.train_limit)

        def job(progress):
            from ...steps import steer

            return steer.run(session, params, progress)

        for key in ("baseline", "steered"):
            self.query_one(f"#{key}", Static).update(Text("generating...", style="dim"))
            self.query_one(f"#{key}-judge", Static).update("")
        self.lab.start_work(f"steer {params['emotion']}", job, self.show_result)

    def show_text(self, key: str, index: int, text: str) -> None:
        """Tokens as they arrive, with a cursor, until the result replaces them."""
        if index == 0 and key in ("baseline", "steered"):
            self.query_one(f"#{key}", Static).update(Text(printable(text) + "▌"))

    def show_result(self, result: dict) -> None:
        self.show(result["baseline"][0], result["steered"][0], result["metrics"], result["params"])

    def show_logged(self, session) -> None:
        """The session's latest steering, as its step logged it (texts from its output)."""
        found = results.latest(session, "steer", suffix=".jsonl")
        if found is None:
            return
        first = json.loads(found.path.read_text(encoding="utf-8").splitlines()[0])
        # a setting the step chose itself is logged as None, its value under `choices`
        chosen = {k: c["value"] for k, c in (found.event.get("choices") or {}).items()}
        params = {**found.params, **chosen}
        self.show(first["baseline"], first["steered"], found.event.get("metrics", {}), params)

    def show(self, baseline: str, steered_text: str, m: dict, params: dict) -> None:
        self.query_one("#baseline", Static).update(Text(printable(baseline)))
        self.query_one("#steered", Static).update(Text(printable(steered_text)))
        how = params.get("intervention") or "residual_add"
        layers = layer_range(params.get("layer"), int(params.get("span") or 1))
        self.query_one("#steered-title", Static).update(
            f"steered: {params.get('emotion')} L{layers} a={params.get('alpha')}"
            + ("" if how == "residual_add" else f" · {how}")
        )
        base, steered = verdicts(m, params.get("emotion", ""))
        self.query_one("#baseline-judge", Static).update(base)
        self.query_one("#steered-judge", Static).update(steered)
        judged = {"p_target", "p_target_baseline", "p_target_rise"}
        judged |= {"success", "success_baseline", "success_random"}
        text = Text()
        for key in sorted(m):
            if "/" in key or key in judged:
                continue
            value = m[key]
            text.append(f"{key} ", style="dim")
            text.append(
                f"{value:+.3f}  " if isinstance(value, float) else f"{value}  ", style="bold"
            )
        self.query_one("#steer-metrics", Static).update(text)
