"""Markdown report and PNG learning curves from a folder of ``rtrl-bench run`` results.

Every ``result.json`` under the folder is one variant and seed; the report groups
them by experiment and variant and gives, over seeds, the interquartile mean (IQM)
of the final greedy evaluation with a 95% percentile-bootstrap interval (the
method of rliable, Agarwal et al. 2021, for one task: resample the runs) when
there are 3 or more seeds, mean +- std, and every seed's score; one seed is shown
as one seed. It names the budget we ran, sets the paper's numbers and budgets
(from the package's reference data) beside ours where the experiment has them,
and lists runs that started but have no result (failed, killed or running).
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections import defaultdict
from pathlib import Path

import numpy as np

from ._reference import CITATION, reference_results
from ._run import RESULT_FILE


@dataclasses.dataclass(frozen=True)
class VariantSummary:
    """One variant of one experiment over its seeds.

    Attributes:
        experiment: the experiment's name.
        variant: the variant's name.
        metric: what the score measures.
        seeds: the number of seeds found.
        mean: mean final greedy score over seeds.
        std: standard deviation over seeds (0 for one seed).
        frames: the agent-step budget per seed (the largest if they differ).
        env_frames: the budget in environment frames (x action repeat).
        scores: the per-seed scores, in seed order.
        system: the reference data's system name for this variant, if any.
        iqm: interquartile mean over seeds (the mean of the middle half).
        ci_low: lower end of the 95% bootstrap interval of the IQM (``nan``
            with fewer than 3 seeds).
        ci_high: upper end of that interval.
    """

    experiment: str
    variant: str
    metric: str
    seeds: int
    mean: float
    std: float
    frames: int
    env_frames: int
    scores: tuple[float, ...]
    system: str | None
    iqm: float = float("nan")
    ci_low: float = float("nan")
    ci_high: float = float("nan")


def load_results(folder: str | Path) -> list[dict]:
    """Every ``result.json`` under ``folder``, by experiment, variant (registry
    order) and seed."""
    from ._experiments import EXPERIMENTS

    def order(r: dict) -> tuple:
        exp = EXPERIMENTS.get(r["experiment"])
        names = [v.name for v in exp.variants] if exp else []
        rank = names.index(r["variant"]) if r["variant"] in names else len(names)
        return (r["experiment"], rank, r["variant"], r["seed"])

    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(
            f"{folder} is not a folder: pass a --logdir of `rtrl-bench run`"
        )
    found = [_load_result(p) for p in sorted(folder.rglob(RESULT_FILE))]
    return sorted(found, key=order)


_REQUIRED = ("experiment", "variant", "seed", "metric", "score", "frames")


def _load_result(path: Path) -> dict:
    """One ``result.json``; a one-line ``ValueError`` naming it if it is damaged."""
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        where = f" at line {e.lineno}" if isinstance(e, json.JSONDecodeError) else ""
        raise ValueError(
            f"{path} is not valid JSON{where}: move it away (or run that run again "
            "with --resume) and report again."
        ) from None
    missing = [k for k in _REQUIRED if not isinstance(data, dict) or k not in data]
    if missing:
        raise ValueError(
            f"{path} is not a result of `rtrl-bench run` (no {missing[0]!r}): move "
            "it away and report again."
        )
    data.setdefault("env_frames", data["frames"])
    data.setdefault("curve", [])

    def number(x):
        return x is None or (isinstance(x, int | float) and not isinstance(x, bool))

    bad = next(
        (
            k
            for k, ok in (
                ("score", number(data["score"])),
                ("frames", isinstance(data["frames"], int)),
                ("seed", isinstance(data["seed"], int)),
                (
                    "curve",
                    isinstance(data["curve"], list)
                    and all(
                        isinstance(p, list) and len(p) == 2 and all(map(number, p))
                        for p in data["curve"]
                    ),
                ),
            )
            if not ok
        ),
        None,
    )
    if bad is not None:
        raise ValueError(
            f"{path} has a damaged {bad!r} ({str(data[bad])[:40]}): move it away (or "
            "run that run again with --resume) and report again."
        )
    return data


def _num(x) -> float:
    return float("nan") if x is None else float(x)


MIN_SEEDS_FOR_INTERVAL = 3
BOOTSTRAP_SAMPLES = 2000


def iqm(x: np.ndarray) -> float:
    """The interquartile mean: the mean of the middle half of the values (a
    quarter cut from each end, as ``scipy.stats.trim_mean(x, 0.25)``)."""
    x = np.sort(np.asarray(x, np.float64).ravel())
    cut = int(0.25 * len(x))
    return float(np.mean(x[cut : len(x) - cut]))


def bootstrap_interval(
    x: np.ndarray, statistic=iqm, confidence: float = 0.95, seed: int = 0
) -> tuple[float, float]:
    """Percentile-bootstrap interval of ``statistic`` over the runs ``x``.

    ``BOOTSTRAP_SAMPLES`` resamples of the runs with replacement (a fixed seed,
    so a report is reproducible); the interval holds the middle ``confidence``
    of the resampled statistics.
    """
    x = np.asarray(x, np.float64)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(x), size=(BOOTSTRAP_SAMPLES, len(x)))
    stats = np.array([statistic(x[i]) for i in idx])
    tail = (1 - confidence) / 2 * 100
    lo, hi = np.percentile(stats, [tail, 100 - tail])
    return float(lo), float(hi)


def summarise_results(results: list[dict]) -> list[VariantSummary]:
    """IQM, bootstrap interval, mean and std over seeds per (experiment,
    variant), in first-seen order."""
    groups: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for r in results:
        groups[(r["experiment"], r["variant"])].append(r)
    out = []
    for (exp, var), rs in groups.items():
        scores = np.array([_num(r["score"]) for r in rs])
        finite = scores[np.isfinite(scores)]
        lo = hi = float("nan")
        if len(finite) >= MIN_SEEDS_FOR_INTERVAL:
            lo, hi = bootstrap_interval(finite)
        out.append(
            VariantSummary(
                experiment=exp,
                variant=var,
                metric=rs[0]["metric"],
                seeds=len(rs),
                mean=float(np.mean(scores)),
                std=float(np.std(scores)) if len(rs) > 1 else 0.0,
                frames=max(int(r["frames"]) for r in rs),
                env_frames=max(int(r["env_frames"]) for r in rs),
                scores=tuple(float(s) for s in scores),
                system=rs[0].get("system"),
                iqm=iqm(finite) if len(finite) else float("nan"),
                ci_low=lo,
                ci_high=hi,
            )
        )
    return out


def _fmt(x: float, digits: int = 3) -> str:
    return "nan" if math.isnan(x) else f"{x:.{digits}g}"


def _frames(x: float) -> str:
    for unit, div in (("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if x >= div:
            return f"{x / div:.3g}{unit}"
    return f"{x:g}"


def _paper_rows(results: list[dict]) -> list[str]:
    ref = results[0].get("reference")
    if not ref:
        return []
    rows = reference_results(*ref)
    lines = [
        "",
        f"The paper's numbers for {ref[0]} {ref[1]} (Irie et al. 2024; budgets in "
        "environment frames):",
        "",
        "| system | M | frames | score | seeds | note |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        score = f"{r.mean:g}" + (f" +- {r.std:g}" if r.std is not None else "")
        lines.append(
            f"| {r.system} | {r.unroll or '-'} | {_frames(r.frames)} | {score} | "
            f"{r.seeds or '-'} | {r.note} |"
        )
    return lines


def _paper_beside(summary: VariantSummary, results: list[dict]) -> str:
    ref = results[0].get("reference")
    if not ref or not summary.system:
        return "-"
    m = results[0].get("unroll")
    rows = [r for r in reference_results(*ref) if r.system == summary.system]
    rows = [r for r in rows if m is None or r.unroll in (None, m)] or rows
    if not rows:
        return "-"
    r = rows[0]
    std = f" +- {r.std:g}" if r.std is not None else ""
    return f"{r.mean:g}{std} @ {_frames(r.frames)}"


def plot_curves(results: list[dict], path: str | Path) -> Path:
    """Training curve against frames, one line per variant.

    With several seeds the line is the mean over seeds and the shaded band its
    95% bootstrap interval (3+ seeds) or the range (2 seeds), labelled in the
    legend; one seed is drawn as that seed. Curves with few points carry
    markers, so a single report is a visible point.

    Args:
        results: the ``result.json`` payloads of one experiment.
        path: the PNG to write.

    Returns:
        The PNG's path.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    by_var: dict[str, list[dict]] = defaultdict(list)
    for r in results:
        by_var[r["variant"]].append(r)
    fig, ax = plt.subplots(figsize=(6.5, 4))
    for var, rs in by_var.items():
        curves = [np.asarray(r["curve"], float) for r in rs if r.get("curve")]
        if not curves:
            continue
        n = min(len(c) for c in curves)
        stack = np.stack([c[:n] for c in curves])
        x, y = stack[0, :, 0], stack[:, :, 1]
        marker = "o" if n <= 20 else None
        if len(curves) == 1:
            ax.plot(x, y[0], marker=marker, label=f"{var} (1 seed)")
            continue
        mean = np.nanmean(y, axis=0)
        (line,) = ax.plot(x, mean, marker=marker, label=f"{var}: mean of {len(curves)}")
        if len(curves) >= MIN_SEEDS_FOR_INTERVAL:
            lo, hi = np.array([bootstrap_interval(col, np.mean) for col in y.T]).T
            band = "95% bootstrap CI"
        else:
            lo, hi = np.nanmin(y, axis=0), np.nanmax(y, axis=0)
            band = "range"
        ax.fill_between(
            x, lo, hi, alpha=0.2, color=line.get_color(), label=f"{var}: {band}"
        )
    chance = results[0].get("chance")
    if chance is not None:
        ax.axhline(chance, color="grey", linestyle=":", label="chance")
    metric = results[0].get("curve_metric", "episode_return").replace("_", " ")
    ax.set_xlabel("frames (agent steps, all streams)")
    ax.set_ylabel(f"training {metric}")
    ax.set_title(results[0]["experiment"])
    ax.legend(fontsize="small")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _score_cell(s: VariantSummary) -> str:
    if s.seeds == 1:
        return f"{_fmt(s.scores[0])} (1 seed)"
    if math.isnan(s.ci_low):
        return f"{_fmt(s.iqm)} (too few seeds for an interval)"
    return f"{_fmt(s.iqm)} [{_fmt(s.ci_low)}, {_fmt(s.ci_high)}]"


