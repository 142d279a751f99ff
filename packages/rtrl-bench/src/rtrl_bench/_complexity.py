"""``rtrl-bench complexity``: time and trace memory of RTRL against width and depth.

Irie et al. (ICLR 2024, section 5) note that exact RTRL stops being cheap when
element-wise layers are stacked: layer ``l`` reads all of layer ``l-1``'s output,
so ``d s_l / d theta_m`` (``m < l``) is dense, ``N_l x |theta_m|``, and ``L``
layers carry ``L(L+1)/2`` sensitivity blocks. This study measures that cost.

For stacks of ``L`` layers of width ``N`` (input width ``D`` fixed; ELSTM layers by
default, any registered element-wise cell with ``ComplexityConfig.cell``) it times
the gradient of a batch-summed loss over one rollout of ``T`` steps (vmapped batch
of ``B`` streams, jitted, float32; the function also returns the new carry, so
the trace update of ``"chunked"`` cannot be dropped as dead code) and divides the
median by ``T``. Methods:

- ``exact-step``: :class:`rtrl_cells.Stack`, exact RTRL as a streaming learner
  does it: a scan of ``cell.step`` with one gradient per step, accumulated (the
  per-step trace recursion; memory constant in ``T``);
- ``exact-online`` / ``exact-chunked``: the same stack, ``unroll`` with
  ``"online"`` / ``"chunked"`` (both exact; within one call ``"online"`` uses
  the segment schedule, BPTT in the segment plus ``lambda_0 . E_0``);
- ``local``: :class:`rtrl_cells.LayerLocalApproxStack` (``"chunked"``), the
  layer-local APPROXIMATION (own-layer traces only);
- ``bptt``: truncated BPTT over the rollout (no traces);
- ``dense-step`` / ``dense-chunked``: one dense cell (:class:`rtrl_cells.GRU` by
  default, ``ComplexityConfig.dense_cell``), exact dense RTRL (``L = 1`` only),
  per step or per segment.

The arms are built from rtrl-cells' gradient methods (:data:`ARMS`): an exact
method ``m`` gives ``exact-m``, a method that advances no traces is timed on its
own (``bptt``). The theory's exponents are stated for the default cells.

Trace memory per stream is counted from the layout (``rtrl_cells.trace_size``,
4 bytes an entry), checked against the arrays of a real carry, and set beside the
compiler's own account (``memory_analysis()`` temporaries). Before anything is
compiled its working set is estimated; a configuration over the budget is not run
and the table says how much it would need. Growth exponents in ``N`` are fitted
per (method, L) by log-log least squares and printed beside the theory.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import statistics
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import rtrl_cells as rc

#: A scan of ``cell.step``: exact RTRL one step at a time, as a streaming learner.
STEP = "step"


@dataclasses.dataclass(frozen=True)
class Arm:
    """What one study method runs.

    Attributes:
        structure: ``"exact"`` (:class:`rtrl_cells.Stack`), ``"local"``
            (:class:`rtrl_cells.LayerLocalApproxStack`) or ``"dense"`` (one dense
            cell).
        method: a gradient method's name (``unroll``), or :data:`STEP`.
    """

    structure: str
    method: str

    @property
    def traces(self) -> bool:
        """Whether it carries RTRL traces (BPTT does not)."""
        return self.method == STEP or rc.method(self.method).advances_traces


def _arms() -> dict[str, Arm]:
    arms = {f"exact-{STEP}": Arm("exact", STEP)}
    for m in rc.METHODS.values():
        if m.exact:
            arms[f"exact-{m.name}"] = Arm("exact", m.name)
    arms["local"] = Arm("local", rc.CHUNKED.name)
    for m in rc.METHODS.values():
        if not m.advances_traces:
            arms[m.name] = Arm("local", m.name)  # BPTT: the stack with fewest traces
    arms[f"dense-{STEP}"] = Arm("dense", STEP)
    arms[f"dense-{rc.CHUNKED.name}"] = Arm("dense", rc.CHUNKED.name)
    return arms


#: The study's methods, by name.
ARMS: dict[str, Arm] = _arms()
METHODS = tuple(ARMS)
WIDTHS = (32, 64, 128, 256)
LAYERS = (1, 2, 3)
_BYTES = 4  # float32
# The working set of a gradient call, in units of the batch's trace bytes: the
# carried traces, the new ones, and about three trace-sized temporaries (reverse
# pass cotangents, the dense update); fitted to memory_analysis() at small sizes.
_TRACE_FACTOR = 5
# Activations kept per stream, step, layer and unit (BPTT residuals, cotangents).
_ACT_FACTOR = 16


@dataclasses.dataclass(frozen=True)
class Entry:
    """One (method, depth) pair of the grid and the widest ``N`` timed for it.

    Attributes:
        method: one of :data:`METHODS`.
        layers: number of stacked layers ``L`` (1 for the dense GRU).
        max_width: widths above this get their memory counted but are not timed
            (to keep the default grid within minutes); ``None``: no cap.
    """

    method: str
    layers: int
    max_width: int | None = None

    def __post_init__(self):
        if self.method not in METHODS:
            raise ValueError(
                f"unknown method {self.method!r}: expected one of {', '.join(METHODS)}."
            )
        if self.layers < 1:
            raise ValueError(f"layers must be >= 1, got {self.layers}.")
        if ARMS[self.method].structure == "dense" and self.layers != 1:
            raise ValueError("the dense GRU is studied as a single layer (layers=1).")


def _entries(max_widths: dict[tuple[str, int], int | None]) -> tuple[Entry, ...]:
    return tuple(Entry(m, L, w) for (m, L), w in max_widths.items())


# The default grid finishes in about ten minutes on a 2-core CPU: the cheap
# methods run at every width; exact RTRL of deep stacks and dense RTRL stop where
# one call would take tens of seconds (their memory is still counted).
DEFAULT_ENTRIES = _entries(
    {
        ("bptt", 1): None,
        ("exact-step", 1): None,
        ("exact-chunked", 1): None,
        ("bptt", 2): None,
        ("local", 2): None,
        ("exact-step", 2): 128,
        ("exact-chunked", 2): 128,
        ("bptt", 3): None,
        ("local", 3): None,
        ("exact-step", 3): 128,
        ("exact-chunked", 3): 64,
        ("dense-step", 1): 128,
        ("dense-chunked", 1): 128,
    }
)
FULL_ENTRIES = _entries(
    {
        (m, L): None
        for m, arm in ARMS.items()
        for L in ((1,) if arm.structure == "dense" else LAYERS)
    }
)


@dataclasses.dataclass(frozen=True)
class ComplexityConfig:
    """What the study runs.

    Attributes:
        entries: the (method, L) pairs and their width caps.
        widths: hidden sizes ``N``.
        input_size: ``D``, the width of the first layer's input.
        steps: rollout length ``T``.
        stream_steps: rollout length of the ``*-step`` methods, whose cost per
            step does not depend on ``T`` (a shorter one keeps the grid short);
            ``None``: ``steps``.
        batch: streams ``B`` (vmapped).
        rounds: timed runs of each configuration (interleaved), after a warm-up;
            configurations slower than ``slow_s`` a call get ``min(rounds, 3)``.
        slow_s: see ``rounds``.
        budget_gb: configurations whose estimated working set exceeds this are
            not run; the table says what they would need.
        memory_lengths: rollout lengths of the compile-only memory-vs-T check
            (BPTT against online RTRL, ``L = 2``, ``N = memory_width``); empty to
            skip it.
        memory_width: ``N`` of that check.
        seed: PRNG seed of parameters and inputs.
        cell: the layers' cell, a registered element-wise cell
            (``rtrl_cells.CELLS``; the theory's exponents are stated for
            ``"elstm"``).
        dense_cell: the ``dense-*`` methods' cell, a registered dense cell (the
            theory's: ``"gru"``).
    """

    entries: tuple[Entry, ...] = DEFAULT_ENTRIES
    widths: tuple[int, ...] = WIDTHS
    input_size: int = 64
    steps: int = 100
    stream_steps: int | None = 20
    batch: int = 4
    rounds: int = 5
    slow_s: float = 2.0
    budget_gb: float = 4.0
    memory_lengths: tuple[int, ...] = (25, 100, 400)
    memory_width: int = 64
    seed: int = 0
    cell: str = "elstm"
    dense_cell: str = "gru"

    def steps_for(self, method: str) -> int:
        """The rollout length ``T`` a method is timed over."""
        if ARMS[method].method == STEP and self.stream_steps is not None:
            return self.stream_steps
        return self.steps

    def __post_init__(self):
        for name in ("input_size", "steps", "batch", "rounds", "memory_width"):
            value = getattr(self, name)
            if not isinstance(value, int) or value <= 0:
                raise ValueError(f"{name} must be a positive int, got {value!r}.")
        if self.stream_steps is not None and self.stream_steps <= 0:
            raise ValueError(f"stream_steps must be positive, got {self.stream_steps}.")
        if not self.widths or any(w <= 0 for w in self.widths):
            raise ValueError(f"widths must be positive ints, got {self.widths!r}.")
        if self.budget_gb <= 0:
            raise ValueError(f"budget_gb must be positive, got {self.budget_gb!r}.")
        for name, dense in (("cell", False), ("dense_cell", True)):
            names = [k for k, v in rc.CELLS.items() if v.dense == dense]
            if getattr(self, name) not in names:
                raise ValueError(
                    f"{name}={getattr(self, name)!r} must be a registered "
                    f"{'dense' if dense else 'element-wise'} cell: one of "
                    f"{', '.join(names)}."
                )


@dataclasses.dataclass(frozen=True)
class ComplexityRow:
    """One configuration: a method, a depth, a width.

    Attributes:
        method, layers, N, D, T, B: the configuration.
        status: ``"ok"`` (timed), ``"over-budget"`` (estimated working set above
            the budget; not run), ``"not-timed"`` (above the entry's width cap;
            memory counted only) or ``"failed"`` (the note says why).
        trace_entries: RTRL trace entries per stream (``rtrl_cells.trace_size``;
            0 for BPTT).
        trace_bytes: ``4 * trace_entries``.
        carry_trace_bytes: bytes of the trace arrays of a real carry (one stream);
            ``None`` where none was built.
        time_per_step_s: median time of one gradient call over ``B`` streams,
            divided by ``T``.
        runs: timed runs behind the median.
        compiled_temp_bytes: the compiler's temporaries for the whole batch.
        compiled_total_bytes: arguments + outputs + temporaries, whole batch.
        estimated_bytes: the working-set estimate used for the budget.
        note: why a row was not run, or what failed.
    """

    method: str
    layers: int
    N: int
    D: int
    T: int
    B: int
    status: str
    trace_entries: int
    trace_bytes: int
    carry_trace_bytes: int | None
    time_per_step_s: float | None
    runs: int
    compiled_temp_bytes: int | None
    compiled_total_bytes: int | None
    estimated_bytes: int
    note: str = ""


@dataclasses.dataclass(frozen=True)
class LengthRow:
    """Compiled memory of one method at one rollout length (no run).

    Attributes:
        method: ``"bptt"``, ``"exact-step"`` or ``"exact-online"``.
        layers, N, D, B: the configuration. T: rollout length.
        compiled_temp_bytes: temporaries of the jitted gradient, whole batch.
    """

    method: str
    layers: int
    N: int
    D: int
    T: int
    B: int
    compiled_temp_bytes: int


@dataclasses.dataclass(frozen=True)
class Fit:
    """A growth exponent in ``N`` of one (method, L) and one quantity.

    Attributes:
        method, layers: the pair.
        quantity: ``"time"`` (per step), ``"trace"`` (trace bytes per stream,
            counted) or ``"compiled"`` (compiled temporaries per stream).
        exponent: log-log least-squares slope over all points.
        last_exponent: slope between the two widest points (closest to the
            asymptote); ``None`` with fewer than two.
        points: number of widths fitted.
        theory: the asymptotic exponent the theory predicts (``D`` fixed).
    """

    method: str
    layers: int
    quantity: str
    exponent: float
    last_exponent: float | None
    points: int
    theory: float | None


@dataclasses.dataclass(frozen=True)
class ComplexityResult:
    """Everything one run of the study produced.

    Attributes:
        config: what was run.
        rows: one per (entry, width).
        lengths: the memory-vs-T check.
        fits: the fitted exponents.
        seconds: wall time of the study.
    """

    config: ComplexityConfig
    rows: tuple[ComplexityRow, ...]
    lengths: tuple[LengthRow, ...]
    fits: tuple[Fit, ...]
    seconds: float


# --- theory ---


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


# --- building and timing ---


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


def _fmt_bytes(n: float | None) -> str:
    if n is None:
        return "-"
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.3g} {unit}"
    return f"{n:.0f} B"


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
    trace_leaves = jax.tree.leaves(carry.traces)
    carry_trace_bytes = sum(x.nbytes for x in trace_leaves) // B if arm.traces else 0
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
        return jnp.sum(ys**2), (new if arm.traces else new.states)

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
    fields = dict(
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
                note=f"would need {_fmt_bytes(base.estimated_bytes)} "
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
            f"{_fmt_bytes(rows[prep.entry].trace_bytes)}/stream"
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


# --- fits ---


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


# --- the study ---


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
    if jax.config.jax_enable_x64:
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


# --- the report ---


def _cell_text(r: ComplexityRow) -> str:
    if r.status == "ok":
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
            f"{_fmt_bytes(r.trace_bytes) if r.trace_bytes else '0'} | "
            f"{_fmt_bytes(temp)} | {_fmt_bytes(r.estimated_bytes)} |"
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
            f"{_fmt_bytes(r.compiled_temp_bytes)} |"
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
            if ok:
                ax_t.plot(
                    [r.N for r in ok],
                    [r.time_per_step_s * 1e3 for r in ok],
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


def _uncommitted() -> list[str] | None:
    import subprocess

    try:
        out = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    return [line for line in out.splitlines() if line.strip()]


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
        "provenance": provenance(),
        # Timings depend on the engine: say if it differed from the commit.
        "uncommitted_changes": _uncommitted(),
    }
    js.write_text(json.dumps(payload, indent=2))
    return {"markdown": md, "json": js, **{p.stem: p for p in pngs}}
