"""The evaluation report: a mean ± std table, a paired comparison against a baseline
(Markdown, CSV, terminal) and PNG plots of curves and intervals.

Input is, per policy (or learner), one :class:`Record` per seed, the same seeds in the same
order for every policy: the final test metrics and the curves recorded over the inner
training run. Kept apart from ``evaluate.py`` so that anything producing records (env
episodes, plain learner runs) gets the same report; the statistics are in ``training/stats.py``.
"""

from __future__ import annotations

import csv
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D  # pyplot-free: no backend is chosen or changed at import
from matplotlib.ticker import MaxNLocator
from rich.table import Table

from mmrl_training import stats

METRICS = ("acc", "f1", "map")
METRIC_NAMES = {"acc": "acc", "f1": "macro-F1", "map": "mAP"}
BEST_MARK = "*"
ABSENT = "—"  # a column a row cannot have (a learner's return), unlike n/a (every run diverged)
RETURN_NOTE = ("return = the episode's summed reward: reward='acc' (default) the inner run's total validation "
               "gain, accuracy points from the first to the last decision step; 'final' the last validation "
               "accuracy; 'auc' the area under the validation curve")
REWARD_MEANINGS = {  # what an episode's return is under each env reward (mmrl_env/envs/reward.py)
    "acc": "the inner run's total validation gain, accuracy points from the first to the last decision step",
    "f1": "the inner run's total validation macro-F1 gain, in points",
    "loss": "the inner run's total decrease of the validation loss",
    "final": "the main job's, the last validation accuracy in %",
    "auc": "the validation accuracy in % summed over the decision steps",
}


def reward_of(env_kwargs: dict) -> str:
    """The reward an env made with ``env_kwargs`` uses (the envs' default is ``acc``)."""
    return str(env_kwargs.get("reward", "acc"))


def return_note(rewards: dict[str, str] | None) -> str:
    """What the return column means, for the rewards the rows used (policy -> reward)."""
    if not rewards:
        return RETURN_NOTE
    used = sorted(set(rewards.values()))
    if len(used) == 1:
        return f"return = the episode's summed reward, reward='{used[0]}': {REWARD_MEANINGS.get(used[0], '')}"
    return "return = the episode's summed reward: " + "; ".join(
        f"{', '.join(n for n, r in rewards.items() if r == kind)}: reward='{kind}', {REWARD_MEANINGS.get(kind, '')}"
        for kind in used)
HOW_TO_READ = ("How to read it: the std over seeds mixes real differences with the noise every policy shares on "
               "a seed (initial weights, data order); a policy helps when the paired "
               "95 % interval of its per-seed difference from the baseline lies above 0 (evaluate.py's "
               "'paired vs <baseline>' table); " + BEST_MARK + " marks the best test fused accuracy (every policy "
               "on a tie).")


def cell(mean: float, std: float, n_seeds: int, scale: float = 100.0) -> str:
    """``mean ± std`` (scaled), the mean alone for one seed (its std is 0 by construction),
    ``n/a`` when no seed produced the value (every run diverged)."""
    if mean is None or not np.isfinite(mean):  # None: null in a results.json
        return "n/a"
    return f"{scale * mean:.2f}" if n_seeds <= 1 else f"{scale * mean:.2f} ± {scale * std:.2f}"


def best_rows(summary: dict[str, dict[str, tuple]], column: str) -> set[str]:
    """The policies with the highest mean ``column`` (all of them on a tie; none when no
    policy has a finite value)."""
    scored = {n: round(row[column][0], 6) for n, row in summary.items()  # equal as printed = a tie
              if column in row and np.isfinite(row[column][0])}
    top = max(scored.values(), default=None)
    return {n for n, v in scored.items() if v == top}


