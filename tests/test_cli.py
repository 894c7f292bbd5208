"""The trainer's command line (`amr-train` = amr.runner.cli:run): config paths from any directory."""

import os
import subprocess
import sys

import pytest

from amr.runner import cli

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["amr-train", "--config=configs/tiny.py", "--workdir=w"], "configs/tiny.py"),
        (["amr-train", "--workdir=w", "--config", "/a/configs/tiny.py:arg"], "/a/configs/tiny.py"),
        (["amr-train", "-config=x.py"], "x.py"),
        (["amr-train", "--config.seeds=(0,)", "--workdir=w"], None),  # an override is not the file
    ],
)
def test_config_path(argv, expected):
    assert cli.config_path(argv) == expected


def test_add_config_root(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "path", list(sys.path))
    assert cli.add_config_root(["amr-train", f"--config={ROOT}/configs/tiny.py"]) == ROOT
    assert sys.path[0] == ROOT
    (tmp_path / "lone.py").write_text("")
    assert cli.add_config_root(["amr-train", f"--config={tmp_path}/lone.py"]) is None  # not in a package
    assert cli.add_config_root(["amr-train"]) is None


# A fresh interpreter as after `pip install`: amr importable, no `configs` package anywhere (this
# machine may have an editable install that exposes one: its finder is dropped), cwd elsewhere.
_PRELUDE = (
    "import sys; sys.meta_path[:] = [f for f in sys.meta_path if 'editable' not in getattr(f, '__module__', '')]; "
    "sys.argv[0] = 'amr-train'; from amr.runner import cli; "
)


def _amr_train(tmp_path, body: str, *flags):
    site = tmp_path / "site"
    site.mkdir(exist_ok=True)
    if not (site / "amr").exists():
        os.symlink(os.path.join(ROOT, "amr"), site / "amr")  # the package alone, as an install places it
    return subprocess.run(
        [sys.executable, "-c", _PRELUDE + body, f"--config={ROOT}/configs/tiny.py", *flags],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(site), "XLA_FLAGS": "", "JAX_PLATFORMS": "cpu"},
    )


def test_without_the_config_root_the_config_cannot_load(tmp_path):
    """Negative control for the test below: the bare flag parser cannot import `configs.base`."""
    out = _amr_train(tmp_path, "from absl import app; app.run(cli.main)", f"--workdir={tmp_path / 'run'}")
    assert out.returncode != 0 and "No module named 'configs'" in out.stderr


@pytest.mark.slow
def test_console_script_from_another_directory(tmp_path):
    workdir = tmp_path / "run"
    out = _amr_train(
        tmp_path,
        "cli.run()",
        f"--workdir={workdir}",
        "--config.strategies=('none',)",
        "--config.baseline=",
        "--config.train.steps_per_task=8",
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert "| none |" in out.stdout
    assert (workdir / "results.json").exists()
