"""Whether a benchmark can decide: regime checks, the power of the AMR-uniform comparison, the same-split controls.

Everything here is computed from a sweep entry (`runner.sweep.summarize_benchmark`: per strategy its seeds and
per-seed values), with the statistics of `amr.analysis.stats`, so the sweep JSON and docs/RESULTS.md show the
same numbers, and a results file written before these keys existed still gets them (or None where its runs
lack what they need: the page prints "n/a").

    regime checks  (a) replay matters: uniform's average forgetting <= 0.8x naive's (`none`), and the
                       seed-paired 95% interval of uniform - none excludes 0;
                   (b) forgetting is real: uniform's average forgetting > 5x its seed-to-seed sd.
    power          seeds needed to detect 10% of uniform's average forgetting in AMR - uniform (paired t).
    same split     a strategy that trims new rows to pay for its selection also raises its replay share;
                   `uniform@split:<s>` is uniform at exactly <s>'s new/replay split, and the share of <s>'s
                   gain over uniform that uniform gains by the split alone is `explained_fraction`.
    share-matched  a strategy whose replay share varies (`replay.share` != 'fixed') against uniform at the SAME
                   realised share: uniform's frontier (its default share and every `uniform@k/n`) interpolated
                   linearly, seed by seed, at the strategy's mean realised `replay_share`.
    below frontier an entry's point (new-task loss over tasks 2..T, average forgetting; means over seeds) against
                   uniform's frontier joined by straight segments in share order: below when no point of that
                   curve has both coordinates at most the entry's; the margin is the entry's forgetting minus
                   the least the curve reaches at a new-task loss at most the entry's (negative = below).
    headroom       the best fixed allocation over past tasks of a small grid (`tilted@<tilt>` entries, chosen
                   on the seeds it is reported on: an optimistic, over-budget reference) against uniform,
                   beside AMR's own paired difference.
"""

from __future__ import annotations

from typing import Any

from amr.analysis import stats

REPLAY_MATTERS_RATIO = 0.8  # uniform's average forgetting at most this x naive's
FORGETTING_OVER_SD = 5.0  # uniform's average forgetting over this x its seed-to-seed sd
REFERENCE, NAIVE, POWER_OF = "uniform", "none", "amr"
SAME_SPLIT = "same_split"  # the `variant.kind` of a same-split control
FRONTIER = "frontier"  # the `variant.kind` of uniform at another replay share
HEADROOM = "headroom"  # the `variant.kind` of a fixed allocation over past tasks (the headroom grid)
NAMED = "named"  # the `variant.kind` of a strategy under a named set of overrides (`amr+steady`)


def per_seed(entry: dict[str, Any] | None, key: str = "avg_forgetting") -> dict[int, float]:
    """{seed: value} of one strategy's sweep entry (empty when it has no per-seed values of `key`)."""
    if not entry or f"{key}_per_seed" not in entry:
        return {}
    return {int(s): v for s, v in zip(entry["seeds"], entry[f"{key}_per_seed"]) if v is not None}


def paired_values(a: dict | None, b: dict | None, key: str = "avg_forgetting") -> tuple[list, list, list]:
    """(seeds, a's values, b's values) over the seeds both strategy entries have."""
    va, vb = per_seed(a, key), per_seed(b, key)
    seeds = sorted(set(va) & set(vb))
    return seeds, [va[s] for s in seeds], [vb[s] for s in seeds]


def paired(a: dict | None, b: dict | None, key: str = "avg_forgetting") -> dict[str, Any] | None:
    """`stats.paired_difference` of a - b's `key` (average forgetting by default) over shared seeds (None without a
    shared seed, or when either entry lacks per-seed values of `key`)."""
    seeds, va, vb = paired_values(a, b, key)
    return {**stats.paired_difference(va, vb), "seeds": seeds} if seeds else None


