"""The "What the replay share buys" section of docs/RESULTS.md: uniform replay along its frontier against uniform at
the default share, paired by seed (`experiments.results_page`).

Issue #12 asks AMR, at uniform's replay share, to lie below the frontier of uniform at every share. How steep that
frontier is decides how hard that is: where a larger share lowers forgetting a lot for little new-task loss, a
selection or schedule at the default share has to gain more than moving along the frontier does.
"""

from __future__ import annotations

from amr.analysis import evidence, stats
from experiments.results_targets import TARGET_NEW_LOSS, _delta


def share_rows(entry: dict) -> list[dict]:
    """One row per frontier point other than uniform itself, in share order: its share, forgetting ratio and paired
    Δ, new-task loss change (relative, tasks 2..T, paired Δ of the means), final average loss paired Δ."""
    s = entry.get("strategies", {})
    u = s.get(evidence.REFERENCE)
    if u is None:
        return []
    out = []
    for share, e in evidence.frontier_points(entry):
        if e is u:
            continue
        new = evidence.paired(e, u, stats.NEW_TASK_LOSS)
        u_new = u.get(f"{stats.NEW_TASK_LOSS}_mean")
        out.append(
            {
                "share": share,
                "forgetting_ratio": e["avg_forgetting_mean"] / u["avg_forgetting_mean"]
                if u.get("avg_forgetting_mean")
                else None,
                "forgetting": evidence.paired(e, u),
                "new_rel": None if new is None or not u_new else new["mean"] / u_new,
                "new": new,
                "final": evidence.paired(e, u, "final_avg_loss"),
            }
        )
    return out


def cheapest_gain(rows: list[dict]) -> dict | None:
    """The frontier point with the lowest forgetting among those whose new-task loss is within the target (1%) of
    uniform's and lower than uniform's forgetting significantly; None when no point qualifies."""
    ok = [
        r
        for r in rows
        if r["new_rel"] is not None
        and r["new_rel"] <= TARGET_NEW_LOSS
        and r["forgetting"] is not None
        and r["forgetting"]["mean"] < 0
        and r["forgetting"]["excludes_zero"]
    ]
    return min(ok, key=lambda r: r["forgetting"]["mean"]) if ok else None


def _share(x: float) -> str:
    return f"{round(32 * x)}/32" if abs(32 * x - round(32 * x)) < 1e-9 else f"{x:.3f}"


def share_section(benchmarks: dict[str, dict]) -> list[str]:
    """Markdown lines; [] when no benchmark has a frontier."""
    table = {b: share_rows(e) for b, e in benchmarks.items()}
    if not any(table.values()):
        return []
    lines = [
        "## What the replay share buys: uniform along its frontier",
        "",
        "Uniform replay at other shares (the frontier's points) against uniform at the default share, paired by "
        "seed (mean ± 95% CI; bold: the interval excludes 0). Every point trains the same rows per step; a larger "
        "share replaces new rows by replayed ones. A strategy at the default share lies below the frontier only "
        "if it gains more than moving along this curve does.",
        "",
        "| benchmark | share | forgetting / uniform | forgetting Δ | new-task loss vs uniform | final avg loss Δ |",
        "| --- | --- | ---: | --- | ---: | --- |",
    ]
    for b, rows in table.items():
        for r in rows:
            ratio = "n/a" if r["forgetting_ratio"] is None else f"{r['forgetting_ratio']:.2f}×"
            new = "n/a" if r["new_rel"] is None else f"{100 * r['new_rel']:+.2f}%"
            lines.append(
                f"| {b} | {_share(r['share'])} | {ratio} | {_delta(r['forgetting'])} | {new} | {_delta(r['final'])} |"
            )
    lines.append("")
    for b, rows in table.items():
        best = cheapest_gain(rows)
        if not rows:
            continue
        if best is None:
            lines.append(
                f"- {b}: no larger share lowers forgetting significantly within {100 * TARGET_NEW_LOSS:.0f}% of "
                "uniform's new-task loss."
            )
        else:
            ratio = best["forgetting_ratio"]
            how = (
                f"forgets {ratio:.2f}× as much as at the default share"
                if ratio >= 0
                else f"forgets less than nothing (average forgetting below 0: later tasks improved the earlier ones; "
                f"{ratio:.2f}× uniform's)"
            )
            lines.append(
                f"- {b}: uniform at {_share(best['share'])} {how}, at {100 * best['new_rel']:+.2f}% new-task loss "
                f"(final average loss {_delta(best['final'])})."
            )
        best_final = lowest_final_share(benchmarks[b])
        if best_final is not None:
            share, monotone = best_final
            lines[-1] += f" The final average loss is lowest at {_share(share)}" + (
                ", falling with every larger share tested." if monotone else "."
            )
    lines.append("")
    return lines


def lowest_final_share(entry: dict) -> tuple[float, bool] | None:
    """(the share with the lowest mean final average loss among uniform's frontier points, whether that loss falls
    with every larger share); None without two points recording it."""
    pts = [(share, e.get("final_avg_loss_mean")) for share, e in evidence.frontier_points(entry)]
    pts = [(share, f) for share, f in pts if f is not None]
    if len(pts) < 2:
        return None
    best = min(pts, key=lambda p: p[1])[0]
    return best, all(b[1] < a[1] for a, b in zip(pts, pts[1:]))
