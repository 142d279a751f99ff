"""The complexity study's theory: trace and parameter counts of stacks and dense
cells, the exponents the theory predicts, working-set estimates, and the fits of
measured growth against them (see ``_complexity``)."""

from __future__ import annotations

import functools
import math
import statistics
from collections.abc import Sequence

import rtrl_cells as rc

from ._complexity_config import ARMS, ComplexityConfig, ComplexityRow, Fit

_BYTES = 4  # float32
# The working set of a gradient call, in units of the batch's trace bytes: the
# carried traces, the new ones, and about three trace-sized temporaries (reverse
# pass cotangents, the dense update); fitted to memory_analysis() at small sizes.
_TRACE_FACTOR = 5
# Activations kept per stream, step, layer and unit (BPTT residuals, cotangents).
_ACT_FACTOR = 16


@functools.cache
def layer_counts(cell: str, N: int, D: int) -> tuple[int, int, int, int]:
    """One layer of the registered ``cell``, width ``N``, input ``D``, counted.

    Returns:
        ``(own trace entries, |theta|, state entries, output width)``: its own
        ``rtrl_cells.trace_size`` (``block_size x |theta_rec|``; ELSTM ``2ND +
        4N``, dense GRU ``N x |theta|``), all its parameters (ELSTM ``3ND + N^2 +
        5N``), ``num_units x block_size`` and ``output_size``.
    """
    import equinox as eqx
    import jax
    import jax.numpy as jnp

    layer = rc.cell_kind(cell).make(
        input_size=D, hidden_size=N, key=jax.random.PRNGKey(0), dtype=jnp.float32
    )
    params = sum(
        x.size for x in jax.tree.leaves(eqx.filter(layer, eqx.is_inexact_array))
    )
    state = layer.num_units * layer.block_size
    return rc.trace_size(layer), params, state, layer.output_size


def _stack_counts(
    cfg: ComplexityConfig | None, method: str, layers: int, N: int, D: int
):
    """``layer_counts`` of every layer a method runs, bottom first."""
    cfg = cfg or ComplexityConfig()
    if ARMS[method].structure == "dense":
        return [layer_counts(cfg.dense_cell, N, D)]
    out, width = [], D
    for _ in range(layers):
        out.append(layer_counts(cfg.cell, N, width))
        width = out[-1][3]
    return out


def trace_formula(
    method: str, layers: int, N: int, D: int, cfg: ComplexityConfig | None = None
) -> int:
    """Trace entries per stream that the theory predicts.

    Exact RTRL of ``L`` element-wise layers: every layer carries its own block,
    ``k_l |theta_rec,l|`` (ELSTM: ``2N D_l + 4N``), and layer ``l`` a dense
    ``N_l k_l x |theta_m|`` block for every layer ``m < l`` (all of ``theta_m``,
    output gate included, since it shapes layer ``m+1``'s input). The layer-local
    approximation keeps the own blocks only; BPTT keeps none; dense RTRL keeps
    ``N k x |theta|`` (the dense cell's own block).

    Args:
        cfg: the study's cells (default: ELSTM layers, a dense GRU).
    """
    arm = ARMS[method]
    if not arm.traces:
        return 0
    counts = _stack_counts(cfg, method, layers, N, D)
    own = sum(c[0] for c in counts)
    if arm.structure != "exact":
        return own
    cross = sum(
        counts[upper][2] * counts[m][1]
        for upper in range(1, len(counts))
        for m in range(upper)
    )
    return own + cross


