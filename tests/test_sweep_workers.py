"""A sweep split over pinned worker processes (`amr.runner.sweep_workers`, `compare.py --workers=N`):
core sets, the workers' command lines, collecting their finished runs, the seed shards, and the split
run for real against the same sweep run sequentially."""

import json
import os
import re
import subprocess
import sys
import time

import jax
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from amr.runner import sweep, sweep_workers
from configs import benchmarks
from tests.support import tiny_sweep

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# ---- core sets ----


@pytest.mark.parametrize(
    "workers, cores, expected",
    [
        (1, [0, 1], [[0, 1]]),
        (2, [0, 1], [[0], [1]]),
        (2, [0, 1, 2, 3], [[0, 2], [1, 3]]),
        (3, [0, 1, 2, 3], [[0, 3], [1], [2]]),
        (2, [4, 6], [[4], [6]]),  # the host's cores as given (an affinity mask need not start at 0)
    ],
)
def test_core_sets_are_round_robin_and_disjoint(workers, cores, expected):
    sets = sweep_workers.core_sets(workers, cores)
    assert sets == expected
    assert sorted(c for s in sets for c in s) == sorted(cores)  # every core to exactly one worker


def test_more_workers_than_cores_gives_every_worker_all_cores():
    assert sweep_workers.core_sets(3, [0, 1]) == [[0, 1]] * 3
    assert sweep_workers.core_sets(2, [5]) == [[5], [5]]


# ---- the workers' command lines ----


def test_worker_argv_replaces_the_callers_workers_workdir_out_and_shard():
    argv = ["--benchmarks=digits", "--workers=2", "--workdir=w", "--smoke", "--out=docs/r.json", "--seeds=0,1,2"]
    got = sweep_workers.worker_argv(argv + ["--shard=0/5"], 1, 2, "w")
    wd = os.path.join("w", "workers", "1")
    assert got == [
        "--benchmarks=digits", "--smoke", "--seeds=0,1,2",
        "--workers=1", "--shard=1/2", f"--workdir={wd}", f"--out={wd}/results.json",
    ]  # fmt: skip


def test_worker_argv_drops_both_flag_forms_and_keeps_lookalikes():
    """absl reads `--flag=value`, `--flag value` and one dash alike: a value left behind would reach the
    worker as a positional argument, which compare.py refuses."""
    argv = ["--workers", "2", "-workdir", "runs/x", "--out", "r.json", "-shard=1/3", "--strategies", "uniform"]
    argv += ["--output=keep", "--outdir", "keep2", "--noworkers_x"]
    got = sweep_workers.worker_argv(argv, 0, 2, "W")
    assert got[:6] == ["--strategies", "uniform", "--output=keep", "--outdir", "keep2", "--noworkers_x"]
    assert got[6:] == ["--workers=1", "--shard=0/2", "--workdir=W/workers/0", "--out=W/workers/0/results.json"]
    for dropped in ("2", "runs/x", "r.json", "-shard=1/3"):
        assert dropped not in got


# ---- finished run files and collecting them ----


def _write(path, text="{}"):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


def _read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


def _worker_tree(root, seed):
    """What a worker's sweep leaves: run files (with .seconds) in a benchmark and a variant, and other files."""
    for rel in (f"digits/runs/uniform_seed{seed}.json", f"digits/variants/uniform@4-32/runs/uniform_seed{seed}.json"):
        _write(os.path.join(root, rel), json.dumps({"seed": seed, "from": root}))
        _write(os.path.join(root, rel + ".seconds"), json.dumps({"wall_seconds": 10.0 + seed}))
    _write(os.path.join(root, "digits", "runs", f"amr_seed{seed}.json.damaged"))
    _write(os.path.join(root, "digits", "runs", f"amr_seed{seed}.json.tmp"))
    _write(os.path.join(root, "digits", "runs", "notes.json"))  # not a run file's name
    _write(os.path.join(root, "digits", "results.json"))
    _write(os.path.join(root, "digits", "ckpt", f"uniform_seed{seed}", "meta.json"))
    _write(os.path.join(root, "results.json"))


def test_finished_run_files_are_the_run_files_under_any_runs_dir(tmp_path):
    _worker_tree(str(tmp_path), 3)
    assert sweep_workers.finished_run_files(str(tmp_path)) == [
        "digits/runs/uniform_seed3.json",
        "digits/variants/uniform@4-32/runs/uniform_seed3.json",
    ]
    assert sweep_workers.finished_run_files(str(tmp_path / "nothing")) == []


