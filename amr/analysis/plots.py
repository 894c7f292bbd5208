"""Result figures as PNG files (matplotlib, Agg canvas, no pyplot).

Each function draws on its own `matplotlib.figure.Figure` attached to a
`FigureCanvasAgg`, so importing this module never switches the global backend
(a notebook keeps its inline backend) and nothing leaks between calls. Every
function validates its input (ValueError naming the argument), creates the parent
directory and returns the path written, as a str.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

__all__ = [
    "plot_loss_matrix",
    "plot_forgetting_curves",
    "plot_arm_probs",
    "plot_forgetting_vs_flops",
    "plot_ablation",
    "plot_pareto",
    "plot_paired_forest",
]

_DPI = 110


def _new_figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), dpi=_DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Figure, path) -> str:
    path = os.fspath(path)
    parent = os.path.dirname(path)
    if parent:
        os.makedirs(parent, exist_ok=True)
    fig.savefig(path, format="png", dpi=_DPI, bbox_inches="tight")
    return path


def _array(x, name: str, ndim: int, allow_nan: bool = False) -> np.ndarray:
    try:
        a = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{name} must be numeric with {ndim} dimension(s): {e}") from None
    if a.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimension(s), got shape {a.shape}")
    ok = ~np.isinf(a) if allow_nan else np.isfinite(a)
    if not np.all(ok):
        raise ValueError(f"{name} must be finite{' (nan allowed)' if allow_nan else ''}")
    return a


def _log_scale(values, min_ratio: float) -> bool:
    """True when all values are positive and span at least `min_ratio`."""
    v = np.asarray(values, dtype=np.float64)
    return v.size > 1 and bool(np.all(v > 0)) and float(v.max() / v.min()) >= min_ratio


def _colors(n: int):
    from matplotlib import colormaps

    cmap = colormaps["tab10" if n <= 10 else "tab20" if n <= 20 else "viridis"]
    if n > 20:
        return [cmap(i / max(n - 1, 1)) for i in range(n)]
    return [cmap(i) for i in range(n)]


def plot_loss_matrix(
    loss_matrix,
    task_names,
    path,
    title: str = "Held-out loss L[i][j] (row: after training on task i, column: task j)",
) -> str:
    """Heatmap of the loss matrix with each value written in its cell.

    nan cells (not evaluated yet) are left blank, so a matrix can be drawn mid-run.
    """
    L_TxT = _array(loss_matrix, "loss_matrix", 2, allow_nan=True)
    T = L_TxT.shape[0]
    if L_TxT.shape != (T, T) or T == 0:
        raise ValueError(f"loss_matrix must be square [T, T] with T >= 1, got shape {L_TxT.shape}")
    names = [str(n) for n in task_names]
    if len(names) != T:
        raise ValueError(f"task_names has {len(names)} names for a {T}x{T} loss_matrix")

    side = max(4.0, 0.75 * T + 2.5)
    fig = _new_figure(side + 1.2, side)
    ax = fig.add_subplot()
    masked = np.ma.masked_invalid(L_TxT)
    im = ax.imshow(masked, cmap="viridis", interpolation="nearest", aspect="equal")
    cbar = fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    cbar.set_label("held-out loss (lower is better)")
    finite = L_TxT[np.isfinite(L_TxT)]
    mid = float((finite.min() + finite.max()) / 2) if finite.size else 0.0
    fontsize = max(6, 11 - T // 3)
    for i in range(T):
        for j in range(T):
            v = L_TxT[i, j]
            if np.isfinite(v):
                ax.text(
                    j, i, f"{v:.3f}", ha="center", va="center", fontsize=fontsize, color="black" if v > mid else "white"
                )
    ax.set_xticks(range(T), names, rotation=30, ha="right")
    ax.set_yticks(range(T), names)
    ax.set_xlabel("evaluated on task j")
    ax.set_ylabel("after training on task i")
    ax.set_title(title, fontsize=10)
    return _save(fig, path)


def plot_forgetting_curves(curves: dict[str, dict], path) -> str:
    """Forgetting against global step, one panel per strategy, one line per column.

    Args:
      curves: strategy -> {"steps": [N], "forgetting": [N] or [N][P]} and
        optionally "labels" (or "task_names"): [P] (default "task j"). A column may be nan where its
        forgetting is undefined (before its task ended). With P > 1 columns a
        dashed black line shows their mean at each step.
      path: PNG file to write.
    """
    if not isinstance(curves, Mapping) or not curves:
        raise ValueError("curves must be a non-empty dict: strategy -> {'steps', 'forgetting'}")
    parsed = {}
    for name, c in curves.items():
        if not isinstance(c, Mapping) or "steps" not in c or "forgetting" not in c:
            raise ValueError(f"curves[{name!r}] must be a dict with 'steps' and 'forgetting'")
        steps_N = _array(c["steps"], f"curves[{name!r}]['steps']", 1)
        fname = f"curves[{name!r}]['forgetting']"
        try:
            f = np.asarray(c["forgetting"], dtype=np.float64)
        except (TypeError, ValueError) as e:
            raise ValueError(f"{fname} must be numeric [N] or [N, P]: {e}") from None
        f_NxP = _array(f[:, None] if f.ndim == 1 else f, fname, 2, allow_nan=True)
        if f_NxP.shape[0] != steps_N.shape[0]:
            raise ValueError(f"curves[{name!r}]: {steps_N.shape[0]} steps but {f_NxP.shape[0]} rows of forgetting")
        P = f_NxP.shape[1]
        label_key = "labels" if "labels" in c else "task_names"
        labels = [str(x) for x in c.get(label_key, [f"task {j}" for j in range(P)])]
        if len(labels) != P:
            raise ValueError(f"curves[{name!r}][{label_key!r}] has {len(labels)} labels for {P} columns")
        parsed[name] = (steps_N, f_NxP, labels)

    n = len(parsed)
    ncols = min(n, 3)
    nrows = math.ceil(n / ncols)
    fig = _new_figure(4.6 * ncols, 3.4 * nrows)
    axes = fig.subplots(nrows, ncols, sharey=True, squeeze=False).reshape(-1)
    for ax, (name, (steps_N, f_NxP, labels)) in zip(axes, parsed.items()):
        colors = _colors(f_NxP.shape[1])
        for j in range(f_NxP.shape[1]):
            ax.plot(steps_N, f_NxP[:, j], color=colors[j], lw=1.4, label=labels[j])
        if f_NxP.shape[1] > 1:
            counts = np.sum(np.isfinite(f_NxP), axis=1)
            sums = np.nansum(f_NxP, axis=1)
            mean_N = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
            ax.plot(steps_N, mean_N, color="black", lw=2.0, ls="--", label="mean")
        ax.axhline(0.0, color="grey", lw=0.8)
        ax.set_title(str(name))
        ax.set_xlabel("global step")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="best")
    for ax in axes[n:]:
        ax.set_visible(False)
    for ax in axes[::ncols]:
        ax.set_ylabel("forgetting (loss increase)")
    fig.suptitle("Forgetting of past tasks during training")
    return _save(fig, path)


def plot_arm_probs(steps, probs_SxK, arm_labels, path) -> str:
    """Stacked area of the bandit's arm probabilities over time.

    Each row of `probs_SxK` must be a distribution (sum 1) or all zeros (no
    active arm yet), within 1e-3.
    """
    steps_S = _array(steps, "steps", 1)
    p_SxK = _array(probs_SxK, "probs_SxK", 2)
    S, K = p_SxK.shape
    if S != steps_S.shape[0]:
        raise ValueError(f"probs_SxK has {S} rows but steps has {steps_S.shape[0]}")
    if np.any(p_SxK < 0):
        raise ValueError("probs_SxK must be non-negative")
    sums_S = p_SxK.sum(axis=1)
    if not np.all((np.abs(sums_S - 1.0) <= 1e-3) | (np.abs(sums_S) <= 1e-3)):
        raise ValueError(
            f"probs_SxK rows must sum to 1 (or 0 before any arm is active), "
            f"got sums in [{sums_S.min():.4g}, {sums_S.max():.4g}]"
        )
    labels = [str(a) for a in arm_labels]
    if len(labels) != K:
        raise ValueError(f"arm_labels has {len(labels)} labels for {K} arms")

    fig = _new_figure(8.0 if K <= 12 else 10.0, 4.2)
    ax = fig.add_subplot()
    ax.stackplot(steps_S, p_SxK.T, labels=labels, colors=_colors(K), alpha=0.9)
    ax.set_xlim(steps_S.min(), steps_S.max() if S > 1 else steps_S.min() + 1)
    ax.set_ylim(0.0, 1.0)
    ax.set_xlabel("global step")
    ax.set_ylabel("replay probability")
    ax.set_title("Bandit arm probabilities (stacked)")
    ax.legend(
        loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=7 if K > 12 else 8, ncol=1 if K <= 20 else 2, title="arm"
    )
    return _save(fig, path)


def plot_forgetting_vs_flops(
    points: dict[str, tuple[float, float, float]], path, methods: Mapping | None = None
) -> str:
    """Average forgetting (± std error bars) against total FLOPs, one marker per strategy.

    The x axis is logarithmic when all FLOPs are positive and span >= 10x. `methods`: as `plot_pareto`'s, the
    companion-method points drawn hollow (marker by method, colour by combination) with a legend beside the plot.
    """
    if not isinstance(points, Mapping) or not points:
        raise ValueError("points must be a non-empty dict: strategy -> (flops, avg_forgetting, std)")
    methods = _method_groups(methods, points)
    rows, grouped = {}, {}
    for name, p in points.items():
        v = _array(p, f"points[{name!r}]", 1)
        if v.shape != (3,):
            raise ValueError(f"points[{name!r}] must be (flops_total, avg_forgetting, std), got {p!r}")
        if v[0] < 0 or v[2] < 0:
            raise ValueError(f"points[{name!r}]: flops and std must be >= 0, got {p!r}")
        (grouped if str(name) in methods else rows)[name] = v

    fig = _new_figure(6.4, 4.4)
    ax = fig.add_subplot()
    markers = "osD^vP*Xhp<>"
    known = {}
    for k, ((name, (flops, forg, std)), color) in enumerate(zip(rows.items(), _colors(len(rows)))):
        ax.errorbar(
            [flops], [forg], yerr=[std], fmt=markers[k % len(markers)], color=color, ms=7, capsize=4, label=str(name)
        )
        known[str(name)] = color
    styles = _method_styles(methods, known)
    for name, (flops, forg, std) in grouped.items():
        _method_point(ax, flops, None, forg, std, *styles, methods[str(name)])
    if _log_scale([v[0] for v in (*rows.values(), *grouped.values())], 10.0):
        ax.set_xscale("log")
    ax.axhline(0.0, color="grey", lw=0.8)
    ax.set_xlabel("total FLOPs (training + selection)")
    ax.set_ylabel("average forgetting (loss increase, lower is better)")
    ax.set_title("Forgetting against compute")
    ax.grid(alpha=0.3)
    if rows:
        legend = ax.legend(fontsize=8, loc="best")
    if grouped:
        if rows:
            ax.add_artist(legend)  # kept beside the methods' legend
        _method_legend(ax, *styles)
    return _save(fig, path)


def plot_ablation(
    xs, ys_mean, ys_ci, path, xlabel: str, ylabel: str, title: str, baselines: dict[str, float] | None = None
) -> str:
    """Mean with a confidence band against one swept hyper-parameter.

    `xs` may be numbers (a line and a band; log x axis when positive and spanning
    >= 100x) or strings (categorical: evenly spaced points with error bars).
    `baselines` draws one labelled horizontal line per entry (e.g. {"uniform": 0.215}).
    """
    if isinstance(xs, (str, bytes)) or not isinstance(xs, (Sequence, np.ndarray)) or len(xs) == 0:
        raise ValueError("xs must be a non-empty sequence of numbers or strings")
    categorical = any(isinstance(x, str) for x in xs)
    x_N = np.arange(len(xs), dtype=np.float64) if categorical else _array(xs, "xs", 1)
    n = x_N.shape[0]
    mean_N = _array(ys_mean, "ys_mean", 1)
    ci_N = _array(ys_ci, "ys_ci", 1)
    if mean_N.shape[0] != n:
        raise ValueError(f"ys_mean has {mean_N.shape[0]} values for {n} xs")
    if ci_N.shape[0] != n:
        raise ValueError(f"ys_ci has {ci_N.shape[0]} values for {n} xs")
    if np.any(ci_N < 0):
        raise ValueError("ys_ci must be >= 0 (half-widths)")
    baselines = dict(baselines or {})
    for name, b in baselines.items():
        if not isinstance(b, (int, float, np.integer, np.floating)) or not math.isfinite(b):
            raise ValueError(f"baselines[{name!r}] must be a finite number, got {b!r}")

    fig = _new_figure(6.4, 4.2)
    ax = fig.add_subplot()
    order = np.arange(n) if categorical else np.argsort(x_N, kind="stable")
    x, m, c = x_N[order], mean_N[order], ci_N[order]
    if categorical:  # no line between unordered categories
        ax.errorbar(x, m, yerr=c, fmt="o", color="C0", ms=7, capsize=5, label="mean ± CI")
    else:
        ax.fill_between(x, m - c, m + c, color="C0", alpha=0.25, label="mean ± CI")
        ax.plot(x, m, "o-", color="C0", lw=1.8, label="mean")
    styles = ["--", ":", "-.", (0, (5, 1))]
    for k, (name, b) in enumerate(baselines.items()):
        ax.axhline(float(b), color=f"C{(k + 1) % 10}", ls=styles[k % len(styles)], lw=1.4, label=str(name))
    if categorical:
        ax.set_xticks(x_N, [str(v) for v in xs], rotation=20, ha="right")
    elif _log_scale(x_N, 100.0):
        ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    return _save(fig, path)


def _xy_ci(p, name: str) -> np.ndarray:
    v = _array(p, name, 1)
    if v.shape != (4,) or v[1] < 0 or v[3] < 0:
        raise ValueError(f"{name} must be (new_task_loss, its ci95 >= 0, avg_forgetting, its ci95 >= 0), got {p!r}")
    return v


def plot_pareto(
    frontier: Sequence,
    points: Mapping,
    path,
    title: str = "Forgetting against new-task loss",
    methods: Mapping | None = None,
) -> str:
    """Average forgetting against new-task loss (both mean ± 95% CI): uniform's frontier as a line, strategies as points.

    Args:
      frontier: [(label, (new_loss, new_ci, forgetting, forgetting_ci))] of uniform at its replay shares, in share
        order (at least one point); drawn as one line through the means, each point labelled.
      points: {name: (new_loss, new_ci, forgetting, forgetting_ci)} of every other strategy (may be empty).
      path: PNG file to write.
      methods: {name: (method, combination)} of the points that are a companion method over a combination
        (`amr+tail+ewc` -> ("ewc", "amr+tail")). They are drawn hollow, marker by method and colour by combination,
        with a legend of methods and combinations beside the plot instead of one entry per point; the other points
        are drawn as without `methods`.
    """
    if isinstance(frontier, (str, bytes)) or not isinstance(frontier, Sequence) or not frontier:
        raise ValueError("frontier must be a non-empty sequence of (label, (new_loss, ci, forgetting, ci))")
    if not isinstance(points, Mapping):
        raise ValueError("points must be a dict: name -> (new_loss, ci, forgetting, ci)")
    methods = _method_groups(methods, points)
    front = [(str(label), _xy_ci(v, f"frontier[{label!r}]")) for label, v in frontier]
    rows = {str(k): _xy_ci(v, f"points[{k!r}]") for k, v in points.items() if str(k) not in methods}
    grouped = {str(k): _xy_ci(v, f"points[{k!r}]") for k, v in points.items() if str(k) in methods}

    fig = _new_figure(6.8, 4.8)
    ax = fig.add_subplot()
    f = np.asarray([v for _, v in front])
    ax.errorbar(
        f[:, 0],
        f[:, 2],
        xerr=f[:, 1],
        yerr=f[:, 3],
        fmt="-",
        color="black",
        lw=1.6,
        capsize=3,
        label="uniform frontier",
    )
    for label, v in front:
        ax.annotate(label, (v[0], v[2]), textcoords="offset points", xytext=(5, 4), fontsize=7)
    markers = "osD^vP*Xhp<>"
    known = {"uniform": "black"}  # a combination's colour: its own point's, the frontier's for uniform
    for k, ((name, v), color) in enumerate(zip(rows.items(), _colors(max(len(rows), 1)))):
        ax.errorbar(
            [v[0]],
            [v[2]],
            xerr=[v[1]],
            yerr=[v[3]],
            fmt=markers[k % len(markers)],
            color=color,
            ms=7,
            capsize=3,
            label=name,
        )
        known[name] = color
    styles = _method_styles(methods, known)
    for name, v in grouped.items():
        _method_point(ax, v[0], v[1], v[2], v[3], *styles, methods[name])
    ax.axhline(0.0, color="grey", lw=0.8)
    ax.set_xlabel("new-task loss, tasks 2..T (lower is better)")
    ax.set_ylabel("average forgetting (lower is better)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    legend = ax.legend(fontsize=7, loc="best")
    if grouped:
        ax.add_artist(legend)
        _method_legend(ax, *styles)
    return _save(fig, path)


_METHOD_MARKERS = "osD^vPXhp<>*"


def _method_groups(methods, points) -> dict[str, tuple[str, str]]:
    """A plot's `methods`, checked: {point name: (method, combination)}, every name one of `points`."""
    if methods is None:
        return {}
    if not isinstance(methods, Mapping):
        raise ValueError("methods must be a dict: point name -> (method, combination)")
    out = {}
    for name, group in methods.items():
        if str(name) not in {str(k) for k in points}:
            raise ValueError(f"methods[{name!r}]: not one of the points")
        if isinstance(group, (str, bytes)) or not isinstance(group, Sequence) or len(group) != 2:
            raise ValueError(f"methods[{name!r}] must be (method, combination), got {group!r}")
        out[str(name)] = (str(group[0]), str(group[1]))
    return out


