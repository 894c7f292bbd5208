"""Multi-process runs: 2 processes x 4 CPU devices agree with 1 process x 8; bad launches fail clearly.

The end-to-end test launches `experiments.main` as subprocesses (each process needs its
own jax runtime) on a shrunken tiny config that still takes the multi-process paths:
per-process puts of the global batches, the bandit's all-reduced feedback, probed
reference losses and held-out passes read back on every process, collective orbax
checkpoints, and process 0 as the only writer. (k-means arms use the same forward
pass plus a process-local k-means; checked by hand, left out to keep the test short.)
"""

import json
import os
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from amr.runner import experiment as experiment_lib
from amr.runner.config_check import ConfigError, validate_processes
from amr.train import distributed
from configs import tiny

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG_ARGS = [  # one chunk per task; AMR with probed reference losses; task-end checkpoints only
    "--config=configs/tiny.py",
    "--config.strategies=('amr',)",
    "--config.baseline=",
    "--config.data.domains=('docs','headers')",
    "--config.train.steps_per_task=4",
    "--config.train.eval_every=0",
    "--config.train.checkpoint_every=0",
    "--config.train.batch_size=32",
    "--config.replay.fraction=0.25",
    "--config.replay.reference=probe",
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def _launch(args, devices: int, log_path: str) -> subprocess.Popen:
    env = dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}")
    with open(log_path, "w") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "experiments.main", *CONFIG_ARGS, *args],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )


def _wait(procs, logs, timeout=600):
    for p, log in zip(procs, logs):
        try:
            rc = p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
            raise
        if rc != 0:
            with open(log) as f:
                tail = f.read()[-3000:]
            raise AssertionError(f"{log} exited with {rc}:\n{tail}")


@pytest.mark.slow
def test_two_processes_match_one_process(tmp_path):
    port = _free_port()
    multi, single = str(tmp_path / "multi"), str(tmp_path / "single")
    logs = [str(tmp_path / f"{n}.log") for n in ("p0", "p1", "single")]
    procs = [
        _launch(
            [
                f"--workdir={multi}",
                "--config.mesh.num_devices=0",
                f"--coordinator=localhost:{port}",
                "--num_processes=2",
                f"--process_id={i}",
                "--init_timeout=120",
            ],
            4,
            logs[i],
        )
        for i in range(2)
    ]
    procs.append(_launch([f"--workdir={single}", "--config.mesh.num_devices=8"], 8, logs[2]))
    _wait(procs, logs)

    results = [json.load(open(os.path.join(w, "results.json"))) for w in (multi, single)]
    runs = [json.load(open(os.path.join(w, "runs", "amr_seed0.json"))) for w in (multi, single)]
    np.testing.assert_allclose(
        results[0]["strategies"]["amr"]["loss_matrix"],
        results[1]["strategies"]["amr"]["loss_matrix"],
        rtol=1e-5,
        atol=1e-5,
    )
    np.testing.assert_allclose(
        [p["probs"] for p in runs[0]["arm_history"]], [p["probs"] for p in runs[1]["arm_history"]], rtol=1e-4, atol=1e-5
    )
    assert runs[0]["flops"] == runs[1]["flops"]
    assert len(runs[0]["arm_history"]) > 0 and np.asarray(runs[0]["loss_matrix"]).shape == (2, 2)
    # Only process 0 writes: one task_end record per task, not one per process.
    with open(os.path.join(multi, "metrics.jsonl")) as f:
        records = [json.loads(line) for line in f]
    assert sum(r["kind"] == "task_end" for r in records) == 2
    assert not os.path.exists(os.path.join(multi, ".amr.lock"))
    with open(logs[1]) as f:
        assert "wrote" not in f.read()  # process 1 prints no summary


def test_unreachable_coordinator_fails_clearly_after_bounded_wait(tmp_path):
    address = f"localhost:{_free_port()}"  # nobody listens there
    env = dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS="--xla_force_host_platform_device_count=4")
    start = time.monotonic()
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "experiments.main",
            *CONFIG_ARGS,
            f"--workdir={tmp_path}",
            f"--coordinator={address}",
            "--num_processes=2",
            "--process_id=1",
            "--init_timeout=3",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    elapsed = time.monotonic() - start
    assert proc.returncode == 1, proc.stderr[-2000:]  # a Python error, not XLA's SIGABRT
    assert f"coordinator {address!r} could not be reached within 3 s" in proc.stderr
    assert elapsed < 100
    assert not os.listdir(tmp_path)  # nothing was started


def test_wait_for_coordinator_is_bounded_and_succeeds_when_listening():
    with socket.socket() as server:
        server.bind(("localhost", 0))
        server.listen()
        assert distributed.wait_for_coordinator(f"localhost:{server.getsockname()[1]}", timeout_s=5) < 5
    start = time.monotonic()
    with pytest.raises(distributed.CoordinatorUnreachable, match="localhost:"):
        distributed.wait_for_coordinator(f"localhost:{_free_port()}", timeout_s=0.5, poll_s=0.1)
    assert time.monotonic() - start < 30


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(coordinator="localhost:1234"), "num_processes, process_id missing"),
        (dict(coordinator="localhost:1234", num_processes=2, process_id=2), r"process_id=2 must lie in \[0, "),
        (dict(coordinator="localhost", num_processes=2, process_id=1), "expected host:port"),
    ],
)
def test_initialize_rejects_incomplete_launch_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        distributed.initialize(**kwargs, timeout_s=1)


def test_process_count_must_divide_global_batch():
    cfg = tiny.get_config()
    cfg.train.batch_size, cfg.mesh.num_devices = 16, 0
    with pytest.raises(ConfigError, match=r"^train.batch_size: 16 is not divisible by the 3 processes"):
        validate_processes(cfg, num_processes=3, device_count=12)
    validate_processes(cfg, num_processes=2, device_count=8)  # 16 rows: 8 per process
    cfg.mesh.num_devices = 4
    with pytest.raises(ConfigError, match=r"^mesh.num_devices: 4: a run over 2 processes uses all 8 devices"):
        validate_processes(cfg, num_processes=2, device_count=8)


def test_prepare_checks_processes_before_building_anything(monkeypatch):
    cfg = tiny.get_config()
    cfg.train.batch_size = 20
    cfg.mesh.num_devices = 0
    monkeypatch.setattr(experiment_lib.jax, "process_count", lambda: 3)
    monkeypatch.setattr(experiment_lib.step_lib, "make_mesh", lambda *a: pytest.fail("built a mesh first"))
    with pytest.raises(ConfigError, match="train.batch_size: 20 is not divisible by the 3 processes"):
        experiment_lib.prepare(cfg)
