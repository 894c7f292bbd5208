"""The Companion methods section of docs/RESULTS.md: issue #13's methods alone, with uniform replay and with AMR,
against uniform paired by seed, at equal measured FLOPs (`experiments.results_page`).

A method entry is a sweep entry whose variant names include a method of `amr.methods.registry.METHODS`
(`none+ewc`, `uniform+ewc`, `amr+ewc`, `amr+tail+ewc`) or a variant configuring one
(`named_variants.METHOD_VARIANTS`: `amr+tail+ema_adaptive`); its combination is the entry without the method
(`amr+tail`). The section appears only for benchmarks with method entries, so results without any render as before.
"""

from amr.analysis import evidence, stats
from amr.methods.registry import METHODS
from amr.runner import named_variants
from experiments.results_targets import NAIVE_FLOPS_TOLERANCE, _delta, _yes

RECOMMENDED = named_variants.RECOMMENDED_AMR
COMBINED = named_variants.METHODS_AMR  # the AMR the methods are combined with (`amr+tail+ewc`)
METHOD_NAMES = (*METHODS, *named_variants.METHOD_VARIANTS)  # variant names that make an entry a method entry
AMR = "amr"  # a method entry over this base strategy is an AMR combination (`amr+ewc`, `amr+tail+ewc`)
# the table's rows without a method
REFERENCE_ROWS = tuple(dict.fromkeys((evidence.NAIVE, evidence.REFERENCE, AMR, COMBINED, RECOMMENDED)))
COLUMNS = (
    "seeds",
    "avg forgetting",
    "new-task loss (tasks 2..T)",
    "final avg loss",
    "final avg loss Δ vs uniform",
    "Δ excludes 0",
    "avg forgetting Δ vs uniform",
    "FLOPs / naive",
)


def method_of(name: str) -> tuple[str, str] | None:
    """(method, combination) of a method entry: `'amr+tail+ewc'` -> `('ewc', 'amr+tail')`, `'none+ewc'` ->
    `('ewc', 'none')`; None for an entry without a method among its variant names."""
    names = named_variants.names(name)
    found = [n for n in names if n in METHOD_NAMES]
    if not found:
        return None
    base = named_variants.split(name)[0]
    combination = named_variants.SEP.join([base, *(n for n in names if n not in METHOD_NAMES)])
    return named_variants.SEP.join(found), combination


def method_entries(entry: dict) -> dict[str, tuple[str, str]]:
    """{name: (method, combination)} of a benchmark's method entries, in the sweep's order."""
    out = {}
    for name in entry.get("strategies", {}):
        m = method_of(name)
        if m is not None:
            out[name] = m
    return out


def _expected(method: str, present: dict) -> list[str]:
    """The entries a method should have: alone, with uniform, with AMR (`amr+m` and/or `COMBINED+m`: whichever
    ran, `COMBINED+m` when neither did), then any other combination that ran."""
    sep = named_variants.SEP
    amr = [n for n in (f"{AMR}{sep}{method}", f"{COMBINED}{sep}{method}") if n in present]
    names = [
        f"{evidence.NAIVE}{sep}{method}",
        f"{evidence.REFERENCE}{sep}{method}",
        *(amr or [f"{COMBINED}{sep}{method}"]),
    ]
    return names + [n for n, (m, _) in present.items() if m == method and n not in names]


def row(entry: dict, name: str) -> dict:
    """One entry's row: its statistics, paired Δ of final average loss and of average forgetting against uniform
    (`evidence.paired`: `stats.paired_difference` over the seeds both have), FLOPs over naive's, missing seeds."""
    s = entry["strategies"]
    e, uniform, naive = s.get(name), s.get(evidence.REFERENCE), s.get(evidence.NAIVE)
    out = {"entry": name, "ran": e is not None, "method": (method_of(name) or (None, None))[0]}
    if e is None:
        return out
    seeds = [int(k) for k in e.get("seeds", [])]
    out["seeds"] = seeds
    out["missing_seeds"] = sorted(set(int(k) for k in entry.get("seeds", [])) - set(seeds))
    for key in ("avg_forgetting", stats.NEW_TASK_LOSS, "final_avg_loss"):
        out[key] = (e.get(f"{key}_mean"), e.get(f"{key}_ci95"))
    is_ref = name == evidence.REFERENCE
    out["final_vs"] = None if is_ref else evidence.paired(e, uniform, "final_avg_loss")
    out["forgetting_vs"] = None if is_ref else evidence.paired(e, uniform)
    out["flops_ratio"] = e["flops_total"] / naive["flops_total"] if naive and naive.get("flops_total") else None
    out["within_budget"] = bool(e.get("within_budget", True))
    ratio = out["flops_ratio"]
    out["flops_ok"] = None if ratio is None else bool(ratio <= 1 + NAIVE_FLOPS_TOLERANCE and out["within_budget"])
    return out


