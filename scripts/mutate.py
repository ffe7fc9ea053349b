"""Mutation testing of the modules where a wrong number is silent (`make mutate`).

    python scripts/mutate.py                          # every scope, 2 at a time, report to runs/mutate
    python scripts/mutate.py --scope fer/tta.py --jobs 1
    python scripts/mutate.py --markdown docs/mutation-report.md
    python scripts/mutate.py --retest-survivors       # after writing tests for the survivors
    python scripts/mutate.py --continue               # finish sessions that a stop cut short

Cosmic Ray plants one small bug (a mutant) at a time: `+` becomes `-`, `<=` becomes `<`, 0.5 becomes 1.5,
a condition is negated. A mutant is killed when the tests covering its module fail, and survives when
they still pass: a survivor is either a missing test or an equivalent mutant (one that changes no
behaviour). Each scope runs only the tests that cover its module, in a copy of the working tree, so
that a run never leaves a mutant in the user's files and never touches a training run that imports
them meanwhile.

Operators left out for every scope (the same families, whatever the module):
- binary operators replaced by bitwise, shift, power, modulo or floor division: on tensors and
  floats they raise TypeError or give absurd values that any test kills, at the cost of a test run each;
- comparisons replaced by `is`, `is not`, `in`, `not in`: on the strings and small ints compared
  here they are either the same test (interned values) or a TypeError.
"""

import argparse
import json
import math
import os
import re
import shlex
import shutil
import sqlite3
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PRISTINE = "pristine-module.py"  # in each scope's copy: its module before any mutant
EXCLUDED_OPERATORS = re.compile(r"_(BitOr|BitAnd|BitXor|LShift|RShift|Pow|Mod|FloorDiv|Is|IsNot|In|NotIn)$")


# fer/detection/mtcnn.py's arithmetic on boxes and points, apart from running the networks (Cosmic Ray names a
# mutant by the innermost function around it).
MTCNN_GEOMETRY = (
    "_crops", "detections_many", "_working_copy", "_merged_proposals", "pyramid", "proposals", "nms",
    "correct", "enlarge", "correction_of_enlarged", "keypoints_in_pixels", "as_seen_from_proposal",
    "square", "crops",
)  # fmt: skip


@dataclass(frozen=True)
class Scope:
    module: str
    tests: tuple[str, ...]
    # Only mutants inside these functions or classes count (empty: the whole module); why, in `reason`.
    definitions: tuple[str, ...] = ()
    excluded_definitions: tuple[str, ...] = ()
    reason: str = ""
    env: dict = field(default_factory=dict)
    select: str = ""  # a pytest -k expression: only these of `tests` run for each mutant


SCOPES = [
    Scope("fer/tta.py", ("tests/fer/test_tta.py",)),
    Scope("fer/preprocess.py", ("tests/fer/test_preprocess.py",)),
    Scope("fer/labels.py", ("tests/fer/test_labels.py",)),
    Scope(
        "fer/onnx_runtime.py",
        ("tests/fer/test_onnx_runtime.py",),
        excluded_definitions=("__init__",),
        reason="OnnxModel.__init__ holds thread and logging settings: speed, not numbers",
        # The tiny trained and exported model is built once, by unmutated code, for every mutant.
        env={"FER_TEST_FIXTURE_CACHE": "fixtures"},
    ),
    Scope("training/distributed.py", ("tests/training/test_distributed.py",)),
    Scope(
        "fer/metrics.py",
        ("tests/fer/test_metrics.py",),
        excluded_definitions=("plot_confusion_matrix",),
        reason="plot_confusion_matrix draws a picture; its numbers come from compute_metrics",
        env={"FER_TEST_FIXTURE_CACHE": "fixtures"},
    ),
    Scope(
        "training/train.py",
        ("tests/training/test_distributed.py",),
        definitions=("evaluate_accuracy",),
        reason="the metric reduction of the trainer; its loss and shards are training/loss.py and sharding.py",
    ),
    Scope("training/loss.py", ("tests/training/test_loss.py",)),
    Scope(
        "training/distill.py",
        ("tests/training/test_loss.py",),
        definitions=("distillation_loss",),
        reason="the soft-target loss; writing and reading target files are end-to-end runs (test_distill.py)",
    ),
    Scope("training/sharding.py", ("tests/training/test_sharding.py",)),
    Scope("training/ema.py", ("tests/training/test_ema.py",)),
    Scope(
        "training/state.py",
        ("tests/training/test_schedule.py",),
        definitions=("warmup_cosine", "factor"),
        reason="the learning-rate schedule; saving and restoring a run is what the resume tests check",
    ),
    Scope("training/augment.py", ("tests/training/test_augment.py",)),
    Scope("api/batching.py", ("tests/api/test_batcher.py",)),
    Scope(
        "fer/detection/mtcnn.py",
        ("tests/fer/detection/test_mtcnn.py",),
        # The geometry's own tests, not the minute of network comparisons and crowds (run by make test).
        select="not torch and not crowd and not several",
        definitions=MTCNN_GEOMETRY,
        reason="the geometry: pyramid, boxes, keypoints, crops and the working size; the networks are "
        "checked against facenet-pytorch's",
    ),
]


