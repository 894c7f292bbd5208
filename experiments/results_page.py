"""Writes docs/RESULTS.md (and its plots) from docs/results.json, docs/ablations.json and docs/results_methods.json.

    python -m experiments.results_page   # the Targets section: experiments/results_targets.py;
                                         # the Companion methods section: experiments/results_methods.py

Every number on the page comes from those files, which `experiments/compare.py` and
`experiments/ablate.py` write (the methods file, when present, is a companion-methods sweep of its own:
its section compares its rows only with each other); nothing on the page is edited by hand. The page refuses to compare
runs of a seed whose data digests differ (`amr.analysis.provenance.DataMismatch`, no page written), and
says beside each benchmark which commit its runs were made from, with a caveat when they differ or
were made from a modified (dirty) tree.
"""

import json
import os
import sys

from absl import app, flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # configs/ from a checkout

from amr.analysis import evidence, evidence_md, plots, provenance
from amr.runner import named_variants, sweep  # noqa: E402
from experiments.results_cost import cost_section  # noqa: E402
from experiments.results_headroom import headroom_section  # noqa: E402
from experiments.results_methods import methods_section, pareto_groups  # noqa: E402
from experiments.results_share import share_section  # noqa: E402
from experiments.results_targets import (  # noqa: E402, F401 (the page's Targets section; tests reach it here too)
    AMR_ENTRIES,
    RECOMMENDED,
    TARGET_COLUMNS,
    TARGET_NEW_LOSS,
    TARGET_RATIO,
    TWIN,
    _delta,
    _label,
    _yes,
    selection_adds,
    selection_table,
    targets,
    targets_section,
)

_RESULTS = flags.DEFINE_string("results", "docs/results.json", "compare.py's combined JSON.")
_ABLATIONS = flags.DEFINE_string("ablations", "docs/ablations.json", "ablate.py's JSON (optional).")
_OUT = flags.DEFINE_string("out", "docs/RESULTS.md", "The page; plots go next to it.")
_METHODS = flags.DEFINE_string(
    "methods_results",
    "docs/results_methods.json",
    "compare.py's JSON of a companion-methods sweep (optional): its own sweep, so its own none/uniform/AMR rows.",
)


def data_check(bench: str, entry: dict) -> str:
    """The page's line on a benchmark's data; DataMismatch when runs of one seed were made on different data."""
    data = entry.get("data")
    if not data or "per_run" not in data:
        return (
            "**Data not verified:** these runs were recorded before runs carried data digests, so that every "
            "strategy saw the same data is not checked."
        )
    summary = provenance.check_fingerprints(data["per_run"], f"benchmark {bench}")
    if not summary["verified"]:
        return f"**Data partly verified:** these runs carry no data digests: {', '.join(summary['unverified_runs'])}."
    fps = ", ".join(f"`{fp}`" for fp in summary["fingerprints"])
    return f"Data: the runs of each seed trained and were evaluated on the same arrays (data fingerprint {fps})."


def _commit(version: dict) -> str:
    return f"`{str(version['commit'])[:7]}`"


def code_check(entry: dict) -> str:
    """The page's line on the code a benchmark's runs were made from (the sweep entry's `same_code`)."""
    code = entry.get("same_code")
    if not code or not code["versions"]:  # results, or runs, from before runs recorded their code
        return "Code: not recorded for these runs."
    versions, n, unrecorded = code["versions"], code["runs"], code["unrecorded"]
    if code["ok"]:
        runs = f"{n - unrecorded} of {n} runs" if unrecorded else f"all {n} runs"
        rest = f"; not recorded for the other {unrecorded}" if unrecorded else ""
        return f"Code: {runs} from commit {_commit(versions[0])}{rest}."
    also = f" ({unrecorded} of the {n} runs did not record their code)" if unrecorded else ""
    dirty = " a dirty tree (modified tracked files) is not a version that can be checked out again."
    if len(versions) == 1:  # one commit, but modified
        return f"**Caveat: these runs were made from a dirty tree of commit {_commit(versions[0])}**{also}:{dirty}"
    named = ", ".join(_commit(v) + (" (dirty tree)" if v["dirty"] else "") for v in versions)
    return (
        f"**Caveat: these runs were made from different code: {named}**{also}. Comparisons across them may be "
        "confounded" + (";" + dirty if any(v["dirty"] for v in versions) else ".")
    )


