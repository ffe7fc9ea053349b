"""scripts/mutate.py (make mutate) must not rot between the runs someone makes by hand: every scope
names modules, functions and tests that exist, and a session is prepared in a copy of the tree with
the out-of-scope mutants skipped. The mutation run itself takes about 30 minutes: not a test."""

import ast
import importlib.util
import subprocess

import pytest

from tests.conftest import REPO


@pytest.fixture(scope="module")
def mutate():
    spec = importlib.util.spec_from_file_location("mutate", REPO / "scripts" / "mutate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_scope_names_what_exists(mutate):
    for scope in mutate.SCOPES:
        source = REPO / scope.module
        assert source.is_file(), scope.module
        defined = {node.name for node in ast.walk(ast.parse(source.read_text())) if hasattr(node, "name")}
        for name in (*scope.definitions, *scope.excluded_definitions):
            assert name in defined, f"{scope.module} has no {name}"
        for test in scope.tests:
            assert (REPO / test).is_file(), test


def test_a_session_is_prepared_in_a_copy_with_out_of_scope_mutants_skipped(mutate, tmp_path):
    from cosmic_ray.work_db import WorkDB, use_db

    (scope,) = [s for s in mutate.SCOPES if s.module == "fer/metrics.py"]
    config = mutate.prepare(scope, tmp_path / "work", timeout=60)
    copied = tmp_path / "work" / "fer" / "metrics.py"
    assert copied.read_text() == (REPO / "fer" / "metrics.py").read_text()
    assert not (tmp_path / "work" / "runs").exists()  # ignored files stay behind
    assert "tests/fer/test_metrics.py" in config.read_text()
    with use_db(str(tmp_path / "work" / "session.sqlite"), WorkDB.Mode.open) as db:
        pending = [item.mutations[0] for item in db.pending_work_items]
        skipped = db.num_results
    assert pending and skipped > 0
    assert {m.definition_name for m in pending} == {"compute_metrics", "evaluate_predictor", "format_report"}
    assert not any(mutate.EXCLUDED_OPERATORS.search(m.operator_name) for m in pending)


def test_an_interrupted_session_goes_on_from_the_module_as_it_was_prepared(mutate, tmp_path):
    import sqlite3

    from cosmic_ray.work_db import WorkDB, use_db

    (scope,) = [s for s in mutate.SCOPES if s.module == "fer/metrics.py"]
    work = tmp_path / "work"
    mutate.prepare(scope, work, timeout=60)
    original = (work / "fer" / "metrics.py").read_text()
    (work / "fer" / "metrics.py").write_text(original.replace("==", "!="))  # killed with a mutant in place
    with sqlite3.connect(work / "session.sqlite") as connection:  # ... and stopped while skipping
        connection.execute("DELETE FROM work_results")
    config = mutate.reopen_interrupted(scope, work)
    assert (work / "fer" / "metrics.py").read_text() == original
    assert config == work / "cosmic-ray.toml" and config.is_file()
    with use_db(str(work / "session.sqlite"), WorkDB.Mode.open) as db:
        pending = [item.mutations[0] for item in db.pending_work_items]
    assert {m.definition_name for m in pending} == {"compute_metrics", "evaluate_predictor", "format_report"}
    assert not any(mutate.EXCLUDED_OPERATORS.search(m.operator_name) for m in pending)


def test_a_scope_can_run_a_selection_of_its_tests(mutate):
    (scope,) = [s for s in mutate.SCOPES if s.module == "fer/detection/mtcnn.py"]
    command = mutate.test_command(scope)
    assert f"-k '{scope.select}'" in command and command.endswith("tests/fer/detection/test_mtcnn.py")
    assert "-k" not in mutate.test_command(mutate.SCOPES[0])


def test_each_mutants_tests_load_only_the_plugins_they_need(mutate, tmp_path):
    """Plugin autoloading off (2 CPU seconds a mutant), the timeout plugin named: every scope's
    baseline must still pass that way, which run_scope checks before testing any mutant."""
    (scope,) = [s for s in mutate.SCOPES if s.module == "fer/labels.py"]
    env = mutate.environment(scope, tmp_path)
    assert env["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] == "1"
    result = subprocess.run(mutate.test_command(scope), shell=True, cwd=REPO, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-2000:]
    assert " passed" in result.stdout