def scope_name(scope: Scope) -> str:
    return scope.module.replace("/", "_").removesuffix(".py")


def copy_tree(destination: Path) -> None:
    """The project's tracked and untracked-but-not-ignored files, as a user's checkout has them."""
    listed = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=REPO, capture_output=True, check=True
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source = REPO / name
        if source.is_file():
            target = destination / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)


def test_command(scope: Scope) -> str:
    # -x: a killed mutant stops at its first failing test. Quoted: Cosmic Ray runs it through a shell.
    # Only the timeout plugin (pyproject's addopts need it): `environment` turns off the autoloading of
    # the others (schemathesis, hypothesis, playwright), which cost 2 CPU seconds per mutant.
    selection = ["-k", scope.select] if scope.select else []
    plugins = ["-p", "no:cacheprovider", "-p", "pytest_timeout"]
    return shlex.join([sys.executable, "-m", "pytest", "-x", "-q", *plugins, *selection, *scope.tests])


def prepare(scope: Scope, work: Path, timeout: float) -> Path:
    """Copy the tree, write the Cosmic Ray config, create the session and skip out-of-scope mutants."""
    if work.exists():
        shutil.rmtree(work)
    copy_tree(work)
    # The module as prepared: a run killed while a mutant is in place leaves the mutant in the copy.
    shutil.copy2(work / scope.module, work / PRISTINE)
    config = work / "cosmic-ray.toml"
    config.write_text(
        "[cosmic-ray]\n"
        f'module-path = "{scope.module}"\n'
        f"timeout = {timeout}\n"
        "excluded-modules = []\n"
        f"test-command = {json.dumps(test_command(scope))}\n"
        "[cosmic-ray.distributor]\n"
        'name = "local"\n'
    )
    session = work / "session.sqlite"
    subprocess.run([cosmic_ray(), "init", str(config), str(session)], cwd=work, check=True)
    skip_out_of_scope(scope, session)
    return config


def skip_out_of_scope(scope: Scope, session: Path) -> None:
    """Mark the untested mutants outside the scope as skipped. A run stopped during this loop leaves
    the rest pending, so `--continue` calls it again before testing anything."""
    from cosmic_ray.work_db import WorkDB, use_db
    from cosmic_ray.work_item import WorkerOutcome, WorkResult

    with use_db(str(session), WorkDB.Mode.open) as db:
        for item in list(db.pending_work_items):
            (mutation,) = item.mutations
            why = None
            if EXCLUDED_OPERATORS.search(mutation.operator_name):
                why = "operator family left out"
            elif scope.definitions and mutation.definition_name not in scope.definitions:
                why = "outside the scoped functions"
            elif mutation.definition_name in scope.excluded_definitions:
                why = "excluded function"
            if why:
                db.set_result(item.job_id, WorkResult(output=why, worker_outcome=WorkerOutcome.SKIPPED))


def cosmic_ray() -> str:
    return str(Path(sys.executable).with_name("cosmic-ray"))


def environment(scope: Scope, work: Path) -> dict:
    # One thread per test run: two scopes share two cores.
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TQDM_DISABLE": "1", "PYTHONDONTWRITEBYTECODE": "1",
           "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}  # fmt: skip
    for key, value in scope.env.items():
        env[key] = str(work / value) if key == "FER_TEST_FIXTURE_CACHE" else value
    return env


def reopen_survivors(scope: Scope, work: Path) -> None:
    """Bring the copy's tests up to date and mark the survivors of the last run as pending again, so
    that `exec` tests only them: the workflow after writing tests for survivors. Killed mutants stay
    killed, which holds as long as tests were only added or strengthened."""
    from cosmic_ray.work_db import WorkDB, use_db

    if not (work / "session.sqlite").is_file():
        raise SystemExit(f"{scope.module}: no earlier session in {work} to retest")
    shutil.rmtree(work / "tests")
    shutil.copytree(REPO / "tests", work / "tests", ignore=shutil.ignore_patterns("__pycache__"))
    with use_db(str(work / "session.sqlite"), WorkDB.Mode.open) as db:
        survivors = [item.job_id for item, result in db.completed_work_items if result.test_outcome == "survived"]
    # Cosmic Ray's WorkDB has no "clear one result" call; its results table is keyed by job id.
    with sqlite3.connect(work / "session.sqlite") as connection:
        connection.executemany("DELETE FROM work_results WHERE job_id = ?", [(job,) for job in survivors])


def reopen_interrupted(scope: Scope, work: Path) -> Path:
    """A session to go on with: Cosmic Ray's exec runs only the mutants without a result, so a long
    scope (MTCNN's geometry, the augmentation: 500-700 mutants, hours on 2 busy cores) is finished over
    several sittings. The copy keeps the code it was prepared from, so the mutants stay those of one
    commit; the module is put back as prepared, in case the last sitting was killed with a mutant in it."""
    shutil.copy2(work / PRISTINE, work / scope.module)
    skip_out_of_scope(scope, work / "session.sqlite")
    return work / "cosmic-ray.toml"


