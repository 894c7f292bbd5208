"""docs/results/ABLATIONS.md: issue #12's ideas one at a time, each against uniform at the same replay share.

    python -m experiments.ablation_page --results=docs/results/ablations.json --out=docs/results/ABLATIONS.md

Reads a `compare.py` JSON of the evidence sweep extended by named variants (the same frozen commit and workdir,
so `uniform`, `amr`, the recommended AMR, its twin and uniform's frontier are the evidence sweep's own runs) and
writes two tables per benchmark: each idea added alone to the paper's `amr`, and each idea removed from the
recommended AMR. Every entry is compared with uniform at the same replay share: uniform at its exact new/replay
split when it trimmed new rows (`--same_split`), else its uniform twin (the same schedule, uniform selection) when
that ran, else plain `uniform` or a `uniform@k/32` frontier point when the realised shares are equal, else
uniform's frontier interpolated seed by seed at the entry's realised share (`evidence.share_matched`).
"""

from __future__ import annotations

import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from amr.analysis import evidence, frontier_noise, plots, stats  # noqa: E402
from amr.runner import named_variants, variants  # noqa: E402
from experiments import page_cli  # noqa: E402
from experiments.results_page import code_check  # noqa: E402
from experiments.results_targets import _delta, _frontier_cell  # noqa: E402

REC = named_variants.RECOMMENDED_AMR
BASE = "amr"
SHARE_TOL = 1e-6  # realised shares closer than this are the same share
ITEMS = {  # named variant -> the idea of issue #12 it ablates
    "clusters": "1: cluster arms from free embeddings",
    "steady": "2: a steadier bandit",
    "benefit": "3: the marginal-benefit reward",
    "anchored": "3: the loss-increase reference at the task end",
    "controller": "4: an adaptive replay share (controller)",
    "tail": "4: a replay schedule at the same mean share",
    "fresh": "2: the bandit starts every task afresh",
    "sources": "1: arms per source (free, no embeddings)",
}
UNSURE = "—"
FIGURE = "ablations.png"  # the forest plot, written beside the page


def _mean(entry: dict, key: str, seeds) -> float:
    v = evidence.per_seed(entry, key)
    return float(np.mean([v[k] for k in seeds]))


def _ratio(forgetting: float, reference: float) -> float | None:
    """`forgetting` / `reference`; None (no ratio) when the reference forgets nothing or less than nothing, where a
    ratio would read backwards (0.8x of a negative forgetting is more forgetting)."""
    return forgetting / reference if reference > 0 else None


def reference(entry: dict, name: str) -> dict | None:
    """Uniform at `name`'s replay share (see the module's docstring for the order): {"label", "forgetting" (paired Δ), "ratio", "final_loss", "new_rel"}; the
    last two are None against the interpolated frontier; None when no uniform run has that share."""
    s = entry["strategies"]
    e = s[name]
    twin = named_variants.uniform_twin(name) if named_variants.split(name) else None
    ref = None
    if variants.split_name(name) in s:  # the entry trimmed new rows (to pay for k-means): uniform at its split
        ref = variants.split_name(name)
    elif twin in s and twin != name:
        ref = twin
    elif e.get("replay_share") is not None:  # uniform, or a frontier point, at the same realised share
        same = [
            n
            for n, u in s.items()
            if (n == "uniform" or (u.get("variant") or {}).get("kind") == evidence.FRONTIER)
            and u.get("replay_share") is not None
            and abs(float(e["replay_share"]) - float(u["replay_share"])) <= SHARE_TOL
        ]
        ref = same[0] if same else None
    if ref is not None:
        d = evidence.paired(e, s[ref])
        if d is None:
            return None
        new = evidence.paired_values(e, s[ref], stats.NEW_TASK_LOSS)
        return {
            "label": f"`{ref}`",
            "forgetting": d,
            "ratio": _ratio(_mean(e, "avg_forgetting", d["seeds"]), _mean(s[ref], "avg_forgetting", d["seeds"])),
            "final_loss": evidence.paired(e, s[ref], "final_avg_loss"),
            "new_rel": float(np.mean(new[1]) / np.mean(new[2]) - 1) if new[0] else None,
        }
    matched = evidence.share_matched(entry).get(name) or {}
    if not matched.get("vs_uniform_at_share"):
        return None
    lo, hi = (32 * x for x in matched["between"])
    return {
        "label": f"uniform's frontier at {32 * matched['replay_share']:.2f}/32 (between {lo:g}/32 and {hi:g}/32)",
        "forgetting": matched["vs_uniform_at_share"],
        "ratio": matched["ratio"],
        "final_loss": None,
        "new_rel": None,
    }