def rows(entry: dict) -> list[dict]:
    """The table's rows: the reference entries that ran (none, uniform, amr, the methods' AMR, the recommended one), then per method
    (in `METHODS` order) its expected entries (missing ones as rows that did not run) and its other combinations."""
    present = method_entries(entry)
    out = [row(entry, n) for n in REFERENCE_ROWS if n in entry["strategies"]]
    for method in dict.fromkeys(m for m, _ in sorted(present.values(), key=lambda mc: _method_order(mc[0]))):
        out += [row(entry, n) for n in _expected(method, present)]
    return out


def _method_order(method: str) -> tuple:
    first = method.split(named_variants.SEP)[0]
    base = named_variants.METHOD_VARIANTS.get(first, first)  # `ema_adaptive` right after `ema`
    return (METHODS.index(base) if base in METHODS else len(METHODS), first != base, method)


def summary(bench: str, entry: dict) -> dict:
    """A benchmark's verdicts: the best method entry (lowest final average loss), the AMR combinations and whether
    one has a lower final average loss than uniform with a paired interval excluding 0 (issue #13's target), the
    method entries above naive's FLOPs (never the best, never the target's win), and what is missing (entries,
    methods, seeds)."""
    table = rows(entry)
    ran = [r for r in table if r["method"] is not None and r["ran"]]
    # an entry above naive's measured FLOPs is reported but can be neither the best nor the target's win
    in_budget = [r for r in ran if r["flops_ok"] is not False]
    with_final = [r for r in in_budget if r["final_avg_loss"][0] is not None]
    best = min(with_final, key=lambda r: r["final_avg_loss"][0]) if with_final else None
    amr = [r for r in ran if (method_of(r["entry"]) or ("", ""))[1].split(named_variants.SEP)[0] == AMR]
    compared = [r for r in amr if r["final_vs"] is not None]
    wins = [
        r
        for r in compared
        if r["final_vs"]["mean"] < 0 and r["final_vs"]["excludes_zero"] and r["flops_ok"] is not False
    ]
    combos = method_entries(entry)
    present_methods = {m.split(named_variants.SEP)[0] for m, _ in combos.values()}
    added = []  # what each method adds to its AMR combination: `amr+tail+ewc` - `amr+tail`, paired by seed
    for r in amr:
        base = entry["strategies"].get(combos[r["entry"]][1])
        d = evidence.paired(entry["strategies"][r["entry"]], base, "final_avg_loss")
        if d is not None:
            added.append({"entry": r["entry"], "combination": combos[r["entry"]][1], "delta": d, "row": r})
    return {
        "benchmark": bench,
        "rows": table,
        "best": best,
        "amr": amr,
        "compared": compared,
        "wins": sorted(wins, key=lambda r: r["final_vs"]["mean"]),
        "closest": min(compared, key=lambda r: r["final_vs"]["mean"]) if compared else None,
        "added": sorted(added, key=lambda a: a["delta"]["mean"]),
        "target_met": _target_met(entry, amr, compared, wins),
        "has_uniform": evidence.REFERENCE in entry["strategies"],
        "over_flops": [r for r in ran if r["flops_ok"] is False],
        "flops_checked": bool(ran) and all(r["flops_ratio"] is not None for r in ran),
        "missing_entries": [n for n in (evidence.NAIVE, evidence.REFERENCE) if n not in entry["strategies"]]
        + [r["entry"] for r in table if not r["ran"]],
        "methods_not_run": [m for m in METHODS if m not in present_methods],
        "missing_seeds": {r["entry"]: r["missing_seeds"] for r in table if r["ran"] and r["missing_seeds"]},
    }