def regime_checks(uniform: dict | None, naive: dict | None) -> dict[str, Any]:
    """The two regime checks of one benchmark from the strategies' sweep entries; a check is None (n/a) when
    the runs it needs are missing (no `none` runs, fewer than 2 seeds)."""
    out: dict[str, Any] = {"replay_matters": None, "forgetting_is_real": None}
    u = per_seed(uniform)
    if len(u) > 1:
        d = stats.describe(list(u.values()))
        out["forgetting_is_real"] = {
            "uniform_mean": d["mean"],
            "uniform_sd": d["std"],
            "over_sd": d["mean"] / d["std"] if d["std"] > 0 else None,
            "threshold": FORGETTING_OVER_SD,
            "seeds": sorted(u),
            "pass": bool(d["mean"] > FORGETTING_OVER_SD * d["std"]),
        }
    seeds, vu, vn = paired_values(uniform, naive)
    if len(seeds) > 1:
        diff = stats.paired_difference(vu, vn)
        naive_mean, uniform_mean = stats.mean(vn), stats.mean(vu)
        ratio = uniform_mean / naive_mean if naive_mean > 0 else None
        out["replay_matters"] = {
            "uniform_mean": uniform_mean,
            "naive_mean": naive_mean,
            "ratio": ratio,
            "threshold": REPLAY_MATTERS_RATIO,
            "diff_mean": diff["mean"],
            "diff_ci95": diff["ci95"],
            "diff_excludes_zero": diff["excludes_zero"],
            "seeds": seeds,
            "pass": bool(ratio is not None and ratio <= REPLAY_MATTERS_RATIO and diff["excludes_zero"]),
        }
    return out


def power(strategies: dict[str, dict], of: str = POWER_OF) -> dict[str, Any] | None:
    """`stats.power_analysis` of `of` - uniform average forgetting, paired by seed (None without both)."""
    seeds, a, b = paired_values(strategies.get(of), strategies.get(REFERENCE))
    if not seeds:
        return None
    return {"comparison": f"{of} - {REFERENCE}", **stats.power_analysis(a, b), "seeds": seeds}


def _diff_summary(d: dict | None) -> dict[str, Any] | None:
    if d is None:
        return None
    keys = ("mean", "ci95", "std", "n", "excludes_zero", "p_value", "seeds")
    return {k: d[k] for k in keys}


def same_split(strategies: dict[str, dict]) -> dict[str, Any]:
    """Per strategy with a same-split control: its paired Δ vs uniform at the default share and vs uniform at its
    own split, the split's own effect (control - uniform) and the fraction of the gain the split explains."""
    out = {}
    uniform = strategies.get(REFERENCE)
    for name, e in strategies.items():
        v = e.get("variant") or {}
        if v.get("kind") != SAME_SPLIT or v.get("of") not in strategies:
            continue
        s = v["of"]
        vs_default, vs_split = paired(strategies[s], uniform), paired(strategies[s], e)
        split_effect = paired(e, uniform)
        explained = None
        if vs_default and split_effect and vs_default["mean"] != 0:
            explained = split_effect["mean"] / vs_default["mean"]
        out[s] = {
            "control": name,
            "new_rows": v.get("new_rows"),
            "replay_rows": v.get("replay_rows"),
            "vs_uniform": _diff_summary(vs_default),
            "vs_same_split": _diff_summary(vs_split),
            "split_effect": _diff_summary(split_effect),
            "explained_fraction": explained,
        }
    return out


def headroom(strategies: dict[str, dict]) -> dict[str, Any] | None:
    """The grid's best fixed allocation (lowest mean average forgetting) against uniform, with every grid point's
    paired difference and AMR's beside it; None without grid entries or uniform."""
    grid = {n: e for n, e in strategies.items() if (e.get("variant") or {}).get("kind") == HEADROOM}
    uniform = strategies.get(REFERENCE)
    if not grid or uniform is None:
        return None
    diffs = {n: _diff_summary(paired(e, uniform)) for n, e in grid.items()}
    best = min(grid, key=lambda n: grid[n]["avg_forgetting_mean"])
    best_diff, amr_diff = diffs[best], _diff_summary(paired(strategies.get(POWER_OF), uniform))
    u = uniform["avg_forgetting_mean"]
    return {
        "best": best,
        "best_vs_uniform": best_diff,
        "best_ratio": grid[best]["avg_forgetting_mean"] / u if u else None,
        "grid_vs_uniform": diffs,
        "amr_vs_uniform": amr_diff,
        "note": "best of the grid chosen on the seeds it is reported on: an optimistic reference",
    }