# Asymptotic exponents in N with D fixed: (trace memory, time per step, formula),
# for ELSTM layers and a dense GRU (THEORY_CELLS), per study method and L > 1.
THEORY_CELLS = ("elstm", "gru")
_ONE = "N·D traces; N·D update, N² readout (W_o)"
_CROSS = "L(L+1)/2 blocks, cross N_l·|θ_m| ~ N²·D + N³"
THEORY: dict[tuple[str, bool], tuple[float | None, float, str]] = {
    ("exact-step", False): (1, 2, _ONE),
    ("exact-online", False): (1, 2, _ONE),
    ("exact-chunked", False): (1, 2, _ONE),
    ("exact-step", True): (
        3,
        3,
        _CROSS + "; N_l·|θ_m| = N³ per step with the diagonal recurrence used "
        "(this engine multiplies the dense N_l x N_l Jacobian: N²·|θ_m| = N⁴)",
    ),
    ("exact-online", True): (3, 3, _CROSS + "; as chunked"),
    ("exact-chunked", True): (
        3,
        3,
        _CROSS + "; N_l reverse passes x |θ| per step, + N⁴/T per segment",
    ),
    ("local", False): (1, 2, "= exact for one layer"),
    ("local", True): (2, 2, "own blocks only: 2ND + (L-1)·2N²; BPTT-like time"),
    ("bptt", False): (1, 2, "no traces; activations T·L·N (linear in T)"),
    ("bptt", True): (1, 2, "no traces; activations T·L·N (linear in T)"),
    ("dense-step", False): (3, 4, "dense RTRL: N·|θ| ~ N³ memory, N²·|θ| = N⁴ time"),
    ("dense-chunked", False): (3, 3, "N reverse passes x N² per step, + N⁴/T"),
}


def theory(
    method: str, layers: int, cfg: ComplexityConfig | None = None
) -> tuple[float | None, float | None, str]:
    """``(memory exponent, time exponent, formula)`` the theory predicts.

    Stated for ELSTM layers and a dense GRU; ``(None, None, ...)`` for other
    cells or a study method without a stated theory.
    """
    cfg = cfg or ComplexityConfig()
    key = (method, layers > 1)
    if (cfg.cell, cfg.dense_cell) != THEORY_CELLS or key not in THEORY:
        return None, None, "no closed form stated here"
    return THEORY[key]


def estimate_bytes(
    method: str,
    layers: int,
    N: int,
    D: int,
    T: int,
    B: int,
    cfg: ComplexityConfig | None = None,
) -> int:
    """A rough working set of one gradient call over ``B`` streams, in bytes.

    ``_TRACE_FACTOR`` trace-sized buffers per stream (carried, new, temporaries),
    activations ``T x L x N`` per stream, and the parameters with their gradients.
    """
    traces = trace_formula(method, layers, N, D, cfg)
    params = sum(c[1] for c in _stack_counts(cfg, method, layers, N, D))
    acts = T * layers * N * _ACT_FACTOR
    return _BYTES * (B * (_TRACE_FACTOR * traces + acts) + 3 * params)


def fit_exponent(xs: Sequence[float], ys: Sequence[float]) -> float:
    """Least-squares slope of ``log y`` against ``log x``."""
    lx = [math.log(x) for x in xs]
    ly = [math.log(y) for y in ys]
    mx, my = statistics.fmean(lx), statistics.fmean(ly)
    sxx = sum((a - mx) ** 2 for a in lx)
    return sum((a - mx) * (b - my) for a, b in zip(lx, ly, strict=True)) / sxx


def _fit(pts: list[tuple[int, float]], method, layers, quantity, th) -> Fit | None:
    pts = sorted(p for p in pts if p[1] is not None and p[1] > 0)
    if len(pts) < 2:
        return None
    xs, ys = [p[0] for p in pts], [p[1] for p in pts]
    last = fit_exponent(xs[-2:], ys[-2:])
    return Fit(method, layers, quantity, fit_exponent(xs, ys), last, len(pts), th)


def fit_all(
    rows: Sequence[ComplexityRow], cfg: ComplexityConfig | None = None
) -> list[Fit]:
    """Exponents in ``N`` of time, counted trace memory and compiled memory."""
    pairs = list(dict.fromkeys((r.method, r.layers) for r in rows))
    fits = []
    for method, layers in pairs:
        mine = [r for r in rows if (r.method, r.layers) == (method, layers)]
        mem_th, time_th, _ = theory(method, layers, cfg)
        ok = [r for r in mine if r.status == "ok"]
        candidates = [
            ("time", [(r.N, r.time_per_step_s) for r in ok], time_th),
            ("trace", [(r.N, float(r.trace_bytes)) for r in mine], mem_th),
            (
                "compiled",
                [
                    (
                        r.N,
                        None
                        if r.compiled_temp_bytes is None
                        else r.compiled_temp_bytes / r.B,
                    )
                    for r in ok
                ],
                mem_th if ARMS[method].traces else 1,
            ),
        ]
        for quantity, pts, th in candidates:
            f = _fit(pts, method, layers, quantity, th)
            if f is not None:
                fits.append(f)
    return fits