def format_table(summaries: list[VariantSummary], results: list[dict]) -> str:
    """The markdown table of one experiment: ours beside the paper's."""
    metric = summaries[0].metric
    lines = [
        f"| variant | seeds | frames (ours) | greedy {metric}: IQM [95% CI] | "
        "mean +- std | per seed | paper (score @ frames) |",
        "|---|---|---|---|---|---|---|",
    ]
    for s in summaries:
        frames = _frames(s.frames)
        if s.env_frames != s.frames:
            frames += f" ({_frames(s.env_frames)} env frames)"
        spread = "-" if s.seeds == 1 else f"{_fmt(s.mean)} +- {_fmt(s.std, 2)}"
        lines.append(
            f"| {s.variant} | {s.seeds} | {frames} | {_score_cell(s)} | {spread} | "
            f"{', '.join(_fmt(x) for x in s.scores)} | {_paper_beside(s, results)} |"
        )
    return "\n".join(lines)


def unfinished_runs(folder: str | Path) -> list[Path]:
    """Run folders under ``folder`` that hold a ``config.json`` but no
    ``result.json``: failed, killed or still running."""
    return sorted(
        p.parent
        for p in Path(folder).rglob("config.json")
        if not (p.parent / RESULT_FILE).exists()
    )


def _missing_seeds(results: list[dict]) -> list[str]:
    out = []
    by_var: dict[str, set[int]] = defaultdict(set)
    for r in results:
        by_var[r["variant"]].add(int(r["seed"]))
    top = max(max(s) for s in by_var.values())
    for var, seeds in by_var.items():
        gone = sorted(set(range(top + 1)) - seeds)
        if gone:
            out.append(f"{var}: seed {', '.join(map(str, gone))}")
    return out


