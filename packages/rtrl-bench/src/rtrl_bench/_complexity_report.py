"""The complexity study's report: markdown tables, fits beside the theory, PNG
plots, and ``complexity.json`` with the run's provenance (see ``_complexity``)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import rtrl_cells as rc

from ._complexity_config import (
    ARMS,
    METHODS,
    STEP,
    ComplexityResult,
    ComplexityRow,
    Fit,
    fmt_bytes,
)
from ._complexity_theory import fit_exponent, theory, trace_formula


def _cell_text(r: ComplexityRow) -> str:
    if r.status == "ok" and r.time_per_step_s is not None:
        return f"{r.time_per_step_s * 1e3:.3g} ms"
    if r.status == "over-budget":
        return f"skipped: {r.note}"
    if r.status == "not-timed":
        return "not timed"
    return f"failed ({r.note})"


def format_table(result: ComplexityResult) -> str:
    """Markdown: one row per (method, L, N); time per step and memory per stream."""
    lines = [
        "| method | L | N | T | time / step (B streams) | trace memory / stream | "
        "compiled temp / stream | estimate (batch) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in result.rows:
        temp = None if r.compiled_temp_bytes is None else r.compiled_temp_bytes / r.B
        lines.append(
            f"| {r.method} | {r.layers} | {r.N} | {r.T} | {_cell_text(r)} | "
            f"{fmt_bytes(r.trace_bytes) if r.trace_bytes else '0'} | "
            f"{fmt_bytes(temp)} | {fmt_bytes(r.estimated_bytes)} |"
        )
    return "\n".join(lines)


def format_fits(result: ComplexityResult) -> str:
    """Markdown: fitted exponents in ``N`` beside the theory."""
    by = {(f.method, f.layers, f.quantity): f for f in result.fits}
    pairs = list(dict.fromkeys((r.method, r.layers) for r in result.rows))

    def show(f: Fit | None) -> str:
        if f is None:
            return "-"
        last = "" if f.last_exponent is None else f" (last {f.last_exponent:.2f})"
        return f"{f.exponent:.2f}{last}"

    def th(x):
        return "-" if x is None else f"{x:g}"

    lines = [
        "| method | L | time exp. (fit, last pair) | theory | trace-memory exp. "
        "(counted) | compiled temp exp. | theory | formula |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for method, layers in pairs:
        mem_th, time_th, text = theory(method, layers, result.config)
        lines.append(
            f"| {method} | {layers} | {show(by.get((method, layers, 'time')))} | "
            f"{th(time_th)} | {show(by.get((method, layers, 'trace')))} | "
            f"{show(by.get((method, layers, 'compiled')))} | {th(mem_th)} | {text} |"
        )
    return "\n".join(lines)


def format_formula_check(result: ComplexityResult) -> str:
    """Markdown: counted and carried trace memory against the closed form."""
    lines = [
        "| method | L | N | formula entries | trace_size | carry arrays (bytes) | "
        "match |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in result.rows:
        if not ARMS[r.method].traces or r.carry_trace_bytes is None:
            continue
        formula = trace_formula(r.method, r.layers, r.N, r.D, result.config)
        match = r.trace_entries == formula and r.carry_trace_bytes == 4 * formula
        lines.append(
            f"| {r.method} | {r.layers} | {r.N} | {formula} | {r.trace_entries} | "
            f"{r.carry_trace_bytes} | {'yes' if match else 'NO'} |"
        )
    return "\n".join(lines)


def format_lengths(result: ComplexityResult) -> str:
    """Markdown: compiled temporaries against ``T`` with the fitted exponent."""
    if not result.lengths:
        return "(not run)"
    lines = ["| method | L | N | T | compiled temp (batch) |", "|---|---|---|---|---|"]
    for r in result.lengths:
        lines.append(
            f"| {r.method} | {r.layers} | {r.N} | {r.T} | "
            f"{fmt_bytes(r.compiled_temp_bytes)} |"
        )
    for method in dict.fromkeys(r.method for r in result.lengths):
        pts = [
            (r.T, r.compiled_temp_bytes) for r in result.lengths if r.method == method
        ]
        if len(pts) >= 2:
            slope = fit_exponent([p[0] for p in pts], [p[1] for p in pts])
            lines.append(f"\nGrowth exponent in T, {method}: {slope:.2f}")
    return "\n".join(lines)


def write_plots(result: ComplexityResult, out: Path) -> list[Path]:
    """One PNG per depth: time per step and memory per stream against ``N``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    for L in sorted({r.layers for r in result.rows}):
        fig, (ax_t, ax_m) = plt.subplots(1, 2, figsize=(11, 4.2))
        for method in METHODS:
            rs = sorted(
                (r for r in result.rows if r.layers == L and r.method == method),
                key=lambda r: r.N,
            )
            if not rs:
                continue
            ok = [r for r in rs if r.status == "ok"]
            timed = [
                (r.N, r.time_per_step_s * 1e3)
                for r in ok
                if r.time_per_step_s is not None
            ]
            if timed:
                ax_t.plot(
                    [n for n, _ in timed],
                    [t for _, t in timed],
                    "o-",
                    label=method,
                )
            if not ARMS[method].traces:
                pts = [
                    (r.N, r.compiled_temp_bytes / r.B / 1e6)
                    for r in ok
                    if r.compiled_temp_bytes
                ]
                label = f"{method} (compiled temp)"
            else:
                pts = [(r.N, r.trace_bytes / 1e6) for r in rs]
                label = method
            if pts:
                ax_m.plot([p[0] for p in pts], [p[1] for p in pts], "o-", label=label)
        for ax, ylabel in (
            (ax_t, f"time per step, ms (B={result.config.batch})"),
            (ax_m, "trace memory per stream, MB"),
        ):
            ax.set_xscale("log", base=2)
            ax.set_xticks(result.config.widths, [str(w) for w in result.config.widths])
            ax.minorticks_off()
            ax.set_yscale("log")
            ax.set_xlabel("width N")
            ax.set_ylabel(ylabel)
            ax.grid(True, which="both", alpha=0.3)
            if ax.get_legend_handles_labels()[0]:
                ax.legend(fontsize=8)
        fig.suptitle(
            f"L = {L} (D = {result.config.input_size}, B = {result.config.batch})"
        )
        fig.tight_layout()
        path = out / f"complexity_L{L}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        paths.append(path)
    return paths


