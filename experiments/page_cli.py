"""The command line shared by the pages made from one compare.py JSON (ABLATIONS.md, POWER.md, a probe's page)."""

from __future__ import annotations

import argparse
import json
import os

from amr.analysis import evidence


def parse(argv, doc: str, results: str, out: str, sweep: str, extra=None) -> tuple[argparse.Namespace, dict]:
    """--results (default `results`) and --out (default `out`), and the results loaded; exits with an error naming
    the file when it does not exist (run `sweep` first) or holds no benchmarks, before anything is written.
    `extra(parser)` adds a page's own flags."""
    ap = argparse.ArgumentParser(description=doc.split("\n")[0])
    ap.add_argument("--results", default=results, help=f"compare.py's JSON of the {sweep}")
    ap.add_argument("--out", default=out, help="the page")
    if extra is not None:
        extra(ap)
    args = ap.parse_args(argv)
    if not os.path.exists(args.results):
        ap.error(f"results: {args.results!r} does not exist (run the {sweep} first)")
    with open(args.results, encoding="utf-8") as f:
        loaded = json.load(f)
    if not loaded.get("benchmarks"):
        ap.error(f"results: {args.results!r} has no benchmarks")
    return args, loaded


def compare_flags(benchmarks: dict[str, dict]) -> str:
    """The compare.py flags that ran (or resume) these benchmarks' entries: the named entries, the seeds, uniform's
    frontier shares (k of `--frontier`, from the `uniform@k/32` entries) and whether same-split controls ran."""
    kinds = (evidence.FRONTIER, evidence.HEADROOM, evidence.SAME_SPLIT)
    names, shares, seeds, same = {}, {}, set(), False
    for entry in benchmarks.values():
        seeds |= set(entry.get("seeds", []))
        for n, e in entry["strategies"].items():
            kind = (e.get("variant") or {}).get("kind")
            same |= kind == evidence.SAME_SPLIT
            if kind == evidence.FRONTIER:
                shares[n.split("@")[1].split("/")[0]] = None
            elif kind not in kinds:
                names[n] = None
    return (
        f"--benchmarks={','.join(benchmarks)} --strategies={','.join(names)} "
        f"--seeds={','.join(str(k) for k in sorted(seeds))} --frontier={','.join(sorted(shares, key=int))} "
        f"--headroom= --same_split={str(same).lower()}"
    )
