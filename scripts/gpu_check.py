#!/usr/bin/env python3
"""`make gpu-check`: prove the GPU paths on a GPU machine, in stages that each fit in one 10-minute
call, resuming where the last call stopped; every log and a JSON of figures go to $OUT.

    make gpu-check              on the GPU machine (its python3 holds a CUDA build of torch)
    make gpu-check DRY_RUN=1    the same stages on this machine's CPU with tiny settings (CI runs it)

Stages, in order; a stage that finished (passed or failed) is not run again (--restart forgets them):
  environment   the GPU, driver, torch and CUDA; the carried wheels (.gpu/whl) installed
  tests         pytest -m gpu tests/gpu: bf16 and fp16 + GradScaler, --compile, NCCL under torchrun,
                two processes on one GPU (gloo), GPU -> CPU resume, the fp16 Predictor against the
                CPU, the API's batcher on the GPU, MTCNN on the GPU and gathered across requests,
                ONNX Runtime's CUDA provider (when it has one)
  bench-train   bench/train_step.py            training images/s per architecture and AMP mode
  bench-infer   bench/infer.py                 Predictor faces/s per batch size (eager, compiled)
  bench-api     bench/api_load.py              `fer serve` on the GPU under concurrent clients
  flagship      the fer-v1 recipe on the GPU within --train-minutes, resumed across calls; time to
                65/70/73% validation accuracy
  export        fer export of its best.pt (accuracy per TTA mode, ONNX, int8) into $OUT/weights
  evaluate      fer evaluate of the exported weights on the validation split, on the GPU
The stages from flagship on need FER2013: scripts/gpu_prepare.sh packs it in two parts for two calls.

Exit status: 0 when every stage finished and passed, 1 when every stage finished and one failed, 3
when this call stopped early (its time budget, or FER2013 not all there yet): run it again.
Only the standard library is imported here: every stage is a subprocess of this Python.
"""

import argparse
import hashlib
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass
from pathlib import Path

from run_summary import first_reaching, read_metrics  # scripts/, this script's folder, heads sys.path

REPO = Path(__file__).resolve().parent.parent
THRESHOLDS = (0.65, 0.70, 0.73)  # validation accuracies whose time the flagship stage reports
# The goals for a GPU run (issue 12); the report says which are met.
GOALS = {
    "inference_faces_per_second": 50_000,
    "api_face_crops_per_second_at_64": 5_000,
    "flagship_seconds_to_73": 300,
}
STOPPED, FAILED = 3, 1


@dataclass(frozen=True)
class Stage:
    name: str
    estimate_s: int  # the longest it should take here; it starts only when this call has that left
    needs_data: bool = False


STAGES = (
    Stage("environment", 60),
    Stage("tests", 480),
    Stage("bench-train", 180),
    Stage("bench-infer", 240),
    Stage("bench-api", 300),
    Stage("flagship", 90, needs_data=True),  # a leg: it runs on until the budget, then resumes later
    Stage("export", 300, needs_data=True),
    Stage("evaluate", 180, needs_data=True),
)


