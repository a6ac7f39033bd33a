"""The TUI: pilot tests driving each screen, and SVG snapshots of each screen at 80x24 and
200x50.

Every session a screen reads is made by the real steps on tiny random models (extract,
layers, heads, steer, finetune + compare); nothing is written by hand. Snapshots run on
copies whose varying fields (creation time, host, step times and durations) are pinned,
from a fixed working directory, so a changed screen is a reviewed diff and nothing else is.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import shutil
import time
from pathlib import Path

import numpy as np
import pytest

from emolab import plugins, results
from emolab.errors import Cancelled
from emolab.plugins import PluginInfo
from emolab.session import Session
from emolab.tui.app import EmolabApp
from emolab.tui.screens import PluginsScreen
from emolab.tui.widgets import Heatmap, printable

SIZE = (80, 24)
SIZES = {"80x24": (80, 24), "200x50": (200, 50)}
LAB_PLUGINS = Path(__file__).parent / "tui_plugins"
STEER = {"emotion": "joy", "prompts": ["Describe the room you are in."], "max_new_tokens": 12}


def stabilise(path: Path) -> None:
    """Pin what differs between runs: manifest time/host/git, event times and durations."""
    mpath = path / "manifest.json"
    manifest = json.loads(mpath.read_text())
    manifest.update(created="2025-01-01T12:00:00+00:00", host="lab", git_rev=None)
    mpath.write_text(json.dumps(manifest, indent=2, sort_keys=True))
    events = [json.loads(line) for line in (path / "log.jsonl").read_text().splitlines() if line]
    for ev in events:
        ev["time"] = 1735732800.0
        if "duration_s" in ev:
            ev["duration_s"] = 1.0
    (path / "log.jsonl").write_text("".join(json.dumps(e, sort_keys=True) + "\n" for e in events))


def small_judge_default(mp: pytest.MonkeyPatch, train_limit: int) -> None:
    """Make the registered classifier evaluator use the small test judge (its parameter
    default), so a steer step run from the TUI loads the judge the fixture trained."""
    from emolab.builtins.evaluators.classifier import Classifier

    params = tuple(
        dataclasses.replace(p, default=train_limit) if p.name == "train_limit" else p
        for p in Classifier.params
    )
    mp.setattr(Classifier, "params", params)
    plugins.reset()


@pytest.fixture(scope="session")
def lab_template(tiny_session_dir, tmp_path_factory) -> Path:
    """The tiny session with what the TUI shows, each made by its step: the layer
    analysis, a head map of anger (both methods, the top heads checked exactly) and one
    steering of joy judged by the label logits."""
    from emolab.steps import heads, layers, steer

    dst = tmp_path_factory.mktemp("lab") / "tiny"
    shutil.copytree(tiny_session_dir, dst)
    session = Session.open(dst)
    layers.run(session, {})
    heads.run(session, {"emotion": "anger", "compare": True, "verify": 3, "layer": 3})
    steer.run(session, {**STEER, "evaluators": ["label_logit_shift"]})
    stabilise(dst)
    return dst


@pytest.fixture(scope="session")
def judged_template(lab_template, small_judge, tmp_path_factory) -> Path:
    """The lab session plus a steering judged by the external classifier (needs its
    MiniLM wheel; skipped without it)."""
    from emolab.steps import steer

    dst = tmp_path_factory.mktemp("judged") / "tiny"
    shutil.copytree(lab_template, dst)
    mp = pytest.MonkeyPatch()
    small_judge_default(mp, small_judge)
    try:
        steer.run(
            Session.open(dst),
            {
                **STEER,
                "evaluators": ["label_logit_shift", "classifier"],
                "success": True,
                "judge_train_limit": small_judge,
            },
        )
    finally:
        mp.undo()
        plugins.reset()
    stabilise(dst)
    return dst


def with_lab_plugins(tmp: Path) -> pytest.MonkeyPatch:
    """A registry that also loads tests/tui_plugins (the deep model, a plugin evaluator)."""
    folder = tmp / "lab-plugins"
    folder.mkdir(exist_ok=True)
    shutil.copy(LAB_PLUGINS / "tui_lab.py", folder)
    mp = pytest.MonkeyPatch()
    mp.setenv("EMOLAB_PLUGINS_DIR", str(folder))
    plugins.reset()
    return mp


@pytest.fixture(scope="session")
def deep_template(tmp_path_factory) -> Path:
    """A session on the 30-layer, 9-head random model: extraction, layers, a head map."""
    from emolab.steps import extract, heads, layers
    from emolab.steps.common import new_session

    root = tmp_path_factory.mktemp("deep")
    mp = with_lab_plugins(root)
    try:
        session = new_session(root / "deep", "tiny-deep")
        extract.run(session, {"emotions": ["anger", "joy"], "limit": 8, "test_limit": 4})
        layers.run(session, {})
        heads.run(session, {"emotion": "anger", "layer": 29})
    finally:
        mp.undo()
        plugins.reset()
    stabilise(session.path)
    return session.path


@pytest.fixture(scope="session")
def compare_template(lab_template, tmp_path_factory) -> Path:
    """The lab session as the base of a checkpoint comparison: tiny-llama fine-tuned for
    four steps (checkpoints at 2 and 4), the same extraction on each checkpoint, then the
    compare step."""
    from emolab.steps import compare, extract, finetune
    from emolab.steps.common import new_session

    root = tmp_path_factory.mktemp("cmp")
    ft = new_session(root / "ft", "tiny-llama")
    finetune.run(
        ft,
        {"steps": 4, "save_every": 2, "batch_size": 4, "limit": 4, "test_limit": 2, "lr": 3e-3},
    )
    base_params = Session.open(lab_template).steps()[0]["params"]
    others = []
    for ck in finetune.checkpoints(ft.path):
        s = new_session(root / ck.name, f"hf:{ck}")
        extract.run(s, {"limit": base_params["limit"], "test_limit": base_params["test_limit"]})
        others.append(str(s.path))
    dst = root / "tiny"
    shutil.copytree(lab_template, dst)
    compare.run(Session.open(dst), {"others": others})
    stabilise(dst)
    return dst


def into_cwd(template: Path, tmp_path: Path, monkeypatch) -> Path:
    """cwd = a fresh folder holding sessions/<name>; returns the relative session path."""
    monkeypatch.chdir(tmp_path)
    shutil.copytree(template, tmp_path / "sessions" / template.name)
    plugins.reset()
    return Path("sessions") / template.name


@pytest.fixture
def lab(lab_template, tmp_path, monkeypatch) -> Path:
    yield into_cwd(lab_template, tmp_path, monkeypatch)
    plugins.reset()


@pytest.fixture
def judged(judged_template, small_judge, tmp_path, monkeypatch) -> Path:
    path = into_cwd(judged_template, tmp_path, monkeypatch)
    small_judge_default(monkeypatch, small_judge)
    yield path
    plugins.reset()


@pytest.fixture
def deep(deep_template, tmp_path, monkeypatch) -> Path:
    yield into_cwd(deep_template, tmp_path, monkeypatch)
    plugins.reset()


@pytest.fixture
def lab_plugins(tmp_path):
    """The registry with tests/tui_plugins loaded, for this test."""
    mp = with_lab_plugins(tmp_path)
    yield
    mp.undo()
    plugins.reset()


def drive(app: EmolabApp, script) -> None:
    """Run `script(app, pilot)` against the app in a headless 80x24 terminal."""

    async def main():
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            await script(app, pilot)

    asyncio.run(main())


async def settle(app: EmolabApp, pilot, timeout: float = 120) -> None:
    """Wait until the background work (a core step in a thread worker) has finished."""
    t0 = time.monotonic()
    while app.progress is not None and time.monotonic() - t0 < timeout:
        await pilot.pause(0.1)
    await pilot.pause()
    assert app.progress is None, "work did not finish"


def text_of(app: EmolabApp, selector: str) -> str:
    widget = app.screen.query_one(selector)
    return str(widget.render())


# -- pilot tests --------------------------------------------------------------------------
def test_layers_screen_table_chart_and_cosines_follow_the_cursor(lab):
    async def script(app, pilot):
        assert app.current_mode == "layers"
        table = app.screen.query_one("#layer-table")
        assert table.row_count == 4  # tiny-llama has 4 layers
        assert "L0" in text_of(app, "#cosines")
        await pilot.press("down", "down")
        assert "L2" in text_of(app, "#cosines")
        assert app.screen.query_one("#layer-chart").cursor == 2
        title = text_of(app, "#layers-title")
        await pilot.press("e")
        assert text_of(app, "#layers-title") != title and "disgust" in text_of(app, "#layers-title")

    drive(EmolabApp(lab, root="sessions"), script)


def test_layers_compute_runs_the_step_in_a_worker(lab):
    for out in results.outputs(Session.open(lab), "layers", suffix=".json"):
        out.path.unlink()

    async def script(app, pilot):
        assert "press c" in text_of(app, "#layers-title")
        await pilot.press("c")
        assert app.work["title"] == "layers"  # started in the background; the UI answers
        await pilot.press("6")
        assert app.current_mode == "log"
        await settle(app, pilot)
        await pilot.press("2")
        assert app.screen.query_one("#layer-table").row_count == 4
        assert app.work["message"] == "layers: done", app.work

    drive(EmolabApp(lab, root="sessions"), script)
    kinds = [e["kind"] for e in Session.open(lab).steps()]
    assert kinds == ["extract", "layers", "heads", "steer", "layers"]  # the CLI's step, logged


def test_esc_cancels_running_work(lab):
    async def script(app, pilot):
        def job(progress):
            progress.task("waiting for esc", 0)
            while True:
                progress.check()
                time.sleep(0.01)

        app.start_work("long job", job)
        await pilot.pause(0.2)
        assert app.work["running"]
        await pilot.press("escape")
        await settle(app, pilot, timeout=10)
        assert app.work["message"] == "long job: cancelled"
        # the real steps stop the same way: Progress.check raises Cancelled
        with pytest.raises(Cancelled):
            from emolab.progress import Progress

            p = Progress()
            p.cancel()
            p.check()

    drive(EmolabApp(lab, root="sessions"), script)


def test_errors_in_work_are_shown_not_raised(lab):
    async def script(app, pilot):
        from emolab.errors import BadInput

        def job(progress):
            raise BadInput("that layer does not exist")

        app.start_work("steer", job)
        await settle(app, pilot)
        assert app.work == {
            "running": False,
            "title": "steer",
            "message": "steer: that layer does not exist",
            "level": "error",
        }

    drive(EmolabApp(lab, root="sessions"), script)


def test_sessions_screen_lists_opens_and_replays(lab):
    async def script(app, pilot):
        assert app.current_mode == "sessions" and app.session is None
        table = app.screen.query_one("#sessions")
        assert table.row_count == 1
        await pilot.press("enter")
        assert app.session is not None and app.session.name == "tiny"
        assert app.current_mode == "layers"
        await pilot.press("1", "r")
        await settle(app, pilot)
        assert "replayed into tiny-replay" in app.work["message"]
        assert "all match" in app.work["message"], app.work["message"]
        assert app.screen.query_one("#sessions").row_count == 2
        await pilot.press("home", "r")  # again: a new folder, the first replay is kept
        await settle(app, pilot)
        assert "replayed into tiny-replay-2" in app.work["message"], app.work["message"]

    drive(EmolabApp(root="sessions"), script)
    assert Session.open("sessions/tiny-replay").manifest["replay_of"]


def test_align_form_runs_a_registered_aligner_on_two_sessions(lab):
    shutil.copytree(lab, lab.parent / "tiny-b")  # the same extraction: CKA must be 1

    async def script(app, pilot):
        await pilot.press("1", "a")
        assert "highlight a second session" in app.work["message"]
        await pilot.press("down", "a")
        form = app.screen
        assert [v for _, v in form.query_one("#f-aligner")._options] == [
            "all",
            *plugins.registry().names("aligners"),
        ]
        form.query_one("#f-aligner").value = "procrustes"
        form.query_one("#f-params").value = "dim=0"
        await pilot.click("#start")
        error = str(form.query_one("#form-error").render())
        assert error == "procrustes: parameter 'dim' must be at least 1, got 0"
        form.query_one("#f-aligner").value = "cka"
        form.query_one("#f-params").value = ""
        form.query_one("#f-draws").value = "0"
        await pilot.click("#start")
        assert "at least 1" in str(form.query_one("#form-error").render())
        form.query_one("#f-draws").value = "20"
        form.query_one("#f-draws").focus()
        await pilot.press("enter")  # enter in a field starts, as the start button does
        await settle(app, pilot)
        assert app.work["message"].startswith("aligned: cka 1.00"), app.work

    drive(EmolabApp(lab, root="sessions"), script)
    step = Session.open(lab).steps()[-1]
    assert step["kind"] == "align" and step["params"]["method"] == ["cka"]
    assert step["params"]["draws"] == 20 and step["params"]["session_b"].endswith("tiny-b")


def test_new_extraction_form_runs_extract_and_layers(lab):
    async def script(app, pilot):
        await pilot.press("n")
        form = app.screen
        # every choice list is the registry's
        assert [v for _, v in form.query_one("#f-model")._options] == [
            "smollm2-135m",
            *[n for n in plugins.registry().names("models") if n not in ("hf", "smollm2-135m")],
        ]
        assert {v for _, v in form.query_one("#f-dataset")._options} == {
            "goemotions",
            "goemotions-ekman",
            "tigges-reviews",
        }
        methods = form.query_one("#f-methods")
        names = [methods.get_option_at_index(i).value for i in range(methods.option_count)]
        assert names == plugins.registry().names("extractors")
        assert methods.selected == ["mean_diff"]
        form.query_one("#f-model").value = "tiny-llama"
        form.query_one("#f-emotions").value = "joy,anger"
        form.query_one("#f-limit").value = "zero"
        await pilot.click("#start")
        assert "whole number" in str(form.query_one("#form-error").render())
        form.query_one("#f-limit").value = "6"
        form.query_one("#f-limit").focus()
        await pilot.press("enter")  # keyboard-first: enter in any field starts
        await settle(app, pilot)
        assert app.session is not None, app.work
        assert app.session.name.startswith("tiny-llama-")
        assert [e["kind"] for e in app.session.steps()] == ["extract", "layers"]
        assert app.current_mode == "layers"
        assert app.screen.query_one("#layer-table").row_count == 4

    drive(EmolabApp(root="sessions"), script)


def logged_heads(path: Path, emotion: str = "anger") -> dict:
    """What the heads step wrote for `emotion`, found the way the screen finds it."""
    found = results.latest(Session.open(path), "heads", suffix=".json", emotion=emotion)
    return json.loads(found.path.read_text())


def test_heads_detail_pane_shows_what_the_heads_step_measured(lab):
    written = logged_heads(lab)
    att = written["attention"]
    assert att["texts_with_summary_tokens"] > 0  # the tiny texts have commas and stops

    async def script(app, pilot):
        await pilot.press("3")
        heatmap = app.screen.query_one(Heatmap)
        assert "ablation (m)" in text_of(app, "#heads-title")  # the exact map first
        assert np.allclose(heatmap.matrix, written["maps"]["ablation"]["matrix"], equal_nan=True)
        await pilot.press("down", "right", "right")
        detail = text_of(app, "#head-detail")
        mass, ratio = att["mass"][1][2], att["ratio"][1][2]
        assert "L1 H2" in detail
        assert f"{100 * mass:.0f}% ({ratio:.1f}x uniform)" in detail
        assert f"over {att['texts_with_summary_tokens']} texts" in detail
        abl = written["maps"]["ablation"]["matrix"][1][2]
        attr = written["maps"]["attribution"]["matrix"][1][2]
        assert f"{abl:+.4f}" in detail and f"{attr:+.4f}" in detail
        # the heads the step checked exactly show their exact effect
        top = written["verify"]["heads"][0]
        for _ in range(2):
            await pilot.press("home", "left", "left", "left")
        for _ in range(top["layer"]):
            await pilot.press("down")
        for _ in range(top["unit"]):
            await pilot.press("right")
        assert f"exact {written['verify']['exact'][0]:+.4f}" in text_of(app, "#head-detail")
        # m shows the other map; the cursor stays on its head
        await pilot.press("m")
        assert "attribution (m)" in text_of(app, "#heads-title")
        assert heatmap.cursor == (top["layer"], top["unit"])
        # the detail pane sits beside the heatmap, on screen at 80 columns
        pane = app.screen.query_one("#head-detail").region
        assert pane.width > 0 and pane.right <= SIZE[0]
        assert heatmap.region.right <= pane.x
        await pilot.press("e")
        assert "no head map for disgust" in text_of(app, "#heads-title")

    drive(EmolabApp(lab, root="sessions"), script)


def test_heatmap_scrolls_over_all_30_layers_at_80x24(deep):
    written = logged_heads(deep)
    assert np.asarray(written["maps"]["attribution"]["matrix"]).shape == (30, 9)

    async def script(app, pilot):
        await pilot.press("3")
        heatmap = app.screen.query_one(Heatmap)
        shown = heatmap.visible()
        assert len(shown) < 30  # a page, not all of them
        assert f"L0-{shown.stop - 1} of 30" in text_of(app, "#heatmap")
        seen = set(shown)
        await pilot.press("pagedown")
        seen |= set(heatmap.visible())
        await pilot.press("end")
        seen |= set(heatmap.visible())
        assert seen == set(range(30))
        assert heatmap.cursor[0] == 29 and "L29" in text_of(app, "#heatmap")
        assert "L29 H0" in text_of(app, "#head-detail")
        for _ in range(29):
            await pilot.press("up")
        assert heatmap.visible().start == 0 and heatmap.cursor == (0, 0)
        await pilot.press("pagedown")
        assert heatmap.cursor[0] == len(shown)

    drive(EmolabApp(deep, root="sessions"), script)


def test_heads_screen_computes_a_map_with_the_heads_step(lab):
    async def script(app, pilot):
        await pilot.press("3", "e")
        assert "no head map for disgust" in text_of(app, "#heads-title")
        await pilot.press("c")
        await settle(app, pilot)
        heatmap = app.screen.query_one(Heatmap)
        assert heatmap.matrix.shape == (4, 4)
        assert np.isfinite(heatmap.matrix).any()
        step = app.session.steps()[-1]
        assert step["kind"] == "heads" and step["params"]["emotion"] == "disgust"
        assert f"step #{step['seq']}" in text_of(app, "#heads-title")

    drive(EmolabApp(lab, root="sessions"), script)


def test_steer_screen_keys_options_and_generation(lab, lab_plugins):
    async def script(app, pilot):
        await pilot.press("4")
        params = text_of(app, "#steer-params")
        assert "emotion joy" in params
        # the session's logged steering is on screen before anything runs
        logged = results.latest(app.session, "steer", suffix=".jsonl")
        first = json.loads(logged.path.read_text().splitlines()[0])
        assert text_of(app, "#steered") == printable(first["steered"])
        chosen = logged.event["choices"]["layer"]["value"]  # the step chose it, logged None
        assert text_of(app, "#steered-title").startswith(f"steered: joy L{chosen} a=")
        layer = app.screen.steer_layer
        await pilot.press("right_square_bracket", "plus", "plus", "minus")
        assert app.screen.steer_layer == min(layer + 1, 3)
        assert app.screen.alpha == pytest.approx(0.35)
        # options: interventions and evaluators are the registry's, a plugin's among them
        await pilot.press("o")
        form = app.screen
        steer_by = form.query_one("#f-intervention")
        offered = [v for _, v in steer_by._options]
        assert sorted(offered) == plugins.registry().names("interventions")
        assert offered[0] == steer_by.value == "residual_add"  # the current one first
        steer_by.value = "directional_ablation"
        chooser = form.query_one("#f-evaluators")
        names = [chooser.get_option_at_index(i).value for i in range(chooser.option_count)]
        assert names == plugins.registry().names("evaluators") and "length_change" in names
        chooser.deselect_all()
        chooser.select("label_logit_shift")
        chooser.select("length_change")
        form.query_one("#f-tokens").value = "10"
        await pilot.pause()
        await pilot.click("#start")
        assert app.screen.evaluators == ["label_logit_shift", "length_change"]
        assert "judge off" in text_of(app, "#steer-params")
        await pilot.press("p")
        prompt = app.screen.query_one("#prompt")
        assert prompt.has_focus
        prompt.value = "Tell me about the weather."
        streamed = []
        show = app.screen.show_text
        app.screen.show_text = lambda k, i, t: (streamed.append((k, i, t)), show(k, i, t))
        await pilot.press("enter")
        await settle(app, pilot)
        assert text_of(app, "#baseline") not in ("", "generating...")
        metrics = text_of(app, "#steer-metrics")
        assert "label_logit_shift" in metrics and "length_change" in metrics
        assert "not judged" in text_of(app, "#steered-judge")
        assert text_of(app, "#steered-title").endswith("· directional_ablation")
        # tokens streamed into both panes before the result replaced them
        assert {k for k, _, _ in streamed} == {"baseline", "steered"}
        assert text_of(app, "#steered").startswith(printable(streamed[-1][2]))

    drive(EmolabApp(lab, root="sessions"), script)
    steer = Session.open(lab).steps()[-1]
    assert steer["kind"] == "steer" and steer["params"]["prompts"] == ["Tell me about the weather."]
    assert steer["params"]["evaluators"] == ["label_logit_shift", "length_change"]
    assert steer["params"]["intervention"] == "directional_ablation"
    assert steer["params"]["max_new_tokens"] == 10


def test_steer_screen_steers_a_span_of_layers(lab, lab_plugins):
    async def script(app, pilot):
        await pilot.press("4")
        assert app.screen.span == 1  # the lab session has no sweep: one layer
        await pilot.press("o")
        form = app.screen
        form.query_one("#f-span").value = "0"
        await pilot.click("#start")
        assert "at least 1 layer" in str(form.query_one("#form-error").render())
        form.query_one("#f-span").value = "9"  # longer than the 4-layer model: clipped
        form.query_one("#f-tokens").value = "4"
        form.query_one("#f-span").focus()
        await pilot.press("enter")  # enter in a field starts, as the start button does
        assert app.screen.span == 4 and app.screen.steer_layer == 0
        await pilot.press("right_square_bracket")  # the span stays inside the model
        assert app.screen.steer_layer == 0
        await pilot.press("o")
        app.screen.query_one("#f-span").value = "2"
        chooser = app.screen.query_one("#f-evaluators")
        chooser.deselect_all()
        chooser.select("label_logit_shift")  # judged by the label logits: no judge to train
        app.screen.query_one("#f-span").focus()
        await pilot.press("enter")
        await pilot.press("right_square_bracket")
        assert (app.screen.span, app.screen.steer_layer) == (2, 1)
        assert "layer 1-2/4" in text_of(app, "#steer-params")
        await pilot.press("g")
        await settle(app, pilot)
        assert text_of(app, "#steered-title").startswith("steered: joy L1-2 a=")

    drive(EmolabApp(lab, root="sessions"), script)
    steer = Session.open(lab).steps()[-1]
    assert steer["kind"] == "steer" and steer["status"] == "ok"
    assert (steer["params"]["layer"], steer["params"]["span"]) == (1, 2)


def test_steer_screen_shows_the_judge_beside_the_baseline(judged):
    async def script(app, pilot):
        await pilot.press("4")
        assert "judge on" in text_of(app, "#steer-params")  # on when the judge is installed
        await pilot.press("g")
        await settle(app, pilot)
        m = app.session.steps()[-1]["metrics"]
        base, steered = text_of(app, "#baseline-judge"), text_of(app, "#steered-judge")
        assert f"P(joy) {m['p_target_baseline']:.2f}" in base
        assert f"P(joy) {m['p_target']:.2f} ({m['p_target_rise']:+.2f})" in steered
        assert f"success {100 * m['success']:.0f}%" in steered
        assert f"(random dir {100 * m['success_random']:.0f}%)" in steered
        assert f"success {100 * m['success_baseline']:.0f}%" in base

    drive(EmolabApp(judged, root="sessions"), script)
    step = Session.open(judged).steps()[-1]
    assert step["kind"] == "steer" and "classifier" in step["params"]["evaluators"]
    assert step["params"]["success"] is True  # the step's success rate, by the same judge


def test_plugins_screen_shows_broken_plugins(lab, plugin_dir):
    broken = Path(__file__).parent / "broken_plugins" / "broken_hook.py"
    shutil.copy(broken, plugin_dir)

    async def script(app, pilot):
        await pilot.press("5")
        table = app.screen.query_one("#plugins")
        names = [str(table.get_row_at(i)[0]) for i in range(table.row_count)]
        row = names.index("broken_hook")
        assert str(table.get_row_at(row)[4]) == "broken"
        for _ in range(row):
            await pilot.press("down")
        assert "broken on purpose" in text_of(app, "#plugin-detail")

    drive(EmolabApp(lab, root="sessions"), script)


def test_log_and_help_screens(lab):
    async def script(app, pilot):
        await pilot.press("6")
        table = app.screen.query_one("#log")
        assert [str(table.get_row_at(i)[1]) for i in range(table.row_count)] == [
            "extract",
            "layers",
            "heads",
            "steer",
        ]
        assert "#4 steer" in text_of(app, "#event-detail")
        await pilot.press("up")
        assert "#3 heads" in text_of(app, "#event-detail")
        assert "outputs: artifacts/heads-003-anger" in text_of(app, "#event-detail")
        await pilot.press("question_mark")
        assert type(app.screen).__name__ == "HelpScreen"
        await pilot.press("escape")
        assert app.current_mode == "log" and type(app.screen).__name__ == "LogScreen"

    drive(EmolabApp(lab, root="sessions"), script)


def test_log_screen_writes_the_html_report(lab):
    async def script(app, pilot):
        await pilot.press("6", "w")
        await settle(app, pilot)
        assert app.work["message"] == f"wrote {lab / 'report.html'}", app.work

    drive(EmolabApp(lab, root="sessions"), script)
    page = (lab / "report.html").read_text()
    assert page.startswith("<!doctype html>") and "<code>tiny</code>" in page
    for seq, kind in enumerate(("extract", "layers", "heads", "steer"), 1):
        assert f'<section id="step-{seq}"><h2>{seq}. {kind} ' in page


def test_a_missing_session_is_one_clear_error(run_cli, tmp_path):
    res = run_cli("tui", tmp_path / "nope")
    assert res.exit_code == 2


# -- snapshots ----------------------------------------------------------------------------
FIXED_PLUGINS = [
    PluginInfo(
        "emolab.builtins.extractors",
        "0.1.0",
        "builtin",
        "emolab",
        {"extractors": ["mean_diff", "pca"]},
        ["register_extractors"],
    ),
    PluginInfo(
        "ica", "0.1.0", "entrypoint", "emolab-ica", {"extractors": ["ica"]}, ["register_extractors"]
    ),
    PluginInfo(
        "sentiment_flip",
        "0.1.0",
        "file",
        "plugins/sentiment_flip.py",
        {"evaluators": ["sentiment_flip"]},
        ["register_evaluators"],
    ),
    PluginInfo(
        "broken_hook",
        "file",
        "file",
        "plugins/broken_hook.py",
        {},
        ["register_evaluators"],
        "RuntimeError: this evaluator plugin is broken on purpose (broken_hook.py:8)",
    ),
]


@pytest.fixture(params=list(SIZES))
def size(request) -> tuple[int, int]:
    return SIZES[request.param]


def test_snapshot_sessions(lab, snap_compare, size):
    assert snap_compare(EmolabApp(root="sessions"), terminal_size=size)


def test_snapshot_new_extraction_form(lab, snap_compare, size):
    assert snap_compare(EmolabApp(root="sessions"), terminal_size=size, press=["n"])


def test_snapshot_layers(lab, snap_compare, size):
    assert snap_compare(EmolabApp(lab, root="sessions"), terminal_size=size, press=["down"])


def test_snapshot_layers_deep(deep, snap_compare, size):
    assert snap_compare(EmolabApp(deep, root="sessions"), terminal_size=size, press=["down"])


def test_snapshot_heads(lab, snap_compare, size):
    assert snap_compare(
        EmolabApp(lab, root="sessions"), terminal_size=size, press=["3", "down", "right"]
    )


def test_snapshot_heads_deep_scrolled(deep, snap_compare, size):
    assert snap_compare(
        EmolabApp(deep, root="sessions"),
        terminal_size=size,
        press=["3", "pagedown", "pagedown", "right"],
    )


def test_snapshot_steer(judged, snap_compare, size):
    assert snap_compare(EmolabApp(judged, root="sessions"), terminal_size=size, press=["4"])


def test_snapshot_steer_options(lab, snap_compare, size):
    assert snap_compare(EmolabApp(lab, root="sessions"), terminal_size=size, press=["4", "o"])


def test_snapshot_compare(compare_template, tmp_path, monkeypatch, snap_compare, size):
    path = into_cwd(compare_template, tmp_path, monkeypatch)
    assert snap_compare(EmolabApp(path, root="sessions"), terminal_size=size, press=["7", "down"])


def test_compare_screen_without_a_comparison_says_how_to_make_one(lab):
    async def script(app, pilot):
        await pilot.press("7")
        assert "emolab compare BASE_SESSION" in text_of(app, "#compare-title")
        assert app.screen.query_one("#compare").row_count == 0

    drive(EmolabApp(lab, root="sessions"), script)


def test_snapshot_plugins(lab, snap_compare, monkeypatch, size):
    # a fixed plugin list, so a new built-in elsewhere does not change this picture
    monkeypatch.setattr(PluginsScreen, "infos", lambda self: FIXED_PLUGINS)
    assert snap_compare(
        EmolabApp(lab, root="sessions"), terminal_size=size, press=["5", "down", "down", "down"]
    )


def test_snapshot_log(lab, snap_compare, size):
    assert snap_compare(EmolabApp(lab, root="sessions"), terminal_size=size, press=["6"])


def test_snapshot_help(lab, snap_compare, size):
    assert snap_compare(
        EmolabApp(lab, root="sessions"), terminal_size=size, press=["question_mark"]
    )


def test_nav_bar_keeps_both_ends_of_a_long_session_name():
    from emolab.tui.widgets import middle_cut

    assert middle_cut("smollm2-135m-20261201-134136", 14) == "smollm…-134136"
    assert middle_cut("tiny", 14) == "tiny"
    assert len(middle_cut("x" * 40, 12)) == 12


def test_head_rank_ties_share_a_rank_across_float_rounding():
    from emolab.tui.screens.heads import rank_of

    m = np.array([[0.5, -0.30001, 0.3], [np.nan, 0.1, 0.2999999]])
    assert rank_of(m, 0, 0) == (1, 5)
    # |-0.30001|, 0.3 and 0.2999999 print alike: one rank, whatever the rounding
    assert rank_of(m, 0, 1) == rank_of(m, 0, 2) == rank_of(m, 1, 2) == (2, 5)
    assert rank_of(m, 1, 1) == (5, 5) and rank_of(m, 1, 0) == (0, 5)
