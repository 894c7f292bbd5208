"""Shards of a sweep (`run_sweep(shard=(i, n))`): every n-th seed, entries staggered across the seed shards so
the workers do not compile the same programs at once, and every n-th entry (`split="entries"`); the workers
themselves are tests/test_sweep_workers.py."""

import json
import os
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from amr.runner import sweep, sweep_workers
from configs import benchmarks
from tests.support import tiny_sweep
from tests.test_sweep_workers import _read, _write

# ---- shards of the seeds ----

calls: list = []


def _fake_train_and_evaluate(config, workdir, progress=True):
    """Stands in for a training run: one run file per (strategy, seed), forgetting set by the seed; like the real
    one (config_check), it refuses a baseline that is not among the config's strategies."""
    assert config.baseline in ("", *config.strategies), f"baseline: {config.baseline!r} not in {config.strategies}"
    calls.append((workdir, tuple(config.seeds)))
    for s in config.strategies:
        for seed in config.seeds:
            run = {
                "seed": seed, "avg_forgetting": 0.1 + 0.01 * seed, "max_forgetting": 0.2, "new_task_loss": 2.0,
                "final_avg_loss": 2.0, "forgetting_per_task": [0.1, 0.1], "loss_matrix": [[1.0] * 2] * 2,
                "within_budget": True, "flops": {"total": 10.0, "train_new": 8.0}, "init_losses": [3.0, 3.0],
            }  # fmt: skip
            _write(os.path.join(workdir, "runs", f"{s}_seed{seed}.json"), json.dumps(run))
    return {"tasks": ["a", "b"]}


def _sweep(tmp_path, seeds, shard, name="r"):
    return sweep.run_sweep(
        ["digits"], ["uniform"], seeds, str(tmp_path / name), str(tmp_path / f"{name}.json"), smoke=True,
        progress=False, get_config=benchmarks.get, frontier=(), same_split=False, headroom=(), shard=shard,
    )  # fmt: skip


@pytest.mark.parametrize(
    "shard, kept", [((0, 2), [0, 2, 4]), ((1, 2), [1, 3]), ((2, 3), [2]), ((0, 1), [0, 1, 2, 3, 4])]
)
def test_a_shard_runs_every_nth_seed(tmp_path, monkeypatch, shard, kept):
    monkeypatch.setattr(sweep, "train_and_evaluate", _fake_train_and_evaluate)
    calls.clear()
    results = _sweep(tmp_path, [0, 1, 2, 3, 4], shard)
    assert set(calls) == {(str(tmp_path / "r" / "digits"), tuple(kept))}
    assert results["benchmarks"]["digits"]["seeds"] == kept
    assert sorted(os.listdir(tmp_path / "r" / "digits" / "runs")) == [f"uniform_seed{k}.json" for k in kept]


def test_benchmark_config_shards_the_configs_own_seeds():
    config = sweep.benchmark_config(tiny_sweep.get_config, "tiny", ["uniform"], None, False, shard=(1, 2))
    assert config.seeds == (1,)  # tiny_sweep's config has seeds (0, 1)
    assert sweep.benchmark_config(tiny_sweep.get_config, "tiny", ["uniform"], None, False).seeds == (0, 1)


def test_a_shard_without_seeds_runs_nothing_and_does_not_fail(tmp_path, monkeypatch, capsys):
    """A worker of more workers than seeds (`--smoke` has one seed): its sweep is empty, not an error."""
    monkeypatch.setattr(sweep, "train_and_evaluate", _fake_train_and_evaluate)
    calls.clear()
    results = _sweep(tmp_path, None, (1, 2))  # smoke: seeds (0,)
    assert calls == [] and results["benchmarks"] == {}
    assert "no seed in shard 1/2" in capsys.readouterr().out
    assert os.path.exists(tmp_path / "r" / "digits" / sweep_workers.DONE_MARK)  # its empty share is finished


