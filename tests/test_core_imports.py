"""The core imports no UI at run time: building the registry and running a step leave click
and textual unimported (command plugins load only when the CLI starts)."""

from __future__ import annotations

import subprocess
import sys


def _run(code: str) -> str:
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=600, check=False
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def test_registry_alone_does_not_import_click():
    code = (
        "import sys, emolab; from emolab import plugins; plugins.registry(); "
        "print('click' in sys.modules)"
    )
    assert _run(code) == "False"


def test_a_step_on_a_tiny_model_imports_no_ui(tmp_path):
    code = (
        "import sys\n"
        "from emolab import plugins\n"
        "from emolab.steps import extract, steer\n"
        "from emolab.steps.common import new_session\n"
        "reg = plugins.registry()\n"
        "assert 'mean_diff' in reg.names('extractors')\n"
        f"s = new_session({str(tmp_path / 's')!r}, 'tiny-llama')\n"
        "extract.run(s, {'emotions': ['joy'], 'limit': 4, 'test_limit': 2})\n"
        "steer.run(s, {'emotion': 'joy', 'layer': 1, 'max_new_tokens': 2,"
        " 'prompts': ['Hello there.']})\n"
        "print(sorted(m for m in ('click', 'textual', 'rich_click') if m in sys.modules))\n"
    )
    assert _run(code) == "[]"


def test_the_cli_still_loads_the_builtin_commands(run_cli):
    r = run_cli("--help")
    for name in ("extract", "layers", "steer", "replay", "demo", "models", "plugins", "sweep"):
        assert f"  {name} " in r.output, name
