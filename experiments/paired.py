"""Paired differences between entries of a sweep's results file, seed by seed, as JSON.

    python -m experiments.paired docs/dev/probe3_text.json amr+tail+steady:amr+tail amr+tail:uniform+tail

Each `a:b` pair gives, per benchmark in the file that has both entries, the paired difference a − b of
average forgetting, final average loss and new-task loss (tasks 2..T): mean, 95% Student-t half-width and
the seeds both share (`amr.analysis.evidence.paired`). Prints ONE JSON object on stdout. A pair whose entries
a benchmark lacks is null there; a malformed pair or a missing file is an error naming it.
"""

from __future__ import annotations

import json
import sys

from amr.analysis import evidence

METRICS = ("avg_forgetting", "final_avg_loss", "new_task_loss_excl_first")


def parse_pair(text: str, entries=None) -> tuple[str, str]:
    """`'a:b'` -> (a, b). Entry names may hold ':' (`uniform@split:mir`), so with `entries` (the names in the
    results file) the pair is split at the one ':' whose both sides are entries; without, at the first."""
    splits = [(text[:i], text[i + 1 :]) for i, ch in enumerate(text) if ch == ":"]
    splits = [(a, b) for a, b in splits if a and b]
    if entries is not None:
        splits = [(a, b) for a, b in splits if a in entries and b in entries]
    if len(splits) != 1 and not (splits and entries is None):
        raise ValueError(f"pair: {text!r} is not 'a:b' with a and b two entries of the results file")
    return splits[0]


def paired_table(results: dict, pairs: list[tuple[str, str]]) -> dict:
    """{benchmark: {'a:b': {metric: paired summary} or None}}."""
    out = {}
    for bench, entry in results["benchmarks"].items():
        strategies = entry.get("strategies", {})
        out[bench] = {}
        for a, b in pairs:
            both = a in strategies and b in strategies
            out[bench][f"{a}:{b}"] = (
                {m: evidence.paired(strategies[a], strategies[b], m) for m in METRICS} if both else None
            )
    return out


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    path = argv[0]
    with open(path, encoding="utf-8") as f:
        results = json.load(f)
    entries = {name for e in results["benchmarks"].values() for name in e.get("strategies", {})}
    pairs = [parse_pair(p, entries) for p in argv[1:]]
    print(json.dumps({"results": path, "paired": paired_table(results, pairs)}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
