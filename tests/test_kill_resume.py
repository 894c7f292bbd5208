"""Crash and resume: SIGKILL at many points, restart, and get the uninterrupted run's results.json byte for byte.

Every run is a real `python -m experiments.main` process. The kills are chained in one
workdir (killed at point 1, restarted and killed at point 2, ..., the last restart
finishes), with `AMR_FAULT_KILL` (amr/faults.py) picking the point. The processes share
a persistent XLA compilation cache, so only the first one pays for compiling.
"""

import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# amr only (it has every stage: arms, bandit, references), 2 tasks of 2 chunks, a checkpoint after every chunk.
OVERRIDES = (
    "--config.strategies=('amr',)",
    "--config.baseline=amr",
    "--config.data.domains=('docs','headers')",
    "--config.train.steps_per_task=8",
    "--config.train.checkpoint_every=1",
    "--config.train.eval_every=4",
)

# (fault point, hit) in order; each process counts its hits from 1. Checkpoints are saved at
# task 0 chunk 1 (step 1), task 0 end (1000000), task 1 chunk 1 (1000001), task 1 end (2000000).
KILLS = (
    ("chunk", 2),  # task 0, second chunk dispatched and running (step 1 saved) -> resumes at step 1
    ("checkpoint_write", 1),  # the task-0-end checkpoint half written -> resumes at step 1
    ("arms", 1),  # task 0's data just became arms, not yet saved -> resumes at step 1
    ("task_end", 1),  # between tasks, right after the task-0-end checkpoint -> resumes at task 1
    ("eval", 2),  # inside task 1's final held-out evaluation -> resumes at step 1000001
    ("run_json", 1),  # the finished run's runs/amr_seed0.json just written, results.json not yet
)


def _run(workdir, cache, kill=None):
    env = {
        **os.environ,
        "XLA_FLAGS": "",
        "JAX_PLATFORMS": "cpu",
        "JAX_COMPILATION_CACHE_DIR": str(cache),
        "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
        "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "0",
    }
    env.pop("AMR_FAULT_KILL", None)
    if kill:
        env["AMR_FAULT_KILL"] = f"{kill[0]}:{kill[1]}"
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "experiments.main",
            f"--config={ROOT}/configs/tiny.py",
            f"--workdir={workdir}",
            *OVERRIDES,
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )


def _read(path):
    with open(path, "rb") as f:
        return f.read()


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("xla_cache")


@pytest.fixture(scope="module")
def reference(tmp_path_factory, cache):
    workdir = tmp_path_factory.mktemp("uninterrupted")
    out = _run(workdir, cache)
    assert out.returncode == 0, out.stderr[-3000:]
    return workdir


@pytest.mark.slow
def test_killed_at_six_points_and_resumed_gives_identical_results(reference, cache, tmp_path):
    ckpt = tmp_path / "ckpt" / "amr_seed0"
    for i, kill in enumerate(KILLS):
        out = _run(tmp_path, cache, kill)
        assert out.returncode == -9, f"{kill}: expected SIGKILL, got {out.returncode}\n{out.stderr[-3000:]}"
        assert not (tmp_path / "results.json").exists(), kill
        if i:
            assert "resuming at task" in out.stderr, (kill, out.stderr[-3000:])
        if kill[0] == "checkpoint_write":  # orbax had started the step: a partial, unfinalised step is on disk
            assert any(".orbax-checkpoint-tmp" in name for name in os.listdir(ckpt)), os.listdir(ckpt)
    assert (tmp_path / "runs" / "amr_seed0.json").exists()
    final = _run(tmp_path, cache)
    assert final.returncode == 0, final.stderr[-3000:]
    assert _read(tmp_path / "runs" / "amr_seed0.json") == _read(reference / "runs" / "amr_seed0.json")
    assert _read(tmp_path / "results.json") == _read(reference / "results.json")
    result = json.loads(_read(tmp_path / "results.json"))
    assert result["strategies"]["amr"]["skipped_steps"] == 0


@pytest.mark.slow
def test_same_seed_twice_gives_identical_results_json(reference, cache, tmp_path):
    out = _run(tmp_path, cache)
    assert out.returncode == 0, out.stderr[-3000:]
    assert _read(tmp_path / "results.json") == _read(reference / "results.json")
    assert _read(tmp_path / "runs" / "amr_seed0.json") == _read(reference / "runs" / "amr_seed0.json")