def test_collect_copies_run_files_with_their_seconds_and_never_overwrites(tmp_path):
    wd = str(tmp_path)
    for i in range(2):
        _worker_tree(os.path.join(wd, "workers", str(i)), i)
    mine = os.path.join(wd, "digits", "runs", "uniform_seed1.json")  # finished here before the split
    _write(mine, '{"seed": 1, "from": "the caller"}')
    _write(mine + ".seconds", '{"wall_seconds": 99.0}')

    assert sweep_workers.collect(wd, 2) == 3  # seed 0's two runs and seed 1's variant run
    copied = sweep_workers.finished_run_files(wd)
    assert [p for p in copied if not p.startswith("workers")] == [
        "digits/runs/uniform_seed0.json",
        "digits/runs/uniform_seed1.json",
        "digits/variants/uniform@4-32/runs/uniform_seed0.json",
        "digits/variants/uniform@4-32/runs/uniform_seed1.json",
    ]
    variant = os.path.join(wd, "digits", "variants", "uniform@4-32", "runs", "uniform_seed1.json")
    assert json.loads(_read(variant))["from"] == os.path.join(wd, "workers", "1")  # the variant dir was created
    assert json.loads(_read(variant + ".seconds")) == {"wall_seconds": 11.0}  # the run's time came along
    assert json.loads(_read(mine))["from"] == "the caller" and _read(mine + ".seconds") == '{"wall_seconds": 99.0}'
    runs_here = sorted(os.listdir(os.path.join(wd, "digits", "runs")))
    assert runs_here == ["uniform_seed0.json", "uniform_seed0.json.seconds", "uniform_seed1.json"] + [
        "uniform_seed1.json.seconds"
    ]  # no damaged, temporary or other files
    assert not os.path.exists(os.path.join(wd, "digits", "ckpt")) and not os.path.exists(
        os.path.join(wd, "digits", "results.json")
    )

    before = {p: _read(os.path.join(wd, p)) for p in copied}
    assert sweep_workers.collect(wd, 2) == 0  # idempotent
    assert {p: _read(os.path.join(wd, p)) for p in sweep_workers.finished_run_files(wd)} == before


def test_collect_of_a_worker_that_wrote_nothing(tmp_path):
    _worker_tree(str(tmp_path / "workers" / "0"), 0)
    assert sweep_workers.collect(str(tmp_path), 2) == 2  # worker 1 failed before any run (no dir at all)


# ---- run_workers with a stand-in worker (no JAX) ----


def test_run_workers_pins_each_worker_and_collects_its_runs(tmp_path, monkeypatch, capsys):
    cores = sorted(os.sched_getaffinity(0))
    monkeypatch.chdir(tmp_path)  # another directory: `path` is where the module is found
    wd = str(tmp_path / "w")
    argv = ["--workdir", "elsewhere", "--seeds=0,1", "--workers=2"]
    codes = sweep_workers.run_workers("tests.support.echo_worker", argv, 2, wd, poll_seconds=0.05, path=ROOT)
    assert codes == [0, 0]
    sets = sweep_workers.core_sets(2, cores)
    for i in range(2):
        with open(os.path.join(wd, "workers", str(i), "bench", "runs", f"echo_seed{i}.json")) as f:
            info = json.load(f)
        assert info["cores"] == sets[i] and info["cwd"] == str(tmp_path)
        assert info["argv"] == sweep_workers.worker_argv(argv, i, 2, wd)
        assert f"echo worker {i}" in _read(os.path.join(wd, "workers", f"{i}.log"))
    assert "worker 1/2 on cores" in capsys.readouterr().out
    assert sweep_workers.collect(wd, 2) == 2
    assert sorted(os.listdir(os.path.join(wd, "bench", "runs"))) == ["echo_seed0.json", "echo_seed1.json"]


