"""The import-linter contracts of pyproject.toml hold for probgen, and they do catch a wrong import."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LINT = shutil.which("lint-imports")
pytestmark = pytest.mark.skipif(LINT is None, reason="import-linter is not installed (pip install -e '.[dev]')")

MODULES = ["cli", "experiments", "classifiers", "inference", "checkpoint", "models", "data", "_checks", "_io"]
MODULES += ["progress", "plots"]


def _lint(cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(cwd)}
    return subprocess.run(
        [LINT, "--config", str(cwd / "pyproject.toml"), "--no-cache"], cwd=cwd, env=env, capture_output=True, text=True
    )


def test_probgen_keeps_its_contracts():
    done = _lint(ROOT)
    assert done.returncode == 0, done.stdout[-3000:]


@pytest.mark.parametrize(
    "module, bad_import, broken",
    [
        ("models", "import probgen.inference", "layers"),
        ("data", "from probgen import experiments", "layers"),
        ("models", "import probgen.plots", "never draw"),
    ],
)
def test_a_planted_wrong_import_breaks_a_contract(tmp_path, module, bad_import, broken):
    package = tmp_path / "probgen"
    package.mkdir()
    (package / "__init__.py").write_text("")
    for name in MODULES:
        (package / f"{name}.py").write_text(bad_import + "\n" if name == module else "")
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    done = _lint(tmp_path)
    assert done.returncode != 0
    assert f"probgen.{module} is not allowed to import" in done.stdout
    assert "1 kept, 1 broken" in done.stdout
    assert broken in done.stdout.split("Broken contracts")[1], done.stdout[-2000:]
