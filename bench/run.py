"""`make bench`: run every bench/bench_*.py `main()` in turn; each prints ratios beside targets.

Speed claims live here, measured as ratios within one run, never as timed test assertions.
"""

import importlib.util
import sys
from pathlib import Path

here = Path(__file__).parent
sys.path.insert(0, str(here))  # the benchmarks share bench/timing.py
only = sys.argv[1:]
for path in sorted(here.glob("bench_*.py")):
    if only and path.stem.removeprefix("bench_") not in only:
        continue
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    print(f"== {path.stem}", flush=True)
    module.main()