@pytest.mark.parametrize("split", ["seeds", "entries"])
def test_a_shard_marks_each_benchmark_after_its_runs_and_a_whole_sweep_does_not(tmp_path, monkeypatch, split):
    def train_then_look(config, workdir, progress=True):
        assert not os.path.exists(os.path.join(workdir, sweep_workers.DONE_MARK))  # not before its runs
        return _fake_train_and_evaluate(config, workdir, progress)

    monkeypatch.setattr(sweep, "train_and_evaluate", train_then_look)
    sweep.run_sweep(
        ["digits", "text"], ["uniform"], [0, 1], str(tmp_path / "s"), str(tmp_path / "s.json"), smoke=True,
        progress=False, get_config=benchmarks.get, frontier=(), same_split=False, headroom=(), shard=(0, 2),
        split=split,
    )  # fmt: skip
    for b in ("digits", "text"):
        assert _read(str(tmp_path / "s" / b / sweep_workers.DONE_MARK)) == "0/2\n"
    _sweep(tmp_path, [0, 1], None, name="whole")  # negative control: not a worker, no mark
    assert not os.path.exists(tmp_path / "whole" / "digits" / sweep_workers.DONE_MARK)


@settings(deadline=None, max_examples=60)
@given(st.integers(0, 12), st.integers(1, 5), st.data())
def test_staggered_orders_are_rotations_that_start_apart(length, n, data):
    i = data.draw(st.integers(0, n - 1))
    units = list(range(length))
    got = sweep.staggered(units, (i, n))
    assert sorted(got) == units  # every unit once
    k = (i * length) // n
    assert got == units[k:] + units[:k]
    assert sweep.staggered(units, (0, n)) == units  # worker 0 keeps the sweep's order
    if length >= n:  # the workers start on different units
        assert len({sweep.staggered(units, (j, n))[0] for j in range(n)}) == n


def _recording(order):
    def fake(config, workdir, progress=True):
        entry = os.path.basename(workdir) if os.path.basename(os.path.dirname(workdir)) == "variants" else "plain"
        order.append((entry, tuple(config.strategies)))
        return _fake_train_and_evaluate(config, workdir, progress)

    return fake


def _staggered_sweep(tmp_path, shard, name):
    return sweep.run_sweep(
        ["digits"], ["none", "uniform", "uniform@4/32", "uniform+tail"], [0, 1, 2, 3], str(tmp_path / name),
        str(tmp_path / f"{name}.json"), smoke=True, progress=False, get_config=benchmarks.get, frontier=(),
        same_split=False, headroom=(), shard=shard,
    )  # fmt: skip


def test_seed_shards_run_the_entries_staggered_and_summarise_the_same(tmp_path, monkeypatch):
    """Worker 1 of 2 starts half-way through the entries (so the two do not compile the same programs at once);
    worker 0 keeps the sweep's order; each summarises all of its entries, as a whole sweep of its seeds does."""
    orders = {}
    for i in (0, 1):
        orders[i] = []
        monkeypatch.setattr(sweep, "train_and_evaluate", _recording(orders[i]))
        _staggered_sweep(tmp_path, (i, 2), f"w{i}")
    runs, runs1 = orders[0], orders[1]
    assert runs[:2] == [("plain", ("none",)), ("plain", ("uniform",))]  # negative control: worker 0 in order
    assert runs[2:4] == [("uniform@4of32", ("uniform",)), ("uniform+tail", ("uniform",))]
    assert runs1[:4] == [
        ("uniform@4of32", ("uniform",)), ("uniform+tail", ("uniform",)), ("plain", ("none",)), ("plain", ("uniform",))
    ]  # fmt: skip
    assert runs[-1] == runs1[-1] == ("plain", ("none", "uniform"))  # then the summary loads every plain run
    a, b = _runs(tmp_path / "w0"), _runs(tmp_path / "w1")
    assert len(a) == len(b) == 4 * 2 and not a & b  # each worker on its own seeds
    assert {re.sub(r"_seed\d", "", r) for r in a} == {re.sub(r"_seed\d", "", r) for r in b}  # of the same entries
    summaries = [json.load(open(tmp_path / f"w{i}.json"))["benchmarks"]["digits"] for i in (0, 1)]
    assert [x["seeds"] for x in summaries] == [[0, 2], [1, 3]]
    assert list(summaries[0]["strategies"]) == list(summaries[1]["strategies"]) == [
        "none", "uniform", "uniform@4/32", "uniform+tail"
    ]  # fmt: skip


