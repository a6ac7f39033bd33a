"""The core never imports the UI (harlequin's rule), checked two ways."""

import shutil
import subprocess
import sys
from pathlib import Path


def test_core_modules_do_not_pull_in_textual_or_click():
    code = (
        "import sys, pkgutil, importlib, emolab.steps, emolab.builtins\n"
        "for pkg in (emolab.steps, emolab.builtins):\n"
        "    for m in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + '.'):\n"
        "        importlib.import_module(m.name)\n"
        "import emolab.capture, emolab.session, emolab.models, emolab.plugins, emolab.hooks\n"
        "bad = [m for m in ('textual', 'click') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, env={"EMOLAB_LOAD_PLUGINS": ""})


def test_import_linter_contract_holds():
    exe = shutil.which("lint-imports") or str(Path(sys.executable).parent / "lint-imports")
    root = Path(__file__).resolve().parents[1]
    result = subprocess.run([exe], cwd=root, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
