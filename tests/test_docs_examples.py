"""The migration guide's programs (docs/migration.md) run as they are shown.

The documentation build executes the notebook pages itself (``tox -e docs``); the migration guide
includes plain scripts instead, which run here, each in its own process: the CFProto script
disables eager execution, which is process-wide and would break every TensorFlow test after it.
"""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
MIGRATION = REPO / "docs" / "examples" / "migration"

pytestmark = pytest.mark.slow
needs_keras = pytest.mark.skipif(importlib.util.find_spec("tensorflow") is None,
                                 reason="the CFProto migration scripts use Keras")
needs_torch = pytest.mark.skipif(importlib.util.find_spec("torch") is None,
                                 reason="the CFRL migration script builds alibi's PyTorch autoencoder")


def run_script(name: str, *args: str) -> str:
    """Run a migration script with the repository on the path; returns its standard output."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
           "TF_CPP_MIN_LOG_LEVEL": "2", "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    result = subprocess.run([sys.executable, str(MIGRATION / name), *args], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"{name} failed:\n{result.stdout[-3000:]}\n{result.stderr[-5000:]}"
    return result.stdout


def people(out: str) -> list:
    """The ``person <id>`` lines a script printed."""
    return [line for line in out.splitlines() if line.startswith("person ")]


@needs_keras
def test_the_two_migration_programs_run_and_explain_the_same_people():
    cfproto = people(run_script("cfproto_compas.py", "--people", "2"))
    countergan_out = run_script("countergan_compas.py", "--people", "2")
    countergan = people(countergan_out)
    assert len(cfproto) == len(countergan) == 2, (cfproto, countergan_out)
    assert [line.split(":")[0] for line in cfproto] == [line.split(":")[0] for line in countergan]
    assert all("P(not reoffend)" in line and "changed" in line for line in countergan)
    assert countergan_out.splitlines()[-1].startswith("batch of 2: success [")


@needs_torch
def test_the_cfrl_migration_script_builds_cfrl_and_explains_with_the_same_arguments():
    out = run_script("cfrl_compas.py", "--people", "2", "--train-steps", "200")
    assert "CFRL constructed: CounterfactualRLTabular" in out, out
    lines = people(out)
    assert len(lines) == 2, out
    assert all(": reached: " in line or ": missed: " in line for line in lines), lines