def added(entry: dict) -> list[str]:
    """The entries that add one named variant to `amr`, in the sweep's order."""
    return [
        n
        for n in entry["strategies"]
        if named_variants.split(n) and n.split(named_variants.SEP)[0] == BASE and len(named_variants.names(n)) == 1
    ]


def removed(entry: dict) -> dict[str, str]:
    """{entry: the name it lacks} for the entries that are the recommended AMR with one named variant removed."""
    rec = named_variants.names(REC)
    out = {}
    for n in entry["strategies"]:
        parts = named_variants.split(n)
        if not parts or parts[0] != BASE:
            continue
        have = named_variants.names(n)
        lacks = [x for x in rec if x not in have]
        if len(have) == len(rec) - 1 and len(lacks) == 1 and set(have) <= set(rec):
            out[n] = lacks[0]
    return out


def _share(e: dict) -> str:
    share = e.get("replay_share")
    return UNSURE if share is None else f"{32 * float(share):.2f}/32"


def _ref_cells(ref: dict | None) -> list[str]:
    if ref is None:
        return ["none at this share", UNSURE, UNSURE, UNSURE, UNSURE]
    new = UNSURE if ref["new_rel"] is None else f"{100 * ref['new_rel']:+.2f}%"
    final = UNSURE if ref["final_loss"] is None else _delta(ref["final_loss"])
    ratio = UNSURE if ref["ratio"] is None else f"{ref['ratio']:.3f}"
    return [ref["label"], ratio, _delta(ref["forgetting"]), new, final]


def _frontier(entry: dict, name: str) -> str:
    """The frontier cell of the Targets table: `name` against uniform's frontier, with its seed resamples."""
    return _frontier_cell(evidence.vs_frontier(entry, name), frontier_noise.resampled_below(entry, name))