def _mir_ordering(bench: str, entry: dict) -> str | None:
    s = entry["strategies"]
    if "mir" not in s or "uniform" not in s or not s["mir"].get("vs_uniform"):
        return None
    vs = s["mir"]["vs_uniform"]
    u, m = s["uniform"]["avg_forgetting_mean"], s["mir"]["avg_forgetting_mean"]
    if vs["diff_ci_excludes_zero"]:
        verdict = "uniform forgets less: agrees with Prabhu et al." if m > u else "MIR forgets less: disagrees"
    else:
        verdict = "no significant difference (the 95% interval of the paired difference contains 0)"
    return (
        f"- **{bench}**: average forgetting uniform {u:.4f}, MIR {m:.4f} (paired Δ {vs['forgetting_diff_mean']:+.4f} "
        f"± {vs['forgetting_diff_ci95']:.4f}): {verdict}. MIR pays for its virtual step by training on "
        f"{s['mir']['flops']['train_new'] / s['uniform']['flops']['train_new']:.0%} of uniform's new-row FLOPs, "
        f"and its new-task loss is {100 * vs['new_task_loss_rel']:+.2f}% against uniform's; final average loss over "
        f"all tasks (closest to the all-task accuracy Prabhu et al. report): uniform "
        f"{s['uniform']['final_avg_loss_mean']:.4f}, MIR {s['mir']['final_avg_loss_mean']:.4f}."
    )


def _ablation_section(bench: str, abl: str, e: dict) -> str:
    lines = [
        f"#### {abl}: {e['xlabel']}",
        "",
        f"![{abl}](ablation_{bench}_{abl}.png)",
        "",
        "| point | AMR avg forgetting | vs uniform (paired, same point) | new-task loss | FLOPs | within budget |",
        "| --- | ---: | --- | ---: | ---: | --- |",
    ]
    for p in e["points"]:
        a = p["amr"]
        vs = a.get("vs_uniform")
        vs_text = (
            f"{vs['forgetting_ratio']:.2f}×"
            if vs
            else f"{a['avg_forgetting_mean'] / e['uniform_default']:.2f}× of uniform at the defaults"
        )
        lines.append(
            f"| {p['label']} | {a['avg_forgetting_mean']:.4f} ± {a['avg_forgetting_ci95']:.4f} | {vs_text} "
            f"| {a['new_task_loss_mean']:.4f} | {a['flops_total']:.3g} | {_yes(a['within_budget'])} |"
        )
    return "\n".join(lines)


def _ablation_summary(bench: str, abls: dict, results: dict) -> str:
    """Which ablation points reach the forgetting target, and what they cost in new-task loss (vs uniform)."""
    uni = results.get("benchmarks", {}).get(bench, {}).get("strategies", {}).get("uniform")
    if not uni:
        return ""
    lines = [
        f"Every ablation point against uniform at the defaults (average forgetting "
        f"{uni['avg_forgetting_mean']:.4f}, new-task loss {uni['new_task_loss_mean']:.4f}):",
        "",
        "| ablation | point | AMR / uniform forgetting | AMR new-task loss vs uniform | reaches 0.9x | "
        "new-task loss within 1% |",
        "| --- | --- | ---: | ---: | --- | --- |",
    ]
    for abl, e in abls.items():
        for p in e["points"]:
            ref = p.get("uniform", uni)  # where the knob moves the baseline too, uniform at the same point
            ratio = p["amr"]["avg_forgetting_mean"] / ref["avg_forgetting_mean"]
            rel = p["amr"]["new_task_loss_mean"] / ref["new_task_loss_mean"] - 1.0
            lines.append(
                f"| {abl} | {p['label']}{' (vs uniform at this point)' if 'uniform' in p else ''} | {ratio:.2f} | {100 * rel:+.2f}% | {_yes(ratio <= TARGET_RATIO)} "
                f"| {_yes(rel <= TARGET_NEW_LOSS)} |"
            )
    return "\n".join(lines)


def _pareto_plot(bench: str, entry: dict, out_dir: str, prefix: str = "results") -> str | None:
    """Writes <prefix>_<bench>_pareto.png and returns its name (None when the runs lack the new-task loss)."""
    data = evidence.pareto(entry)
    if data is None:
        return None
    name = f"{prefix}_{bench}_pareto.png"
    frontier, points = data
    plots.plot_pareto(
        frontier,
        points,
        os.path.join(out_dir, name),
        title=f"{bench}: forgetting against new-task loss",
        methods=pareto_groups(points) or None,  # companion-method entries: marker by method, colour by combination
    )
    return name