def format_report(result: ComplexityResult) -> str:
    """The whole markdown report."""
    cfg = result.config
    return "\n\n".join(
        [
            "# Multi-layer RTRL complexity study",
            f"Stacks of L {rc.cell_kind(cfg.cell).cls.__name__} layers of width N, "
            f"input D = {cfg.input_size}; "
            f"gradient of a batch-summed loss over a rollout of T = {cfg.steps} "
            f"steps (T = {cfg.steps_for(f'exact-{STEP}')} for the per-step `*-step` "
            f"methods, whose cost per step does not depend on T), "
            f"B = {cfg.batch} vmapped streams, jitted, float32; median of "
            f"up to {cfg.rounds} interleaved runs after a warm-up, divided by T. "
            f"Budget {cfg.budget_gb:g} GB. The study took {result.seconds:.0f} s. "
            "`local` is the layer-local APPROXIMATION (own-layer traces only); "
            f"`dense-*` is one dense {rc.cell_kind(cfg.dense_cell).cls.__name__} "
            "with exact dense RTRL.",
            "## Time per step and memory per stream",
            format_table(result),
            "## Growth exponents in N, measured and in theory",
            "Theory is asymptotic in N with D fixed; at N <= D the N·D terms still "
            "weigh, so fitted slopes sit below it. 'last' is the slope between the "
            "two widest points. Trace memory is counted for every width (also "
            "those not timed).",
            format_fits(result),
            "## Trace memory against the formula",
            "Own blocks k_l·|θ_rec,l| per layer (ELSTM: 2N·D_l + 4N), plus a dense "
            "block N_l·k_l·|θ_m| for every m < l (all of θ_m; ELSTM: F, Z, w, b, "
            "O, W_o, b_o); a dense cell N·k·|θ| (GRU: k = 1 unit of N).",
            format_formula_check(result),
            "## Compiled memory against T (BPTT grows, per-step RTRL does not)",
            format_lengths(result),
            "## Plots",
            "\n".join(
                f"![L={L}](complexity_L{L}.png)"
                for L in sorted({r.layers for r in result.rows})
            ),
        ]
    )


def write_report(result: ComplexityResult, out: str | Path) -> dict[str, Path]:
    """Writes ``complexity.md``, ``complexity.json`` and the PNGs into ``out``."""
    import json

    from ._provenance import provenance

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    md = out / "complexity.md"
    md.write_text(format_report(result) + "\n")
    pngs = write_plots(result, out)
    js = out / "complexity.json"
    payload = {
        "config": dataclasses.asdict(result.config),
        "seconds": result.seconds,
        "rows": [dataclasses.asdict(r) for r in result.rows],
        "lengths": [dataclasses.asdict(r) for r in result.lengths],
        "fits": [dataclasses.asdict(f) for f in result.fits],
        # Versions, device and the git commit (with git_dirty: timings depend
        # on the engine, so a checkout with local changes says so).
        "provenance": provenance(),
    }
    js.write_text(json.dumps(payload, indent=2))
    return {"markdown": md, "json": js, **{p.stem: p for p in pngs}}