class Check:
    """One call of the check: the stages still to run, this call's clock, the state on disk."""

    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.dry = args.dry_run
        self.device = "cpu" if self.dry else "cuda"
        self.work = Path(args.work)
        self.packed = Path(args.packed)
        self.out = Path(args.out)
        self.started = time.monotonic()
        self.state_path = self.work / "state.json"
        self.state = json.loads(self.state_path.read_text()) if self.state_path.is_file() else {}
        self.log = None

    # ------------------------------------------------------------------ the call
    def run(self) -> int:
        self.work.mkdir(parents=True, exist_ok=True)
        self.out.mkdir(parents=True, exist_ok=True)
        with open(self.out / "gpu-check.log", "a") as self.log:
            self.say(f"gpu-check{' (dry run, CPU)' if self.dry else ''}: work in {self.work}, reports in {self.out}")
            status = self._run_stages()
            self._write_report()
            self.say(self._summary())
        return status

    def _run_stages(self) -> int:
        for stage in STAGES:
            if stage.name in self.state:
                self.say(f"== {stage.name}: {self.state[stage.name]['status']} in an earlier call")
                continue
            if stage.needs_data and not self._data_ready():
                return STOPPED
            if self.remaining() < stage.estimate_s:
                self.say(
                    f"gpu-check: stopping before {stage.name} ({self.remaining():.0f} s left of this call's "
                    f"{self.args.call_budget} s, it may take {stage.estimate_s} s): run make gpu-check again"
                )
                return STOPPED
            self.say(f"== {stage.name}")
            began = time.monotonic()
            result = getattr(self, "stage_" + stage.name.replace("-", "_"))()
            if result is None:  # a leg of a resumable stage: not finished yet
                self._save()
                return STOPPED
            result["seconds"] = round(time.monotonic() - began, 1)
            self.state[stage.name] = result
            self._save()
            self.say(f"== {stage.name}: {result['status']} in {result['seconds']:.0f} s")
        failed = [name for name, result in self.state.items() if result.get("status") == "failed"]
        self.say("gpu-check: all stages finished" + (f"; failed: {', '.join(failed)}" if failed else ""))
        return FAILED if failed else 0

    def remaining(self) -> float:
        return self.args.call_budget - (time.monotonic() - self.started)

    def say(self, line: str) -> None:
        print(line, flush=True)
        if self.log is not None:
            self.log.write(line + "\n")
            self.log.flush()

    def _save(self) -> None:
        temporary = self.state_path.with_suffix(".tmp")
        temporary.write_text(json.dumps(self.state, indent=2))
        temporary.replace(self.state_path)

    # ------------------------------------------------------------------ subprocesses
    def environment(self) -> dict:
        """This Python, with the carried wheels (installed by stage_environment) and this tree first."""
        paths = [str(self.site()), str(REPO), os.environ.get("PYTHONPATH", "")]
        return {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(p for p in paths if p),
            "PYTHONUNBUFFERED": "1",
            "TQDM_DISABLE": "1",
            "FER_CACHE_DIR": str(self.work / "cache"),
            **({"FER_GPU_DRY_RUN": "1"} if self.dry else {}),
        }

    def site(self) -> Path:
        return self.work / "site"

    def call(self, name: str, command: list[str], timeout: float) -> tuple[int | None, str]:
        """Run `command`, its output into the stage's log and $OUT/gpu-check.log; (exit status, or None
        when it ran out of `timeout` and was stopped; its output)."""
        self.say("$ " + " ".join(command))
        process = subprocess.Popen(
            command,
            cwd=REPO,
            env=self.environment(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,  # so that a stop reaches torchrun's workers and servers too
        )
        try:
            output, _ = process.communicate(timeout=max(timeout, 1))
            code = process.returncode
        except subprocess.TimeoutExpired:  # stop it, reading its output all along (a full pipe would block it)
            os.killpg(process.pid, signal.SIGTERM)
            try:
                output, _ = process.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                output, _ = process.communicate()
            code = None
        (self.work / "logs").mkdir(exist_ok=True)
        with open(self.work / "logs" / f"{name}.log", "a") as stage_log:
            stage_log.write(output)
        self.log.write(output)
        self.log.flush()
        return code, output

    def python(self, *args: str) -> list[str]:
        return [sys.executable, *args]

    # ------------------------------------------------------------------ stages
    def stage_environment(self) -> dict:
        # The GPU machine cannot reach PyPI: the wheels gpu_prepare.sh packed (for its Python 3.12; a dry
        # run has everything in .venv).
        wheels = [] if self.dry else sorted((self.packed / "whl").glob("*.whl"))
        if wheels:
            code, _ = self.call(
                "environment",
                self.python("-m", "pip", "install", "--quiet", "--no-index", "--no-deps", "--no-compile",
                            "--upgrade", "--target", str(self.site()), *map(str, wheels)),
                timeout=self.remaining(),
            )  # fmt: skip
            if code != 0:
                return {"status": "failed", "error": "installing the carried wheels failed (see gpu-check.log)"}
        code, output = self.call("environment", self.python(__file__, "--probe"), timeout=120)
        if code != 0:
            return {"status": "failed", "error": "a dependency does not import (see gpu-check.log)"}
        figures = json.loads(output.strip().splitlines()[-1])
        if shutil.which("nvidia-smi"):
            _, smi = self.call(
                "environment",
                ["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
                timeout=60,
            )
            figures["nvidia_smi"] = smi.strip()
        if not self.dry and figures["gpu"] is None:
            return {"status": "failed", "error": "torch sees no CUDA GPU", **figures}
        return {"status": "passed", **figures}

    def stage_tests(self) -> dict:
        report = self.work / "tests.xml"
        code, _ = self.call(
            "tests",
            self.python("-m", "pytest", "-m", "gpu", "tests/gpu", "-p", "no:cacheprovider", f"--junitxml={report}"),
            timeout=self.remaining(),
        )
        figures = _junit_summary(report) if report.is_file() else {}
        passed = code == 0 and figures.get("failed", 1) == 0
        return {"status": "passed" if passed else "failed", **figures}

    def stage_bench_train(self) -> dict:
        batch, runs = ("16", "2") if self.dry else ("512", "20")
        archs = ["vgg_slim"] if self.dry else ["vgg_slim", "vgg"]
        amps = ["bf16"] if self.dry else ["off", "bf16", "fp16"]
        return self.bench(
            "bench-train",
            ["bench/train_step.py", "--device", self.device, "--batch-size", batch, "--runs", runs,
             "--archs", *archs, "--amp", *amps],
        )  # fmt: skip

    def stage_bench_infer(self) -> dict:
        if self.dry:
            sizes, backends, runs = ["16", "64"], ["eager"], "2"
        else:
            sizes, backends, runs = ["64", "256", "1024", "4096", "16384"], ["eager", "compile"], "10"
        return self.bench(
            "bench-infer",
            ["bench/infer.py", "--device", self.device, "--backends", *backends, "--batch-sizes", *sizes,
             "--runs", runs],
        )  # fmt: skip

    def stage_bench_api(self) -> dict:
        port = _free_port()
        url = f"http://127.0.0.1:{port}"
        serve = self.python("-m", "fer_cli", "serve", "--device", self.device, "--port", str(port))
        server = subprocess.Popen(
            serve, cwd=REPO, env=self.environment(), stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            if not _wait_ready(url, server, timeout=180):
                return {"status": "failed", "error": "fer serve did not become ready in 180 s (see gpu-check.log)"}
            if self.dry:
                load = ["--concurrency", "2", "--requests", "10", "--runs", "1", "--warmup", "2"]
                load += ["--workloads", "crops", "batch", "--skip-predictor"]
            else:
                load = ["--concurrency", "1", "16", "64", "--requests", "600", "--runs", "3"]
                load += ["--predictor-device", self.device]
            return self.bench("bench-api", ["bench/api_load.py", "--url", url, *load])
        finally:
            _stop(server)

    def bench(self, name: str, arguments: list[str]) -> dict:
        figures_path = self.work / f"{name}.json"
        figures_path.unlink(missing_ok=True)
        code, _ = self.call(name, self.python(*arguments, "--json", str(figures_path)), timeout=self.remaining())
        if code != 0 or not figures_path.is_file():
            return {"status": "failed", "error": f"exit status {code} (see gpu-check.log)"}
        return {"status": "passed", **json.loads(figures_path.read_text())}

    def stage_flagship(self) -> dict | None:
        """One leg of the flagship run: train until it finishes, the training budget is spent, or this
        call's time is (None: resume in the next call)."""
        run = self.work / "flagship"
        legs = self.state.setdefault("flagship-legs", {"seconds": 0.0, "count": 0})
        budget = self.args.train_minutes * 60 - legs["seconds"]
        leg_limit = min(budget, self.remaining() - 30)
        recipe = self.flagship_recipe()
        began = time.monotonic()
        code, _ = self.call(
            "flagship",
            self.python("-m", "training.train", "--data", str(self.data()), "--device", self.device,
                        "--out", str(run), "--resume", *recipe),
            timeout=leg_limit,
        )  # fmt: skip
        legs["seconds"] += time.monotonic() - began
        legs["count"] += 1
        finished = code == 0
        if code not in (0, None):
            return {"status": "failed", "error": f"the trainer exited with {code} (see gpu-check.log)"}
        out_of_budget = legs["seconds"] >= self.args.train_minutes * 60 - 5
        if not finished and not out_of_budget:
            self.say(f"flagship: leg {legs['count']} stopped with this call's time; the next call resumes it")
            return None
        figures = _run_figures(run)
        figures.update(
            recipe=" ".join(recipe), legs=legs["count"], train_seconds=round(legs["seconds"], 1), finished=finished
        )
        if not finished:
            figures["stopped"] = f"the training budget of {self.args.train_minutes} min ran out"
        if not (run / "best.pt").is_file():
            return {"status": "failed", "error": "no epoch finished: no best.pt", **figures}
        return {"status": "passed", **figures}

    def flagship_recipe(self) -> list[str]:
        # The recipe of fer-v1 (docs/training.md): vgg_slim with the trainer's defaults, 120 epochs.
        if self.dry:
            return ["--arch", "vgg_slim", "--epochs", "2", "--batch-size", "16", "--lr", "0.05"]
        return ["--arch", "vgg_slim", "--epochs", "120"]

    def stage_export(self) -> dict:
        if self.state.get("flagship", {}).get("status") != "passed":
            return {"status": "skipped", "error": "the flagship stage left no model"}
        prefix = self.work / "weights" / self.args.model_name
        prefix.parent.mkdir(exist_ok=True)
        best = self.work / "flagship" / "best.pt"
        code, _ = self.call(
            "export",
            self.python("-m", "fer_cli", "export", str(best), "--out", str(prefix), "--data", str(self.data())),
            timeout=self.remaining(),
        )
        card_path = prefix.with_suffix(".json")
        if code != 0 or not card_path.is_file():
            return {"status": "failed", "error": f"fer export exited with {code} (see gpu-check.log)"}
        card = json.loads(card_path.read_text())
        accuracy = {tta: m["accuracy"] for tta, m in card["metrics"]["validation"].items()}
        return {"status": "passed", "validation_accuracy": accuracy, "default_tta": card["default_tta"]}

    def stage_evaluate(self) -> dict:
        weights = self.work / "weights" / f"{self.args.model_name}.safetensors"
        if not weights.is_file():
            return {"status": "skipped", "error": "no exported weights"}
        code, output = self.call(
            "evaluate",
            self.python("-m", "fer_cli", "evaluate", str(self.data()), "--split", "validation", "--weights",
                        str(weights), "--device", self.device, "--json"),
            timeout=self.remaining(),
        )  # fmt: skip
        if code != 0:
            return {"status": "failed", "error": f"fer evaluate exited with {code} (see gpu-check.log)"}
        result = json.loads(next(line for line in reversed(output.splitlines()) if line.startswith("{")))
        return {"status": "passed", **{k: result[k] for k in ("accuracy", "macro_f1", "n", "tta") if k in result}}

    # ------------------------------------------------------------------ FER2013
    def data(self) -> Path:
        return Path(self.args.data) if self.args.data else self.work / "fer2013.zip"

    def _data_ready(self) -> bool:
        """FER2013 is there, or its two carried parts are, and join into the zip with the packed sha256."""
        if self.data().exists():
            return True
        if self.args.data:
            self.say(f"gpu-check: no FER2013 at --data {self.args.data}")
            return False
        if self.dry:  # no FER2013 in CI: a small generated one in the Kaggle layout
            _write_generated_fer2013(self.data(), self.environment())
            return True
        parts = sorted(self.packed.glob("data[12]/fer2013.zip.part-*"))
        digest_file = self.packed / "data1" / "fer2013.zip.sha256"
        if len(parts) < 2 or not digest_file.is_file():
            self.say(
                f"gpu-check: FER2013 is not all here yet ({len(parts)} of 2 parts under .gpu/): carry .gpu/data2 "
                "in the next call (scripts/gpu_prepare.sh packed it) and run make gpu-check again"
            )
            return False
        joined = self.data().with_suffix(".tmp")
        digest = hashlib.sha256()
        with open(joined, "wb") as target:
            for part in parts:
                data = part.read_bytes()
                digest.update(data)
                target.write(data)
        if digest.hexdigest() != digest_file.read_text().split()[0]:
            joined.unlink()
            self.say("gpu-check: the joined FER2013 parts do not match the packed sha256; pack and carry them again")
            return False
        joined.replace(self.data())
        self.say(f"gpu-check: FER2013 joined from {len(parts)} parts into {self.data()} (sha256 checked)")
        return True

    # ------------------------------------------------------------------ the report
    def _write_report(self) -> None:
        report = {"dry_run": self.dry, "stages": self.state, "goals": self._goals()}
        (self.out / "gpu-check.json").write_text(json.dumps(report, indent=2))
        weights = self.work / "weights"
        if weights.is_dir() and any(weights.iterdir()):
            shutil.copytree(weights, self.out / "weights", dirs_exist_ok=True)
        metrics = self.work / "flagship" / "metrics.jsonl"
        if metrics.is_file():
            shutil.copy(metrics, self.out / "flagship-metrics.jsonl")

    def _goals(self) -> dict:
        infer = self.state.get("bench-infer", {}).get("faces_per_second", {})
        api = self.state.get("bench-api", {})
        flagship = self.state.get("flagship", {})
        measured = {
            "inference_faces_per_second": max((v for table in infer.values() for v in table.values()), default=None),
            "api_face_crops_per_second_at_64": max(
                (api.get(w, {}).get("64", {}).get("images_per_second", 0) for w in ("crops", "batch")), default=None
            )
            or None,
            "flagship_seconds_to_73": flagship.get("seconds_to", {}).get("0.73"),
        }
        # A dry run measures tiny settings on a CPU: its figures prove the plumbing, not the goals.
        return {
            name: {
                "goal": goal,
                "measured": measured[name],
                "met": None if self.dry else _met(name, measured[name], goal),
            }
            for name, goal in GOALS.items()
        }

    def _summary(self) -> str:
        lines = ["", f"{'stage':<12} {'status':<8} {'seconds':>8}"]
        for stage in STAGES:
            result = self.state.get(stage.name)
            status, seconds = (result["status"], f"{result['seconds']:.0f}") if result else ("to do", "")
            lines.append(f"{stage.name:<12} {status:<8} {seconds:>8}")
        lines.append("")
        for name, goal in self._goals().items():
            lines.append(f"{name:<34} goal {goal['goal']:>7,}  measured {goal['measured']}  met: {goal['met']}")
        return "\n".join(lines)


def probe() -> dict:
    """What the stages will run on, read in a subprocess that has the carried wheels on its path; an
    ImportError here names the package missing from the GPU machine's image."""
    import platform

    import cv2
    import fastapi
    import numpy
    import onnxruntime
    import pydantic  # noqa: F401 (the card and the API's schemas)
    import torch
    import uvicorn  # noqa: F401

    gpu = torch.cuda.is_available()
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "gpu": torch.cuda.get_device_name() if gpu else None,
        "gpu_memory_gib": round(torch.cuda.get_device_properties(0).total_memory / 2**30, 1) if gpu else None,
        "cpus": os.cpu_count(),
        "numpy": numpy.__version__,
        "opencv": cv2.__version__,
        "fastapi": fastapi.__version__,
        "onnxruntime": onnxruntime.__version__,
        "onnxruntime_providers": onnxruntime.get_available_providers(),
    }


def _met(name: str, measured: float | None, goal: float) -> bool | None:
    if measured is None:
        return None
    return measured <= goal if name.startswith("flagship_seconds") else measured >= goal


def _junit_summary(path: Path) -> dict:
    suite = ElementTree.parse(path).getroot()
    suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
    cases = {"passed": [], "failed": [], "skipped": []}
    for case in suite.iter("testcase"):
        name = f"{case.get('classname', '').rsplit('.', 1)[-1]}::{case.get('name')}"
        if case.find("failure") is not None or case.find("error") is not None:
            cases["failed"].append(name)
        elif (skipped := case.find("skipped")) is not None:
            cases["skipped"].append(f"{name}: {skipped.get('message', '')}")
        else:
            cases["passed"].append(name)
    return {"passed": len(cases["passed"]), "failed": len(cases["failed"]), "tests": cases}


def _run_figures(run: Path) -> dict:
    """Best validation accuracy, epochs and seconds to each threshold, from the run's metrics.jsonl."""
    rows = read_metrics(run) if (run / "metrics.jsonl").is_file() else []
    if not rows:
        return {"epochs": 0}
    best = max(rows, key=lambda row: row["val_accuracy"])
    reached = {str(threshold): first_reaching(rows, threshold) for threshold in THRESHOLDS}
    return {
        "epochs": rows[-1]["epoch"],
        "best_val_accuracy": best["val_accuracy"],
        "best_epoch": best["epoch"],
        "elapsed_seconds": round(rows[-1]["elapsed_seconds"], 1),
        "images_per_second": round(statistics.median(row["images_per_second"] for row in rows)),
        "seconds_to": {key: round(row["elapsed_seconds"], 1) if row else None for key, row in reached.items()},
    }


def _write_generated_fer2013(path: Path, environment: dict) -> None:
    """The tests' generated FER2013 (tests/conftest.py: faces whose emotion is a bright band), as a zip."""
    code = (
        "import sys; from pathlib import Path; from tests.conftest import kaggle_files, write_zip\n"
        "write_zip(Path(sys.argv[1]), kaggle_files())"
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-c", code, str(path)], cwd=REPO, env=environment, check=True)


def _stop(process: subprocess.Popen) -> None:
    """SIGTERM to the process's whole session (a server and its workers), SIGKILL 30 s later."""
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _wait_ready(url: str, server: subprocess.Popen, timeout: float) -> bool:
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and server.poll() is None:
        try:
            with urllib.request.urlopen(f"{url}/readyz", timeout=5) as response:
                if response.status == 200:
                    return True
        except OSError:
            pass
        time.sleep(0.5)
    return False


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], epilog="docs/gpu.md has the whole story.")
    parser.add_argument("--dry-run", action="store_true", help="every stage on the CPU with tiny settings")
    parser.add_argument("--out", help="logs, gpu-check.json and the weights (default: $OUT, else WORK/out)")
    parser.add_argument("--work", help="state kept between calls (default: runs/gpu-check, dry: runs/gpu-check-dry)")
    parser.add_argument(
        "--data", help="FER2013 zip or folder (default: WORK/fer2013.zip, joined from the packed parts)"
    )
    parser.add_argument(
        "--packed", default=str(REPO / ".gpu"), help="what scripts/gpu_prepare.sh packed: whl/, data1/, data2/"
    )
    parser.add_argument(
        "--call-budget", type=float, help="seconds this call may take (default: 540 on a GPU, no limit in a dry run)"
    )
    parser.add_argument("--train-minutes", type=float, help="the flagship's training budget (default: 8; dry: 2)")
    parser.add_argument("--model-name", default="fer-gpu", help="name of the exported weights")
    parser.add_argument(
        "--restart", action="store_true", help="forget earlier calls' stages and run (keeps wheels and FER2013)"
    )
    args = parser.parse_args(argv)
    args.work = args.work or str(REPO / "runs" / ("gpu-check-dry" if args.dry_run else "gpu-check"))
    args.out = args.out or os.environ.get("OUT") or str(Path(args.work) / "out")
    if args.call_budget is None:
        args.call_budget = 3600.0 if args.dry_run else 540.0  # the device tool stops a command at 600 s
    if args.train_minutes is None:
        args.train_minutes = 2.0 if args.dry_run else 8.0
    return args


def main(argv: list[str] | None = None) -> int:
    if (argv if argv is not None else sys.argv[1:]) == ["--probe"]:  # the environment stage's subprocess
        print(json.dumps(probe()))
        return 0
    args = parse_args(argv)
    if args.restart:
        forget(Path(args.work))
    return Check(args).run()


def forget(work: Path) -> None:
    """Remove what earlier calls ran and measured; keep what only costs time to set up again."""
    for name in ("state.json", "tests.xml", "flagship", "weights", "logs", "out"):
        path = work / name
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)
    for figures in work.glob("bench-*.json"):
        figures.unlink()


if __name__ == "__main__":
    sys.exit(main())
