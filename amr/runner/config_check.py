"""Config validation before anything compiles: every error names the offending key."""

from __future__ import annotations

from amr.compute.plan import check_new_rows
from amr.data.python_text import TEXT_SOURCES
from amr.data.tasks import num_groups as task_groups
from amr.methods import check_config as check_methods
from amr.replay import clustering, registry
from amr.replay.rewards import PER_ROW_REWARDS
from amr.replay.share import PROFILES, SHARES
from amr.train import free_embeddings
from amr.train.state import OPTIMIZERS, SCHEDULES


class ConfigError(ValueError):
    """A bad config value; the message starts with the key, e.g. 'replay.fraction: ...'."""


def _require(ok: bool, key: str, msg: str) -> None:
    if not ok:
        raise ConfigError(f"{key}: {msg}")


def lookup(cfg, dotted: str):
    """cfg['a']['b'] for 'a.b'; a ConfigError naming the key when it is missing."""
    node = cfg
    for part in dotted.split("."):
        if part not in node:
            raise ConfigError(f"{dotted}: missing from the config")
        node = node[part]
    return node


def validate_processes(cfg, num_processes: int, device_count: int) -> None:
    """Multi-process runs: every process feeds an equal share of each global batch.

    The mesh spans every device of every process, so the new / replay / probe splits,
    which `validate` requires to be multiples of the device count, divide too."""
    if num_processes <= 1:
        return
    batch = lookup(cfg, "train.batch_size")
    _require(
        isinstance(batch, int) and batch % num_processes == 0,
        "train.batch_size",
        f"{batch!r} is not divisible by the {num_processes} processes (each process feeds an equal share of "
        "every global batch)",
    )
    n = lookup(cfg, "mesh.num_devices")
    _require(
        n in (0, device_count),
        "mesh.num_devices",
        f"{n}: a run over {num_processes} processes uses all {device_count} devices (set 0 or {device_count})",
    )


def validate_text_source(cfg) -> None:
    """data.text_source: where the python_text source reads ('snapshot': the shipped, sha256-checked corpus)."""
    data = lookup(cfg, "data")
    if "text_source" not in data:
        return  # configs written before the key existed read the snapshot
    source, value = data.get("source"), data["text_source"]
    _require(value in TEXT_SOURCES, "data.text_source", f"expected one of {TEXT_SOURCES}, got {value!r}")
    _require(
        source in ("python_text", "mixture") or value == "snapshot",
        "data.text_source",
        f"{value!r} applies to data.source='python_text' or 'mixture' only, not {source!r}",
    )


def validate(cfg, num_devices: int) -> None:
    """Raises ConfigError naming the key of the first bad value."""
    _validate_run(cfg)
    _validate_train(cfg, num_devices)
    _validate_replay(cfg, num_devices)
    _validate_share(cfg, num_devices)
    _validate_memory(cfg)
    _validate_bandit(cfg)
    _validate_optim(cfg)
    validate_text_source(cfg)
    try:
        check_new_rows(cfg, num_devices)
        check_methods(cfg)  # methods, method.*: names and hyperparameters (amr.methods.registry)
    except ValueError as err:
        raise ConfigError(str(err)) from None


def validate_groups(cfg, tasks) -> None:
    """With `replay.arm_labels = "groups"` and AMR among the strategies: every task's groups fit in
    `replay.clusters_per_task` arms. ConfigError naming the key and the task otherwise (before any compile)."""
    if clustering.arm_labels(cfg) != "groups" or "amr" not in cfg.strategies:
        return
    k = cfg.replay.clusters_per_task
    for t in tasks:
        n = task_groups(t)
        _require(
            n <= k,
            "replay.clusters_per_task",
            f"task {t.name!r} has {n} groups (replay.arm_labels='groups'), more than the {k} arms "
            f"per task; set it to at least {n}",
        )


def _validate_run(cfg) -> None:
    """strategies, baseline, seeds."""
    g = lambda k: lookup(cfg, k)  # noqa: E731
    strategies = tuple(g("strategies"))
    _require(len(strategies) > 0, "strategies", "at least one strategy is needed")
    for s in strategies:
        _require(
            s in registry.STRATEGIES, "strategies", f"unknown strategy {s!r}; expected one of {registry.STRATEGIES}"
        )
    _require(len(set(strategies)) == len(strategies), "strategies", f"duplicates in {strategies}")
    _require(
        g("baseline") in strategies or g("baseline") == "",
        "baseline",
        f"{g('baseline')!r} is not among config.strategies {strategies}",
    )
    seeds = tuple(g("seeds"))
    _require(
        len(seeds) > 0 and all(isinstance(s, int) and s >= 0 for s in seeds),
        "seeds",
        f"need one or more non-negative integers, got {seeds}",
    )


