"""Fault injection: kill -9 `extract`, `sweep` and `finetune` at random moments, then check
that nothing is lost; property-based tests over datasets and session files. `make faults`.

Every run is the real CLI (`emolab.cli.main`) on the tiny random model, in a process forked
from one that has already imported torch and emolab, so a kill costs the work it
interrupts, not 5-20 s of imports. After each kill (SIGKILL, no clean-up possible):
- the session opens (a session that existed before the kill and no longer opens is lost);
- `emolab layers` and `emolab replay` on it give a result or one clear line (exit 2);
- the same command run again (resume) ends with exactly the table / weights of an
  uninterrupted run: the sweep's csv byte for byte, the fine-tune's final weights by sha256.
Then hypothesis generates csv/jsonl files and damaged session files; reading them gives
examples or one EmolabError, never another exception. The summary line at the end is what
README quotes; the exit code is non-zero on any traceback, lost session or mismatch.

    python tests/faults.py [--kills 20] [--cases 200] [--workers N] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import random
import shutil
import signal
import sys
import tempfile
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("EMOLAB_THREADS", "1")
os.environ["EMOLAB_LOAD_PLUGINS"] = ""
os.environ.pop("EMOLAB_PLUGINS_DIR", None)

PROMPTS = "Tell me about your day.\nDescribe the weather.\n"


def commands(work: Path) -> dict[str, list[str]]:
    """The three interrupted commands, sized so one run takes seconds on the tiny model."""
    return {
        "extract": ["extract", "--model", "tiny-llama", "--limit", "6", "--test-limit", "3"],
        "sweep": [
            "sweep",
            "--emotions",
            "joy,anger",
            "--layers",
            "1,2",
            "--alphas",
            "0.2,2",
            "--prompts",
            str(work / "prompts.txt"),
            "--max-new-tokens",
            "4",
            "--judge-train-limit",
            "300",
        ],
        "finetune": [
            "finetune",
            "--model",
            "tiny-llama",
            "--steps",
            "6",
            "--save-every",
            "2",
            "--limit",
            "4",
            "--test-limit",
            "2",
            "--batch-size",
            "4",
            "--lr",
            "3e-3",
            "--max-text-tokens",
            "24",
        ],
    }


def argv_for(kind: str, work: Path, session: Path) -> list[str]:
    base = commands(work)[kind]
    if kind == "extract":
        return [*base, "--session", str(session)]
    if kind == "sweep":
        return [base[0], str(session), *base[1:]]
    return [*base, "--out", str(session)]


# -- running the CLI in forked children --------------------------------------------------
def _child(argv: list[str], log: Path) -> None:
    """In the forked child: run the CLI with stdout/stderr to `log`; never return."""
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    code = 0
    try:
        from emolab.cli import main

        sys.argv = ["emolab", *argv]
        main()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:
        traceback.print_exc()
        code = 99
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def start(argv: list[str], log: Path) -> int:
    pid = os.fork()
    if pid == 0:
        _child(argv, log)
    return pid


def run(argv: list[str], log: Path) -> tuple[int, str]:
    """Run to the end: (exit code, output)."""
    _, status = os.waitpid(start(argv, log), 0)
    return os.waitstatus_to_exitcode(status), log.read_text(errors="replace")


def clear(code: int, out: str) -> bool:
    """A result (exit 0/1) or one clear line (exit 2); never a traceback."""
    if "Traceback" in out or code not in (0, 1, 2):
        return False
    return code != 2 or len([x for x in out.strip().splitlines() if x.startswith("error")]) == 1


# -- what a session holds -----------------------------------------------------------------
def snapshot(path: Path) -> dict | None:
    """None when no session exists there yet; else its finished steps."""
    from emolab.session import Session

    if not (path / "manifest.json").is_file():
        return None
    s = Session.open(path)
    return {"ok": [(e["seq"], e["kind"]) for e in s.steps() if e["status"] == "ok"]}


def sweep_table(path: Path) -> bytes:
    from emolab import results
    from emolab.session import Session

    out = results.latest(Session.open(path), "sweep", suffix=".csv")
    return out.path.read_bytes() if out else b""


def final_weights(path: Path) -> str:
    from emolab.io import sha256_file
    from emolab.steps.finetune import checkpoints

    found = checkpoints(path)
    return sha256_file(found[-1] / "model.safetensors") if found else ""


def result_of(kind: str, path: Path) -> str:
    return sweep_table(path).decode() if kind == "sweep" else final_weights(path)


# -- one kill -----------------------------------------------------------------------------
def trial(job: dict) -> dict:
    """Kill one run at `delay` seconds, then check the session and resume it."""
    kind, work, delay = job["kind"], Path(job["work"]), job["delay"]
    folder = Path(tempfile.mkdtemp(dir=work, prefix=f"{kind}-"))
    session = folder / "s"
    if kind == "sweep":
        shutil.copytree(work / "base", session)
    before = snapshot(session) if session.exists() else None
    out = {"kind": kind, "delay": round(delay, 2), "problems": []}
    pid = start(argv_for(kind, work, session), folder / "killed.log")
    time.sleep(delay)
    try:
        os.kill(pid, signal.SIGKILL)
        out["killed"] = True
    except ProcessLookupError:
        out["killed"] = False
    _, status = os.waitpid(pid, 0)
    out["killed"] = out["killed"] and os.waitstatus_to_exitcode(status) == -signal.SIGKILL
    # checks run in a child too, so this process never starts torch's thread pools
    check = folder / "check.json"
    pid = os.fork()
    if pid == 0:
        try:
            res = checks(kind, work, session, folder, before)
        except BaseException:
            res = {"problems": ["traceback in checks: " + traceback.format_exc()[-400:]]}
        check.write_text(json.dumps(res))
        os._exit(0)
    os.waitpid(pid, 0)
    res = json.loads(check.read_text()) if check.is_file() else {"problems": ["checks died"]}
    out.update(res)
    out["problems"] = res.get("problems", [])
    shutil.rmtree(folder, ignore_errors=True)
    return out


def checks(kind: str, work: Path, session: Path, folder: Path, before: dict | None) -> dict:
    from emolab.errors import EmolabError

    res: dict = {"problems": [], "tracebacks": 0, "lost": False}
    try:
        after = snapshot(session)
    except EmolabError as exc:
        after = None
        if before is not None or (session / "manifest.json").is_file():
            res["lost"] = True
            res["problems"].append(f"session does not open after the kill: {exc}")
    if (
        before is not None
        and after is not None
        and not set(map(tuple, before["ok"])) <= set(map(tuple, after["ok"]))
    ):
        res["lost"] = True
        res["problems"].append("a step finished before the kill is gone")
    res["existed"] = after is not None
    if after is not None:
        for name, argv in (
            ("layers", ["layers", str(session)]),
            ("replay", ["replay", str(session), "--out", str(folder / "replayed")]),
        ):
            code, text = run(argv, folder / f"{name}.log")
            if not clear(code, text):
                res["tracebacks"] += "Traceback" in text
                res["problems"].append(f"{name} exit {code}: {text.strip()[-300:]}")
    if kind in ("sweep", "finetune"):
        code, text = run(argv_for(kind, work, session), folder / "resume.log")
        done_before = kind == "finetune" and "already fine-tuned to step" in text
        if code != 0 and not (code == 2 and done_before):
            res["tracebacks"] += "Traceback" in text
            res["problems"].append(f"resume exit {code}: {text.strip()[-300:]}")
        elif result_of(kind, session) != (work / f"reference-{kind}").read_text():
            res["problems"].append("resumed result differs from the uninterrupted run")
        res["resumed"] = True
    return res


# -- property-based cases ------------------------------------------------------------------
def properties(n_cases: int, work: Path) -> dict:
    """Run the hypothesis properties of test_properties.py with `n_cases` examples each."""
    sys.path.insert(0, str(ROOT / "tests"))
    import test_properties as props

    props.SESSION = work / "base"
    counts, tracebacks = {}, []
    for name in props.PROPERTIES:
        try:
            counts[name] = props.run_property(name, n_cases)
        except Exception:
            counts[name] = props.COUNT[name]
            tracebacks.append(f"{name}: " + traceback.format_exc()[-1500:])
    return {"cases": counts, "tracebacks": tracebacks}


# -- the suite -----------------------------------------------------------------------------
def reference(kind: str, work: Path) -> float:
    """An uninterrupted run: its duration bounds the kill moments; its result is the truth."""
    session = work / ("base" if kind == "extract" else f"ref-{kind}")
    if kind == "sweep":
        shutil.copytree(work / "base", session)
        # a first sweep trains and caches the judge; the timed one is what a kill interrupts
        code, text = run(argv_for(kind, work, session), work / "warm-sweep.log")
        if code != 0:
            raise SystemExit(f"uninterrupted sweep failed (exit {code}):\n{text[-2000:]}")
        shutil.rmtree(session)
        shutil.copytree(work / "base", session)
    t0 = time.monotonic()
    code, text = run(argv_for(kind, work, session), work / f"ref-{kind}.log")
    took = time.monotonic() - t0
    if code != 0:
        raise SystemExit(f"uninterrupted {kind} failed (exit {code}):\n{text[-2000:]}")
    if kind != "extract":
        (work / f"reference-{kind}").write_text(result_of(kind, session))
    return took


def kill_rounds(pool, durations: dict, kills: int, work: Path, rng, rounds: int = 3) -> list:
    """Trials until each command was killed `kills` times: a run that finished before its
    kill (runs vary in speed) is checked too, and its kill is tried again, at most `rounds`
    times, with moments drawn from a shorter window."""
    trials: list[dict] = []
    for r in range(rounds):
        short = 0.6**r
        jobs = [
            {"kind": k, "work": str(work), "delay": rng.uniform(0.02, 0.98) * d * short}
            for k, d in durations.items()
            for _ in range(kills - sum(t["killed"] for t in trials if t["kind"] == k))
        ]
        if not jobs:
            break
        rng.shuffle(jobs)
        trials += pool.map(trial, jobs, chunksize=1)
    return trials


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kills", type=int, default=20, help="kills per command")
    ap.add_argument("--cases", type=int, default=200, help="hypothesis examples per property")
    ap.add_argument("--workers", type=int, default=min(4, os.cpu_count() or 1))
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    import click
    import torch  # noqa: F401 - imported once here, inherited by every forked run
    import transformers  # noqa: F401

    import emolab.cli  # noqa: F401
    from emolab import plugins

    # import every command module now: forked runs then never import code edited meanwhile
    plugins.registry().add_commands(click.Group())
    t_start = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="emolab-faults-"))
    (work / "prompts.txt").write_text(PROMPTS)
    rng = random.Random(args.seed)
    durations = {kind: reference(kind, work) for kind in ("extract", "sweep", "finetune")}
    print("uninterrupted runs: " + ", ".join(f"{k} {v:.1f}s" for k, v in durations.items()))
    with mp.get_context("fork").Pool(args.workers) as pool:
        trials = kill_rounds(pool, durations, args.kills, work, rng)
    props = properties(args.cases, work)
    killed = sum(t["killed"] for t in trials)
    survived = sum(t["killed"] and not t["problems"] for t in trials)
    tracebacks = sum(t.get("tracebacks", 0) for t in trials) + len(props["tracebacks"])
    lost = sum(t.get("lost", False) for t in trials)
    bad = [t for t in trials if t["problems"]]
    for t in bad:
        print(f"PROBLEM {t['kind']} killed at {t['delay']}s: " + " | ".join(t["problems"]))
    for tb in props["tracebacks"]:
        print("PROPERTY FAILED " + tb)
    by_kind = {
        k: f"{sum(t['killed'] and not t['problems'] for t in trials if t['kind'] == k)}/"
        f"{sum(t['killed'] for t in trials if t['kind'] == k)}"
        for k in durations
    }
    cases = sum(props["cases"].values())
    kinds = ", ".join(f"{k} {v}" for k, v in by_kind.items())
    per_property = ", ".join(f"{k} {v}" for k, v in props["cases"].items())
    print(
        f"kills survived/tried: {survived}/{killed} ({kinds}); "
        f"runs that ended before their kill: {len(trials) - killed}; "
        f"bad inputs tried: {cases} ({per_property}); "
        f"tracebacks: {tracebacks}; sessions lost: {lost}; "
        f"{time.monotonic() - t_start:.0f}s with {args.workers} workers"
    )
    shutil.rmtree(work, ignore_errors=True)
    return 1 if bad or tracebacks or lost or props["tracebacks"] else 0


if __name__ == "__main__":
    sys.exit(main())