def _methods_sweep_section(methods_results: dict, out_dir: str) -> list[str]:
    """The Companion methods section from a methods sweep of its own (`--methods_results`): every row, the
    references included, from that one sweep; its code and data lines and a Pareto plot per benchmark."""
    benchmarks = methods_results["benchmarks"]
    parts = methods_section(benchmarks)
    if not parts:
        return []
    notes = [
        "These rows come from a sweep of their own (`--methods_results`), references (`none`, `uniform`, the AMR "
        "entries) included, so they are compared only with each other, never with the Targets section's runs.",
        "",
    ]
    for bench, entry in benchmarks.items():
        asked = [n for n in entry.get("strategies", {}) if "@" not in n]  # compare adds the same-split controls
        seeds = ",".join(str(k) for k in entry.get("seeds", []))
        controls = any("@split:" in n for n in entry.get("strategies", {}))  # made with --same_split (the default)
        notes += [
            f"Regenerate {bench}'s rows: `python -m experiments.compare --workers=2 --split=entries "
            f"--benchmarks={bench} --strategies={','.join(asked)} --seeds={seeds} --frontier= --headroom= "
            + ("" if controls else "--same_split=false ")
            + "--out=docs/results_methods.json`",
            "",
        ]
    for bench, entry in benchmarks.items():
        plot = _pareto_plot(bench, entry, out_dir, prefix="results_methods")
        notes += [f"- {bench}: {code_check(entry)} {data_check(bench, entry)}"]
        if plot:
            notes += [f"  ![{bench}: companion methods, forgetting against new-task loss]({plot})"]
    return parts[:2] + notes + [""] + parts[2:]


