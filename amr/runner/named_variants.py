"""Named strategy variants for the sweep: `<strategy>+<name>` runs a strategy under a fixed set of overrides.

    amr+steady     amr with one estimator step per arm per chunk and the pooled spread of single rewards
    amr+benefit    amr with the free marginal-benefit reward (docs/REWARDS.md)
    amr+clusters   amr over 4 k-means arms per task, from the training passes' free embeddings
    amr+sources    amr over arms per source: a task's rows split by the group the data gives them (free)
    amr+anchored   amr whose loss-increase reference is each row's loss shifted to its task end (free)
    amr+rows       amr that also selects inside the drawn arm, the rows seen forgetting most (free)
    amr+controller amr with an adaptive replay share (amr.replay.share), its realised share in the results
    amr+plateau    amr with the tail schedule, whose stretch starts early once the new task stops learning
    uniform+front  uniform with a front-loaded replay schedule at the same mean share (+back: end-loaded;
                   +tail: all of a task's replay in its last stretch, at 8/32; +tail16: at 16/32)
    amr+fresh      amr whose bandit starts every task afresh (uniform over past arms until this task's rewards)
    amr+probes     amr with 8 forward-only probe rows of the arms per chunk (bandit feedback without replay; paid)
    amr+s8         a strategy at the mean replay share 8/32 (+s4: 4/32); stacks with a schedule: amr+s8+tail16
    uniform+ewc    a strategy with one companion method of amr.methods (any of its METHODS: none+ema, amr+lines, ...)

Names stack: `amr+tail+ewc` is amr under the overrides of `tail` and then of `ewc`, merged left to right. Two names
that set the same key to different values are a ValueError naming the entry, both names and the key, raised when
the sweep parses its entries (before any run). So `amr+front+tail` (two schedules) and `amr+ewc+l2sp` (each sets
`methods` to its own method) are rejected; names that agree on a shared key (`amr+steady+benefit` both pool the
normalisation) stack. A name may appear once per entry. A single-name entry runs, records and is stored exactly as
before stacking existed.

`RECOMMENDED_AMR` names the recommended default AMR (bandit selection plus a replay schedule at the same mean
share) and `RECOMMENDED_TWIN` its ablation twin: the same overrides under uniform selection, so the pair
separates what the schedule gives from what the selection gives. `METHODS_AMR` is the AMR the companion methods
were combined with in their sweep (`amr+tail+ewc`); it was the recommended AMR when that sweep ran.

Each is one idea of issue #12's AMR, ablated one at a time against uniform in the same sweep (same code, data
and seeds; paired by seed). A variant that changes the replay share is compared with uniform at that share by
the frontier, not here. Add a variant by adding a line to `VARIANTS`; the sweep validates its overrides before
any run (a key the config lacks fails by name).
"""

from __future__ import annotations

from amr.methods.registry import METHODS

SEP = "+"

