"""Crash and resume: SIGKILL at many points, restart, and get the uninterrupted run's results.json byte for byte.

Every run is a real `python -m experiments.main` process. The kills are chained in one
workdir (killed at point 1, restarted and killed at point 2, ..., the last restart
finishes), with `AMR_FAULT_KILL` (amr/io/faults.py) picking the point. The processes share
a persistent XLA compilation cache, so only the first one pays for compiling.
"""

import hashlib
import json
import os
import shutil
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


def _run(workdir, cache, kill=None, extra=(), drop=()):
    """One process on configs/tiny.py with OVERRIDES and then `extra`; killed at `kill` (point, hit) if given.

    `drop`: TrainState fields a resume loses (tests/support/lossy_resume.py, the negative control)."""
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
    env["AMR_TEST_DROP_STATE"] = ",".join(drop)
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.support.lossy_resume" if drop else "experiments.main",
            f"--config={ROOT}/configs/tiny.py",
            f"--workdir={workdir}",
            *OVERRIDES,
            *extra,
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


def _final_state(workdir):
    """(step, {field: SHA-256}) of the run's newest checkpointed TrainState; a method's state is `methods.<name>`,
    a field without leaves (None: not carried) is left out."""
    import jax
    import numpy as np
    import orbax.checkpoint as ocp

    ckpt = workdir / "ckpt" / "amr_seed0"
    newest = max((p for p in ckpt.iterdir() if p.name.isdigit()), key=lambda p: int(p.name))
    with ocp.StandardCheckpointer() as checkpointer:
        state = checkpointer.restore(newest / "state")
    fields = {k: v for k, v in state.items() if k != "methods"}
    fields.update({f"methods.{k}": v for k, v in state["methods"].items()})
    digests = {}
    for name, tree in fields.items():
        leaves = jax.tree_util.tree_leaves_with_path(tree)
        if not leaves:
            continue
        h = hashlib.sha256()
        for path, leaf in leaves:
            if jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key):
                leaf = jax.random.key_data(leaf)
            x = np.asarray(leaf)
            h.update(f"{jax.tree_util.keystr(path)}|{x.dtype.str}|{x.shape}|".encode())
            h.update(x.tobytes())
        digests[name] = h.hexdigest()
    return int(newest.name), digests


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


# Every kind of state beyond params / optimizer / replay that a TrainState can carry, each killed and resumed.
# Two runs (the free-embeddings one compiles longer, so it runs in `pytest -m extended`):
#   methods_and_share: EWC (Fisher diagonal and anchor snapshot, set at the task end), the weight EMA (moves every
#     step; held-out evaluation reads it), HFT (per-task 0/1 masks and a task counter), all in TrainState.methods,
#     and the controller share's state (TrainState.share: last chunk's forgetting and new-row loss, drive, debt).
#     With 2 chunks a task the controller first moves r (off its target, 2 rows) after the run's last chunk, so
#     results.json does not see its state; the final checkpoint's TrainState, compared field by field, does.
#   free_embeddings: the free-embeddings buffer (TrainState.embeddings) that task 0's k-means arms are made from
#     (a second, smaller run: killed once).
# Per run: (overrides, kills, the kill whose checkpoint the negative control resumes from, fields it drops,
# fields that must be carried). Each kill: ((point, hit), where the next process resumes).
EXTRA_STATE = {
    "methods_and_share": (
        (
            "--config.methods=('ewc','ema','hft')",
            "--config.method.ema_beta=0.5",  # the default 0.99 would move little in 16 steps
            "--config.method.ewc_rows=32",
            "--config.replay.share=controller",
            "--config.replay.share_min=0.0",
            "--config.replay.share_max=0.25",
        ),
        (
            (("task_end", 1), "task 1 chunk 0"),  # EWC's Fisher and anchor, HFT's task-1 masks: just set
            (("chunk", 2), "task 1 chunk 1"),  # mid task 1: EMA mid-average, the controller holds chunk 0's signals
        ),
        1,
        ("methods", "share"),
        ("methods.ewc", "methods.ema", "methods.hft", "share"),
    ),
    "free_embeddings": (
        ("--config.replay.embeddings=free", "--config.replay.clusters_per_task=2"),
        # mid task 0 only: the buffer holds chunk 0's rows' embeddings. Every task starts with an empty buffer and
        # only task 0's is clustered (the last task's never is), so a resume at a task's start or mid task 1 restores
        # no buffer the results read; the arms it made are replay state, resumed in the six-point test above.
        ((("chunk", 2), "task 0 chunk 1"),),
        0,
        ("embeddings",),
        ("embeddings",),
    ),
}


@pytest.mark.slow
@pytest.mark.parametrize(
    "variant",
    # the free-embeddings case costs ~2 more minutes of compiling; its buffer's checkpoint round trip is in the
    # default run (tests/test_free_embeddings.py), this end-to-end kill in `pytest -m extended`
    [v if v != "free_embeddings" else pytest.param(v, marks=pytest.mark.extended) for v in EXTRA_STATE],
)
def test_extra_state_survives_kill_and_resume(variant, cache, tmp_path):
    """Methods' state, the controller share's and the free-embeddings buffer: killed and resumed, the run gives the
    uninterrupted run's runs/amr_seed0.json, results.json and final TrainState, field by field. Negative control:
    a resume that drops those fields (tests/support/lossy_resume.py) gives neither."""
    extra, kills, control_after, drop, carried = EXTRA_STATE[variant]
    reference, run, lossy = tmp_path / "uninterrupted", tmp_path / "killed", tmp_path / "lossy"
    out = _run(reference, cache, extra=extra)
    assert out.returncode == 0, out.stderr[-3000:]
    step, expected = _final_state(reference)
    assert step == 2_000_000 and set(carried) <= set(expected), (step, sorted(expected))

    resumes = [None] + [at for _, at in kills]  # where each process of the chain resumes
    for i, (kill, _) in enumerate(kills):
        out = _run(run, cache, kill, extra=extra)
        assert out.returncode == -9, f"{kill}: expected SIGKILL, got {out.returncode}\n{out.stderr[-3000:]}"
        assert not (run / "results.json").exists(), kill
        if resumes[i]:
            assert f"resuming at {resumes[i]}" in out.stderr, (kill, out.stderr[-3000:])
        if i == control_after:
            shutil.copytree(run, lossy)
    final = _run(run, cache, extra=extra)
    assert final.returncode == 0, final.stderr[-3000:]
    assert f"resuming at {resumes[-1]}" in final.stderr, final.stderr[-3000:]
    # a checkpoint that failed to restore would be quarantined and the run silently redone from an older one
    assert not (run / "ckpt" / "amr_seed0.damaged").exists()
    assert _read(run / "runs" / "amr_seed0.json") == _read(reference / "runs" / "amr_seed0.json")
    assert _read(run / "results.json") == _read(reference / "results.json")
    assert _final_state(run) == (step, expected)

    # Negative control: the same resume, but the fields' state is lost (back to its initial values).
    out = _run(lossy, cache, extra=extra, drop=drop)
    assert out.returncode == 0, out.stderr[-3000:]
    assert f"resuming at {resumes[control_after + 1]}" in out.stderr, out.stderr[-3000:]
    assert _read(lossy / "results.json") != _read(reference / "results.json")
    _, lost = _final_state(lossy)
    same = [name for name in carried if lost[name] == expected[name]]
    assert not same, f"dropping {drop} on resume left {same} as in the uninterrupted run"
