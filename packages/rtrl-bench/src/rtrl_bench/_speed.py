"""``rtrl-bench speed``: the cost of each gradient method, measured side by side.

For each cell and size, the gradient of a batch-summed loss over one rollout is
timed for every gradient method of ``rtrl_cells.METHODS`` (``"bptt"``,
``"online"``, ``"chunked"``; vmapped batch, traces carried
in from a previous rollout, jitted, float32), with the forward pass alone as a
floor. ``"chunked-grad"`` is the chunked gradient without the new traces: what an
IMPALA-style learner (R2AC) computes, whose actors carry the traces forward with
online RTRL, so that its own are discarded. Methods are interleaved round by
round after a warm-up, and medians are reported with their ratio to ``"bptt"``,
so that the machine's noise hits every method alike.

``--ab SWITCH`` adds, for each engine workaround named
(``rtrl_cells.Workarounds``), the same methods with that switch off, interleaved
with the default in the same rounds: the A/B of each workaround, measured.

Memory is the compiler's own account of the jitted computation
(``memory_analysis()``: temporary buffers plus outputs, the inputs excluded since
every method reads the same rollout), for two uses of RTRL:

- ``online-step``: a streaming learner, one ``step`` and one gradient per time
  step, accumulated in a scan (what online RTRL is for; constant in T);
- ``online``: ``unroll(method="online")`` under ``jax.grad``, with the new carry
  (it stores every step for its reverse passes, so it grows with T);
- ``bptt``: ``unroll(method="bptt")`` under ``jax.grad``, with the new state.
"""

from __future__ import annotations

import dataclasses
import functools
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

import rtrl_cells as rc

#: The cells timed: every registered element-wise cell, each example option set
#: (dense cells are O(N^4) a step: the complexity study measures them).
CELLS = tuple(rc.cell_examples(dense=False))
CONFIGS = ((256, 257, 50, 32), (512, 257, 100, 32))
#: The timed columns: each gradient method (truncated BPTT first, the baseline of
#: the ratios), ``chunked-grad`` (the chunked gradient, its new traces dropped)
#: and ``forward`` (no gradient).
GRAD_ONLY = f"{rc.CHUNKED.name}-grad"
FORWARD = "forward"
METHODS = (
    *sorted(rc.METHODS, key=lambda name: rc.METHODS[name].exact),
    GRAD_ONLY,
    FORWARD,
)
MEMORY_LENGTHS = (10, 100, 1000)


@dataclasses.dataclass(frozen=True)
class SpeedRow:
    """Median time of one gradient method.

    Attributes:
        cell: cell name.
        N: hidden size. D: input size. T: rollout length. B: batch (streams).
        method: ``bptt``, ``chunked``, ``online``, ``chunked-grad`` (no new
            traces) or ``forward`` (no gradient).
        median_s: median wall time of one call, seconds.
        runs: timed runs.
        ratio_to_bptt: ``median_s / median_s(bptt)`` of the same cell, size and
            workarounds.
        workarounds: the engine workarounds switched off for this row (names
            joined by ``+``), or ``""`` for the default engine.
    """

    cell: str
    N: int
    D: int
    T: int
    B: int
    method: str
    median_s: float
    runs: int
    ratio_to_bptt: float
    workarounds: str = ""


@dataclasses.dataclass(frozen=True)
class MemoryRow:
    """Working memory of one use at one rollout length.

    Attributes:
        cell, N, D, B: as in SpeedRow. T: rollout length.
        use: ``online-step``, ``online`` or ``bptt``.
        bytes: temporary plus output bytes of the compiled computation.
        trace_bytes: bytes of the RTRL traces of the whole batch, for scale.
    """

    cell: str
    N: int
    D: int
    T: int
    B: int
    use: str
    bytes: int
    trace_bytes: int


def make_cell(name: str, N: int, D: int, key):
    """A float32 cell by its label in ``rtrl_cells.cell_examples()``."""
    import jax.numpy as jnp

    examples = rc.cell_examples()
    if name not in examples:
        raise ValueError(
            f"unknown cell {name!r}: expected one of {', '.join(examples)}."
        )
    return examples[name].make(input_size=D, hidden_size=N, key=key, dtype=jnp.float32)


def _problem(name: str, N: int, D: int, T: int, B: int, seed: int = 0):
    """A cell, a rollout and the batch's carry from a previous rollout."""
    import jax
    import jax.numpy as jnp

    key = jax.random.PRNGKey(seed)
    k_cell, k_x, k_prev = jax.random.split(key, 3)
    cell = make_cell(name, N, D, k_cell)
    xs = jax.random.normal(k_x, (B, T, D), jnp.float32)
    resets = jnp.zeros((B, T), bool)
    carry0 = jax.vmap(lambda _: cell.init_carry())(jnp.arange(B))
    prev = jax.random.normal(k_prev, (B, T, D), jnp.float32)
    advance = jax.jit(jax.vmap(lambda c, x, r: cell.unroll(c, x, r, rc.CHUNKED)[1]))
    carry = advance(carry0, prev, resets)
    return cell, xs, resets, carry