# name -> (what it tests, {dotted config key: value})
VARIANTS: dict[str, tuple[str, dict]] = {
    "steady": (
        "a steadier bandit: a segment mean per arm per chunk, normalised by the pooled spread of single rewards",
        {"bandit.aggregate": "segment", "bandit.normalize": "pooled"},
    ),
    "benefit": (
        "a free marginal-benefit reward (docs/REWARDS.md: the slope of an arm's forgetting drift on its replay "
        "intensity), normalised by the pooled spread (zscore over few arms hides the size of any gap)",
        {"replay.reward": "benefit", "bandit.normalize": "pooled"},
    ),
    "clusters": (
        "cluster arms from free embeddings: 4 k-means clusters per task over the pooled representations the "
        "training passes already computed (no paid embedding pass, so no new rows trimmed for it)",
        {"replay.clusters_per_task": 4, "replay.embeddings": "free"},
    ),
    "sources": (
        "arms per source: a finished task's rows split into arms by the group the data gives each row (a mixture "
        "task's source; replay.arm_labels 'groups'), 2 per task (subpop mixes at most 2 sources; a one-source "
        "task's second arm stays empty, never drawn): free, no embeddings, no k-means",
        {"replay.arm_labels": "groups", "replay.clusters_per_task": 2},
    ),
    "anchored": (
        "a loss-increase reference anchored at each row's task end (replay.reference 'task_end'): the row's loss when "
        "last trained on minus how much its task's training loss fell after that, so a task that was still learning "
        "fast (the first, trained from scratch) does not look less forgotten than it is; free (docs/REWARDS.md)",
        {"replay.reference": "task_end"},
    ),
    "controller": (
        "an adaptive replay share: each chunk's replay rows in [0, 4/32] of the batch, raised when replayed rows "
        "forget faster than new rows improve, pulled back to the configured share (amr.replay.share)",
        {"replay.share": "controller", "replay.share_min": 0.0, "replay.share_max": 0.125},
    ),
    "front": (
        "a replay schedule at the same mean share: most replay right after a task starts, least at its end",
        {
            "replay.share": "schedule",
            "replay.share_schedule": "front",
            "replay.share_min": 0.0,
            "replay.share_max": 0.25,
        },
    ),
    "back": (
        "a replay schedule at the same mean share: least replay right after a task starts, most at its end",
        {
            "replay.share": "schedule",
            "replay.share_schedule": "back",
            "replay.share_min": 0.0,
            "replay.share_max": 0.25,
        },
    ),
    "tail": (
        "a replay schedule at the same mean share: no replay until the last stretch of each task, which replays "
        "8/32 of the batch (the stretch is fraction / (8/32) of the task)",
        {
            "replay.share": "schedule",
            "replay.share_schedule": "tail",
            "replay.share_min": 0.0,
            "replay.share_max": 0.25,
        },
    ),
    "plateau": (
        "an adaptive replay share: the tail schedule, whose stretch at 8/32 starts as soon as the new rows' loss "
        "stops falling significantly (amr.replay.share 'plateau'); the mean share is at least the configured one",
        {"replay.share": "plateau", "replay.share_min": 0.0, "replay.share_max": 0.25},
    ),
    "tail16": (
        "the tail schedule with a shorter, stronger stretch: no replay until the last stretch of each task, "
        "which replays 16/32 of the batch (the stretch is fraction / (16/32) of the task)",
        {
            "replay.share": "schedule",
            "replay.share_schedule": "tail",
            "replay.share_min": 0.0,
            "replay.share_max": 0.5,
        },
    ),
    "probes": (
        "forward-only probes of the arms, 8 rows every chunk (paid: trimmed from new rows), so the bandit follows "
        "forgetting where a schedule replays nothing and starts each replay stretch from live estimates",
        {"replay.probe_samples": 8},
    ),
    "fresh": (
        "a bandit that starts every task afresh: the estimates are reset when a task adds arms, so each replay "
        "stretch starts uniform over the past arms (not at the optimism prior's newest-first ratios) until this "
        "task's rewards move it",
        {"bandit.new_arms": "reset"},
    ),
    "rows": (
        "selection inside the arm: rows seen regaining more loss over their own reference are drawn more (weight "
        "exp(z) of their last observed loss increase, z within the arm; amr.replay.row_priority): free",
        {"replay.row_priority": 1.0},
    ),
    "s4": (
        "the mean replay share 4/32 (compared with uniform at its realised share on the frontier)",
        {"replay.fraction": 0.125},
    ),
    "s8": (
        "the mean replay share 8/32 (compared with uniform at its realised share on the frontier)",
        {"replay.fraction": 0.25},
    ),
}


def split(entry: str) -> tuple[str, str] | None:
    """`'amr+steady'` -> `('amr', 'steady')`, `'amr+tail+ewc'` -> `('amr', 'tail+ewc')`; None without `+`."""
    if SEP not in entry:
        return None
    base, _, name = entry.partition(SEP)
    return base, name


def names(entry: str) -> tuple[str, ...]:
    """The variant names of an entry, in order: `'amr+tail+ewc'` -> `('tail', 'ewc')`; () without `+`."""
    parts = split(entry)
    return () if parts is None else tuple(parts[1].split(SEP))