def added_table(entry: dict) -> str | None:
    names = added(entry)
    if not names:
        return None
    s = entry["strategies"]
    lines = [
        "| entry | idea (#12 item) | realised share | uniform at the same share | forgetting / it | "
        "avg forgetting Δ vs it | new-task loss vs it | final avg loss Δ vs it | avg forgetting Δ vs `amr` | "
        "below uniform frontier (margin) |",
        "| --- | --- | ---: | --- | ---: | --- | ---: | --- | --- | --- |",
    ]
    for n in names:
        idea = ITEMS.get(named_variants.names(n)[0], UNSURE)
        vs_amr = evidence.paired(s[n], s.get(BASE)) if BASE in s else None
        cells = [
            f"`{n}`",
            idea,
            _share(s[n]),
            *_ref_cells(reference(entry, n)),
            UNSURE if vs_amr is None else _delta(vs_amr),
            _frontier(entry, n),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def removed_table(entry: dict) -> str | None:
    lacks = removed(entry)
    s = entry["strategies"]
    if not lacks or REC not in s:
        return None
    lines = [
        f"| entry | removed from `{REC}` | avg forgetting Δ vs `{REC}` (> 0: the idea helps) | final avg loss Δ vs "
        f"`{REC}` | uniform at the same share | forgetting / it | avg forgetting Δ vs it | "
        "below uniform frontier (margin) |",
        "| --- | --- | --- | --- | --- | ---: | --- | --- |",
    ]
    for n, name in lacks.items():
        ref = _ref_cells(reference(entry, n))
        cells = [
            f"`{n}`",
            f"`{name}` ({ITEMS.get(name, UNSURE)})",
            _delta(evidence.paired(s[n], s[REC])),
            _delta(evidence.paired(s[n], s[REC], "final_avg_loss")),
            *ref[:3],
            _frontier(entry, n),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def verdicts(benchmarks: dict[str, dict]) -> str:
    """Per idea added to `amr`: on which benchmarks it forgets significantly less, or more, than uniform at its
    share, and where the difference is within noise."""
    rows: dict[str, dict[str, list]] = {}
    for bench, entry in benchmarks.items():
        for n in added(entry):
            ref = reference(entry, n)
            d = None if ref is None else ref["forgetting"]
            key = (
                "n/a"
                if d is None
                else "less"
                if d["excludes_zero"] and d["mean"] < 0
                else ("more" if d["excludes_zero"] else "noise")
            )
            rows.setdefault(n, {"less": [], "more": [], "noise": [], "n/a": []})[key].append(bench)
    lines = [
        "| entry | forgets significantly less than uniform at its share | significantly more | within noise | "
        "no uniform at its share |",
        "| --- | --- | --- | --- | --- |",
    ]
    for n, r in rows.items():
        more = f"**{', '.join(r['more'])}**" if r["more"] else UNSURE
        cells = [", ".join(r["less"]) or UNSURE, more, ", ".join(r["noise"]) or UNSURE, ", ".join(r["n/a"]) or UNSURE]
        lines.append(f"| `{n}` | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def forest(benchmarks: dict[str, dict]) -> tuple[list[str], dict[str, list]]:
    """The figure's rows (each idea added to `amr`, then the recommended AMR and each idea removed from it, in the
    sweep's order) and, per benchmark, each row's paired Δ of average forgetting against uniform at its share as
    (mean, ci95), None where the benchmark lacks the entry or uniform at its share."""
    names: dict[str, str] = {}
    for entry in benchmarks.values():
        names.update({n: n for n in added(entry)})
    for entry in benchmarks.values():
        if removed(entry) and REC in entry["strategies"]:
            names[REC] = "recommended"
        names.update({n: f"recommended − {lacks}" for n, lacks in removed(entry).items()})
    panels = {}
    for bench, entry in benchmarks.items():
        cells = []
        for n in names:
            ref = reference(entry, n) if n in entry["strategies"] else None
            d = None if ref is None else ref["forgetting"]
            cells.append(None if d is None else (d["mean"], d["ci95"]))
        panels[bench] = cells
    return list(names.values()), panels


def command(benchmarks: dict[str, dict], out: str) -> str:
    """The compare.py command that runs (or, in the evidence sweep's workdir, resumes and loads) these entries."""
    return f"python -m experiments.compare {page_cli.compare_flags(benchmarks)} --workers=2 --workdir=<workdir> --out={out}"


def page(results: dict, source: str, figure: str | None = None) -> str:
    """The page's markdown; `figure` is the forest plot's path relative to the page (not linked when None)."""
    benchmarks = results["benchmarks"]
    parts = [
        "# Issue #12's ideas one at a time",
        "",
        f"<!-- Generated by `python -m experiments.ablation_page --results={source}`; do not edit by hand. -->",
        "",
        __doc__.split("\n\n", 2)[2].strip().replace("\n", " ")
        + " Paired Δ by seed, mean ± 95% CI (bold: the interval excludes 0; negative = forgets less, or a lower final "
        "loss); the frontier column places the entry's point (new-task loss over tasks 2..T, average forgetting) "
        "against uniform's frontier as the Targets table of docs/RESULTS.md does, with the share of seed resamples in "
        "which it lies below; — where these runs lack what a "
        "cell needs.",
        "",
        "Regenerate from the evidence sweep's commit, in its workdir (restore its run files with "
        "`python -m experiments.carry_runs docs/results/runs/<sweep> <workdir>`; the runs there load):",
        "",
        "```bash",
        command(benchmarks, source),
        f"python -m experiments.ablation_page --results={source}",
        "```",
        "",
    ]
    if any(added(e) for e in benchmarks.values()):
        parts += [
            "## Each idea added to `amr`: where it forgets less than uniform at its share",
            "",
            verdicts(benchmarks),
            "",
        ]
    if figure:
        parts += [
            f"![Paired Δ of average forgetting against uniform at the same share, per benchmark]({figure})",
            "",
            "Each entry's paired Δ of average forgetting against uniform at its replay share (mean ± 95% CI over "
            "seeds; green: forgets significantly less, red: significantly more, grey: within noise; no point where "
            "a benchmark lacks the entry or uniform at its share).",
            "",
        ]
    for bench, entry in benchmarks.items():
        parts += [f"## {bench}", "", code_check(entry), ""]
        for title, table in (
            ("One idea added to the paper's `amr`", added_table(entry)),
            ("One idea removed from the recommended AMR", removed_table(entry)),
        ):
            if table:
                parts += [f"### {bench}: {title}", "", table, ""]
    return "\n".join(parts)


def main(argv=None) -> None:
    args, results = page_cli.parse(
        argv, __doc__, "docs/results/ablations.json", "docs/results/ABLATIONS.md", "ablation sweep"
    )
    rows, panels = forest(results["benchmarks"])
    figure = None
    if rows:
        figure = FIGURE
        plots.plot_paired_forest(
            panels,
            rows,
            os.path.join(os.path.dirname(os.path.abspath(args.out)), figure),
            xlabel="Δ avg forgetting vs uniform at its share",
            title="Issue #12's ideas one at a time (negative: forgets less)",
        )
    with open(args.out, "w", encoding="utf-8") as f:
        f.write(page(results, args.results, figure))
    print(f"wrote {args.out}" + (f" and {figure} beside it" if figure else ""))


if __name__ == "__main__":
    main()