def gradient_fns(cell, method: str) -> Callable:
    """The jitted function timed for ``method``: a gradient, or the forward alone.

    It returns the gradient and what a learner carries on to the next rollout.
    For RTRL that is the new carry: a benchmark that dropped it would let the
    compiler skip the traces. For BPTT it is the new state alone: BPTT leaves the
    traces untouched, and returning them would make it copy them at every call
    (6 of 20 ms for the non-linear RTU at N = 256), flattering RTRL.
    ``"chunked-grad"`` returns the gradient alone: its learner (R2AC) discards
    its new traces, since its actors carry theirs, so XLA skips the trace update.
    """
    import equinox as eqx
    import jax
    import jax.numpy as jnp

    def loss(c, carry, xs, resets, m):
        ys, carry_T = jax.vmap(lambda k, x, r: c.unroll(k, x, r, m))(carry, xs, resets)
        return jnp.sum(ys**2), _carried(carry_T, m)

    if method == FORWARD:
        return eqx.filter_jit(lambda c, k, x, r: loss(c, k, x, r, rc.BPTT))
    if method == GRAD_ONLY:
        grad = eqx.filter_grad(lambda c, k, x, r: loss(c, k, x, r, rc.CHUNKED)[0])
        return eqx.filter_jit(grad)
    return eqx.filter_jit(
        eqx.filter_grad(lambda c, k, x, r: loss(c, k, x, r, method), has_aux=True)
    )


def _carried(carry_T, method: str):
    """What a learner keeps of an unroll's new carry (``carry.for_method``):
    BPTT needs only the state."""
    return carry_T.for_method(method)


def _block(tree: Any) -> None:
    import jax

    jax.block_until_ready(tree)


def time_methods(
    cell_name: str,
    N: int,
    D: int,
    T: int,
    B: int,
    methods: Sequence[str] = METHODS,
    runs: int = 7,
    warmup: int = 2,
    ab: Sequence[Sequence[str]] = (),
) -> list[SpeedRow]:
    """Interleaved timing of ``methods`` on one problem; medians and ratios.

    Args:
        ab: engine workarounds (``rtrl_cells.Workarounds`` names) to time
            switched off, each entry a set of names switched off together; every
            entry's methods run in the same rounds as the default engine's.

    Raises:
        ValueError: (one line) for an unknown workaround name.
    """
    variants = {"": {}}
    for names in ab:
        variants["+".join(names)] = dict.fromkeys(names, False)
    # Each variant's functions and carry are traced under its switches (the
    # switches are read at trace time; each variant has its own jitted functions).
    setups = {}
    for label, switches in variants.items():
        with rc.use_workarounds(**switches):
            cell, xs, resets, carry = _problem(cell_name, N, D, T, B)
            fns = {m: gradient_fns(cell, m) for m in methods}
        setups[label] = (switches, cell, xs, resets, carry, fns)

    def call(label: str, m: str) -> None:
        switches, cell, xs, resets, carry, fns = setups[label]
        with rc.use_workarounds(**switches):
            _block(fns[m](cell, carry, xs, resets))

    keys = [(v, m) for v in variants for m in methods]
    for _ in range(warmup):
        for v, m in keys:
            call(v, m)
    times: dict[tuple[str, str], list[float]] = {k: [] for k in keys}
    for r in range(runs):
        for k in keys if r % 2 == 0 else reversed(keys):
            t0 = time.perf_counter()
            call(*k)
            times[k].append(time.perf_counter() - t0)
    med = {k: statistics.median(ts) for k, ts in times.items()}
    rows = []
    for v, m in keys:
        base = med.get((v, rc.BPTT.name), float("nan"))
        rows.append(
            SpeedRow(cell_name, N, D, T, B, m, med[v, m], runs, med[v, m] / base, v)
        )
    return rows


def _compiled_bytes(fn, *args) -> int:
    compiled = fn.lower(*args).compile()
    analysis = compiled.memory_analysis()
    return int(analysis.temp_size_in_bytes + analysis.output_size_in_bytes)