def merged_overrides(entry: str) -> dict:
    """The overrides of `entry`'s names (each in `VARIANTS`) merged left to right.

    ValueError naming the entry when a name is unknown, empty or repeated, and naming the entry, both names and
    the key when two names set the same key to different values."""
    out: dict = {}
    setter: dict[str, str] = {}  # key -> the name that set it
    seen = set()
    for name in names(entry):
        if name not in VARIANTS:
            raise ValueError(f"{entry!r}: {name!r} is not a named variant; expected some of {tuple(VARIANTS)}")
        if name in seen:
            raise ValueError(f"{entry!r}: the named variant {name!r} appears twice")
        seen.add(name)
        for key, value in VARIANTS[name][1].items():
            if key in out and out[key] != value:
                raise ValueError(
                    f"{entry!r}: the named variants {setter[key]!r} and {name!r} set {key!r} to different values "
                    f"({out[key]!r} and {value!r})"
                )
            out[key] = value
            setter.setdefault(key, name)
    return out


def twin(entry: str, base: str = "uniform") -> str:
    """The same named variant(s) over another base strategy: `twin('amr+tail')` -> `'uniform+tail'`,
    `twin('amr+tail+ewc')` -> `'uniform+tail+ewc'`."""
    parts = split(entry)
    if parts is None:
        raise ValueError(f"twin: {entry!r} is not a named variant '<strategy>{SEP}<name>'")
    return f"{base}{SEP}{parts[1]}"


# The recommended default AMR: `amr+tail` was chosen on the development benchmark `text` (session 10); probe 6
# (docs/DEVELOPMENT.md) adopted `fresh` and `steady` on top of it by a rule applied on the development benchmarks
# (text, styles) and written down before the held-out ones (subpop, digits) ran; probes 8 and 9 adopted `sources`
# (arms per source) and `anchored` (the reward's reference at the task's end) by rules written before their runs.
# Its twin stays `uniform+tail`: the four selection-only names configure nothing uniform reads.
RECOMMENDED_AMR = "amr+tail+fresh+steady+sources+anchored"


# Named variants that change only how AMR chooses among past rows, at no cost (no new rows trimmed): the bandit's
# settings, the reward's reference, arms per source and the row priority inside an arm. Uniform draws never read them.
SELECTION_ONLY = ("steady", "fresh", "sources", "anchored", "rows")


def configures_only_the_selection(name: str) -> bool:
    """True for a named variant of `SELECTION_ONLY` (`steady`, `fresh`, `sources`, `anchored`): uniform selection
    never reads its overrides, so such a name changes nothing under it (tests/test_uniform_twin.py runs it)."""
    return name in SELECTION_ONLY


def uniform_twin(entry: str) -> str:
    """`twin(entry)` without the names that configure only the selection: the uniform run that the entry's selection
    is compared with. `uniform_twin('amr+tail+fresh+steady')` -> `'uniform+tail'`; an entry of selection-only names
    has plain `'uniform'` as its twin."""
    parts = split(entry)
    if parts is None:
        raise ValueError(f"uniform_twin: {entry!r} is not a named variant '<strategy>{SEP}<name>'")
    merged_overrides(entry)  # a ValueError naming the entry for an unknown or repeated name
    kept = [n for n in names(entry) if not configures_only_the_selection(n)]
    return SEP.join(["uniform", *kept])


RECOMMENDED_TWIN = uniform_twin(RECOMMENDED_AMR)  # the same schedule under uniform selection: what the selection adds
METHODS_AMR = "amr+tail"  # the AMR of the companion-methods sweep's combinations (methods15/16)


# Every companion method (docs/METHODS.md) alone on top of a strategy: `none+ewc`, `uniform+ewc`, `amr+ewc`.
for _method in METHODS:
    VARIANTS.setdefault(_method, (f"the companion method {_method!r} (docs/METHODS.md)", {"methods": (_method,)}))
# Named variants that configure a companion method another way (a row of their own in the methods table).
METHOD_VARIANTS = {"ema_adaptive": "ema"}  # name -> the method of amr.methods.registry it configures
VARIANTS["ema_adaptive"] = (
    "the weight EMA with the adaptive β_t of arXiv 2410.10868 (per parameter tensor, from two consecutive gradients)",
    {"methods": ("ema",), "method.ema_adaptive": True},
)