def _target_met(entry: dict, amr: list, compared: list, wins: list) -> bool | None:
    """Issue #13's target on one benchmark: False when no AMR combination ran, None when it cannot be checked (no
    uniform, or no seed shared with uniform's per-seed final losses)."""
    if evidence.REFERENCE not in entry["strategies"]:
        return None
    if not amr:
        return False
    return bool(wins) if compared else None


def _stat(v: tuple) -> str:
    mean, ci = v
    if mean is None:
        return "n/a"
    return f"{mean:.4f} ± {ci:.4f}" if ci is not None else f"{mean:.4f}"


def _paired_text(d: dict | None, seeds: list) -> str:
    """`_delta`, with the paired seeds' count when they are fewer than the entry's."""
    text = _delta(d)
    if d is not None and len(d["seeds"]) != len(seeds):
        text += f" ({len(d['seeds'])} paired seeds)"
    return text


def _flops_text(r: dict) -> str:
    if r["flops_ratio"] is None:
        return "n/a (no `none`)"
    text = f"{r['flops_ratio']:.3f}"
    if r["flops_ratio"] > 1 + NAIVE_FLOPS_TOLERANCE:
        text = f"**{text} (above naive)**"
    return text + ("" if r["within_budget"] else " (**over budget**)")


def cells(r: dict) -> list[str]:
    """A row's cells after method and entry: — for uniform's own Δ, "not run" for a missing entry."""
    if not r["ran"]:
        return ["**not run**"] + ["—"] * (len(COLUMNS) - 1)
    seeds = str(len(r["seeds"]))
    if r["missing_seeds"]:
        seeds += f" (**missing {', '.join(map(str, r['missing_seeds']))}**)"
    ref = r["entry"] == evidence.REFERENCE
    final = r["final_vs"]
    return [
        seeds,
        _stat(r["avg_forgetting"]),
        _stat(r[stats.NEW_TASK_LOSS]),
        _stat(r["final_avg_loss"]),
        "—" if ref else _paired_text(final, r["seeds"]),
        "—" if ref else ("n/a" if final is None else _yes(final["excludes_zero"])),
        "—" if ref else _paired_text(r["forgetting_vs"], r["seeds"]),
        _flops_text(r),
    ]


def _entry_delta(r: dict) -> str:
    d = r["final_vs"]
    over = "" if r["flops_ok"] is not False else "; **above naive's FLOPs or over budget**"
    return f"`{r['entry']}` (Δ {d['mean']:+.4f} ± {d['ci95']:.4f} over {len(d['seeds'])} seeds{over})"


def verdict_lines(g: dict) -> list[str]:
    """The lines under a benchmark's table: the best combination, issue #13's target, FLOPs, what is missing."""
    bench = g["benchmark"]
    best = g["best"]
    lines = []
    if best is None:
        lines.append(f"- Best combination on {bench}: none (no method entry has a final average loss).")
    else:
        lines.append(
            f"- Best combination on {bench} (lowest final average loss of the method entries): `{best['entry']}`, "
            f"{_stat(best['final_avg_loss'])}"
            + (f" (paired Δ vs uniform {_delta(best['final_vs'])})." if best["final_vs"] is not None else ".")
        )
    target = "an AMR combination with a lower final average loss than uniform, paired 95% interval excluding 0"
    lines.append(f"- Issue #13's target on {bench} ({target}): {_target_text(g)}")
    if g["added"]:
        helps = [a for a in g["added"] if a["delta"]["mean"] < 0 and a["delta"]["excludes_zero"]]
        each = ", ".join(
            f"`{a['entry']}` {_delta(a['delta'])}" + ("" if a["row"]["flops_ok"] is not False else " (above naive)")
            for a in g["added"]
        )
        verdict = (
            "lower with an interval excluding 0: " + ", ".join(f"`{a['entry']}`" for a in helps)
            if helps
            else "none lower with an interval excluding 0"
        )
        lines.append(
            f"- What a method adds to its AMR combination on {bench} (final avg loss, the entry minus the same "
            f"combination without the method, paired by seed; {verdict}): {each}."
        )
    if not g["flops_checked"]:
        lines.append(f"- FLOPs: not checked against naive's on {bench} (no `none` entry).")
    elif g["over_flops"]:
        over = ", ".join(f"`{r['entry']}` ({r['flops_ratio']:.3f}×)" for r in g["over_flops"])
        lines.append(f"- FLOPs: **above naive fine-tuning's measured FLOPs (or over budget): {over}**.")
    else:
        lines.append(
            f"- FLOPs: every method entry within {1 + NAIVE_FLOPS_TOLERANCE:g}× naive fine-tuning's measured FLOPs."
        )
    missing = [f"`{n}` not run" for n in g["missing_entries"]]
    missing += [f"`{n}` lacks seed(s) {', '.join(map(str, k))}" for n, k in g["missing_seeds"].items()]
    if g["methods_not_run"]:
        missing.append(f"methods not run on {bench}: {', '.join(g['methods_not_run'])}")
    lines.append(f"- Missing: {'; '.join(missing)}." if missing else "- Missing: nothing.")
    return lines


