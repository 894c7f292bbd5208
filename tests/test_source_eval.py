"""Per-source held-out losses of mixture streams: the run records them and their forgetting."""

import json

import chex
import numpy as np
import pytest

from amr.analysis import forgetting
from amr.data import default_data_config
from amr.runner.experiment import train_and_evaluate
from configs import tiny


def test_source_forgetting_against_a_direct_computation():
    rows = np.array([[1.0, 2.0, 3.0], [1.5, 1.0, 2.5], [2.0, 1.8, 1.0]])  # after tasks 0..2; sources a, b, c
    got = forgetting.source_forgetting(rows, {"a": 0, "b": 1, "c": 2}, ["a", "b", "c"])
    assert got["c"] is None  # still in the last task: not forgotten yet
    chex.assert_trees_all_close((got["a"], got["b"]), (2.0 - 1.0, 1.8 - 1.0))
    with pytest.raises(ValueError, match="source_rows"):
        forgetting.source_forgetting(rows, {"a": 0, "b": 1}, ["a", "b"])


def _config(source):
    cfg = tiny.get_config()
    cfg.strategies, cfg.baseline, cfg.seeds = ("none",), "", (0,)
    cfg.train.steps_per_task, cfg.train.eval_every = 4, 0
    if source == "mixture":
        data = default_data_config("mixture")
        data.domains = ("headers+docs", "docs+licenses", "licenses")  # headers vanish, docs recur once
        data.seq_len, data.max_train_per_task = cfg.data.seq_len, cfg.data.max_train_per_task
        data.test_per_task, data.test_per_source = 32, 32
        cfg.data = data
    return cfg


@pytest.mark.slow
def test_mixture_run_records_per_source_losses(tmp_path):
    cfg = _config("mixture")
    results = train_and_evaluate(cfg, str(tmp_path), progress=False)
    run = json.load(open(tmp_path / "runs" / "none_seed0.json"))
    assert run["sources"] == ["headers", "docs", "licenses"]
    S = np.asarray(run["source_loss_matrix"])
    chex.assert_shape(S, (3, 3))
    assert np.all(np.isfinite(S))
    expected = {"headers": S[2, 0] - S[0, 0], "docs": S[2, 1] - S[1, 1], "licenses": None}
    assert run["source_forgetting"]["licenses"] is None
    chex.assert_trees_all_close(
        (run["source_forgetting"]["headers"], run["source_forgetting"]["docs"]), (expected["headers"], expected["docs"])
    )
    assert results["strategies"]["none"]["source_forgetting"]["headers"] == pytest.approx(expected["headers"])


@pytest.mark.slow
def test_plain_stream_has_no_source_losses(tmp_path):
    """Negative control: a stream without Task.sources records none."""
    train_and_evaluate(_config("python_text"), str(tmp_path), progress=False)
    run = json.load(open(tmp_path / "runs" / "none_seed0.json"))
    assert "sources" not in run and "source_loss_matrix" not in run
