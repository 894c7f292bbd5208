"""`train_and_evaluate(config, workdir)`: every strategy x seed at equal compute, then the report.

Writes to `workdir`: results.json (schema in the README; with the `data_digests` and
`environment` of `amr.analysis.provenance`, as has every run's json), metrics.jsonl, TensorBoard
events, PNG plots, runs/<strategy>_seed<k>.json per finished run (also with its `code`: the git
commit and dirty flag of the checkout it was made from), and checkpoints
under ckpt/. Finished runs are not redone; an unfinished one resumes from its
checkpoint.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from typing import Any

import jax
import numpy as np

from amr.analysis import forgetting as evaluate
from amr.analysis import plots, provenance, report, stats
from amr.data.tasks import make_tasks
from amr.io import faults, run_files
from amr.io.metrics_log import MetricsLog
from amr.io.workdir_lock import WorkdirLock
from amr.models import make_model
from amr.runner import config_check
from amr.train import chunk as step_lib
from amr.train import distributed, host_memory
from amr.train.loop import Run, make_context, make_strategy
from amr.train.strategy import shape_signature, share_compiled


def prepare(config, num_devices: int | None = None):
    """Validates the config and builds tasks, model and mesh, all before any compile."""
    config_check.validate_processes(config, jax.process_count(), jax.device_count())
    mesh = step_lib.make_mesh(config.mesh.num_devices or num_devices)
    n_dev = mesh.shape[step_lib.AXIS]
    config_check.validate(config, n_dev)
    model = make_model(config.model)
    tasks = make_tasks(config.data, min_examples=config.train.batch_size)
    _check_shapes(config, tasks, model)
    config_check.validate_groups(config, tasks)
    return make_context(config, tasks, model, mesh)


def _check_shapes(config, tasks, model) -> None:
    for t in tasks:
        if tuple(t.train.shape[1:]) != tuple(model.example_shape):
            raise config_check.ConfigError(
                f"model: task {t.name!r} has examples of shape {t.train.shape[1:]} but the model expects "
                f"{tuple(model.example_shape)} (check data.seq_len / data.image_size against the model's)"
            )
        if len(t.test) == 0:
            raise config_check.ConfigError(f"data.test_per_task: task {t.name!r} has no held-out examples")


def aggregate(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Seeds of one strategy -> the results.json entry (means; std, 95% CI and per-seed values of
    average forgetting), computed by `amr.analysis.stats`, the one source of across-seed statistics."""
    return stats.strategy_entry(runs)


def _load_finished_run(path: str, strategy: str, seed: int) -> dict[str, Any] | None:
    """A finished run's result from runs/<strategy>_seed<k>.json; None (redo it) if absent or damaged."""
    if not os.path.exists(path):
        return None
    try:
        with open(path, encoding="utf-8") as f:
            result = json.load(f)
        if (
            not isinstance(result, dict)
            or result.get("strategy") != strategy
            or result.get("seed") != seed
            or "loss_matrix" not in result
        ):
            raise ValueError(f"not the result of {strategy} seed {seed}")
    except (OSError, UnicodeDecodeError, ValueError) as err:  # JSONDecodeError is a ValueError
        os.replace(path, path + ".damaged")
        logging.warning(
            "%s seed %d: finished run file %s is damaged (%s); moved it to %s.damaged and redoing "
            "the run (it resumes from its last checkpoint)",
            strategy,
            seed,
            path,
            err,
            path,
        )
        return None
    logging.info("%s seed %d: finished earlier, loaded %s", strategy, seed, path)
    return result


def train_and_evaluate(config, workdir: str, progress: bool = True) -> dict[str, Any]:
    ctx = prepare(config)
    primary = distributed.is_primary()  # only process 0 locks the workdir and writes files
    with WorkdirLock(workdir) if primary else contextlib.nullcontext():
        return _train_and_evaluate(ctx, config, workdir, progress and primary, primary)


class _SeedContexts:
    """The context of each seed: the experiment's own, or with `data.resplit_per_seed` one whose
    splits use data seed `data.seed + seed` (its strategies then compile per seed)."""

    def __init__(self, ctx, config):
        self.ctx, self.config, self._by_seed, self._digests = ctx, config, {}, {}
        self.resplit = bool(config.data.get("resplit_per_seed", False))

    def __call__(self, seed: int):
        if not self.resplit:
            return self.ctx
        if seed not in self._by_seed:
            tasks = make_tasks(self.config.data, min_examples=self.config.train.batch_size, run_seed=seed)
            _check_shapes(self.config, tasks, self.ctx.model)
            # same shapes as the experiment's own context: share its jitted passes and measured costs
            self._by_seed[seed] = share_compiled(
                make_context(self.config, tasks, self.ctx.model, self.ctx.mesh), self.ctx
            )
        return self._by_seed[seed]

    def digests(self, seed: int) -> dict[str, Any]:
        key = seed if self.resplit else None
        if key not in self._digests:
            self._digests[key] = provenance.data_digests(self(seed).tasks)
        return self._digests[key]