def frontier_points(entry: dict[str, Any]) -> list[tuple[float, dict]]:
    """[(replay share, uniform's sweep entry)] in share order: uniform at its default share and every frontier entry."""
    s = entry.get("strategies", {})
    default = ((entry.get("config") or {}).get("replay") or {}).get("fraction")
    points = [(float(default), s[REFERENCE])] if REFERENCE in s and default is not None else []
    for e in s.values():
        v = e.get("variant") or {}
        if v.get("kind") == FRONTIER and v.get("base") == REFERENCE:
            points.append((float(v["replay_fraction"]), e))
    return sorted(points, key=lambda p: p[0])


def share_matched(entry: dict[str, Any]) -> dict[str, Any]:
    """Per entry whose replay share varies (a variant overriding `replay.share`): its mean realised share, and
    its paired difference against uniform's frontier interpolated at that share on the seeds all points have
    (None when the share lies outside the frontier's range or a point lacks the seeds)."""
    out = {}
    points = frontier_points(entry)
    for name, e in entry.get("strategies", {}).items():
        overrides = (e.get("variant") or {}).get("overrides") or {}
        if overrides.get("replay.share", "fixed") == "fixed" or e.get("replay_share") is None:
            continue
        share = float(e["replay_share"])
        res: dict[str, Any] = {"replay_share": share, "vs_uniform_at_share": None, "ratio": None}
        inside = [p for p in points if p[0] <= share] and [p for p in points if p[0] >= share]
        if inside:
            lo = max((p for p in points if p[0] <= share), key=lambda p: p[0])
            hi = min((p for p in points if p[0] >= share), key=lambda p: p[0])
            mine, a, b = per_seed(e), per_seed(lo[1]), per_seed(hi[1])
            seeds = sorted(set(mine) & set(a) & set(b))
            w = 0.0 if hi[0] == lo[0] else (share - lo[0]) / (hi[0] - lo[0])
            at = [(1 - w) * a[k] + w * b[k] for k in seeds]
            if len(seeds) > 1:
                d = stats.paired_difference([mine[k] for k in seeds], at)
                res["vs_uniform_at_share"] = _diff_summary({**d, "seeds": seeds})
                res["ratio"] = float(sum(mine[k] for k in seeds) / sum(at)) if sum(at) > 0 else None
                res["between"] = [lo[0], hi[0]]
        out[name] = res
    return out


def benchmark_evidence(entry: dict[str, Any]) -> dict[str, Any]:
    """{"regime_checks", "power", "same_split", "headroom", "share_matched"} of one sweep entry."""
    s = entry.get("strategies", {})
    return {
        "regime_checks": regime_checks(s.get(REFERENCE), s.get(NAIVE)),
        "power": power(s),
        "same_split": same_split(s),
        "headroom": headroom(s),
        "share_matched": share_matched(entry),
    }


def _xy(e: dict) -> tuple | None:
    new, af = e.get(f"{stats.NEW_TASK_LOSS}_mean"), e.get("avg_forgetting_mean")
    if new is None or af is None:
        return None
    return (new, e.get(f"{stats.NEW_TASK_LOSS}_ci95") or 0.0, af, e.get("avg_forgetting_ci95") or 0.0)


def pareto(entry: dict[str, Any]) -> tuple[list, dict] | None:
    """(frontier, points) for `plots.plot_pareto`: uniform at its default share and every frontier entry, in share
    order, and every other entry as a point; None when uniform lacks the new-task loss over tasks 2..T (runs
    written before it existed)."""
    s = entry.get("strategies", {})
    if REFERENCE not in s or _xy(s[REFERENCE]) is None:
        return None
    cfg = entry.get("config") or {}
    default = (cfg.get("replay") or {}).get("fraction")
    label = f"{REFERENCE} (default, {32 * default:g}/32)" if default is not None else f"{REFERENCE} (default)"
    shares = [(default if default is not None else 0.0, label, s[REFERENCE])]
    points = {}
    for name, e in s.items():
        v = e.get("variant") or {}
        if name == REFERENCE or _xy(e) is None:
            continue
        if v.get("kind") == FRONTIER and v.get("base") == REFERENCE:
            shares.append((v["replay_fraction"], name, e))
        else:
            points[name] = _xy(e)
    frontier = [(label, _xy(e)) for _, label, e in sorted(shares, key=lambda t: t[0])]
    return frontier, points