def rich_table(summary: dict[str, dict[str, tuple]], columns: list[tuple[str, str, float]], n_seeds: int,
               title: str, best_column: str, diverged: dict[str, int] | None = None,
               rewards: dict[str, str] | None = None) -> Table:
    """A terminal table: ``columns`` = (key, header, scale); the best row (by ``best_column``)
    is marked and bold; the notes on the return (``rewards``: the reward each row used) and how
    to read it are the caption. A policy whose every episode diverged (``diverged``: episodes
    per policy) shows ``diverged``."""
    spread = "" if n_seeds <= 1 else ", mean ± std over seeds"
    notes = ([f"{return_note(rewards)}."] if any(key == "return" for key, _, _ in columns) else []) + [HOW_TO_READ]
    table = Table(title=f"{title} ({n_seeds} seed{'s' if n_seeds != 1 else ''}{spread}; accuracy in %)",
                  caption="\n".join(notes), caption_justify="left")
    table.add_column("policy", overflow="fold")  # a long name folds onto a second line, never cut short
    for _, header, _ in columns:
        table.add_column(header, justify="right")
    best = best_rows(summary, best_column)
    for name, row in summary.items():
        cells = [cell(*row.get(key, (float("nan"), 0.0)), n_seeds, scale) for key, _, scale in columns]
        if (diverged or {}).get(name):
            cells = ["diverged" if c == "n/a" else c for c in cells]
        table.add_row(f"{name} {BEST_MARK}" if name in best else name, *cells, style="bold" if name in best else None)
    return table


@dataclass
class Record:
    """One seed's outcome: final test metrics (``fused_acc``, ``<modality>_f1``, ...) and curves
    (name -> values per decision step or epoch, e.g. ``val_acc``, ``s_hat/audio``, ``n/video``)."""

    metrics: dict[str, float]
    curves: dict[str, list[float]] = field(default_factory=dict)
    reward: str | None = None  # the env's reward (what the return is); None for a learner run without RL
    diverged: bool = False  # the inner training diverged (non-finite loss) before the end


def episode_record(episode: dict[str, Any], modalities: tuple[str, ...], reward: str | None = None) -> Record:
    """Final test metrics and per-step curves (step 0 = after reset) of one episode
    (``mmrl_training.rollout.run_episodes``' format); ``reward``: the env's reward, for the tables."""
    infos = episode["infos"]
    curves: dict[str, list[float]] = {"val_acc": [i["val_acc"] for i in infos]}
    for m in modalities:
        curves[f"s_hat/{m}"] = [i["s_hat"][m] for i in infos]
        curves[f"d/{m}"] = [i["d"][m] for i in infos]
    nan = [float("nan")]  # no action before step 1: keeps the action curves on the same x axis
    steps = infos[1:]
    if steps and "n" in steps[0]:
        curves.update({f"n/{m}": nan + [i["n"][m] for i in steps] for m in modalities})
    if steps and "lambda" in steps[0]:
        curves["lambda"] = nan + [i["lambda"] for i in steps]
        # what the scheduler did with λ: the learned one samples with replacement, so its
        # sequence repeats samples and favours high balance scores even at λ = 1
        curves["sequence/distinct fraction"] = nan + [i["subset_unique"] / max(i["subset_size"], 1) for i in steps]
        curves["sequence/mean balance score"] = nan + [i.get("balance", {}).get("score", float("nan"))
                                                       for i in steps]
    final = episode["final"]
    metrics = {**final.get("test", {}), "return": episode["return"]}
    if "val_acc" in final:
        metrics["val_acc"] = final["val_acc"]  # the last validation accuracy: in the summary, not the tables
    return Record(metrics, curves, reward, bool(final.get("diverged")))


def rewards_of(records: dict[str, list[Record]]) -> dict[str, str]:
    """policy -> the reward its episodes used (policies with a return only)."""
    return {name: recs[0].reward for name, recs in records.items() if recs and recs[0].reward}


def imbalance(metrics: dict[str, float], modalities: tuple[str, ...]) -> float:
    """The gap between the modalities' test accuracies at the end (best minus worst)."""
    accs = [metrics.get(f"{m}_acc", float("nan")) for m in modalities]
    return float(max(accs) - min(accs))