@pytest.mark.parametrize("shard", [(2, 2), (0, 0), (-1, 2), (3, 2), (1,), (0, 1, 2), 3, (0.5, 2), ("0", "2")])
def test_a_bad_shard_fails_before_any_run(tmp_path, monkeypatch, shard):
    monkeypatch.setattr(sweep, "train_and_evaluate", _fake_train_and_evaluate)
    calls.clear()
    with pytest.raises(ValueError, match="^shard: "):
        _sweep(tmp_path, [0, 1], shard)
    assert not calls and not os.listdir(tmp_path)


# ---- shards of the entries ----


def _entry_sweep(tmp_path, shard, name="e"):
    return sweep.run_sweep(
        ["digits"], ["none", "uniform", "uniform@4/32", "uniform@8/32", "uniform+tail"], [0, 1, 2],
        str(tmp_path / name), str(tmp_path / f"{name}.json"), smoke=True, progress=False,
        get_config=benchmarks.get, frontier=(), same_split=False, headroom=(), shard=shard, split="entries",
    )  # fmt: skip


def _runs(root):
    """{relative run-file path} under `root`."""
    return set(sweep_workers.finished_run_files(str(root)))


def test_an_entry_shard_runs_every_seed_of_every_nth_entry(tmp_path, monkeypatch):
    monkeypatch.setattr(sweep, "train_and_evaluate", _fake_train_and_evaluate)
    calls.clear()
    results = _entry_sweep(tmp_path, (0, 2))
    # entries in the sweep's order: none, uniform (plain), then uniform@4/32, uniform@8/32, uniform+tail
    assert [seeds for _, seeds in calls] == [(0, 1, 2)] * 3  # every seed of each of its entries
    ran = _runs(tmp_path / "e" / "digits")
    assert {os.path.dirname(os.path.dirname(r)) for r in ran} == {"", "variants/uniform@4of32", "variants/uniform+tail"}
    assert {os.path.basename(r) for r in ran if "/" not in os.path.dirname(r)} == {
        f"none_seed{k}.json" for k in (0, 1, 2)
    }
    assert results["benchmarks"] == {}  # a worker of an entry split does not summarise


def test_the_entry_shards_cover_every_run_once(tmp_path, monkeypatch):
    monkeypatch.setattr(sweep, "train_and_evaluate", _fake_train_and_evaluate)
    first, second = (_entry_sweep(tmp_path, (i, 2), name=f"w{i}") for i in (0, 1))
    a, b = _runs(tmp_path / "w0"), _runs(tmp_path / "w1")
    whole = sweep.run_sweep(
        ["digits"], ["none", "uniform", "uniform@4/32", "uniform@8/32", "uniform+tail"], [0, 1, 2],
        str(tmp_path / "all"), str(tmp_path / "all.json"), smoke=True, progress=False,
        get_config=benchmarks.get, frontier=(), same_split=False, headroom=(),
    )  # fmt: skip
    assert not a & b and a | b == _runs(tmp_path / "all") and len(a | b) == 5 * 3
    assert whole["benchmarks"]["digits"]["seeds"] == [0, 1, 2]


def test_a_bad_split_fails_before_any_run(tmp_path, monkeypatch):
    monkeypatch.setattr(sweep, "train_and_evaluate", _fake_train_and_evaluate)
    calls.clear()
    with pytest.raises(ValueError, match="^split: 'tasks'"):
        sweep.run_sweep(
            ["digits"], ["uniform"], [0], str(tmp_path / "x"), str(tmp_path / "x.json"), smoke=True,
            progress=False, get_config=benchmarks.get, frontier=(), headroom=(), shard=(0, 2), split="tasks",
        )  # fmt: skip
    assert not calls and not os.listdir(tmp_path)
