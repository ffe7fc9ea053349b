"""Start-up time of the `fer` command: seconds from launch to exit, for commands that load no model and
for `fer predict` of one photo (the shipped model, its default engine: int8 on a CPU, without torch).

    python bench/cli_startup.py                 # fer --help, fer predict --help, a mistyped flag, fer models,
                                                # fer predict photo.jpg
    python bench/cli_startup.py --runs 20

Each command is run as a new process (the installed `fer` script, as a user types it) --warmup times
untimed (to fill the page cache), then --runs times; the median wall time is reported, with the machine.
The goal (issue 14): `fer --help` under 1 s on 2 cores.
"""

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image
from skimage import data

COMMANDS = (
    ("fer --help", ["--help"]),
    ("fer predict --help", ["predict", "--help"]),
    ("fer predict x.jpg --tta bogus (mistake)", ["predict", "x.jpg", "--tta", "bogus"]),
    ("fer models (imports torch)", ["models"]),
    ("fer predict photo.jpg (loads the model)", ["predict", "{photo}"]),
)


def fer_command() -> list[str]:
    """The installed console script beside this Python, else the module."""
    script = shutil.which("fer", path=str(Path(sys.executable).parent))
    return [script] if script else [sys.executable, "-m", "fer_cli"]


def seconds_to_run(command: list[str], warmup: int, runs: int) -> float:
    times = []
    for attempt in range(warmup + runs):
        started = time.perf_counter()
        subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
        if attempt >= warmup:
            times.append(time.perf_counter() - started)
    return statistics.median(times)


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as info:
            return next(line.split(":", 1)[1].strip() for line in info if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or "CPU"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()

    fer = fer_command()
    print(f"{cpu_name()}, {os.cpu_count()} cores, Python {platform.python_version()}; {' '.join(fer)}")
    print(f"median of {args.runs} runs after {args.warmup} warm-up runs")
    with tempfile.TemporaryDirectory() as folder:
        photo = Path(folder) / "astronaut.jpg"
        Image.fromarray(data.astronaut()).save(photo)  # a real photo with one face, shipped in scikit-image
        for label, fer_args in COMMANDS:
            command = fer + [arg.format(photo=photo) for arg in fer_args]
            print(f"{label:<42}{seconds_to_run(command, args.warmup, args.runs):>8.3f} s")


if __name__ == "__main__":
    main()