def columns(modalities: tuple[str, ...], with_return: bool = True) -> list[str]:
    parts = ["fused", *modalities]
    return [f"{p}_{k}" for p in parts for k in METRICS] + ["imbalance"] + (["return"] if with_return else [])


def has_return(summary: dict[str, dict[str, tuple]]) -> bool:
    """Whether any row has a return: env episodes do, plain learner runs (no RL) do not."""
    return any("return" in row for row in summary.values())


def summarize(records: dict[str, list[Record]], modalities: tuple[str, ...]) -> dict[str, dict[str, tuple]]:
    """policy -> column -> (mean, std) over seeds (NaN where a run diverged before its test).
    A policy whose records have no ``return`` (a learner trained without RL) gets no return column;
    env episodes also get ``val_acc``, the last validation accuracy."""
    out: dict[str, dict[str, tuple]] = {}
    for name, recs in records.items():
        rows = [{**r.metrics, "imbalance": imbalance(r.metrics, modalities)} for r in recs]
        out[name] = {}
        extra = ["val_acc"] if any("val_acc" in r.metrics for r in recs) else []
        for col in columns(modalities, any("return" in r.metrics for r in recs)) + extra:
            values = np.array([row.get(col, np.nan) for row in rows], dtype=float)
            done = values[np.isfinite(values)]
            out[name][col] = (float(done.mean()), float(done.std())) if done.size else (float("nan"), 0.0)
    return out


def _header(col: str) -> str:
    if col in ("imbalance", "return"):
        return col
    part, metric = col.rsplit("_", 1)
    return f"{part} {METRIC_NAMES[metric]}"


def markdown_table(summary: dict[str, dict[str, tuple]], modalities: tuple[str, ...], n_seeds: int,
                   rewards: dict[str, str] | None = None) -> str:
    """Percent for metrics and the imbalance (accuracy points); the return as it is, and no
    return column when no row has one. The best test fused accuracy is marked; one seed gets
    no ``± 0.00``."""
    cols = columns(modalities, has_return(summary))
    spread = "mean ± std over" if n_seeds > 1 else "one run,"
    note = f" {return_note(rewards)}." if "return" in cols else ""
    lines = [f"{spread} {n_seeds} seed(s); metrics and imbalance (best minus worst modality's test accuracy) in %."
             f"{note}", "", HOW_TO_READ, "",
             "| policy | " + " | ".join(_header(c) for c in cols) + " |",
             "|---|" + "---:|" * len(cols)]
    best = best_rows(summary, "fused_acc")
    for name, row in summary.items():
        cells = [cell(*row[c], n_seeds, 1.0 if c == "return" else 100.0) if c in row else ABSENT for c in cols]
        label = f"**{name}** {BEST_MARK}" if name in best else name
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def terminal_table(summary: dict[str, dict[str, tuple]], modalities: tuple[str, ...], n_seeds: int,
                   title: str, rewards: dict[str, str] | None = None, diverged: dict[str, int] | None = None
                   ) -> Table:
    """The evaluation table for the terminal: accuracies, fused F1/mAP, imbalance and return
    (where there is one; the per-modality F1 and mAP are in results.md / results.csv);
    ``diverged``: episodes per policy whose inner training diverged."""
    cols = [*([("return", "return", 1.0)] if has_return(summary) else []), ("fused_acc", "test fused acc", 100.0),
            *((f"{m}_acc", f"test {m} acc", 100.0) for m in modalities),
            ("fused_f1", "test fused macro-F1", 100.0), ("fused_map", "test fused mAP", 100.0),
            ("imbalance", "imbalance", 100.0)]
    return rich_table(summary, cols, n_seeds, title, "fused_acc", diverged, rewards)