def _method_styles(methods: dict[str, tuple[str, str]], known: dict) -> tuple[dict, dict]:
    """({method: marker}, {combination: colour}) in order of first appearance; a combination drawn as a point of
    its own (`known`: {name: colour}) keeps that point's colour, the others take Dark2's in turn."""
    from matplotlib import colormaps

    names = list(dict.fromkeys(m for m, _ in methods.values()))
    combos = list(dict.fromkeys(c for _, c in methods.values()))
    cmap = colormaps["Dark2"]
    spare = iter(cmap(k % cmap.N) for k in range(len(combos)))
    marker = {m: _METHOD_MARKERS[k % len(_METHOD_MARKERS)] for k, m in enumerate(names)}
    return marker, {c: known[c] if c in known else next(spare) for c in combos}


def _method_point(ax, x, xerr, y, yerr, marker: dict, colour: dict, group: tuple[str, str]) -> None:
    """One companion-method point: hollow, marker by method, colour by combination, no legend entry of its own."""
    method, combo = group
    ax.errorbar(
        [x],
        [y],
        xerr=None if xerr is None else [xerr],
        yerr=[yerr],
        fmt=marker[method],
        color=colour[combo],
        mfc="none",
        mew=1.4,
        ms=7,
        capsize=2,
        elinewidth=0.8,
        label="_nolegend_",
    )