def _mixed_budgets(results: list[dict]) -> list[str]:
    by_var: dict[str, dict[int, int]] = defaultdict(dict)
    for r in results:
        by_var[r["variant"]][int(r["seed"])] = int(r["frames"])
    return [
        f"{var}: "
        + ", ".join(f"seed {s} {_frames(f)}" for s, f in sorted(seeds.items()))
        for var, seeds in by_var.items()
        if len(set(seeds.values())) > 1
    ]


def registry_differences(results: list[dict]) -> list[str]:
    """``"VARIANT: field: registry -> ran, ..."`` for each variant whose runs
    were made with another config than the registry gives at the same budget
    (overrides, ``--config``, ``--allow-config-change``), so that a report never
    passes an altered run off as the registered experiment."""
    import rtrl_agents as ra

    from ._experiments import UnknownExperimentError, get_experiment
    from ._run import run_config

    out: dict[str, str] = {}
    for r in results:
        recorded = r.get("config")
        if not isinstance(recorded, dict) or r["variant"] in out:
            continue
        try:
            exp = get_experiment(r["experiment"])
            (variant,) = [v for v in exp.variants if v.name == r["variant"]]
            registry = run_config(
                exp,
                variant,
                int(recorded.get("seed", r["seed"])),
                int(recorded.get("frames", r["frames"])),
                recorded.get("eval_every"),
            )
        except (UnknownExperimentError, ValueError, TypeError):
            out[r["variant"]] = "not in this version's registry"
            continue
        diff = ra.config_diff(ra.config_to_json(registry), recorded)
        if diff:
            out[r["variant"]] = ra.format_diff(diff)
    return [f"{name}: {text}" for name, text in out.items()]