def write_csv(path: Path, summary: dict[str, dict[str, tuple]], modalities: tuple[str, ...], n_seeds: int) -> None:
    """One row per policy; ``<column>_mean`` and ``<column>_std`` in one unit, % (points): the
    metrics and the imbalance as in the tables, and the return, which with the accuracy rewards
    is in accuracy points already. The columns are the same in every mode: a row without a
    return (a learner) has empty cells."""
    cols = columns(modalities)
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["policy", "seeds", *(f"{c}_{s}" for c in cols for s in ("mean", "std"))])
        for name, row in summary.items():
            scale = {c: 1.0 if c == "return" else 100.0 for c in cols}
            w.writerow([name, n_seeds, *(f"{scale[c] * v:.6g}" if c in row else "" for c in cols
                                         for v in row.get(c, (0, 0)))])


def _band(ax: Axes, curves: list[list[float]], label: str, start: int = 0, **style) -> Line2D | None:
    """Mean over seeds with a ±std band; a shorter curve (a diverged run) counts while it lasts.
    ``start``: the x of the first value (0 = before training, 1 = after the first epoch)."""
    n = max((len(c) for c in curves), default=0)
    if n == 0:
        return None
    values = np.array([list(c) + [np.nan] * (n - len(c)) for c in curves], dtype=float)
    with warnings.catch_warnings():  # an all-NaN column (no action yet at step 0) is expected
        warnings.simplefilter("ignore", RuntimeWarning)
        mean, std = np.nanmean(values, 0), np.nanstd(values, 0)
    x = np.arange(start, start + n)
    line, = ax.plot(x, mean, label=label, **style)
    ax.fill_between(x, mean - std, mean + std, color=line.get_color(), alpha=0.15, linewidth=0)
    return line


def plot_validation(path: Path, records: dict[str, list[Record]], x_label: str, title: str, start: int = 0) -> Path:
    """Validation accuracy per policy; ``start`` as in :func:`_band`."""
    fig = Figure(figsize=(7, 4.2))
    ax = fig.subplots()
    for name, recs in records.items():
        _band(ax, [[100 * v for v in r.curves.get("val_acc", [])] for r in recs], name, start)
    ax.set(xlabel=x_label, ylabel="validation accuracy (%)", title=title)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    return path


SYMBOLS = {"n/": "n", "s_hat/": "ŝ", "d/": "d", "lambda": "λ", "sequence/": ""}


def _label(prefix: str, key: str) -> str:
    """``n/audio`` -> ``n audio``, ``lambda`` -> ``λ``, ``sequence/distinct fraction`` -> ``distinct fraction``."""
    symbol = SYMBOLS.get(prefix, prefix.rstrip("/"))
    return f"{symbol} {key[len(prefix):]}".strip()


def plot_per_policy(path: Path, records: dict[str, list[Record]], rows: list[tuple[dict[str, str], str]],
                    x_label: str, title: str) -> Path | None:
    """:func:`per_policy_figure` written to ``path`` (None when there is nothing to draw)."""
    fig = per_policy_figure(records, rows, x_label, title)
    if fig is None:
        return None
    fig.savefig(path, dpi=120)
    return path


