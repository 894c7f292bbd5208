"""The Headroom section of docs/RESULTS.md: how much any fixed allocation of the replay rows over past tasks gains
over uniform, read against issue #12's forgetting target (`experiments.results_page`)."""

from amr.analysis import evidence_md
from experiments.results_targets import ratio_target


def headroom_summary(benchmarks: dict[str, dict]) -> list[str]:
    """One generated sentence per reading of the grid: the benchmarks where no allocation gains, where the best
    gains short of the ratio target, and where it reaches it; [] without any grid."""
    groups: dict[str, list[str]] = {kind: [] for kind in evidence_md.HEADROOM_KINDS}
    for bench, entry in benchmarks.items():
        h = evidence_md.of_entry(entry)["headroom"]
        groups[evidence_md.headroom_kind(h, ratio_target(bench))].append(bench)

    def names(benches):
        return ", ".join(f"`{b}`" for b in benches)

    lines = []
    if groups["none"]:
        lines.append(
            f"- {names(groups['none'])}: no allocation of the grid forgets significantly less than uniform: "
            "favouring older or newer tasks buys nothing there, so these benchmarks are reported as such, not "
            "tuned; a gain must come from adapting over time or from selecting inside tasks."
        )
    if groups["short"]:
        lines.append(
            f"- {names(groups['short'])}: the grid's best allocation forgets less than uniform, but not by the "
            "ratio target."
        )
    if groups["reaches"]:
        lines.append(f"- {names(groups['reaches'])}: the grid's best allocation reaches the ratio target.")
    return [*lines, ""] if lines else []


def headroom_section(benchmarks: dict[str, dict]) -> list[str]:
    """The section's lines: what the grid is, its table with the reading column, the generated summary."""
    return [
        "## Headroom: how much could any task-level allocation gain?",
        "",
        "Fixed allocations of the replay rows over past tasks (`tilted@<t>`: task i of n gets mass ∝ "
        "exp(t·i/(n−1)), oldest-first for t < 0, newest-first for t > 0), at uniform's share. The best of the grid "
        "is chosen on the seeds it is reported on, so it is an optimistic reference, not a method; AMR's own "
        "paired difference stands beside it (paired Δ of average forgetting, mean ± 95% CI; negative = forgets "
        "less). The last column reads the grid against the Targets table's ratio target (a coarse grid: it bounds "
        "what an allocation between the oldest-first and newest-first tilts can win, not a selection inside "
        "tasks or a different replay share).",
        "",
        evidence_md.headroom_table(benchmarks, ratio_target),
        "",
        *headroom_summary(benchmarks),
    ]
