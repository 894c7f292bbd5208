"""The "Cost of this sweep" section of docs/RESULTS.md: how long regenerating the page's runs took.

Each run writes its wall time next to its result (`<run>.json.seconds`); `stats.summarize` sums them per entry
(`wall_seconds_total`, None when any run of the entry predates the files). A run uses one core, so a benchmark's
summed wall time over the sweep's workers is its wall time when the workers have the cores to themselves; runs
that shared the cores with other work took longer. Sum / workers is the sweep's time with the work split evenly;
the workers finish apart, so the sweep's wall time is a little longer (`compare.py` prints it per benchmark).
"""

from __future__ import annotations

TARGET_HOURS = 2.5  # issue #8: the whole sweep regenerates in at most this many hours on 2 cores
WORKERS = 2  # the sweep's workers on this machine (`--workers=2`, one per core)


def benchmark_cost(entry: dict) -> dict:
    """{"runs", "timed_runs", "core_seconds", "untimed"}: the runs of a benchmark's entries and their summed wall
    time; `untimed` lists the entries whose runs lack wall times (their seconds are not in the sum)."""
    runs = timed = 0
    seconds = 0.0
    untimed = []
    for name, e in entry.get("strategies", {}).items():
        n = len(e.get("seeds", []))
        runs += n
        total = e.get("wall_seconds_total")
        if total is None:
            untimed.append(name)
        else:
            timed += n
            seconds += float(total)
    return {"runs": runs, "timed_runs": timed, "core_seconds": seconds, "untimed": untimed}


def cost_section(benchmarks: dict[str, dict], workers: int = WORKERS) -> list[str]:
    """The section's lines: a row per benchmark and the whole sweep's hours over `workers` against the target."""
    lines = [
        "## Cost of this sweep",
        "",
        f"Summed wall time of each benchmark's runs (every run uses one core), and the wall time of the sweep's {workers} "
        "workers on as many cores with the work split evenly (sum / workers; the workers finish apart, so the wall time "
        "is a little longer: `compare.py` prints it per benchmark as `min after the workers started`). Runs that shared "
        "the cores with other work (other sweeps, tests) took longer. Issue #8's target: the whole sweep in "
        f"at most {TARGET_HOURS:g} hours on 2 cores.",
        "",
        "| benchmark | runs | runs timed | summed run time (core-h) | with the workers (h) | untimed entries |",
        "| --- | ---: | ---: | ---: | ---: | --- |",
    ]
    total_runs = total_timed = 0
    total_seconds = 0.0
    for bench, entry in benchmarks.items():
        c = benchmark_cost(entry)
        total_runs += c["runs"]
        total_timed += c["timed_runs"]
        total_seconds += c["core_seconds"]
        untimed = ", ".join(f"`{n}`" for n in c["untimed"]) or "none"
        lines.append(
            f"| {bench} | {c['runs']} | {c['timed_runs']} | {c['core_seconds'] / 3600:.2f} | "
            f"{c['core_seconds'] / 3600 / workers:.2f} | {untimed} |"
        )
    hours = total_seconds / 3600 / workers
    lines.append(f"| **all** | {total_runs} | {total_timed} | {total_seconds / 3600:.2f} | {hours:.2f} | |")
    if total_timed < total_runs:
        verdict = (
            f"{total_runs - total_timed} runs have no wall time, so the sweep's time is not known: at least "
            f"{hours:.2f} h (target {TARGET_HOURS:g} h)."
        )
    else:
        met = "meets" if hours <= TARGET_HOURS else "**misses**"
        verdict = (
            f"The whole sweep's runs take {hours:.2f} h of {workers} workers' time, split evenly: it {met} the "
            f"{TARGET_HOURS:g}-h target."
        )
    return lines + ["", verdict, ""]