def uniform_frontier(entry: dict[str, Any]) -> list[tuple[str, float, float]] | None:
    """[(name, new-task loss mean over tasks 2..T, average forgetting mean)] of uniform at its default share and
    every frontier entry (`frontier_points`), in share order; None when any of them lacks either mean."""
    names = {id(e): n for n, e in entry.get("strategies", {}).items()}
    curve = []
    for _, e in frontier_points(entry):
        xy = _xy(e)
        if xy is None:
            return None
        curve.append((names[id(e)], float(xy[0]), float(xy[2])))
    return curve


def frontier_margin(curve: list[tuple[str, float, float]], new: float, forgetting: float) -> dict[str, Any]:
    """Where the point (`new` new-task loss, `forgetting`) lies against the piecewise-linear curve through `curve`
    [(label, new-task loss, forgetting)] (consecutive points joined by straight segments; the curve need not be
    monotone in either coordinate).

    On each segment the new-task loss is linear in its parameter t in [0, 1], so the part at a new-task loss at most
    `new` is an interval of t, and the forgetting, linear too, is least at one of its ends. `reached` is the least
    forgetting over those parts, `margin` = `forgetting` - `reached`, `below` = margin < 0 (no point of the curve
    has both a new-task loss and a forgetting at most the point's), `at` the curve's point reaching it and
    `between` the labels of the frontier points bracketing it (one label when it is a frontier point itself;
    the first in curve order on a tie). When no point of the curve has a new-task loss at most `new` (the point
    lies left of the whole frontier) it is below with margin None and a `note` saying so."""
    if not curve:
        raise ValueError("frontier_margin: an empty frontier")
    best = None  # (forgetting reached, new-task loss there, labels)
    for (la, xa, ya), (lb, xb, yb) in list(zip(curve, curve[1:])) or [(curve[0], curve[0])]:
        dx = xb - xa
        if dx == 0:
            ends = (0.0, 1.0) if xa <= new else ()
        elif dx > 0:  # new-task loss rises along the segment: feasible from t = 0 up to where it reaches `new`
            t = (new - xa) / dx
            ends = (0.0, min(1.0, t)) if t >= 0 else ()
        else:  # it falls: feasible from where it has dropped to `new` up to t = 1
            t = (new - xa) / dx
            ends = (max(0.0, t), 1.0) if t <= 1 else ()
        for t in ends:
            y = ya if t == 0 else yb if t == 1 else (1 - t) * ya + t * yb
            x = xa if t == 0 else xb if t == 1 else (1 - t) * xa + t * xb
            labels = [la] if t == 0 else [lb] if t == 1 else [la, lb]
            if best is None or y < best[0]:
                best = (y, x, labels)
    if best is None:
        return {
            "below": True,
            "margin": None,
            "reached": None,
            "at": None,
            "between": [],
            "note": "left of the whole frontier: no frontier point has a new-task loss at most its own",
        }
    margin = forgetting - best[0]
    return {
        "below": bool(margin < 0),
        "margin": margin,
        "reached": best[0],
        "at": {"new_task_loss": best[1], "avg_forgetting": best[0]},
        "between": best[2],
        "note": None,
    }


def vs_frontier(entry: dict[str, Any], name: str) -> dict[str, Any] | None:
    """`frontier_margin` of strategy `name`'s point (means over seeds) against `uniform_frontier`, with the
    frontier's labels under "frontier"; None (n/a) when the entry was not run, lacks either mean, or the frontier
    has fewer than 2 points or a point without both means."""
    e = entry.get("strategies", {}).get(name)
    curve = uniform_frontier(entry)
    xy = _xy(e) if e else None
    if xy is None or curve is None or len(curve) < 2:
        return None
    return {**frontier_margin(curve, float(xy[0]), float(xy[2])), "frontier": [c[0] for c in curve]}