def per_policy_figure(records: dict[str, list[Record]], rows: list[tuple[dict[str, str], str]],
                      x_label: str, title: str) -> Figure | None:
    """A grid: one column per policy, one row per entry of ``rows`` = (curve-name prefix ->
    line style, y-axis label). Every curve whose name starts with a prefix is drawn (mean ±
    std over seeds). A curve's colour belongs to its subject (the name after the prefix, e.g.
    the modality) in every panel, so ŝ and d of one modality share it; overlapping curves stay
    visible (the first is drawn wider); one legend for the figure. Rows no policy has are
    dropped; None when nothing is left."""
    def keys(recs: list[Record], prefixes: dict[str, str]) -> list[tuple[str, str, str]]:
        return [(prefix, key, style) for prefix, style in prefixes.items()
                for key in sorted(k for k in recs[0].curves if k.startswith(prefix))]

    rows = [(prefixes, y) for prefixes, y in rows if any(keys(recs, prefixes) for recs in records.values())]
    names = [n for n, recs in records.items() if any(keys(recs, prefixes) for prefixes, _ in rows)]
    if not names:
        return None
    subjects = sorted({key[len(prefix):] or key for recs in records.values() for prefixes, _ in rows
                       for prefix, key, _ in keys(recs, prefixes)})
    colors = {subject: f"C{i}" for i, subject in enumerate(subjects)}
    fig = Figure(figsize=(3.8 * len(names) + 2.2, 3.0 * len(rows) + 0.8), layout="constrained")
    axes = fig.subplots(len(rows), len(names), squeeze=False, sharex=True, sharey="row")
    handles: dict[str, Line2D] = {}
    for r, (prefixes, y_label) in enumerate(rows):
        for c, name in enumerate(names):
            ax = axes[r][c]
            recs = records[name]
            for i, (prefix, key, style) in enumerate(keys(recs, prefixes)):
                subject = key[len(prefix):] or key
                label = _label(prefix, key)
                line = _band(ax, [rec.curves[key] for rec in recs], label, color=colors[subject], linestyle=style,
                             linewidth=max(3.2 - 1.2 * (i % len(subjects)), 1.2), alpha=0.9)
                if line is not None:
                    handles.setdefault(label, line)
            if r == 0:
                ax.set_title(name)
            if c == 0:
                ax.set_ylabel(y_label)
            if r == len(rows) - 1:
                ax.set_xlabel(x_label)
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.grid(alpha=0.3)
    fig.legend(list(handles.values()), list(handles), loc="outside right upper", fontsize=8)
    fig.suptitle(title)
    return fig


# --- paired comparison against a baseline (statistics: training/stats.py) -------------------

PAIRED_NOTE = (f"Δ: the mean over seeds of the policy's test metric minus the baseline's on the same seed, in points, "
               f"with its {stats.CONFIDENCE:.0%} percentile-bootstrap interval over seeds [low, high] "
               f"({stats.RESAMPLES} resamples, fixed generator seed). P(improvement): the fraction of seeds on which "
               "the policy's test fused accuracy beats the baseline's (a tie counts 1/2) [interval]. IQM: the "
               "interquartile mean of the policy's test fused accuracy over seeds (the middle 50 %) [interval]. "
               "better / worse: the interval of Δ fused accuracy lies above / below 0; undecided: it contains 0; "
               f"no verdict: fewer than {stats.MIN_SEEDS} seed pairs, too few for the interval to be trusted "
               "(BENCHMARKS.md, 'Interval coverage').")
PAIRED_COLUMNS = [*(f"Δ {_header(m)}" for m in stats.HEADLINE), "P(improvement)", f"IQM {_header(stats.HEADLINE[0])}",
                  "verdict"]
VERDICT_COLORS = {"better": "tab:green", "worse": "tab:red", "undecided": "tab:gray", stats.NO_VERDICT: "tab:gray"}


def per_seed(records: dict[str, list[Record]], metrics: tuple[str, ...] = stats.HEADLINE
             ) -> dict[str, dict[str, np.ndarray]]:
    """policy -> metric -> one value per seed (NaN where the run has none: it diverged)."""
    return {name: {m: np.array([r.metrics.get(m, np.nan) for r in recs], dtype=float) for m in metrics}
            for name, recs in records.items()}


def interval_cell(iv: stats.Interval, scale: float = 100.0, signed: bool = True) -> str:
    """``+1.23 [-0.40, 2.90]`` (scaled; ``signed``: the estimate's sign always shown); the estimate
    alone without an interval (one seed), n/a without a value."""
    if not np.isfinite(iv.estimate):
        return "n/a"
    text = f"{scale * iv.estimate:{'+' if signed else ''}.2f}"
    if not (np.isfinite(iv.low) and np.isfinite(iv.high)):
        return text
    return f"{text} [{scale * iv.low:.2f}, {scale * iv.high:.2f}]"


def verdict(comparison: stats.Comparison) -> str:
    return comparison.verdict()


