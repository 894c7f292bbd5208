"""A sweep split over pinned worker processes (`amr.runner.sweep_workers`, `compare.py --workers=N`): core sets,
the workers' command lines, collecting their finished runs, compare.py's wiring, and the split run for real
against the same sweep run sequentially. The shards themselves: tests/test_sweep_shards.py."""

import json
import os
import re
import subprocess
import sys
import time

import jax
import pytest

from amr.runner import sweep, sweep_workers
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
