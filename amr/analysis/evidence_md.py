"""docs/RESULTS.md's sections on whether each benchmark can decide: regime checks, power, same-split controls.

Input is a sweep entry; its `regime_checks` / `power` / `same_split` are read when the sweep stored them and
computed by `amr.analysis.evidence` otherwise (results files written before they existed). A value the runs
cannot give (no `none` runs, a single seed, runs without a key) is printed "n/a", never guessed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from amr.analysis import evidence, stats

KEYS = ("regime_checks", "power", "same_split", "headroom", "share_matched")


def of_entry(entry: dict[str, Any]) -> dict[str, Any]:
    """The evidence of a sweep entry: as stored by the sweep, else computed from its per-seed values."""
    if all(k in entry for k in KEYS):
        return {k: entry[k] for k in KEYS}
    return evidence.benchmark_evidence(entry)


def _f(x, fmt: str = "{:.4f}") -> str:
    return "n/a" if x is None else fmt.format(x)


def _verdict(check: dict) -> str:
    return "**PASS**" if check["pass"] else "**FAIL**"


def regime_lines(checks: dict[str, Any]) -> list[str]:
    """Two bullet lines: (a) replay matters, (b) forgetting is real, each PASS/FAIL with its numbers or n/a."""
    rm, real = checks.get("replay_matters"), checks.get("forgetting_is_real")
    if rm is None:
        a = "- (a) replay matters: n/a (needs `none` and `uniform` runs on at least 2 shared seeds)"
    else:
        contains = "excludes" if rm["diff_excludes_zero"] else "contains"
        a = (
            f"- (a) replay matters: {_verdict(rm)}: uniform's average forgetting {rm['uniform_mean']:.4f} is "
            f"{_f(rm['ratio'], '{:.2f}')}× naive's {rm['naive_mean']:.4f} (needs ≤ {rm['threshold']}×); paired "
            f"Δ (uniform − none) {rm['diff_mean']:+.4f} ± {rm['diff_ci95']:.4f} over seeds {rm['seeds']} "
            f"({contains} 0; needs to exclude it)"
        )
    if real is None:
        b = "- (b) forgetting is real: n/a (needs `uniform` runs on at least 2 seeds)"
    else:
        b = (
            f"- (b) forgetting is real: {_verdict(real)}: uniform's average forgetting {real['uniform_mean']:.4f} "
            f"is {_f(real['over_sd'], '{:.1f}')}× its seed-to-seed sd {real['uniform_sd']:.4f} (needs > "
            f"{real['threshold']:g}×; seeds {real['seeds']})"
        )
    return [a, b]


def power_table(benchmarks: dict[str, dict], entries: tuple[str, ...] = (evidence.POWER_OF,)) -> str:
    """One row per benchmark and AMR entry of `entries` it ran: the paired sd of the entry − uniform, the effect
    (10% of uniform's mean), seeds needed for 80% power at α = 0.05 (paired t, noncentral t), seeds run and the
    power they give. `amr`'s row reads the power the sweep stored; other entries' are computed from their seeds."""
    lines = [
        "| benchmark | entry | paired sd (entry − uniform) | uniform's mean | effect (10%) | seeds needed (80% power) "
        "| seeds run | power at seeds run | enough (≥ needed and ≥ 10) |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for bench, entry in benchmarks.items():
        ran = [e for e in entries if e in entry.get("strategies", {})] or [evidence.POWER_OF]
        for name in ran:
            if name == evidence.POWER_OF:
                p = of_entry(entry)["power"]
            else:
                p = evidence.power(entry["strategies"], of=name)
            if p is None:
                lines.append(
                    f"| {bench} | `{name}` | n/a | n/a | n/a | n/a | {len(entry.get('seeds', []))} | n/a | n/a |"
                )
                continue
            lines.append(
                f"| {bench} | `{name}` | {_f(p['paired_sd'])} | {p['reference_mean']:.4f} | {p['effect']:.4f} | "
                f"{_f(p['seeds_needed'], '{}')} | {p['seeds_run']} | {_f(p['power_at_seeds_run'], '{:.2f}')} | "
                f"{'yes' if p['enough_seeds'] else '**no**'} |"
            )
    return "\n".join(lines)


def _diff(d: dict | None) -> str:
    return "n/a" if d is None else f"{d['mean']:+.4f} ± {d['ci95']:.4f}"


def split_table(same: dict[str, Any]) -> str | None:
    """Per trimming strategy: Δ vs uniform at the default share and at its own split, the split's own effect and
    the share of the gain it explains; None when the benchmark has no same-split control."""
    if not same:
        return None
    lines = [
        "| strategy | its split (new + replay rows) | Δ vs uniform (default share) | Δ vs uniform at its split "
        "| split alone (control − uniform) | gain explained by the split |",
        "| --- | --- | --- | --- | --- | ---: |",
    ]
    for s, e in same.items():
        explained = _f(e["explained_fraction"], "{:.0%}")
        lines.append(
            f"| {s} | {_f(e['new_rows'], '{}')} + {_f(e['replay_rows'], '{}')} (`{e['control']}`) | "
            f"{_diff(e['vs_uniform'])} | {_diff(e['vs_same_split'])} | {_diff(e['split_effect'])} | {explained} |"
        )
    return "\n".join(lines)


def headroom_lines(h: dict[str, Any] | None) -> list[str]:
    """The headroom of task-level allocations (the grid's best fixed allocation) beside AMR's gain, or n/a."""
    if h is None:
        return ["Headroom: n/a (no headroom grid in these runs: `experiments/compare.py --headroom`).", ""]
    grid = ", ".join(f"`{n}` {_diff(d)}" for n, d in h["grid_vs_uniform"].items())
    ratio = _f(h["best_ratio"], "{:.2f}×")
    return [
        f"Headroom (paired Δ of average forgetting vs uniform, mean ± 95% CI): the best fixed allocation over past "
        f"tasks of the grid, `{h['best']}`, {_diff(h['best_vs_uniform'])} ({ratio} uniform's forgetting; chosen on "
        f"the seeds it is reported on, so optimistic); AMR {_diff(h['amr_vs_uniform'])}. Grid: {grid}.",
        "",
    ]


def share_matched_lines(matched: dict[str, Any]) -> list[str]:
    """Strategies whose replay share varies, against uniform's frontier at the same realised share (none: no lines)."""
    if not matched:
        return []
    items = []
    for name, m in matched.items():
        at = f"{m['replay_share'] * 32:.2f}/32"
        if m["vs_uniform_at_share"] is None:
            items.append(f"`{name}` (realised share {at}): n/a, outside the frontier or missing seeds")
        else:
            ratio = _f(m["ratio"], "{:.2f}×")
            items.append(f"`{name}` (realised share {at}): {_diff(m['vs_uniform_at_share'])}, {ratio}")
    return [
        "Against uniform at the same replay share (uniform's frontier interpolated seed by seed at the realised "
        "share; paired Δ of average forgetting, mean ± 95% CI): " + "; ".join(items) + ".",
        "",
    ]


HEADROOM_KINDS = ("n/a", "none", "short", "reaches")  # what the grid says; see headroom_kind
_NO_GAIN_READINGS = {"n/a": "n/a", "none": "no allocation of the grid forgets significantly less than uniform"}


def headroom_kind(h: dict[str, Any] | None, ratio_target: float) -> str:
    """What the grid's best fixed allocation says a task-level allocation could win: "none" (no allocation forgets
    significantly less than uniform), "short" (a gain short of `ratio_target`), "reaches", or "n/a" (no grid)."""
    if h is None or h["best_vs_uniform"] is None:
        return "n/a"
    best = h["best_vs_uniform"]
    if not (best["excludes_zero"] and best["mean"] < 0):
        return "none"
    ratio = h["best_ratio"]
    return "reaches" if ratio is not None and ratio <= ratio_target else "short"


def headroom_reading(h: dict[str, Any] | None, ratio_target: float) -> str:
    """`headroom_kind` in words, with the ratio where the best allocation gains."""
    kind = headroom_kind(h, ratio_target)
    if kind in _NO_GAIN_READINGS:
        return _NO_GAIN_READINGS[kind]
    ratio = _f(h["best_ratio"], "{:.2f}×")
    if kind == "reaches":
        return f"the best reaches the ratio target ({ratio} ≤ {ratio_target}×)"
    return f"the best gains, short of the ratio target ({ratio} > {ratio_target}×)"


def headroom_table(benchmarks: dict[str, dict], ratio_target: Callable[[str], float] | None = None) -> str:
    """One row per benchmark: the grid's best fixed allocation over past tasks against uniform, beside AMR; with
    `ratio_target` (benchmark -> the forgetting ratio AMR must reach) a column reads the grid against it."""
    head = "| benchmark | best fixed allocation | its Δ vs uniform | its ratio | AMR's Δ vs uniform |"
    rule = "| --- | --- | --- | ---: | --- |"
    if ratio_target is not None:
        head, rule = head + " what a task-level allocation can win |", rule + " --- |"
    lines = [head, rule]
    for bench, entry in benchmarks.items():
        h = of_entry(entry)["headroom"]
        reading = "" if ratio_target is None else f" {headroom_reading(h, ratio_target(bench))} |"
        if h is None:
            lines.append(f"| {bench} | n/a | n/a | n/a | n/a |{reading}")
            continue
        lines.append(
            f"| {bench} | `{h['best']}` | {_diff(h['best_vs_uniform'])} | {_f(h['best_ratio'], '{:.2f}×')} | "
            f"{_diff(h['amr_vs_uniform'])} |{reading}"
        )
    return "\n".join(lines)


def benchmark_section(bench: str, entry: dict[str, Any], pareto_png: str | None) -> list[str]:
    """The lines of one benchmark's evidence: regime checks, the Pareto plot (or n/a), the same-split table."""
    ev = of_entry(entry)
    lines = [f"#### {bench}: regime checks", "", *regime_lines(ev["regime_checks"]), ""]
    if pareto_png:
        lines += [f"![{bench}: forgetting against new-task loss, uniform's frontier]({pareto_png})", ""]
    else:
        lines += [
            "Pareto plot (forgetting against new-task loss over tasks 2..T): n/a, these runs predate "
            f"`{stats.NEW_TASK_LOSS}`.",
            "",
        ]
    table = split_table(ev["same_split"])
    lines += [
        "Same-split controls (paired Δ of average forgetting, mean ± 95% CI; negative = forgets less):",
        "",
        table
        or "n/a: no same-split control in these runs (with uniform among the strategies, the sweep adds one for "
        "every strategy whose runs trimmed new rows).",
        "",
        *headroom_lines(ev["headroom"]),
        *share_matched_lines(ev.get("share_matched") or {}),
    ]
    return lines
