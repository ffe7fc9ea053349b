"""The layers of the project, read from the code: the library (`fer`) stands on its own, the trainer
and the server stand on the library, and the command line (`fer_cli`) on all three.

Every import counts, at the top of a module or inside a function, because a lazy import is still a
dependency: it is read from each module's syntax tree with `ast`.
"""

import ast
import subprocess
import sys

import pytest

from tests.conftest import REPO

PACKAGES = ("fer", "training", "api", "fer_cli")
# What each package must never import (the packages above it, or beside it).
FORBIDDEN = {
    "fer": {"training", "api", "fer_cli"},
    "training": {"api", "fer_cli"},
    "api": {"training", "fer_cli"},
    "fer_cli": set(),
}


def imported_packages(path) -> set[str]:
    """The top-level packages a module imports anywhere in its code."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found


def modules_of(package: str) -> list:
    return sorted((REPO / package).rglob("*.py"))


def test_every_package_has_modules_to_check():
    for package in PACKAGES:
        assert len(modules_of(package)) >= 3, package


@pytest.mark.parametrize("package", PACKAGES)
def test_no_module_imports_a_layer_above_it(package):
    offences = [
        f"{path.relative_to(REPO)} imports {name}"
        for path in modules_of(package)
        for name in sorted(imported_packages(path) & FORBIDDEN[package])
    ]
    assert offences == []


def test_the_reader_sees_lazy_imports_too(tmp_path):
    module = tmp_path / "lazy.py"
    module.write_text("import os\n\ndef f():\n    from api.serve import serve\n    import training.data as d\n")
    assert imported_packages(module) == {"os", "api", "training"}


def test_the_command_line_parses_without_torch_opencv_or_fastapi():
    """`fer --help` and a mistyped flag answer at once: parsing imports none of the heavy layers."""
    code = (
        "import sys\n"
        "from fer_cli.main import build_parser\n"
        "build_parser().parse_args(['predict', 'x.jpg', '--tta', 'flip'])\n"
        "heavy = [name for name in ('torch', 'cv2', 'fastapi', 'onnxruntime', 'api') if name in sys.modules]\n"
        # The trainers' argparse (training/arguments.py, argparse alone) is shared; no more of training.
        "heavy += [name for name in sys.modules if name.startswith('training.') and name != 'training.arguments']\n"
        "print(sorted(heavy))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert result.stdout.strip() == "[]"