def memory_rows(
    cell_name: str,
    N: int,
    D: int,
    B: int,
    lengths: Sequence[int] = MEMORY_LENGTHS,
) -> list[MemoryRow]:
    """Compiled working memory of online RTRL and BPTT at several lengths."""
    import equinox as eqx
    import jax
    import jax.numpy as jnp

    rows = []
    for T in lengths:
        cell, xs, resets, carry = _problem(cell_name, N, D, T, B)
        params, static = eqx.partition(cell, eqx.is_array)
        trace_bytes = 4 * B * rc.trace_size(cell)

        def unroll_grad(p, carry, xs, resets, method, static=static):
            # With the new carry, as in gradient_fns: else the trace update is dead
            # code and its memory goes uncounted.
            def loss(p):
                c = eqx.combine(p, static)
                ys, carry_T = jax.vmap(lambda k, x, r: c.unroll(k, x, r, method))(
                    carry, xs, resets
                )
                return jnp.sum(ys**2), _carried(carry_T, method)

            return jax.grad(loss, has_aux=True)(p)

        def online_steps(p, carry, xs, resets, static=static):
            # A streaming learner: one step and one gradient per time step.
            def body(acc, inp):
                carry, g_acc = acc
                x_t, r_t = inp

                def loss_t(p, carry=carry, x_t=x_t, r_t=r_t):
                    c = eqx.combine(p, static)
                    y, k = jax.vmap(c.step)(carry, x_t, r_t)
                    return jnp.sum(y**2), k

                g, carry = jax.grad(loss_t, has_aux=True)(p)
                g_acc = jax.tree.map(jnp.add, g_acc, g)
                return (carry, g_acc), None

            g0 = jax.tree.map(jnp.zeros_like, p)
            (carry, g), _ = jax.lax.scan(body, (carry, g0), (xs, resets))
            return g, carry

        uses = {
            # Time-major inputs, prepared outside: the scan reads them in place.
            f"{rc.ONLINE.name}-step": (
                jax.jit(online_steps),
                (params, carry, jnp.swapaxes(xs, 0, 1), resets.T),
            ),
            **{
                m.name: (
                    jax.jit(functools.partial(unroll_grad, method=m)),
                    (params, carry, xs, resets),
                )
                for m in (rc.ONLINE, rc.BPTT)
            },
        }
        for use, (fn, args) in uses.items():
            rows.append(
                MemoryRow(
                    cell_name, N, D, T, B, use, _compiled_bytes(fn, *args), trace_bytes
                )
            )
    return rows


def _markdown_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A markdown table: ``header``, its separator, then one line per row."""

    def line(cells: Sequence[object]) -> str:
        return "| " + " | ".join(map(str, cells)) + " |"

    return "\n".join([line(header), "|---" * len(header) + "|", *map(line, rows)])


def format_ab(rows: Sequence[SpeedRow]) -> str:
    """Each method's median with the default engine, and with each workaround off
    (its time and the ratio to the default: above 1, the workaround pays)."""
    variants = [v for v in dict.fromkeys(r.workarounds for r in rows) if v]
    keys = list(dict.fromkeys((r.cell, r.N, r.D, r.T, r.B, r.method) for r in rows))
    by = {(r.cell, r.N, r.D, r.T, r.B, r.method, r.workarounds): r for r in rows}
    table = []
    for k in keys:
        on = by[(*k, "")].median_s
        offs = [by[(*k, v)].median_s for v in variants]
        table.append(
            [*k, f"{1e3 * on:.1f}"]
            + [f"{1e3 * off:.1f} ({off / on:.2f})" for off in offs]
        )
    header = ["cell", "N", "D", "T", "B", "method", "default ms"]
    return _markdown_table(
        header + [f"{v} off ms (x default)" for v in variants], table
    )


def format_speed(rows: Sequence[SpeedRow]) -> str:
    rows = [r for r in rows if not r.workarounds]
    methods = list(dict.fromkeys(r.method for r in rows))
    keys = list(dict.fromkeys((r.cell, r.N, r.D, r.T, r.B) for r in rows))
    by = {(r.cell, r.N, r.D, r.T, r.B, r.method): r for r in rows}
    table = [
        [*k]
        + [
            f"{1e3 * by[(*k, m)].median_s:.1f} ({by[(*k, m)].ratio_to_bptt:.2f})"
            for m in methods
        ]
        for k in keys
    ]
    header = ["cell", "N", "D", "T", "B"] + [f"{m} ms (x bptt)" for m in methods]
    return _markdown_table(header, table)


def format_memory(rows: Sequence[MemoryRow]) -> str:
    uses = list(dict.fromkeys(r.use for r in rows))
    keys = list(dict.fromkeys((r.cell, r.N, r.D, r.B, r.T) for r in rows))
    by = {(r.cell, r.N, r.D, r.B, r.T, r.use): r for r in rows}
    table = [
        [*k, f"{by[(*k, uses[0])].trace_bytes / 2**20:.1f}"]
        + [f"{by[(*k, u)].bytes / 2**20:.1f}" for u in uses]
        for k in keys
    ]
    header = ["cell", "N", "D", "B", "T", "traces MB"] + [f"{u} MB" for u in uses]
    return _markdown_table(header, table)