def _validate_train(cfg, num_devices: int) -> None:
    g = lambda k: lookup(cfg, k)  # noqa: E731
    t = "train."
    for key in ("steps_per_task", "batch_size", "chunk_size", "eval_batch"):
        _require(
            isinstance(g(t + key), int) and g(t + key) >= 1, t + key, f"must be an integer >= 1, got {g(t + key)!r}"
        )
    _require(
        g("train.steps_per_task") % g("train.chunk_size") == 0,
        "train.chunk_size",
        f"{g('train.chunk_size')} does not divide train.steps_per_task={g('train.steps_per_task')}",
    )
    for key in ("eval_every", "checkpoint_every"):
        _require(
            isinstance(g(t + key), int) and g(t + key) >= 0, t + key, f"must be an integer >= 0, got {g(t + key)!r}"
        )
    if g("train.eval_every"):
        _require(
            g("train.eval_every") % g("train.chunk_size") == 0,
            "train.eval_every",
            f"{g('train.eval_every')} is not a multiple of train.chunk_size={g('train.chunk_size')}",
        )
    _require(
        g("train.nonfinite") in ("skip", "halt"),
        "train.nonfinite",
        f"expected 'skip' or 'halt', got {g('train.nonfinite')!r}",
    )
    batch = g("train.batch_size")
    _require(batch % num_devices == 0, "train.batch_size", f"{batch} is not divisible by the {num_devices} devices")


def _validate_replay(cfg, num_devices: int) -> None:
    g = lambda k: lookup(cfg, k)  # noqa: E731
    strategies, batch = tuple(g("strategies")), g("train.batch_size")
    frac = g("replay.fraction")
    _require(
        isinstance(frac, (int, float)) and 0.0 <= frac < 1.0, "replay.fraction", f"must lie in [0, 1), got {frac!r}"
    )
    replay_rows = int(round(frac * batch))
    if any(s != "none" for s in strategies):
        _require(
            replay_rows >= num_devices,
            "replay.fraction",
            f"{frac} of train.batch_size={batch} gives {replay_rows} replay rows, fewer than one per device "
            f"({num_devices} devices)",
        )
        _require(
            replay_rows % num_devices == 0,
            "replay.fraction",
            f"{frac} x {batch} = {replay_rows} replay rows, not divisible by the {num_devices} devices",
        )
    _require(
        g("replay.reward") in registry.REWARDS,
        "replay.reward",
        f"unknown reward {g('replay.reward')!r}; expected one of {registry.REWARDS}",
    )
    _require(
        g("replay.reference") in ("auto", "sample", "visit", "task_end", "train", "probe"),
        "replay.reference",
        f"expected auto, sample, visit, task_end, train or probe, got {g('replay.reference')!r}",
    )
    _validate_benefit(cfg)
    _validate_row_priority(cfg)
    arm_labels = clustering.arm_labels(cfg)
    _require(
        arm_labels in registry.ARM_LABELS,
        "replay.arm_labels",
        f"unknown arm labels {arm_labels!r}; expected one of {registry.ARM_LABELS}",
    )
    _require(
        not (g("replay.reference") == "train" and g("replay.clusters_per_task") > 1),
        "replay.reference",
        "'train' gives one reference per task; several arms per task (replay.clusters_per_task > 1) need 'probe'",
    )
    for key, lo in (("clusters_per_task", 1), ("ref_samples", 1), ("mir_candidates", 2), ("kmeans_iters", 1)):
        v = g("replay." + key)
        _require(isinstance(v, int) and v >= lo, "replay." + key, f"must be an integer >= {lo}, got {v!r}")
    for key in ("probe_samples", "max_arms"):
        v = g("replay." + key)
        _require(isinstance(v, int) and v >= 0, "replay." + key, f"must be an integer >= 0, got {v!r}")
    _require(
        g("replay.probe_samples") % num_devices == 0,
        "replay.probe_samples",
        f"{g('replay.probe_samples')} is not divisible by the {num_devices} devices",
    )
    _require(
        not (g("replay.probe_samples") and g("replay.reward") == "marginal"),
        "replay.probe_samples",
        "probes measure loss levels, which the 'marginal' reward cannot use; set it to 0",
    )
    embeddings = cfg.replay.get("embeddings", "paid")  # configs written before the key existed pay
    _require(
        embeddings in free_embeddings.MODES,
        free_embeddings.KEY,
        f"expected one of {free_embeddings.MODES}, got {embeddings!r}",
    )
    _require(g("replay.mir_lr") > 0, "replay.mir_lr", f"must be > 0, got {g('replay.mir_lr')!r}")
    tilt = cfg.replay.get("task_tilt", 0.0)
    _require(
        isinstance(tilt, (int, float)) and not isinstance(tilt, bool) and -20 <= tilt <= 20,
        "replay.task_tilt",
        f"must be a number in [-20, 20], got {tilt!r}",
    )


