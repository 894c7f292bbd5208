"""Formatting and lint are code: the tree is `ruff format`ted and `ruff check`-clean (config: ruff.toml)."""

import pathlib
import shutil
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
RUFF = shutil.which("ruff")


@pytest.mark.skipif(RUFF is None, reason="ruff is in the test extras: pip install -e '.[test]'")
@pytest.mark.parametrize("args", [("format", "--check"), ("check",)], ids=["format", "lint"])
def test_tree_is_ruff_clean(args):
    proc = subprocess.run([RUFF, *args, "."], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_ruff_catches_a_violation(tmp_path):
    """Negative control: the same call fails on a file that breaks the rules."""
    if RUFF is None:
        pytest.skip("ruff not installed")
    bad = tmp_path / "bad.py"
    bad.write_text("import os\nx=1\n")
    shutil.copy(ROOT / "ruff.toml", tmp_path / "ruff.toml")
    for args in (("format", "--check"), ("check",)):
        assert subprocess.run([RUFF, *args, "."], cwd=tmp_path, capture_output=True).returncode != 0