def run_scope(scope: Scope, out: Path, timeout: float, retest_survivors: bool = False, continue_: bool = False) -> dict:
    work = out / scope_name(scope)
    started = time.perf_counter()
    if retest_survivors:
        reopen_survivors(scope, work)
        config = work / "cosmic-ray.toml"
    elif continue_ and (work / "session.sqlite").is_file():
        config = reopen_interrupted(scope, work)
    else:
        config = prepare(scope, work, timeout)
    env = environment(scope, work)
    # The unmutated code must pass first; it also builds the cached fixtures.
    baseline = subprocess.run(test_command(scope), shell=True, cwd=work, env=env, capture_output=True, text=True)
    if baseline.returncode != 0:
        raise SystemExit(f"{scope.module}: the tests fail without any mutant:\n{baseline.stdout[-3000:]}")
    subprocess.run([cosmic_ray(), "exec", str(config), str(work / "session.sqlite")], cwd=work, env=env, check=True)
    return summarize(scope, work / "session.sqlite", time.perf_counter() - started)


def summarize(scope: Scope, session: Path, seconds: float) -> dict:
    from cosmic_ray.work_db import WorkDB, use_db
    from cosmic_ray.work_item import TestOutcome, WorkerOutcome

    counts = {"killed": 0, "survived": 0, "incompetent": 0, "skipped": 0}
    survivors = []
    with use_db(str(session), WorkDB.Mode.open) as db:
        for item, result in db.completed_work_items:
            if result.worker_outcome == WorkerOutcome.SKIPPED:
                counts["skipped"] += 1
            elif result.test_outcome == TestOutcome.SURVIVED:
                counts["survived"] += 1
                (mutation,) = item.mutations
                survivors.append(
                    {
                        "line": mutation.start_pos[0],
                        "function": mutation.definition_name,
                        "operator": mutation.operator_name.removeprefix("core/"),
                        "diff": "\n".join(
                            line
                            for line in (result.diff or "").splitlines()
                            if line.startswith(("+", "-")) and not line.startswith(("+++", "---"))
                        ),
                    }
                )
            elif result.test_outcome == TestOutcome.INCOMPETENT:
                counts["incompetent"] += 1  # the mutant cannot even be imported: it counts as killed
            else:
                counts["killed"] += 1
    tested = counts["killed"] + counts["survived"] + counts["incompetent"]
    score = (tested - counts["survived"]) / tested if tested else 1.0
    survivors.sort(key=lambda s: s["line"])
    return {"module": scope.module, **counts, "tested": tested, "score": score, "seconds": seconds,
            "survivors": survivors, "scope": scope.reason or "whole module"}  # fmt: skip


def markdown(results: list[dict]) -> str:
    killed = sum(r["tested"] - r["survived"] for r in results)
    tested = sum(r["tested"] for r in results)
    lines = [
        "| module | mutants tested | killed | survived | score | minutes | scope |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for r in results:
        minutes = "—" if math.isnan(r["seconds"]) else f"{r['seconds'] / 60:.1f}"
        lines.append(
            f"| `{r['module']}` | {r['tested']} | {r['tested'] - r['survived']} | {r['survived']} | "
            f"{r['score']:.1%} | {minutes} | {r['scope']} |"
        )
    lines.append(f"| **all** | {tested} | {killed} | {tested - killed} | **{killed / max(tested, 1):.1%}** | | |")
    for r in results:
        for s in r["survivors"]:
            lines += ["", f"Survivor `{r['module']}:{s['line']}` in `{s['function']}` ({s['operator']}):", "```diff"]
            lines += [s["diff"], "```"]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scope", action="append", choices=[s.module for s in SCOPES], help="repeatable")
    parser.add_argument("--jobs", type=int, default=2, help="scopes run side by side (default 2)")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds per mutant's test run")
    parser.add_argument("--out", type=Path, default=REPO / "runs" / "mutate")
    parser.add_argument("--markdown", type=Path, help="also write the summary and survivors here")
    parser.add_argument("--report-only", action="store_true", help="summarize the sessions in --out, run nothing")
    parser.add_argument(
        "--retest-survivors", action="store_true", help="rerun only the last run's survivors, with the current tests"
    )
    parser.add_argument(
        "--continue",
        dest="continue_",
        action="store_true",
        help="test the mutants an interrupted run left untested (a scope without a session starts anew)",
    )
    args = parser.parse_args()
    args.out = args.out.resolve()  # Cosmic Ray runs in each scope's copy: a relative --out means nothing there
    scopes = [s for s in SCOPES if not args.scope or s.module in args.scope]
    args.out.mkdir(parents=True, exist_ok=True)
    if args.report_only:  # the sessions' state now, after any retests: no timing to report
        results = [summarize(s, args.out / scope_name(s) / "session.sqlite", float("nan")) for s in scopes]
    else:
        with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
            results = list(
                pool.map(lambda s: run_scope(s, args.out, args.timeout, args.retest_survivors, args.continue_), scopes)
            )
    if not args.report_only:
        (args.out / "report.json").write_text(json.dumps(results, indent=2) + "\n")
    report = markdown(results)
    if args.markdown:
        args.markdown.write_text(report)
    print(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
