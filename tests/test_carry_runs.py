"""experiments/carry_runs.py: a sweep's finished run files carried to another tree and back."""

import json
import os

import pytest

from amr.runner import sweep_workers
from experiments import carry_runs
from tests.test_sweep_workers import _read, _worker_tree, _write


def test_save_and_restore_carry_only_finished_runs(tmp_path, capsys):
    sweep, saved, fresh = (str(tmp_path / d) for d in ("sweep", "saved", "fresh"))
    for i in range(2):
        _worker_tree(os.path.join(sweep, "workers", str(i)), i)
    _write(os.path.join(sweep, "digits", "ckpt", "uniform_seed0", "1", "state"), "big")  # not a run file
    _write(os.path.join(sweep, "digits", "runs", "uniform_seed3.json.tmp"), "{")  # a run being written

    out = carry_runs.main([sweep, saved])
    assert out["copied"] == 4 and out["held"] == 4
    assert json.loads(capsys.readouterr().out)["copied"] == 4
    assert not os.path.exists(os.path.join(saved, "digits")) and not os.path.exists(
        os.path.join(saved, "workers", "0", "digits", "ckpt")
    )  # neither checkpoints nor unfinished runs: only the workers' finished runs existed
    assert sweep_workers.finished_run_files(saved) == sweep_workers.finished_run_files(sweep)

    mine = os.path.join(fresh, "workers", "1", "digits", "runs", "uniform_seed1.json")
    _write(mine, '{"from": "a run already here"}')
    assert carry_runs.main([saved, fresh])["copied"] == 3  # the run already in place is kept
    assert json.loads(_read(mine))["from"] == "a run already here"
    rel = "workers/0/digits/runs/uniform_seed0.json"
    assert _read(os.path.join(fresh, rel)) == _read(os.path.join(sweep, rel))
    assert _read(os.path.join(fresh, rel + ".seconds")) == _read(os.path.join(sweep, rel + ".seconds"))


def test_a_source_without_runs_is_refused(tmp_path, capsys):
    with pytest.raises(SystemExit):
        carry_runs.main([str(tmp_path), str(tmp_path / "dst")])
    assert "no finished run files" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        carry_runs.main([str(tmp_path / "missing"), str(tmp_path / "dst")])
    assert "is not a directory" in capsys.readouterr().err
    assert not os.path.exists(tmp_path / "dst")