def paired_cells(name: str, comparison: stats.Comparison, baseline: str, compact: bool = False) -> list[str]:
    """The cells of one row of the paired table (the baseline's row: its IQM only). ``compact``
    (the terminal): P(improvement) without its interval and no verdict column."""
    iqm = interval_cell(comparison.iqm, signed=False)
    improvement = comparison.improvement
    if compact:
        improvement = stats.Interval(improvement.estimate, float("nan"), float("nan"))
    if name == baseline:
        cells = ["baseline"] * len(stats.HEADLINE) + [ABSENT, iqm, ABSENT]
    else:
        cells = [*(interval_cell(comparison.delta[m]) for m in stats.HEADLINE),
                 interval_cell(improvement, scale=1.0, signed=False), iqm, verdict(comparison)]
    return cells[:-1] if compact else cells


def verdict_sentence(comparisons: dict[str, stats.Comparison], baseline: str) -> str:
    """Which policies the interval of Δ fused accuracy calls better, worse or undecided."""
    parts = []
    for name, c in comparisons.items():
        if name == baseline:
            continue
        v = verdict(c)
        if v == stats.NO_VERDICT:
            parts.append(f"{name}: no verdict ({c.pairs} seed pair{'s' * (c.pairs != 1)}, fewer than "
                         f"{stats.MIN_SEEDS}: with so few seeds the bootstrap interval is too narrow to call a "
                         f"difference; run --seeds {stats.MIN_SEEDS} or more)")
            continue
        why = {"better": "its interval lies above 0", "worse": "its interval lies below 0"}.get(
            v, "its interval contains 0")
        parts.append(f"{name} is {v} ({why})")
    if not parts:
        return f"Only the baseline {baseline} was evaluated: nothing to compare."
    return (f"Test fused accuracy against {baseline}, paired over seeds: " + "; ".join(parts) + ".")


def paired_markdown(comparisons: dict[str, stats.Comparison], baseline: str, n_seeds: int) -> str:
    """The second results.md table: every policy against ``baseline`` on the same seeds."""
    lines = [f"## paired vs {baseline}", "", f"{n_seeds} seed(s), the same for every policy. {PAIRED_NOTE}", "",
             "| policy | " + " | ".join(PAIRED_COLUMNS) + " |", "|---|" + "---:|" * len(PAIRED_COLUMNS)]
    for name, c in comparisons.items():
        lines.append(f"| {name} | " + " | ".join(paired_cells(name, c, baseline)) + " |")
    return "\n".join([*lines, "", verdict_sentence(comparisons, baseline)]) + "\n"


def paired_terminal(comparisons: dict[str, stats.Comparison], baseline: str, n_seeds: int, title: str) -> Table:
    """The paired table for the terminal (:func:`paired_cells`' compact form, to fit 120
    columns): the verdict as the row's colour and in the caption."""
    table = Table(title=f"{title}: paired vs {baseline} ({n_seeds} seeds; points, {stats.CONFIDENCE:.0%} intervals)",
                  caption=verdict_sentence(comparisons, baseline), caption_justify="left")
    table.add_column("policy", overflow="fold")
    for header in PAIRED_COLUMNS[:-1]:
        table.add_column(header, justify="right", no_wrap=True)  # an interval on one line; the headers wrap
    styles = {"better": "green", "worse": "red"}
    for name, c in comparisons.items():
        style = None if name == baseline else styles.get(verdict(c))
        table.add_row(name, *paired_cells(name, c, baseline, compact=True), style=style)
    return table


def write_comparison_csv(path: Path, comparisons: dict[str, stats.Comparison], baseline: str) -> None:
    """One row per policy: ``delta_<metric>`` with ``_low``/``_high``, ``p_improvement`` and the
    IQM of the fused accuracy in % (points, as results.csv), P(improvement) as a probability;
    empty where there is no value."""
    def values(iv: stats.Interval, scale: float = 100.0) -> list[str]:
        return [f"{scale * v:.6g}" if np.isfinite(v) else "" for v in (iv.estimate, iv.low, iv.high)]

    first = stats.HEADLINE[0]
    header = ["policy", "baseline", "pairs", *(f"delta_{m}{s}" for m in stats.HEADLINE for s in ("", "_low", "_high")),
              "p_improvement", "p_improvement_low", "p_improvement_high",
              f"iqm_{first}", f"iqm_{first}_low", f"iqm_{first}_high", "verdict"]
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        for name, c in comparisons.items():
            w.writerow([name, baseline, c.pairs, *(v for m in stats.HEADLINE for v in values(c.delta[m])),
                        *values(c.improvement, 1.0), *values(c.iqm), "" if name == baseline else verdict(c)])