def page(results: dict, ablations: dict | None, out_dir: str, methods_results: dict | None = None) -> str:
    data_lines = {b: data_check(b, e) for b, e in results["benchmarks"].items()}  # refuse before any plot
    for b, e in ((methods_results or {}).get("benchmarks") or {}).items():
        data_check(b, e)  # a methods sweep with mismatched data refuses too, before any plot
    m = results.get("machine", {})
    parts = [
        "# Results",
        "",
        "<!-- Generated by `python -m experiments.results_page` from docs/results.json (and docs/ablations.json "
        "when present); do not edit by hand. -->",
        "",
        "Regenerate everything on this page (the sweep resumes if interrupted; each benchmark's entry is written "
        "when it finishes):",
        "",
        "```bash",
        f"python -m experiments.compare --strategies=none,uniform,amr,mir,{RECOMMENDED},{TWIN} "
        "--seeds=0,1,2,3,4,5,6,7,8,9 \\",
        "    --frontier=1,2,4,8 --headroom=-2,2   # -> docs/results.json, docs/results.md",
        "python -m experiments.results_page   # -> this page and docs/results_*.png",
        "```",
        "",
        f"Machine: {m.get('cpu')} ({m.get('cores')} cores, {m.get('memory_gib')} GiB), {m.get('platform')} x "
        f"{m.get('devices')}, Python {m.get('python')}, jax {m.get('jax')}, {m.get('os')}.",
        "",
        "Every strategy trains the same steps of the same batch size; `none` is naive fine-tuning (the lower "
        "reference), `uniform` replays uniformly over all past samples (the strong baseline), `amr` is the "
        "bandit's selection at the fixed replay share (one set of defaults for all benchmarks), "
        f"`{RECOMMENDED}` the recommended default AMR (the bandit's selection under a replay schedule at the same mean "
        f"share, with any bandit settings its names add) and `{TWIN}` its twin with uniform selection, `<strategy>+<name>` a named variant of "
        "`amr/runner/named_variants.py`, `mir` is maximally interfered retrieval paid for by trimming new rows, "
        "and `joint` trains on all data seen so far (the upper reference, over budget by design). Intervals are 95% "
        "Student-t over seeds; comparisons with uniform are paired by seed. Forgetting of a task is its held-out "
        "loss after the last task minus its loss right after its own task; average forgetting is the mean over all "
        "but the last task. The new-task loss is the held-out loss on each task right after training on it, "
        "averaged over tasks 2..T (task 1 is trained before anything can be replayed, so it is the same for every "
        "strategy); results recorded before it existed show n/a.",
        "",
    ]
    parts += targets_section(results["benchmarks"])
    parts += share_section(results["benchmarks"])
    if methods_results is not None:
        parts += _methods_sweep_section(methods_results, out_dir)
    else:
        parts += methods_section(results["benchmarks"])  # nothing without companion-method entries

    parts += cost_section(results["benchmarks"])
    parts += [
        "## Power: seeds needed to detect 10% less forgetting than uniform",
        "",
        "From the observed seed-to-seed sd of the paired difference AMR − uniform in average forgetting, for the "
        f"paper's `amr` and the recommended `{named_variants.RECOMMENDED_AMR}`: the paired seeds a two-sided paired "
        "t-test at α = 0.05 needs to detect a difference of 10% of uniform's mean with 80% power (noncentral t), "
        "beside the seeds actually run.",
        "",
        evidence_md.power_table(results["benchmarks"], ("amr", named_variants.RECOMMENDED_AMR)),
        "",
    ]
    parts += headroom_section(results["benchmarks"])
    parts += [
        "## Benchmarks",
        "",
        "Each benchmark: the table of strategies (entries `uniform@k/32` are uniform at replay share k/32, the "
        "frontier; `uniform@split:<s>` is uniform at exactly strategy <s>'s new/replay split), its regime checks "
        "((a) replay matters: uniform's average forgetting ≤ 0.8× naive's with a paired interval of uniform − none "
        "excluding 0; (b) forgetting is real: uniform's average forgetting > 5× its seed-to-seed sd), the Pareto "
        "plot of average forgetting against new-task loss with uniform's frontier, and the same-split controls.",
        "",
    ]
    for bench, entry in results["benchmarks"].items():
        pts = {
            s: (e["flops_total"], e["avg_forgetting_mean"], e["avg_forgetting_ci95"])
            for s, e in entry["strategies"].items()
        }
        plots.plot_forgetting_vs_flops(pts, os.path.join(out_dir, f"results_{bench}.png"), pareto_groups(pts) or None)
        table = sweep.markdown({"benchmarks": {bench: entry}})
        same = entry.get("same_data", {"ok": True})
        if not same["ok"]:
            names = ", ".join(entry["tasks"][j] for j in same["tasks_that_differ"])
            table += (
                f"\n\n**Caveat:** the strategies' runs did not all see the same data for task(s) {names} "
                "(same seed, different initial held-out losses): those tasks' data were built in different "
                "environments. Comparisons that involve them are confounded."
            )
        per_task = " · ".join(
            f"{s}: " + ", ".join(f"{v:.3f}" for v in e["forgetting_per_task_mean"])
            for s, e in entry["strategies"].items()
        )
        per_source = " · ".join(
            f"{s}: " + ", ".join(f"{n} {v:.3f}" for n, v in e["source_forgetting"].items() if v is not None)
            for s, e in entry["strategies"].items()
            if e.get("source_forgetting")
        )
        parts += [
            table,
            "",
            data_lines[bench],
            "",
            code_check(entry),
            "",
            f"![{bench}: forgetting against FLOPs](results_{bench}.png)",
            "",
            f"Forgetting per past task ({', '.join(entry['tasks'][:-1])}), mean over seeds — {per_task}",
            "",
            *(
                [
                    f"Forgetting per source (held-out loss at the end minus after the source's last task), mean over "
                    f"seeds — {per_source}",
                    "",
                ]
                if per_source
                else []
            ),
        ]
        parts += [
            *evidence_md.benchmark_section(bench, entry, _pareto_plot(bench, entry, out_dir)),
        ]

    ordering = [x for x in (_mir_ordering(b, e) for b, e in results["benchmarks"].items()) if x]
    if ordering:
        parts += (
            [
                "## Published ordering: MIR against uniform at equal FLOPs",
                "",
                "Prabhu et al. (2023, *Computationally Budgeted Continual Learning*) find that under a compute "
                "budget uniform replay beats classic selection methods such as MIR. Our numbers:",
                "",
            ]
            + ordering
            + [""]
        )

    if ablations:
        parts += [
            "## Ablations",
            "",
            "One knob at a time, everything else at the defaults, AMR on the benchmark named in each heading; "
            "the dashed line is uniform replay at the defaults (or, for the replay fraction, uniform at "
            "the same fraction).",
            "",
        ]
        for bench, abls in ablations.get("benchmarks", {}).items():
            parts += [f"### On {bench}", "", _ablation_summary(bench, abls, results), ""]
            for abl, e in abls.items():
                parts += [_ablation_section(bench, abl, e), ""]
    return "\n".join(parts).rstrip() + "\n"


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    with open(_RESULTS.value, encoding="utf-8") as f:
        results = json.load(f)
    ablations = None
    if os.path.exists(_ABLATIONS.value):
        with open(_ABLATIONS.value, encoding="utf-8") as f:
            ablations = json.load(f)
    methods_results = None
    if _METHODS.value and os.path.exists(_METHODS.value):
        with open(_METHODS.value, encoding="utf-8") as f:
            methods_results = json.load(f)
    out_dir = os.path.dirname(os.path.abspath(_OUT.value))
    try:
        text = page(results, ablations, out_dir, methods_results)
    except provenance.DataMismatch as err:
        raise SystemExit(f"results_page: {err}") from None
    with open(_OUT.value, "w", encoding="utf-8") as f:
        f.write(text)
    print(f"wrote {_OUT.value}")


if __name__ == "__main__":
    app.run(main)