def _provenance_line(prov: dict) -> str:
    source = prov.get("source")
    if source is None:  # results written before rtrl-bench 0.3
        commit = prov.get("git_commit")
        source = f"git checkout {commit[:12]}" if commit else "an unknown source"
    return (
        f"Produced with rtrl-bench {prov.get('versions', {}).get('rtrl-bench')} "
        f"({source}), jax {prov.get('versions', {}).get('jax')}, device "
        f"{prov.get('device')}."
    )


def write_report(folder: str | Path, out: str | Path | None = None) -> dict[str, Path]:
    """Writes the markdown report and one PNG per experiment.

    Args:
        folder: a log folder of ``rtrl-bench run`` (searched recursively).
        out: the markdown file (default ``folder/report.md``); PNGs go beside it.

    Returns:
        ``{"markdown": path, <experiment>: png path, ...}``.

    Raises:
        FileNotFoundError: no ``result.json`` under ``folder``.
    """
    results = load_results(folder)
    if not results:
        unfinished = unfinished_runs(folder)
        hint = (
            f" ({len(unfinished)} run(s) without a result, e.g. {unfinished[0]}: "
            "resume them with `rtrl-bench run ... --resume`)"
            if unfinished
            else ": run an experiment"
        )
        raise FileNotFoundError(f"no {RESULT_FILE} under {folder}{hint}")
    out = Path(out) if out is not None else Path(folder) / "report.md"
    by_exp: dict[str, list[dict]] = defaultdict(list)
    for r in results:
        by_exp[r["experiment"]].append(r)
    lines = [f"# rtrl-bench report: {folder}", ""]
    paths: dict[str, Path] = {}
    for exp, rs in by_exp.items():
        summaries = summarise_results(rs)
        png = plot_curves(rs, out.parent / f"{out.stem}_{exp}.png")
        paths[exp] = png
        lines += [f"## {exp}", "", rs[0].get("description", ""), ""]
        budgets = sorted({r["frames"] for r in rs})
        budget = " to ".join(
            _frames(b) for b in (budgets[0], budgets[-1])[: len(budgets)]
        )
        paper = rs[0].get("paper_frames")
        lines.append(
            f"Budget we ran: {budget} agent steps per seed"
            + (
                f" (the paper's: {_frames(paper)} environment frames)."
                if paper
                else "."
            )
        )
        if rs[0].get("chance") is not None:
            lines.append(f"Chance (memoryless policy): {rs[0]['chance']:g}.")
        lines += ["", format_table(summaries, rs), ""]
        lines.append(
            "IQM: interquartile mean over seeds; 95% CI: percentile bootstrap over "
            f"seeds ({BOOTSTRAP_SAMPLES} resamples), given with "
            f"{MIN_SEEDS_FOR_INTERVAL} or more seeds."
        )
        missing = _missing_seeds(rs)
        if missing:
            lines += ["", f"Missing seeds (no result): {'; '.join(missing)}."]
        mixed = _mixed_budgets(rs)
        if mixed:
            lines += [
                "",
                f"**Budgets differ between seeds** ({'; '.join(mixed)}): the "
                "scores above mix them and are not comparable.",
            ]
        deviations = sorted({d for r in rs for d in r.get("deviations") or ()})
        if deviations:
            lines += [
                "",
                "Deliberate deviations from the paper's released code that can move "
                "these numbers: " + "; ".join(deviations) + ".",
            ]
        altered = registry_differences(rs)
        if altered:
            lines += [
                "",
                f"**Not the registry's `{exp}`**: these variants ran with another "
                "config (registry -> ran): " + "; ".join(altered) + ".",
            ]
        lines += _paper_rows(rs)
        lines += ["", f"![learning curves]({png.name})", ""]
        lines += [_provenance_line(rs[0].get("provenance", {})), ""]
    unfinished = unfinished_runs(folder)
    if unfinished:
        lines += [
            "## Runs without a result",
            "",
            "These runs started but have no `result.json` (failed, killed or still "
            "running; `rtrl-bench run ... --resume` continues them):",
            "",
            *[f"- `{p}`" for p in unfinished],
            "",
        ]
    if any(r.get("reference") for r in results):
        lines += [f"Reference: {CITATION}", ""]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines))
    paths["markdown"] = out
    return paths