def _errorbars(ax: Axes, intervals: dict[int, stats.Interval], colors: dict[int, str]) -> None:
    """Horizontal error bars (in %) at rows y; a point alone where there is no interval (one seed)."""
    for y, iv in intervals.items():
        est, lo, hi = (100 * v for v in (iv.estimate, iv.low, iv.high))
        err = [[est - lo], [hi - est]] if np.isfinite(lo) and np.isfinite(hi) else None
        ax.errorbar([est], [y], xerr=err, fmt="o", color=colors[y], capsize=4, linewidth=2)


def plot_intervals(path: Path, comparisons: dict[str, stats.Comparison], baseline: str, title: str) -> Path:
    """One row per policy. Left: Δ test fused accuracy vs ``baseline`` with its interval (green
    above 0, red below, grey undecided) and a line at 0; right: the IQM with its interval."""
    first = stats.HEADLINE[0]
    names = list(comparisons)
    rows = {y: comparisons[n] for y, n in enumerate(names)}
    others = {y: c for y, c in rows.items() if names[y] != baseline}
    fig = Figure(figsize=(10, 1.4 + 0.45 * max(len(names), 2)), layout="constrained")
    left, right = fig.subplots(1, 2, sharey=True, gridspec_kw={"width_ratios": [3, 2]})
    _errorbars(left, {y: c.delta[first] for y, c in others.items()},
               {y: VERDICT_COLORS[verdict(c)] for y, c in others.items()})
    left.axvline(0.0, color="black", linewidth=1)
    left.text(0.0, names.index(baseline), " baseline", va="center", ha="left", fontsize=9)
    left.set(yticks=range(len(names)), yticklabels=names, ylim=(len(names) - 0.5, -0.5),
             xlabel=f"Δ test fused accuracy vs {baseline} (points)",
             title=f"paired difference, {stats.CONFIDENCE:.0%} interval")
    _errorbars(right, {y: c.iqm for y, c in rows.items()}, {y: "black" if names[y] == baseline else "C0" for y in rows})
    right.set(xlabel="IQM test fused accuracy (%)", title=f"interquartile mean, {stats.CONFIDENCE:.0%} interval")
    for ax in (left, right):
        ax.grid(alpha=0.3, axis="x")
    fig.suptitle(title)
    fig.savefig(path, dpi=120)
    return path


STEP_AXIS = "decision step (0 = before training)"
ACTION_AXIS = "decision step (1 = the first action, taken on the untrained model)"
ACTION_ROWS = [({"n/": "-"}, "n_j: samples per iteration"), ({"lambda": "-"}, "λ: curriculum proportion"),
               ({"sequence/": "-"}, "the epoch's sample sequence")]


def plot_episodes(out: Path, records: dict[str, list[Record]], env_id: str) -> list[Path]:
    """The episode plots of ``evaluate.py --policies`` and of ``train_agent.py``'s final
    comparison: ``val_acc.png``, ``actions.png`` (n_j or λ per decision step; for BSS also the
    epoch's sample sequence) and ``cmd.png`` (ŝ solid, d dashed). Returns the files written."""
    files = [plot_validation(out / "val_acc.png", records, STEP_AXIS, f"{env_id}: validation accuracy")]
    files.append(plot_per_policy(out / "actions.png", records, ACTION_ROWS, ACTION_AXIS,
                                 f"{env_id}: what the policy chose"))
    files.append(plot_per_policy(out / "cmd.png", records, [({"s_hat/": "-", "d/": "--"}, "ŝ, d")], STEP_AXIS,
                                 f"{env_id}: CMD ŝ (solid) and d (dashed) per modality"))
    return [f for f in files if f is not None]