def _method_legend(ax, marker: dict, colour: dict) -> None:
    """One legend beside the axes: each method's marker, then each combination's colour."""
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], ls="none", marker=mk, mfc="none", color="0.3", label=m) for m, mk in marker.items()]
    handles += [Line2D([], [], ls="none", marker="s", color=c, label=f"over {k}") for k, c in colour.items()]
    ax.legend(
        handles=handles,
        fontsize=7,
        loc="upper left",
        bbox_to_anchor=(1.02, 1.0),
        title="methods (hollow)",
        title_fontsize=7,
        frameon=False,
    )


def plot_paired_forest(panels: Mapping[str, Sequence], rows: Sequence[str], path, xlabel: str, title: str) -> str:
    """Paired differences with their 95% intervals, one panel per group (e.g. per benchmark), one row per entry.

    `panels` maps a panel title to a sequence aligned with `rows`: (mean, ci half-width) per row, or None where
    that panel has no value for the row. A point whose interval excludes 0 is coloured by its sign (below 0 green,
    above 0 red), else grey; a dotted line marks 0.
    """
    rows = [str(r) for r in rows]
    if not rows:
        raise ValueError("rows must be a non-empty sequence of labels")
    if not panels:
        raise ValueError("panels must map at least one title to its values")
    values = {}
    for name, vals in panels.items():
        if len(vals) != len(rows):
            raise ValueError(f"panels[{name!r}] has {len(vals)} values for {len(rows)} rows")
        m_R = np.full(len(rows), np.nan)
        c_R = np.full(len(rows), np.nan)
        for i, v in enumerate(vals):
            if v is None:
                continue
            a = _array(v, f"panels[{name!r}][{i}]", 1)
            if a.shape != (2,):
                raise ValueError(f"panels[{name!r}][{i}] must be (mean, ci half-width) or None, got {v!r}")
            m_R[i], c_R[i] = a
        if np.any(c_R < 0):
            raise ValueError(f"panels[{name!r}]: ci half-widths must be >= 0")
        values[name] = (m_R, c_R)

    fig = _new_figure(2.6 * len(panels) + 2.0, 0.32 * len(rows) + 1.4)
    axes = fig.subplots(1, len(panels), sharey=True, squeeze=False)[0]
    y = np.arange(len(rows))[::-1].astype(np.float64)  # the first row on top
    for ax, (name, (m_R, c_R)) in zip(axes, values.items()):
        ax.axvline(0.0, color="0.3", ls=":", lw=1.0)
        for i in np.flatnonzero(np.isfinite(m_R)):
            lo, hi = m_R[i] - c_R[i], m_R[i] + c_R[i]
            colour = "C2" if hi < 0 else "C3" if lo > 0 else "0.55"
            ax.errorbar(m_R[i], y[i], xerr=c_R[i], fmt="o", color=colour, ms=5, capsize=3)
        ax.set_title(str(name))
        ax.set_xlabel(xlabel, fontsize=8)
        ax.xaxis.set_major_locator(MaxNLocator(nbins=4))
        ax.tick_params(axis="x", labelsize=8)
        ax.grid(alpha=0.3, axis="x")
    axes[0].set_yticks(y, rows, fontsize=8)
    axes[0].set_ylim(-0.7, len(rows) - 0.3)
    fig.suptitle(title, fontsize=10)
    return _save(fig, path)
