"""The complexity study's measurement: builds each method's cell, compiles and
times its gradient, reads the compiler's memory account (see ``_complexity``)."""

from __future__ import annotations

import dataclasses
import statistics
import time
from collections.abc import Sequence
from typing import Any

import rtrl_cells as rc

from ._complexity_config import (
    ARMS,
    STEP,
    ComplexityConfig,
    ComplexityResult,
    ComplexityRow,
    Entry,
    LengthRow,
    fmt_bytes,
)
from ._complexity_theory import _BYTES, estimate_bytes, fit_all, trace_formula


def make_cell(
    method: str, layers: int, N: int, D: int, key, cfg: ComplexityConfig | None = None
):
    """The cell a method runs: a stack of ``layers`` cells, or one dense cell."""
    import jax

    cfg = cfg or ComplexityConfig()
    arm = ARMS[method]
    if arm.structure == "dense":
        return rc.cell_kind(cfg.dense_cell).make(input_size=D, hidden_size=N, key=key)
    keys = jax.random.split(key, layers)
    cells, width = [], D
    for i in range(layers):
        cells.append(
            rc.cell_kind(cfg.cell).make(input_size=width, hidden_size=N, key=keys[i])
        )
        width = cells[-1].output_size
    if arm.structure == "local":
        return rc.LayerLocalApproxStack(cells)
    return rc.Stack(cells)


def unroll_method(method: str) -> str:
    """The ``unroll`` method behind a study method (``"step"``: a scan of ``step``)."""
    return ARMS[method].method


@dataclasses.dataclass(frozen=True)
class _Prepared:
    entry: Entry
    N: int
    fn: Any
    args: tuple
    trace_entries: int
    carry_trace_bytes: int | None
    temp: int | None
    total: int | None


def _nbytes(tree: Any) -> int:
    import jax

    return sum(x.nbytes for x in jax.tree.leaves(tree))


def _prepare(entry: Entry, N: int, cfg: ComplexityConfig):
    """Builds, compiles and measures one configuration's jitted gradient."""
    import equinox as eqx
    import jax
    import jax.numpy as jnp

    D, T, B = cfg.input_size, cfg.steps_for(entry.method), cfg.batch
    key = jax.random.fold_in(jax.random.PRNGKey(cfg.seed), N)
    k_cell, k_x = jax.random.split(key)
    arm = ARMS[entry.method]
    cell = make_cell(entry.method, entry.layers, N, D, k_cell, cfg)
    params, static = eqx.partition(cell, eqx.is_inexact_array)
    carry = jax.vmap(lambda _: cell.init_carry())(jnp.arange(B))
    # The traces' bytes in a real carry: all of it less what BPTT keeps.
    state_only = carry.for_method(rc.BPTT)
    carry_trace_bytes = (_nbytes(carry) - _nbytes(state_only)) // B if arm.traces else 0
    xs = jax.random.normal(k_x, (B, T, D), jnp.float32)
    resets = jnp.zeros((B, T), bool)
    m = unroll_method(entry.method)

    def loss(p, carry, xs, resets):
        c = eqx.combine(p, static)
        ys, new = jax.vmap(lambda k, x, r: c.unroll(k, x, r, method=m))(
            carry, xs, resets
        )
        # BPTT advances only the state; the RTRL methods' new traces are returned
        # so that their update is part of the timed work.
        return jnp.sum(ys**2), (new if arm.traces else new.for_method(rc.BPTT))

    def streaming(p, carry, xs, resets):
        # A fully online learner: one step, one gradient, every time step.
        def loss_t(p, k, x_t, r_t):
            c = eqx.combine(p, static)
            y, k = jax.vmap(c.step)(k, x_t, r_t)
            return jnp.sum(y**2), k

        def body(acc, inp):
            k, g = acc
            g_t, k = jax.grad(loss_t, has_aux=True)(p, k, *inp)
            return (k, jax.tree.map(jnp.add, g, g_t)), None

        zeros = jax.tree.map(jnp.zeros_like, p)
        steps = (jnp.swapaxes(xs, 0, 1), jnp.swapaxes(resets, 0, 1))
        (k, g), _ = jax.lax.scan(body, (carry, zeros), steps)
        return g, k

    fn = jax.jit(streaming if m == STEP else jax.grad(loss, has_aux=True))
    args = (params, carry, xs, resets)
    compiled = fn.lower(*args).compile()
    temp = total = None
    analysis = compiled.memory_analysis()
    if analysis is not None:
        temp = int(analysis.temp_size_in_bytes)
        total = int(
            analysis.temp_size_in_bytes
            + analysis.argument_size_in_bytes
            + analysis.output_size_in_bytes
        )
    entries = rc.trace_size(cell) if arm.traces else 0
    return _Prepared(entry, N, compiled, args, entries, carry_trace_bytes, temp, total)


def _call(prep: _Prepared) -> float:
    import jax

    t0 = time.perf_counter()
    jax.block_until_ready(prep.fn(*prep.args))
    return time.perf_counter() - t0


