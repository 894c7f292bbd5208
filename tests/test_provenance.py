"""Data digests and package versions in results; runs made on different data are never compared
(each refusal with its accepted counterpart)."""

import numpy as np
import pytest

from amr.analysis import provenance
from amr.analysis import stats as seed_stats
from amr.data import Task
from experiments import results_page


def _tasks(shift=0):
    rng = np.random.default_rng(0)
    return [
        Task(name, rng.integers(0, 256, (8, 4)).astype(np.int32) + shift, rng.integers(0, 256, (2, 4)).astype(np.int32))
        for name in ("docs", "stdlib")
    ]


def _run(strategy_seed, digests, init=(5.0, 5.1)):
    return {"seed": strategy_seed, "avg_forgetting": 0.1, "init_losses": list(init), "data_digests": digests}


def test_array_digest_sees_values_dtype_and_shape():
    x = np.arange(6, dtype=np.int32)
    d = provenance.array_digest(x)
    assert d == provenance.array_digest(x.copy()) and len(d) == 64
    assert d != provenance.array_digest(x.reshape(2, 3))
    assert d != provenance.array_digest(x.astype(np.int64))
    y = x.copy()
    y[3] += 1
    assert d != provenance.array_digest(y)
    assert provenance.array_digest(np.asfortranarray(x.reshape(2, 3))) == provenance.array_digest(x.reshape(2, 3))


def test_data_digests_and_environment():
    digests = provenance.data_digests(_tasks())
    assert list(digests) == ["docs", "stdlib"] and set(digests["docs"]) == {"train", "test"}
    assert digests == provenance.data_digests(_tasks())
    assert provenance.fingerprint(digests) != provenance.fingerprint(provenance.data_digests(_tasks(shift=1)))
    env = provenance.environment()
    assert {"python", "jax", "jaxlib", "flax", "optax", "numpy", "platform"} <= set(env)
    assert env["numpy"] == np.__version__


def test_check_runs_refuses_different_data_and_accepts_equal():
    same, other = provenance.data_digests(_tasks()), provenance.data_digests(_tasks(shift=1))
    ok = provenance.check_runs({"amr": [_run(0, same), _run(1, other)], "uniform": [_run(0, same), _run(1, other)]})
    assert ok["verified"] and len(ok["fingerprints"]) == 2  # seeds may differ from each other, not within a seed
    with pytest.raises(provenance.DataMismatch) as err:
        provenance.check_runs({"amr": [_run(0, same)], "uniform": [_run(0, other)]})
    msg = str(err.value)
    assert "amr seed 0" in msg and "uniform seed 0" in msg and "docs (train)" in msg
    assert provenance.fingerprint(same) in msg and provenance.fingerprint(other) in msg
    old = provenance.check_runs({"amr": [_run(0, None)], "uniform": [_run(0, same)]})
    assert not old["verified"] and old["unverified_runs"] == ["amr seed 0"]


def test_same_initial_losses_refuses_differing_digests():
    same, other = provenance.data_digests(_tasks()), provenance.data_digests(_tasks(shift=1))
    assert seed_stats.same_initial_losses({"amr": [_run(0, same)], "uniform": [_run(0, same)]})["ok"]
    with pytest.raises(provenance.DataMismatch, match="uniform seed 0"):
        seed_stats.same_initial_losses({"amr": [_run(0, same)], "uniform": [_run(0, other)]})


def test_results_page_refuses_differing_digests(tmp_path):
    fp = {"a": provenance.fingerprint({"docs": {"train": "1"}}), "b": provenance.fingerprint({"docs": {"train": "2"}})}
    good = {"data": {"per_run": {"amr": {"0": fp["a"], "1": fp["b"]}, "uniform": {"0": fp["a"], "1": fp["b"]}}}}
    assert fp["a"] in results_page.data_check("text", good)
    bad = {"data": {"per_run": {"amr": {"0": fp["a"]}, "uniform": {"0": fp["b"]}}}}
    with pytest.raises(
        provenance.DataMismatch, match=rf"benchmark text: .*amr seed 0 .*{fp['a']}.*uniform seed 0 .*{fp['b']}"
    ):
        results_page.data_check("text", bad)
    with pytest.raises(provenance.DataMismatch):  # before any plot is written
        results_page.page({"benchmarks": {"text": bad}}, None, str(tmp_path))
    assert not list(tmp_path.iterdir())
    assert "not verified" in results_page.data_check("text", {})  # results recorded before digests existed
