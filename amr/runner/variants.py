"""Sweep entries that are a strategy under config overrides: the replay-share frontier, same-split controls
and the headroom grid.

    uniform@4/32        uniform with `replay.fraction` = 4/32 (any strategy may carry a share: `amr@1/32`)
    uniform@split:mir   uniform at exactly mir's new/replay split (`replay.new_rows` = mir's new rows per step),
                        added by the sweep for every strategy that trims new rows to pay for its selection
    uniform@split:amr+tail+probes   the same for a named entry: uniform under the entry's replay share and
                        schedule (`share_overrides`) at its split
    amr+steady          a named variant (`amr.runner.named_variants`): a strategy under a fixed set of overrides,
                        one idea ablated at a time against uniform
    amr+tail+ewc        named variants stacked: their overrides merged left to right (two names setting one key to
                        different values fail by name before any run)
    tilted@-2           a fixed allocation of the replay rows over past tasks (`replay.task_tilt` = -2: the
                        oldest task gets e² times the newest's mass); the best of the grid, chosen on the
                        same seeds it is reported on, is the headroom of any task-level allocation

Each entry runs in its own workdir, <benchmark dir>/variants/<name with / and : replaced>, so the sweep
resumes it like any other run; its runs are paired by seed with the benchmark's other runs (same data,
checked by `provenance`).
"""

from __future__ import annotations

import dataclasses
import os
import re
from typing import Any

import jax

from amr.analysis import evidence
from amr.compute import plan as plan_lib
from amr.runner import config_check, named_variants

FRONTIER_SHARES = (1, 2, 4, 8)  # uniform's replay shares on the frontier, in 32nds of the batch
HEADROOM_TILTS = (-2.0, 2.0)  # the headroom grid: oldest-first and newest-first allocations over past tasks
_SHARE = re.compile(r"^(?P<strategy>[a-z_]+)@(?P<num>\d+)/(?P<den>\d+)$")


@dataclasses.dataclass(frozen=True)
class Variant:
    name: str  # the sweep entry, e.g. "uniform@4/32"
    strategy: str  # the strategy that runs
    overrides: dict  # dotted config key -> value
    meta: dict  # recorded in the sweep JSON as the entry's "variant"

    @property
    def dirname(self) -> str:
        return self.name.replace("/", "of").replace(":", "-")


def frontier_name(share_32: int) -> str:
    return f"uniform@{share_32}/32"


def split_name(strategy: str) -> str:
    return f"uniform@split:{strategy}"


def parse_share(entry: str, strategies) -> Variant | None:
    """`<strategy>@<k>/<n>` -> its Variant (`replay.fraction` = k/n); None for a plain strategy name."""
    if "@" not in entry:
        return None
    m = _SHARE.match(entry)
    if not m or m["strategy"] not in strategies or not 0 < int(m["num"]) < int(m["den"]):
        raise ValueError(
            f"strategies: {entry!r} is not '<strategy>@<k>/<n>' with a strategy of {tuple(strategies)} and 0 < k < n"
        )
    fraction = int(m["num"]) / int(m["den"])
    meta = {"kind": evidence.FRONTIER, "base": m["strategy"], "replay_fraction": fraction}
    return Variant(entry, m["strategy"], {"replay.fraction": fraction}, meta)


def parse_named(entry: str, strategies) -> Variant | None:
    """`<strategy>+<name>[+<name>...]` -> its Variant; None without `+`.

    One name: `named_variants.VARIANTS[name]`'s overrides, recorded as before stacking existed. Several: their
    overrides merged left to right (`named_variants.merged_overrides`: a ValueError naming the entry, both names and
    the key when two set one key to different values); the meta's `name` is the names joined by `+`, `names` lists
    them and `note` joins their notes."""
    parts = named_variants.split(entry)
    if parts is None:
        return None
    base, names = parts[0], named_variants.names(entry)
    if base not in strategies or not all(n in named_variants.VARIANTS for n in names):
        raise ValueError(
            f"strategies: {entry!r} is not '<strategy>+<name>[+<name>...]' with a strategy of {tuple(strategies)} "
            f"and names of {tuple(named_variants.VARIANTS)}"
        )
    if len(names) == 1:
        note, overrides = named_variants.VARIANTS[names[0]]
        meta = {"kind": evidence.NAMED, "base": base, "name": names[0], "note": note, "overrides": dict(overrides)}
        return Variant(entry, base, dict(overrides), meta)
    try:
        overrides = named_variants.merged_overrides(entry)
    except ValueError as err:
        raise ValueError(f"strategies: {err}") from None
    note = "; ".join(f"{n}: {named_variants.VARIANTS[n][0]}" for n in names)
    meta = {
        "kind": evidence.NAMED,
        "base": base,
        "name": named_variants.SEP.join(names),
        "names": list(names),
        "note": note,
        "overrides": dict(overrides),
    }
    return Variant(entry, base, dict(overrides), meta)