def _base_row(entry: Entry, N: int, cfg: ComplexityConfig, **kw) -> ComplexityRow:
    D, T, B = cfg.input_size, cfg.steps_for(entry.method), cfg.batch
    entries = trace_formula(entry.method, entry.layers, N, D, cfg)
    fields: dict[str, Any] = dict(
        method=entry.method,
        layers=entry.layers,
        N=N,
        D=D,
        T=T,
        B=B,
        status="ok",
        trace_entries=entries,
        trace_bytes=_BYTES * entries,
        carry_trace_bytes=None,
        time_per_step_s=None,
        runs=0,
        compiled_temp_bytes=None,
        compiled_total_bytes=None,
        estimated_bytes=estimate_bytes(entry.method, entry.layers, N, D, T, B, cfg),
    )
    fields.update(kw)
    return ComplexityRow(**fields)


def _measure_width(
    N: int, entries: Sequence[Entry], cfg: ComplexityConfig, log
) -> list[ComplexityRow]:
    """All entries at one width: compile, warm up, then interleaved timed rounds."""
    budget = cfg.budget_gb * 1e9
    rows: dict[Entry, ComplexityRow] = {}
    preps: list[_Prepared] = []
    for entry in entries:
        base = _base_row(entry, N, cfg)
        if base.estimated_bytes > budget:
            rows[entry] = dataclasses.replace(
                base,
                status="over-budget",
                note=f"would need {fmt_bytes(base.estimated_bytes)} "
                f"> budget {cfg.budget_gb:g} GB",
            )
            log(f"  skip {entry.method} L={entry.layers} N={N}: {rows[entry].note}")
            continue
        if entry.max_width is not None and entry.max_width < N:
            rows[entry] = dataclasses.replace(
                base,
                status="not-timed",
                note=f"above this grid's cap N <= {entry.max_width} (--full times it)",
            )
            continue
        try:
            prep = _prepare(entry, N, cfg)
        except Exception as e:
            rows[entry] = dataclasses.replace(
                base, status="failed", note=f"{type(e).__name__}: {str(e)[:120]}"
            )
            continue
        if prep.trace_entries != base.trace_entries:
            rows[entry] = dataclasses.replace(
                base,
                status="failed",
                note=f"trace_size {prep.trace_entries} != formula {base.trace_entries}",
            )
            continue
        preps.append(prep)
    # Warm-up (and a first timing, to decide how many rounds a slow one gets).
    times: dict[int, list[float]] = {}
    target: dict[int, int] = {}
    alive = []
    for i, prep in enumerate(preps):
        try:
            first = _call(prep)
        except Exception as e:
            rows[prep.entry] = _base_row(
                prep.entry,
                N,
                cfg,
                status="failed",
                note=f"{type(e).__name__}: {str(e)[:120]}",
            )
            continue
        times[i] = []
        target[i] = min(cfg.rounds, 3) if first > cfg.slow_s else cfg.rounds
        alive.append(i)
    for r in range(cfg.rounds):
        order = alive if r % 2 == 0 else list(reversed(alive))
        for i in order:
            if len(times[i]) < target[i]:
                times[i].append(_call(preps[i]))
    for i in alive:
        prep = preps[i]
        med = statistics.median(times[i])
        rows[prep.entry] = _base_row(
            prep.entry,
            N,
            cfg,
            carry_trace_bytes=prep.carry_trace_bytes,
            time_per_step_s=med / cfg.steps_for(prep.entry.method),
            runs=len(times[i]),
            compiled_temp_bytes=prep.temp,
            compiled_total_bytes=prep.total,
        )
        log(
            f"  {prep.entry.method:>13} L={prep.entry.layers} N={N:<4} "
            f"{med / cfg.steps_for(prep.entry.method) * 1e3:9.3f} ms/step  traces "
            f"{fmt_bytes(rows[prep.entry].trace_bytes)}/stream"
        )
    return [rows[e] for e in entries]


def _length_rows(cfg: ComplexityConfig) -> list[LengthRow]:
    """Compiled temporaries of BPTT and online RTRL at several ``T`` (L=2)."""
    out = []
    N = cfg.memory_width
    for T in cfg.memory_lengths:
        sub = dataclasses.replace(cfg, steps=T, stream_steps=T)
        for method in (rc.BPTT.name, f"exact-{STEP}", f"exact-{rc.ONLINE.name}"):
            entry = Entry(method, 2)
            if estimate_bytes(method, 2, N, cfg.input_size, T, cfg.batch, cfg) > (
                cfg.budget_gb * 1e9
            ):
                continue
            try:
                prep = _prepare(entry, N, sub)
            except Exception:
                continue
            if prep.temp is not None:
                out.append(
                    LengthRow(method, 2, N, cfg.input_size, T, cfg.batch, prep.temp)
                )
    return out


def run_complexity(cfg: ComplexityConfig | None = None, log=print) -> ComplexityResult:
    """Runs the study: every entry at every width, then the memory-vs-T check.

    Args:
        cfg: what to run (default: the grid that takes about ten minutes on a
            2-core CPU).
        log: called with one line of progress at a time.

    Returns:
        The rows, the length check and the fitted exponents.
    """
    import jax

    cfg = cfg or ComplexityConfig()
    if jax.config.read("jax_enable_x64"):
        raise ValueError("the complexity study runs in float32; disable jax_enable_x64")
    t0 = time.perf_counter()
    rows: list[ComplexityRow] = []
    for N in cfg.widths:
        log(f"N = {N}")
        rows += _measure_width(N, cfg.entries, cfg, log)
    lengths = _length_rows(cfg) if cfg.memory_lengths else []
    fits = fit_all(rows, cfg)
    return ComplexityResult(
        cfg, tuple(rows), tuple(lengths), tuple(fits), time.perf_counter() - t0
    )