def test_run_workers_polls_while_they_run_and_sees_each_finished_benchmark(tmp_path):
    wd = str(tmp_path / "w")
    seen = []

    def on_poll():
        if not seen and sweep_workers.done_benchmarks(wd, 2, ["other", "bench"]) == ["bench"]:
            seen.append(time.monotonic())

    codes = sweep_workers.run_workers(
        "tests.support.echo_worker", ["--linger=3"], 2, wd, poll_seconds=0.05, path=ROOT, on_poll=on_poll
    )
    assert codes == [0, 0] and seen and time.monotonic() - seen[0] > 1.5  # seen while the workers lingered
    sweep_workers.clear_done(wd, 2, ["bench"])
    assert sweep_workers.done_benchmarks(wd, 2, ["bench"]) == []
    # negative control: a benchmark one worker never finished is never done
    wd2 = str(tmp_path / "w2")
    assert sweep_workers.run_workers("tests.support.echo_worker", ["--fail=1"], 2, wd2, 0.05, ROOT) == [0, 3]
    assert sweep_workers.done_benchmarks(wd2, 2, ["bench"]) == []
    assert sweep_workers.done_benchmarks(wd2, 1, ["bench"]) == ["bench"]  # worker 0 alone did mark it


def test_run_workers_reports_a_failed_worker_and_needs_the_path_elsewhere(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    wd = str(tmp_path / "w")
    codes = sweep_workers.run_workers("tests.support.echo_worker", ["--fail=1"], 2, wd, poll_seconds=0.05, path=ROOT)
    assert codes == [0, 3] and "worker 1 exited with 3" in capsys.readouterr().out
    assert sweep_workers.collect(wd, 2) == 1  # the finished worker's run; the caller's sweep redoes the rest
    # negative control: from another directory without `path`, the workers cannot import the module
    monkeypatch.delenv("PYTHONPATH", raising=False)
    codes = sweep_workers.run_workers("tests.support.echo_worker", [], 2, str(tmp_path / "w2"), poll_seconds=0.05)
    assert all(codes)
    assert "No module named 'tests" in _read(str(tmp_path / "w2" / "workers" / "0.log"))


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


# ---- compare.py's flags ----
# experiments/compare.py defines absl flags (--out, --seeds, ...) that other experiments modules imported by the
# suite define too, so it is imported only in a subprocess (tests/support/compare_wiring.py).


@pytest.mark.parametrize("text, expected", [("", None), ("0/2", (0, 2)), ("1/2", (1, 2)), ("9/10", (9, 10))])
def test_parse_shard(text, expected):
    assert sweep_workers.parse_shard(text) == expected


@pytest.mark.parametrize("text", ["2/2", "3/2", "0/0", "a/b", "1/b", "-1/2", "1", "1/", "/2", "1/2/3", " 1/2"])
def test_parse_shard_refuses(text):
    with pytest.raises(ValueError, match="^shard: "):
        sweep_workers.parse_shard(text)


@pytest.fixture(scope="module")
def wiring():
    """compare.main on each case's argv, with the workers, collect and the sweep recorded instead of run."""
    out = subprocess.run(
        [sys.executable, "-m", "tests.support.compare_wiring"], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_compare_splits_over_workers_then_sweeps_everything_itself(wiring):
    seen = wiring["split"]
    argv = ["--workers=2", "--workdir=wd", "--seeds=0,1", "--benchmarks=digits"]
    assert seen["run_workers"] == [["experiments.compare", argv, 2, "wd"], {"path": ROOT, "on_poll": "_EarlySummaries"}]
    assert seen["collect"] == [["wd", 2], {}]
    args, kwargs = seen["run_sweep"]
    assert args[:4] == [["digits"], list(sweep.STRATEGIES), ["0", "1"], "wd"] and kwargs["shard"] is None


def test_compare_summarises_each_benchmark_once_every_worker_has_finished_it(wiring):
    calls, printed = wiring["early"][:3], wiring["early"][3:]
    assert calls == [
        [["digits"], None],  # while the workers run: both marked digits
        "workers end",  # text was marked by worker 0 only (worker 1's stale mark was cleared): not before the end
        [["digits", "text"], None],
    ]
    # each early summary and the workers' end say when, for the sweep's time budget
    assert [x.split(" (")[0] for x in printed] == [
        "digits: every worker finished; summarised into docs/results.json", "workers done"
    ]  # fmt: skip
    assert all(re.search(r"\(\d+\.\d min after the workers started, \d\d:\d\d:\d\d\)", x) for x in printed)


def test_compare_as_a_worker_runs_its_shard_alone(wiring):
    seen = wiring["worker"]
    assert "run_workers" not in seen and "collect" not in seen
    assert seen["run_sweep"][1]["shard"] == [1, 2]


def test_compare_passes_the_entry_split_to_its_worker(wiring):
    kwargs = wiring["entries_worker"]["run_sweep"][1]
    assert kwargs["shard"] == [0, 2] and kwargs["split"] == "entries"
    assert wiring["worker"]["run_sweep"][1]["split"] == "seeds"  # the default


@pytest.mark.parametrize(
    "case, match", [("bad_shard", "shard: '2/2'"), ("bad_workers", "workers: 0"), ("bad_split", "split: 'tasks'")]
)
def test_compare_refuses_a_bad_shard_or_worker_count(wiring, case, match):
    assert match in wiring[case]["usage_error"]
    assert "run_sweep" not in wiring[case]  # negative control: a refused command line never reaches the sweep


# ---- the split for real ----


def _without_seconds(x):
    """A summary without its wall times (the only part that differs between two runs of the same seeds)."""
    if isinstance(x, dict):
        return {k: _without_seconds(v) for k, v in x.items() if "seconds" not in str(k)}
    if isinstance(x, list):
        return [_without_seconds(v) for v in x]
    return x


@pytest.mark.slow
def test_a_split_sweep_summarises_like_the_same_sweep_run_sequentially(tmp_path, monkeypatch):
    """tiny (8 steps a task, uniform) for seeds 0 and 1: once in this process, once as 2 pinned workers of
    tests/support/tiny_sweep.py whose runs this process collects and summarises. The same run files, byte for
    byte, and the same summary; the summary came from the workers' runs, not from retraining here."""
    cache = jax.config.jax_compilation_cache_dir  # the suite's (tests/conftest.py): the workers read its programs
    if cache:
        monkeypatch.setenv("JAX_COMPILATION_CACHE_DIR", cache)
        monkeypatch.setenv("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
        monkeypatch.setenv("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")
    seq = tiny_sweep.sweep([0, 1], str(tmp_path / "seq"), str(tmp_path / "seq.json"))["benchmarks"]["tiny"]

    wd = str(tmp_path / "split")
    argv = ["--seeds=0,1", "--workers=2", f"--workdir={wd}", f"--out={wd}.json"]
    assert sweep_workers.run_workers("tests.support.tiny_sweep", argv, 2, wd, poll_seconds=10, path=ROOT) == [0, 0]
    for i in range(2):  # each worker ran its own seed only
        assert sweep_workers.finished_run_files(os.path.join(wd, "workers", str(i))) == [
            f"tiny/runs/uniform_seed{i}.json"
        ]
    assert sweep_workers.done_benchmarks(wd, 2, ["tiny"]) == ["tiny"]  # each worker marked it after its run
    assert sweep_workers.collect(wd, 2) == 2
    seconds = {i: _read(os.path.join(wd, "tiny", "runs", f"uniform_seed{i}.json.seconds")) for i in range(2)}
    split = tiny_sweep.sweep([0, 1], wd, str(tmp_path / "split.json"))["benchmarks"]["tiny"]

    for i in range(2):
        run = os.path.join("tiny", "runs", f"uniform_seed{i}.json")
        assert _read(os.path.join(wd, run)) == _read(str(tmp_path / "seq" / run)), i
        assert _read(os.path.join(wd, run + ".seconds")) == seconds[i]  # loaded, not retrained here
    per_seed = split["strategies"]["uniform"]["avg_forgetting_per_seed"]
    assert per_seed == seq["strategies"]["uniform"]["avg_forgetting_per_seed"]
    assert _without_seconds(split) == _without_seconds(seq)
    assert split["strategies"]["uniform"]["wall_seconds_total"] is not None  # the workers' times came along

    # negative control: the comparison tells seeds apart (a split that ran seed 0 twice would fail it), and a
    # summary over a different run file for seed 1 differs from the sequential one
    assert per_seed[0] != per_seed[1]
    other = str(tmp_path / "other")
    for i in range(2):
        run = json.loads(_read(os.path.join(wd, "tiny", "runs", f"uniform_seed{i}.json")))
        if i == 1:
            run["avg_forgetting"] += 0.5  # as if seed 1 had forgotten more
        _write(os.path.join(other, "tiny", "runs", f"uniform_seed{i}.json"), json.dumps(run))
    changed = tiny_sweep.sweep([0, 1], other, str(tmp_path / "other.json"))["benchmarks"]["tiny"]
    assert changed["strategies"]["uniform"]["avg_forgetting_per_seed"][0] == per_seed[0]
    assert changed["strategies"]["uniform"]["avg_forgetting_per_seed"][1] != per_seed[1]
    assert _without_seconds(changed) != _without_seconds(seq)
