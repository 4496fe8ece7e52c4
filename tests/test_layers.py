"""The layering of distill/ (pyproject.toml's import-linter contracts): the stages over their shared ground, no
cycles, curation, training and eval independent. `lint-imports` on the package as it is, and on a copy with one
import that points back up, which it must catch."""

import shutil
import subprocess
import sys
from pathlib import Path

from support import ROOT

LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def lint_imports(package_parent: Path, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(LINT_IMPORTS), "--no-cache"], cwd=cwd, capture_output=True, text=True, timeout=300,
                          env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(package_parent)})


def test_the_package_keeps_its_layers():
    result = lint_imports(ROOT, ROOT)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "2 kept, 0 broken" in result.stdout


def test_an_import_that_points_back_up_is_caught(tmp_path):
    shutil.copytree(ROOT / "distill", tmp_path / "distill", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    engines = tmp_path / "distill" / "engines" / "base.py"
    engines.write_text(engines.read_text() + "\n\ndef _teacher():\n    import distill.teacher.generate  # noqa: F401\n")
    result = lint_imports(tmp_path, tmp_path)
    assert result.returncode == 1
    assert "distill.engines.base -> distill.teacher.generate" in result.stdout
    assert "1 kept, 1 broken" in result.stdout