def _target_text(g: dict) -> str:
    if not g["has_uniform"]:
        return "**cannot be checked**: no `uniform` entry."
    if not g["amr"]:
        return "**not met**: no AMR combination (`amr+<method>` or `" + COMBINED + "+<method>`) was run."
    if not g["compared"]:
        return "**cannot be checked**: the AMR combinations share no seed with uniform's per-seed final losses."
    if g["wins"]:
        return "**met** by " + ", ".join(_entry_delta(r) for r in g["wins"]) + "."
    return (
        "**not met**: no AMR combination has a lower final average loss than uniform with a paired interval "
        f"excluding 0; the closest is {_entry_delta(g['closest'])}."
    )


def _short(g: dict) -> str:
    best = g["best"]
    best_text = "no method entry has a final average loss" if best is None else f"best `{best['entry']}`"
    target = {True: "target met", False: "target **not met**", None: "target **cannot be checked**"}[g["target_met"]]
    return f"- **{g['benchmark']}**: {best_text}; {target}."


def methods_section(benchmarks: dict[str, dict]) -> list[str]:
    """The lines of the page's Companion methods section; [] when no benchmark has a method entry."""
    shown = {b: e for b, e in benchmarks.items() if method_entries(e)}
    if not shown:
        return []
    summaries = {b: summary(b, e) for b, e in shown.items()}
    absent = [b for b in benchmarks if b not in shown]
    parts = [
        "## Companion methods (issue #13)",
        "",
        "Every companion method of docs/METHODS.md alone (`none+<method>`), with uniform replay "
        f"(`uniform+<method>`) and with AMR (`amr+<method>`, `{COMBINED}+<method>`), on the same seeds as the "
        "other entries, each trimmed to naive fine-tuning's FLOPs by the measured ledger. Statistics are mean ± "
        "95% CI over seeds; the Δ columns are paired by seed against `uniform` (bold: the interval excludes 0; "
        "negative = lower loss or less forgetting). FLOPs / naive is the entry's measured total FLOPs over `none`'s "
        f"(at most {1 + NAIVE_FLOPS_TOLERANCE:g}). Issue #13's target: at least one AMR combination with a lower "
        "final average loss than uniform, its paired interval excluding 0, on every benchmark. A row marked not run "
        "is an entry the sweep lacks.",
        "",
        *(_short(g) for g in summaries.values()),
        *([f"- No method entries on: {', '.join(absent)}."] if absent else []),
        "",
    ]
    for bench, g in summaries.items():
        parts += [
            f"### {bench}: companion methods",
            "",
            "| method | entry | " + " | ".join(COLUMNS) + " |",
            "| --- | --- | ---: | --- | --- | --- | --- | --- | --- | ---: |",
        ]
        for r in g["rows"]:
            label = f"`{r['entry']}`" + (" (recommended)" if r["entry"] == RECOMMENDED else "")
            parts.append(f"| {r['method'] or '—'} | {label} | " + " | ".join(cells(r)) + " |")
        parts += ["", *verdict_lines(g), ""]
    return parts


def pareto_groups(names) -> dict[str, tuple[str, str]]:
    """{name: (method, combination)} of the method entries among `names` (the Pareto plot's points)."""
    return {n: m for n in names if (m := method_of(n)) is not None}
