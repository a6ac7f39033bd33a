"""The TUI: pilot tests driving each screen, and SVG snapshots of each screen at 80x24.

Snapshots run on a copy of the tiny-llama session whose varying fields (creation time,
host, step times and durations) are pinned, from a fixed working directory, so a changed
screen is a reviewed diff and nothing else is.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import time
from pathlib import Path

import numpy as np
import pytest

from emolab import plugins
from emolab.errors import Cancelled
from emolab.plugins import PluginInfo
from emolab.session import Session
from emolab.tui.app import EmolabApp
from emolab.tui.screens import PluginsScreen
from emolab.tui.widgets import Heatmap

SIZE = (80, 24)


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


@pytest.fixture(scope="session")
def lab_template(tiny_session_dir, tmp_path_factory) -> Path:
    """The tiny session with its layer analysis, computed once."""
    from emolab.steps import layers

    dst = tmp_path_factory.mktemp("lab") / "tiny"
    shutil.copytree(tiny_session_dir, dst)
    layers.run(Session.open(dst), {})
    stabilise(dst)
    return dst


@pytest.fixture
def lab(lab_template, tmp_path, monkeypatch) -> Path:
    """cwd = a fresh folder holding sessions/tiny; returns the relative session path."""
    monkeypatch.chdir(tmp_path)
    shutil.copytree(lab_template, tmp_path / "sessions" / "tiny")
    plugins.reset()
    yield Path("sessions/tiny")
    plugins.reset()


def head_map(path: Path, emotion: str = "anger") -> np.ndarray:
    """A head-map artifact in the format the Heads screen reads (layer x head `matrix`)."""
    m = np.round(np.sin(np.arange(16).reshape(4, 4) * 1.7) * 0.5, 3)
    (path / "artifacts" / f"heads-{emotion}.json").write_text(
        json.dumps(
            {
                "emotion": emotion,
                "method": "attribution",
                "matrix": m.tolist(),
                "top_positions": {"1.2": ["-1 '.' 0.41", "0 '<s>' 0.30"]},
            }
        )
    )
    return m


def compare_json(path: Path) -> None:
    """A checkpoint comparison in the format `emolab compare` writes (see test_compare for
    the screen on a real one)."""
    emotions = ["anger", "joy"]
    steps = [(0, "base"), (50, "step-50"), (100, "step-100")]
    slopes = {"anger": [1.2, 0.9, 0.5], "joy": [0.8, 0.85, 0.82]}
    sens = [
        {"step": st, "emotion": e, "vector": v, "slope": slopes[e][i] * (1 if v == "own" else 0.9)}
        for e in emotions
        for i, (st, _) in enumerate(steps)
        for v in ("own", "base")
    ]
    summary = [
        {"checkpoint": n, "step": st, "cos_base": 1 - i / 10, "probe_acc": 0.7}
        for i, (st, n) in enumerate(steps)
    ]
    verdicts = {"anger": {"verdict": "falls"}, "joy": {"verdict": "holds"}}
    session = Session.open(path)
    with session.step("compare", {}) as rec:  # logged, so the screen finds it via the log
        name = f"compare-{rec['seq']:03d}.json"
        session.write_json(
            name,
            {
                "summary": summary,
                "verdicts": verdicts,
                "sensitivity": sens,
                "layer": 2,
                "emotions": emotions,
            },
        )
        rec["outputs"] = [f"artifacts/{name}"]


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
    from emolab import results

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
    assert kinds == ["extract", "layers", "layers"]  # the same step the CLI runs, logged


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


def test_new_extraction_form_runs_extract_and_layers(lab):
    async def script(app, pilot):
        await pilot.press("n")
        form = app.screen
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


def test_heads_screen_without_and_with_a_head_map(lab):
    async def script(app, pilot):
        await pilot.press("3")
        assert "no head map for anger" in text_of(app, "#heads-title")
        head_map(lab)
        app.screen.refresh_data()
        await pilot.pause()
        heatmap = app.screen.query_one(Heatmap)
        assert heatmap.matrix.shape == (4, 4)
        await pilot.press("down", "right", "right")
        detail = text_of(app, "#head-detail")
        assert "L1 H2" in detail and "top attended positions" in detail
        # the detail pane sits beside the heatmap, on screen at 80 columns
        pane = app.screen.query_one("#head-detail").region
        assert pane.width > 0 and pane.right <= SIZE[0]
        assert heatmap.region.right <= pane.x

    drive(EmolabApp(lab, root="sessions"), script)


def test_heads_screen_computes_a_map_with_the_heads_step(lab):
    async def script(app, pilot):
        await pilot.press("3", "c")
        await settle(app, pilot)
        heatmap = app.screen.query_one(Heatmap)
        assert heatmap.matrix.shape == (4, 4)
        assert np.isfinite(heatmap.matrix).any()
        assert app.session.steps()[-1]["kind"] == "heads"

    drive(EmolabApp(lab, root="sessions"), script)


def test_steer_screen_keys_and_generation(lab):
    async def script(app, pilot):
        await pilot.press("4")
        params = text_of(app, "#steer-params")
        assert "emotion joy" in params
        layer = app.screen.steer_layer
        await pilot.press("right_square_bracket", "plus", "plus", "minus")
        assert app.screen.steer_layer == min(layer + 1, 3)
        assert app.screen.alpha == pytest.approx(0.35)
        await pilot.press("p")
        prompt = app.screen.query_one("#prompt")
        assert prompt.has_focus
        prompt.value = "Describe the room you are in."
        streamed = []
        show = app.screen.show_text
        app.screen.show_text = lambda k, i, t: (streamed.append((k, i, t)), show(k, i, t))
        await pilot.press("enter")
        await settle(app, pilot)
        assert text_of(app, "#baseline") not in ("", "generating...")
        assert "label_logit_shift" in text_of(app, "#steer-metrics")
        # tokens streamed into both panes before the result replaced them
        assert {k for k, _, _ in streamed} == {"baseline", "steered"}
        from emolab.tui.screens import printable

        assert text_of(app, "#steered").startswith(printable(streamed[-1][2]))

    drive(EmolabApp(lab, root="sessions"), script)
    steer = Session.open(lab).steps()[-1]
    assert steer["kind"] == "steer" and steer["params"]["prompts"] == [
        "Describe the room you are in."
    ]


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
        ]
        assert "#2 layers" in text_of(app, "#event-detail")
        await pilot.press("up")
        assert "#1 extract" in text_of(app, "#event-detail")
        await pilot.press("question_mark")
        assert type(app.screen).__name__ == "HelpScreen"
        await pilot.press("escape")
        assert app.current_mode == "log" and type(app.screen).__name__ == "LogScreen"

    drive(EmolabApp(lab, root="sessions"), script)


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


def test_snapshot_sessions(lab, snap_compare):
    assert snap_compare(EmolabApp(root="sessions"), terminal_size=SIZE)


def test_snapshot_layers(lab, snap_compare):
    assert snap_compare(EmolabApp(lab, root="sessions"), terminal_size=SIZE, press=["down"])


def test_snapshot_heads(lab, snap_compare):
    head_map(lab)
    assert snap_compare(
        EmolabApp(lab, root="sessions"), terminal_size=SIZE, press=["3", "down", "right"]
    )


def test_snapshot_steer(lab, snap_compare):
    assert snap_compare(EmolabApp(lab, root="sessions"), terminal_size=SIZE, press=["4", "plus"])


def test_snapshot_compare(lab, snap_compare):
    compare_json(lab)
    assert snap_compare(EmolabApp(lab, root="sessions"), terminal_size=SIZE, press=["7", "down"])


def test_compare_screen_without_a_comparison_says_how_to_make_one(lab):
    async def script(app, pilot):
        await pilot.press("7")
        assert "emolab compare BASE_SESSION" in text_of(app, "#compare-title")
        assert app.screen.query_one("#compare").row_count == 0

    drive(EmolabApp(lab, root="sessions"), script)


def test_snapshot_plugins(lab, snap_compare, monkeypatch):
    # a fixed plugin list, so a new built-in elsewhere does not change this picture
    monkeypatch.setattr(PluginsScreen, "infos", lambda self: FIXED_PLUGINS)
    assert snap_compare(
        EmolabApp(lab, root="sessions"), terminal_size=SIZE, press=["5", "down", "down", "down"]
    )


def test_snapshot_log(lab, snap_compare):
    assert snap_compare(EmolabApp(lab, root="sessions"), terminal_size=SIZE, press=["6"])


def test_snapshot_help(lab, snap_compare):
    assert snap_compare(
        EmolabApp(lab, root="sessions"), terminal_size=SIZE, press=["question_mark"]
    )


def test_nav_bar_keeps_both_ends_of_a_long_session_name():
    from emolab.tui.screens import middle_cut

    assert middle_cut("smollm2-135m-20261201-134136", 14) == "smollm…-134136"
    assert middle_cut("tiny", 14) == "tiny"
    assert len(middle_cut("x" * 40, 12)) == 12