def _validate_share(cfg, num_devices: int) -> None:
    """replay.share and its range: whole rows per device, min <= fraction <= max, a policy it can drive."""
    r = cfg.replay
    share = r.get("share", "fixed")
    _require(share in SHARES, "replay.share", f"expected one of {SHARES}, got {share!r}")
    profile = r.get("share_schedule", "front")
    _require(profile in PROFILES, "replay.share_schedule", f"expected one of {PROFILES}, got {profile!r}")
    if share == "fixed":
        return
    if share == "plateau":
        decay, z = r.get("plateau_decay", 0.8), r.get("plateau_z", 1.0)
        number = lambda v: isinstance(v, (int, float)) and not isinstance(v, bool)  # noqa: E731
        _require(number(decay) and 0.0 < decay <= 1.0, "replay.plateau_decay", f"must lie in (0, 1], got {decay!r}")
        _require(number(z) and 0.0 <= z < float("inf"), "replay.plateau_z", f"must be a finite number >= 0, got {z!r}")
    batch, frac = lookup(cfg, "train.batch_size"), lookup(cfg, "replay.fraction")
    for key in ("share_min", "share_max"):
        v = r.get(key)
        _require(
            isinstance(v, (int, float)) and not isinstance(v, bool) and 0.0 <= v <= 1.0,
            "replay." + key,
            f"must be a number in [0, 1], got {v!r}",
        )
        rows = v * batch
        _require(
            abs(rows - round(rows)) < 1e-9 and round(rows) % num_devices == 0,
            "replay." + key,
            f"{v} x train.batch_size={batch} = {rows:g} rows, not a whole number of rows per device "
            f"({num_devices} devices)",
        )
    lo, hi = r.share_min, r.share_max
    _require(lo <= frac, "replay.share_min", f"{lo} exceeds replay.fraction={frac} (need share_min <= fraction)")
    _require(frac <= hi, "replay.share_max", f"{hi} is below replay.fraction={frac} (need fraction <= share_max)")
    _require(
        round(hi * batch) <= batch - num_devices,
        "replay.share_max",
        f"{hi} x {batch} replay rows leave no new row per device ({num_devices} devices)",
    )
    new_rows = r.get("new_rows", 0)
    _require(
        new_rows == 0 or new_rows <= batch - round(hi * batch),
        "replay.new_rows",
        f"{new_rows} always-new rows and replay.share_max={hi} x {batch} = {round(hi * batch)} replay slots do not fit "
        f"train.batch_size={batch} under replay.share={share!r}; at most {batch - round(hi * batch)}",
    )
    _require(
        "mir" not in tuple(cfg.strategies),
        "replay.share",
        f"{share!r} is not implemented for 'mir' (its candidates are chosen across devices); drop it",
    )
    _require(
        lookup(cfg, "memory.placement") == "device",
        "replay.share",
        f"{share!r} needs memory.placement='device' (host-resident replay rows are not supported yet)",
    )


def _validate_benefit(cfg) -> None:
    """replay.benefit_alpha / benefit_prior (any reward: a typo is still a typo); 'benefit' reads 'sample' only."""
    alpha, prior = cfg.replay.get("benefit_alpha", 0.2), cfg.replay.get("benefit_prior", 2.0)
    number = lambda v: isinstance(v, (int, float)) and not isinstance(v, bool)  # noqa: E731
    _require(number(alpha) and 0 < alpha <= 1, "replay.benefit_alpha", f"must lie in (0, 1], got {alpha!r}")
    _require(number(prior) and 0 <= prior < float("inf"), "replay.benefit_prior", f"must be >= 0, got {prior!r}")
    if cfg.replay.reward != "benefit":
        return
    _require(
        cfg.replay.reference in ("auto", "sample"),
        "replay.reference",
        f"the 'benefit' reward reads loss increases over each row's own 'sample' reference; got "
        f"{cfg.replay.reference!r} (set 'auto' or 'sample')",
    )
    _require(
        cfg.replay.probe_samples == 0,
        "replay.probe_samples",
        f"{cfg.replay.probe_samples}: the 'benefit' reward observes an arm once per chunk from its replayed rows; set 0",
    )