def is_variant(entry: str) -> bool:
    """A sweep entry that is a variant (a share or a named variant), not a plain strategy name."""
    return "@" in entry or named_variants.SEP in entry


def frontier(config, shares) -> list[Variant]:
    """Uniform at each share (32nds of the batch) whose replay rows differ from the default's (that one is the
    benchmark's own `uniform` run)."""
    batch = config.train.batch_size
    default_rows = int(round(config.replay.fraction * batch))
    out = []
    for k in shares:
        v = parse_share(frontier_name(int(k)), ("uniform",))
        if int(round(v.overrides["replay.fraction"] * batch)) != default_rows:
            out.append(v)
    return out


def headroom(tilts) -> list[Variant]:
    """The headroom grid: `tilted` at each task tilt (0 would be task_balanced)."""
    out = []
    for tilt in tilts:
        tilt = float(tilt)
        if not -20 <= tilt <= 20 or tilt == 0:
            raise ValueError(f"headroom: tilt {tilt!r} must be non-zero and in [-20, 20]")
        meta = {"kind": evidence.HEADROOM, "base": "tilted", "task_tilt": tilt}
        out.append(Variant(f"tilted@{tilt:+g}", "tilted", {"replay.task_tilt": tilt}, meta))
    return out


SHARE_KEYS = ("replay.fraction", "replay.share")  # an entry's overrides its same-split control keeps (prefixes)


def share_overrides(overrides: dict) -> dict:
    """The overrides that set how much is replayed when (`replay.fraction`, `replay.share*`), not what or how."""
    return {k: v for k, v in overrides.items() if k.startswith(SHARE_KEYS)}


def same_split(strategy: str, runs: list[dict[str, Any]], overrides: dict | None = None) -> Variant | None:
    """Uniform at `strategy`'s split when its finished runs trimmed new rows (None when they did not).

    `overrides`: a named entry's overrides; its control keeps their replay share and schedule
    (`share_overrides`: `amr+tail+probes`' control is uniform under `tail` at its split), not its selection or methods."""
    plans = {(r["plan"]["new_batch"], r["plan"]["replay_batch"]) for r in runs if r.get("plan")}
    trimmed = [r["plan"]["trimmed_rows"] for r in runs if r.get("plan")]
    if not trimmed or max(trimmed) == 0:
        return None
    if len(plans) != 1:
        raise ValueError(f"{strategy}: its seeds ran different new/replay splits {sorted(plans)}")
    ((new_rows, replay_rows),) = plans
    if replay_rows == 0:  # nothing replayed (`none+ewc` paying for EWC): no replay share to match
        return None
    kept = share_overrides(overrides or {})
    meta = {"kind": evidence.SAME_SPLIT, "base": "uniform", "of": strategy, "new_rows": new_rows}
    if kept:
        meta["overrides"] = dict(kept)
    return Variant(
        split_name(strategy),
        "uniform",
        {**kept, plan_lib.NEW_ROWS_KEY: int(new_rows)},
        {**meta, "replay_rows": replay_rows},
    )


def check(config, variant: Variant | None = None) -> None:
    """Config validation of a (variant's) config before it runs: config_check's, and `replay.new_rows`'s."""
    n_dev = config.mesh.num_devices or jax.device_count()
    try:
        config_check.validate(config, n_dev)
        plan_lib.check_new_rows(config, n_dev)
    except ValueError as err:
        where = f"sweep entry {variant.name!r}: " if variant else ""
        raise ValueError(f"{where}{err}") from None


def check_split(variant: Variant, control_runs: list[dict[str, Any]]) -> None:
    """The control's runs must have run the split they stand for."""
    want = (variant.meta["new_rows"], variant.meta["replay_rows"])
    for r in control_runs:
        got = (r["plan"]["new_batch"], r["plan"]["replay_batch"])
        if got != want:
            raise ValueError(
                f"{variant.name}: seed {r['seed']} ran new/replay rows {got}, not {variant.meta['of']}'s {want}"
            )


def workdir(bench_dir: str, variant: Variant) -> str:
    return os.path.join(bench_dir, "variants", variant.dirname)