def _train_and_evaluate(ctx, config, workdir: str, progress: bool, primary: bool = True) -> dict[str, Any]:
    if primary:
        os.makedirs(os.path.join(workdir, run_files.RUNS_DIR), exist_ok=True)
    log = MetricsLog(workdir) if primary else None
    contexts, env = _SeedContexts(ctx, config), provenance.environment()  # recorded in every result
    code = provenance.code_version()  # the commit (and dirty flag) of the checkout holding `amr`, in every run's json
    per_strategy: dict[str, list[dict[str, Any]]] = {}
    try:
        for strategy in config.strategies:
            # one compile per strategy: seeds of data.resplit_per_seed share it when their splits have
            # the same shapes (the data enter the programs as arguments), else one per seed
            compiled = {}
            for seed in config.seeds:
                path = run_files.run_file(workdir, strategy, seed)
                digests = contexts.digests(seed)
                result = _load_finished_run(path, strategy, seed)
                if result is None:
                    seed_ctx = contexts(seed)
                    shapes = shape_signature(seed_ctx)
                    if shapes not in compiled:
                        compiled[shapes] = make_strategy(seed_ctx, strategy)
                    run = Run(
                        seed_ctx,
                        compiled[shapes].for_context(seed_ctx),
                        seed,
                        run_files.checkpoint_dir(workdir, strategy, seed),
                        log,
                        memory_dir=host_memory.memory_dir(config, workdir),
                    )
                    started = time.monotonic()
                    result = run.run(progress=progress)
                    result.update(data_digests=digests, environment=env, code=code)
                    if primary:
                        report.write_json_atomic(path, result)
                        # wall seconds of this call (a resumed run: its last part), beside the result so that
                        # the result itself stays bit-identical between runs of the same seed
                        report.write_json_atomic(
                            path + run_files.SECONDS_SUFFIX, {"wall_seconds": time.monotonic() - started}
                        )
                    faults.fault_point("run_json")
                provenance.require_run_data(result, digests, path)
                per_strategy.setdefault(strategy, []).append(result)
    finally:
        if log is not None:
            log.close()
    digests = {f"seed{k}": contexts.digests(k) for k in config.seeds} if contexts.resplit else contexts.digests(0)

    results = {
        "config": json.loads(config.to_json_best_effort()),
        "tasks": [t.name for t in ctx.tasks],
        "baseline": config.baseline,
        "data_digests": digests,
        "environment": env,
        "strategies": {s: aggregate(runs) for s, runs in per_strategy.items()},
    }
    base = config.baseline
    if base in results["strategies"]:
        for _s, entry in results["strategies"].items():
            entry["forgetting_reduction_vs_" + base] = evaluate.forgetting_reduction(entry, results["strategies"][base])
    if primary:
        report.write_json_atomic(os.path.join(workdir, "results.json"), results)
        _plots(results, per_strategy, workdir, config.train.steps_per_task)
    return results


def _plots(results, per_strategy, workdir: str, steps_per_task: int) -> None:
    tasks = results["tasks"]
    for s, entry in results["strategies"].items():
        plots.plot_loss_matrix(
            np.asarray(entry["loss_matrix"]),
            tasks,
            os.path.join(workdir, f"loss_matrix_{s}.png"),
            title=f"held-out loss after each task ({s})",
        )
    curves = {}
    for s, runs in per_strategy.items():
        run = runs[0]  # first seed: curves of one run, not averages of differently-timed points
        diag = np.diag(np.asarray(run["loss_matrix"]))
        points = [p for p in run["curves"] if p["task"] > 0]
        curves[s] = {
            "steps": [p["step"] for p in points],
            "forgetting": [
                [p["losses"][j] - diag[j] if j < p["task"] else float("nan") for j in range(len(tasks) - 1)]
                for p in points
            ],
            "task_names": tasks[:-1],
        }
    plots.plot_forgetting_curves(curves, os.path.join(workdir, "forgetting_curves.png"))
    if "amr" in per_strategy and per_strategy["amr"][0]["arm_history"]:
        hist = per_strategy["amr"][0]["arm_history"]
        probs = np.asarray([h["probs"] for h in hist])
        used = np.flatnonzero(probs.max(axis=0) > 0)
        k = per_strategy["amr"][0]["plan"]["clusters_per_task"]  # arms are allocated task by task
        labels = [tasks[i // k] if k == 1 else f"{tasks[i // k]}/{i % k}" for i in used]
        plots.plot_arm_probs([h["step"] for h in hist], probs[:, used], labels, os.path.join(workdir, "arm_probs.png"))
    points = {
        s: (e["flops"]["total"], e["avg_forgetting"], e["avg_forgetting_std"]) for s, e in results["strategies"].items()
    }
    plots.plot_forgetting_vs_flops(points, os.path.join(workdir, "forgetting_vs_flops.png"))