def _validate_row_priority(cfg) -> None:
    """replay.row_priority: a finite β >= 0; above 0 it ranks rows by their loss increase over their own reference."""
    beta = cfg.replay.get("row_priority", 0.0)
    number = isinstance(beta, (int, float)) and not isinstance(beta, bool)
    _require(number and 0 <= beta < float("inf"), "replay.row_priority", f"must be a finite number >= 0, got {beta!r}")
    if not beta:
        return
    _require(
        cfg.replay.reward in PER_ROW_REWARDS,
        "replay.row_priority",
        f"{beta!r} ranks rows by their loss increase; replay.reward {cfg.replay.reward!r} gives none (use loss_increase)",
    )
    _require(
        cfg.replay.reference in ("auto", "sample", "visit", "task_end"),
        "replay.row_priority",
        f"{beta!r} ranks rows by their loss over their own reference; replay.reference {cfg.replay.reference!r} is "
        "one per arm (use auto, sample, visit or task_end)",
    )


def _validate_memory(cfg) -> None:
    g = lambda k: lookup(cfg, k)  # noqa: E731
    m = "memory."
    _require(
        g(m + "placement") in ("device", "host"),
        m + "placement",
        f"expected 'device' or 'host', got {g(m + 'placement')!r}",
    )
    for key in ("staleness", "workers"):
        v = g(m + key)
        _require(
            isinstance(v, int) and not isinstance(v, bool) and v >= 0, m + key, f"must be an integer >= 0, got {v!r}"
        )
    _require(
        isinstance(g(m + "dir"), str), m + "dir", f"must be a path string ('' = <workdir>/memory), got {g(m + 'dir')!r}"
    )


def _validate_bandit(cfg) -> None:
    g = lambda k: lookup(cfg, k)  # noqa: E731
    b = "bandit."
    _require(
        g(b + "estimator") in registry.ESTIMATORS,
        b + "estimator",
        f"unknown estimator {g(b + 'estimator')!r}; expected one of {registry.ESTIMATORS}",
    )
    _require(
        g(b + "policy") in registry.BANDIT_POLICIES,
        b + "policy",
        f"unknown policy {g(b + 'policy')!r}; expected one of {registry.BANDIT_POLICIES}",
    )
    _require(
        g(b + "normalize") in registry.NORMALIZERS,
        b + "normalize",
        f"unknown normalisation {g(b + 'normalize')!r}; expected one of {registry.NORMALIZERS}",
    )
    aggregate = cfg.bandit.get("aggregate", "row")  # configs written before the key existed aggregate by row
    _require(
        aggregate in registry.AGGREGATES,
        b + "aggregate",
        f"unknown aggregation {aggregate!r}; expected one of {registry.AGGREGATES}",
    )
    new_arms = cfg.bandit.get("new_arms", "keep")  # configs written before the key existed keep estimates
    _require(
        new_arms in registry.NEW_ARMS,
        b + "new_arms",
        f"unknown new-arms rule {new_arms!r}; expected one of {registry.NEW_ARMS}",
    )
    _require(g(b + "tau") > 0, b + "tau", f"must be > 0, got {g(b + 'tau')!r}")
    _require(0 < g(b + "alpha") <= 1, b + "alpha", f"must lie in (0, 1], got {g(b + 'alpha')!r}")
    _require(
        isinstance(g(b + "window"), int) and g(b + "window") >= 1,
        b + "window",
        f"must be an integer >= 1, got {g(b + 'window')!r}",
    )
    _require(0 <= g(b + "epsilon") <= 1, b + "epsilon", f"must lie in [0, 1], got {g(b + 'epsilon')!r}")


def _validate_optim(cfg) -> None:
    g = lambda k: lookup(cfg, k)  # noqa: E731
    o = "optim."
    _require(
        g(o + "name") in OPTIMIZERS, o + "name", f"unknown optimizer {g(o + 'name')!r}; expected one of {OPTIMIZERS}"
    )
    _require(
        g(o + "schedule") in SCHEDULES,
        o + "schedule",
        f"unknown schedule {g(o + 'schedule')!r}; expected one of {SCHEDULES}",
    )
    _require(g(o + "learning_rate") > 0, o + "learning_rate", f"must be > 0, got {g(o + 'learning_rate')!r}")
    _require(
        0 <= g(o + "warmup_steps") < g("train.steps_per_task"),
        o + "warmup_steps",
        f"must lie in [0, train.steps_per_task), got {g(o + 'warmup_steps')!r}",
    )
    _require(0 <= g(o + "min_lr_ratio") <= 1, o + "min_lr_ratio", f"must lie in [0, 1], got {g(o + 'min_lr_ratio')!r}")
