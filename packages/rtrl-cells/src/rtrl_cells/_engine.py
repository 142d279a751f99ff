"""The RTRL engine: one set of rules for every cell, derived by autodiff.

A recurrent *system* (one cell, or a stack of cells) has a state made of groups
``s[g]`` of shape ``(N_g, k_g)``: ``N_g`` units of ``k_g`` components each, where a
unit's next state depends only on its own previous state (block-diagonal
recurrence). A dense cell is the degenerate case of one unit holding the whole
state (``N = 1``). Every parameter leaf ``P`` has an owner group and a role:

- ``"rec"``: it drives its owner's recurrence, one slice ``P[i]`` per unit ``i``
  (leading axis ``N``), or the whole leaf when ``N = 1``.
- ``"out"``: it only shapes its owner's output (for a stack: the next layer's input).

Sensitivities (``traces``) ``E[g][P] = d s[g] / d P`` are kept in one of two forms:

- ``"diag"`` (a group and its own ``rec`` parameters), component-major
  ``(k_g, *P.shape)``: ``E[a][i, ...] = d s[i, a] / d P[i, ...]``. Nothing else is
  nonzero, so the memory is ``k_g * |P|``: O(parameters), no ``N x N x D`` tensor.
  Stored as one array; with the ``compact_traces`` workaround (on by default,
  see ``_workarounds``), a one-component trace (``k_g = 1``) drops the axis and
  has ``P``'s shape, and a trace of a few components per unit (``N_g > 1``,
  ``k_g <= 4``: LRU, RTU) is a tuple of ``k_g`` arrays of ``P``'s shape.
- ``"dense"`` (a group and the parameters of groups below it, in a stack):
  ``(N_g, k_g, *P.shape)``: the cross-layer blocks of exact multi-layer RTRL.

Rules (``lambda`` is an adjoint of the state, ``M = d s_T / d s_0``,
``G = d s_T / d theta`` with ``s_0`` held):

- gradient contribution of carried traces: ``sum_g lambda[g] . E[g]``;
- trace update over a segment: ``E_T = M E_0 + G``. For ``diag`` traces, ``M`` is
  block diagonal and both ``M`` and ``G`` come from ``k_g`` reverse passes with
  cotangent "component ``a`` of every unit" on ``s_T[g]``; for ``dense`` traces, from
  one reverse pass per state entry of the group.

The same rules serve a single step (:func:`run_per_step`, what ``step`` and a
streaming learner use) and whole segments (:func:`run_segment`: BPTT inside the
segment plus ``lambda_0 . E_0``, for "chunked", and for "online" with one-step input
gradients), as in DESIGN section 3.

How XLA is led to compute these rules on a given backend (storage forms,
optimization barriers, how batch sums are split) is set by switches
(:class:`~rtrl_cells._workarounds.Workarounds`) that never change a value; a
:class:`Layout` records the switches in force when it was built.
"""

from __future__ import annotations

import dataclasses
import functools
import operator
from collections.abc import Callable, Sequence
from typing import Any, cast

import jax
import jax.numpy as jnp
import numpy as np

from ._workarounds import Workarounds, workarounds

Array = jax.Array
States = tuple[Array, ...]
# One stored trace: an array, or for a split ``diag`` trace its components.
Trace = Array | tuple[Array, ...]
Traces = tuple[tuple[Trace | None, ...], ...]


@dataclasses.dataclass(frozen=True)
class LeafInfo:
    """Where one parameter leaf sits in a recurrent system.

    Attributes:
        owner: index of the state group (layer) the leaf belongs to.
        rec: whether the leaf drives its owner's recurrence (else output-only).
        twin: for a ``rec`` leaf of a two-component group, the index of a leaf
            whose own-group trace equals this one's after a quarter turn of every
            unit's components, ``E[j] = J E[twin]`` with ``J = [[0, -1], [1, 0]]``.
            That holds for the imaginary input matrix of a complex-linear
            recurrence ``h_t = lambda * h_{t-1} + gamma * (B_re + i B_im) x_t``
            (multiplying by ``i`` commutes with multiplying by ``lambda``). Such a
            leaf stores no trace: half the trace memory and work of the input
            matrices.
    """

    owner: int
    rec: bool
    twin: int | None = None


@dataclasses.dataclass(frozen=True)
class Layout:
    """Static description of a system's state groups and trace forms.

    Attributes:
        units: ``N_g`` per group.
        blocks: ``k_g`` per group.
        shapes: shape of every parameter leaf, in flattening order.
        owners: owner group of every parameter leaf.
        kinds: ``kinds[g][j]`` is ``"diag"``, ``"dense"``, ``"twin"`` (a ``diag``
            trace kept as a quarter turn of another leaf's, not stored) or ``None``
            (no trace).
        twins: per leaf, the leaf a ``"twin"`` trace turns (else ``None``).
        workarounds: the backend switches this layout was built under.
    """

    units: tuple[int, ...]
    blocks: tuple[int, ...]
    shapes: tuple[tuple[int, ...], ...]
    owners: tuple[int, ...]
    kinds: tuple[tuple[str | None, ...], ...]
    twins: tuple[int | None, ...] = ()
    workarounds: Workarounds = dataclasses.field(default_factory=Workarounds)

    @staticmethod
    def build(
        units: Sequence[int],
        blocks: Sequence[int],
        infos: Sequence[LeafInfo],
        shapes: Sequence[tuple[int, ...]],
        cross_layer: bool,
    ) -> Layout:
        for j, info in enumerate(infos):
            t = info.twin
            if t is None:
                continue
            if not (
                info.rec
                and 0 <= t < len(infos)
                and infos[t].twin is None
                and infos[t].rec
                and infos[t].owner == info.owner
                and tuple(shapes[t]) == tuple(shapes[j])
                and blocks[info.owner] == 2
            ):
                raise TypeError(
                    f"leaf {j} cannot be the twin of leaf {t}: twins are recurrent "
                    "leaves of the same two-component group, of the same shape."
                )
        kinds = []
        for g in range(len(units)):
            row: list[str | None] = []
            for info in infos:
                if g == info.owner and info.rec:
                    row.append("diag" if info.twin is None else "twin")
                elif g > info.owner and cross_layer:
                    row.append("dense")
                else:
                    row.append(None)
            kinds.append(tuple(row))
        owners = tuple(info.owner for info in infos)
        twins = tuple(info.twin for info in infos)
        return Layout(
            tuple(units),
            tuple(blocks),
            tuple(map(tuple, shapes)),
            owners,
            tuple(kinds),
            twins,
            workarounds(),
        )

    @property
    def num_groups(self) -> int:
        return len(self.units)

    def has_dense(self, g: int) -> bool:
        return "dense" in self.kinds[g]

    def has_diag(self, g: int) -> bool:
        return "diag" in self.kinds[g]

    def split(self, g: int) -> bool:
        """Whether group ``g``'s ``diag`` traces are stored as a tuple of components."""
        return (
            self.workarounds.compact_traces
            and self.units[g] > 1
            and 1 < self.blocks[g] <= _UNROLL_BLOCKS
        )

    def squeezed(self, g: int) -> bool:
        """Whether group ``g``'s ``diag`` traces are stored without their size-1
        component axis."""
        return self.workarounds.compact_traces and self.blocks[g] == 1

    def trace_shape(self, g: int, j: int) -> tuple[int, ...] | None:
        """The trace's shape (for a split trace: its components' stacked shape)."""
        kind = self.kinds[g][j]
        if kind == "diag":
            k = self.blocks[g]
            return self.shapes[j] if self.squeezed(g) else (k, *self.shapes[j])
        if kind == "dense":
            return (self.units[g], self.blocks[g], *self.shapes[j])
        return None

    def trace_size(self) -> int:
        """Number of trace entries per stream."""
        total = 0
        for g in range(self.num_groups):
            for j in range(len(self.shapes)):
                shape = self.trace_shape(g, j)
                if shape is not None:
                    total += int(np.prod(shape))
        return total


def zeros_traces(layout: Layout, dtype: Any) -> Traces:
    def zeros(g, j):
        shape = layout.trace_shape(g, j)
        if shape is None:
            return None
        if layout.kinds[g][j] == "diag" and layout.split(g):
            return tuple(jnp.zeros(shape[1:], dtype) for _ in range(shape[0]))
        return jnp.zeros(shape, dtype)

    return tuple(
        tuple(zeros(g, j) for j in range(len(layout.shapes)))
        for g in range(layout.num_groups)
    )


# Blocks this small are unrolled into element-wise products: XLA fuses them into
# one pass over the traces, where a dot with a contraction of 1 or 2 would not.
_UNROLL_BLOCKS = 4


def _components(layout: Layout, g: int, e: Any) -> Any:
    """A stored ``diag`` trace of group ``g`` as its components (by ``[a]``)."""
    return e[None] if layout.squeezed(g) else e


def _pack(layout: Layout, g: int, comps: Any) -> Any:
    """Components of a ``diag`` trace of group ``g`` in their stored form."""
    if layout.squeezed(g):
        return comps[0]
    if layout.split(g):
        return tuple(comps[a] for a in range(layout.blocks[g]))
    return _as_array(comps)


def _as_array(comps: Any) -> Array:
    """Components stacked into one ``(k, ...)`` array."""
    return comps if isinstance(comps, jax.Array) else jnp.stack(list(comps))


def _quarter_turn(e: Any) -> tuple[Array, Array]:
    """``J E`` for a two-component trace: ``(-E[1], E[0])``."""
    return (-e[1], e[0])


def _diag_trace(layout: Layout, traces: Traces, g: int, j: int) -> Any:
    """The components of an own-group trace, twins turned (else ``None``)."""
    kind = layout.kinds[g][j]
    if kind == "diag":
        return _components(layout, g, traces[g][j])
    if kind == "twin":
        twin = layout.twins[j]
        assert twin is not None  # a "twin" trace always names its source
        return _quarter_turn(traces[g][twin])
    return None


def _units(v: Array, ndim: int) -> Array:
    """A per-unit vector shaped to broadcast against a trace slice of ``ndim``."""
    return v.reshape(v.shape + (1,) * (ndim - 1))


def _diag_contract(lam: Array, e: Any, n_units: int) -> Array:
    """``sum_a lam[:, a] * E[a]`` for a dense cell's or a many-component trace.

    (Few-component traces of many units are contracted one component at a time
    in :func:`contract_parts`.)
    """
    if n_units == 1:
        return jnp.einsum("a,a...->...", lam[0], _as_array(e))
    return jnp.einsum("na,an...->n...", lam, _as_array(e))


def contract(
    layout: Layout, lam: States, traces: Traces, params: Sequence[Array]
) -> list[Array]:
    """Gradient ``sum_g lam[g] . E[g]`` for every parameter leaf."""
    parts = contract_parts(layout, lam, traces, params)
    return [
        functools.reduce(operator.add, leaves) for leaves in zip(*parts, strict=True)
    ]


def num_contract_parts(layout: Layout) -> int:
    """How many separately summed parts :func:`contract_parts` returns (one
    without the ``separate_batch_sums`` workaround)."""
    if not layout.workarounds.separate_batch_sums:
        return 1
    ks = [
        layout.blocks[g]
        for g in range(layout.num_groups)
        if layout.has_diag(g) and layout.units[g] > 1
    ]
    return max([k for k in ks if k <= _UNROLL_BLOCKS], default=1)


def contract_parts(
    layout: Layout, lam: States, traces: Traces, params: Sequence[Array]
) -> list[list[Array]]:
    """:func:`contract`, split by state component: ``parts[a][j]``.

    With the ``separate_batch_sums`` workaround, part ``a`` holds component ``a``
    of the few-component ``diag`` traces (``sum_g lam[g][:, a] * E[g][a]``) and
    part 0 also every other kind; each product gets its own copy of ``lam`` (an
    optimization barrier). Under ``vmap`` with shared parameters each part is
    then summed over the batch on its own, a single fused multiply-reduce: a sum
    of several products, or products sharing one broadcast of ``lam``, reduced
    over the batch in one piece is what XLA's CPU backend (YNNPACK reductions,
    jax 0.10) ran 10-20x below memory speed. Without it there is one part.
    """
    n_parts = num_contract_parts(layout)
    separate = layout.workarounds.separate_batch_sums
    parts = [[jnp.zeros_like(p) for p in params] for _ in range(n_parts)]
    for j in range(len(params)):
        for g in range(layout.num_groups):
            kind = layout.kinds[g][j]
            e: Any = traces[g][j]  # its stored form depends on its kind
            n, k = layout.units[g], layout.blocks[g]
            lam_g = lam[g]
            if kind == "twin":
                # lam . (J E) = (J^T lam) . E: the twin's own trace, never built.
                twin = layout.twins[j]
                assert twin is not None  # a "twin" trace always names its source
                kind, e = "diag", traces[g][twin]
                lam_g = jnp.stack([lam_g[:, 1], -lam_g[:, 0]], axis=-1)
            if kind == "diag":
                e = _components(layout, g, e)
            if kind == "diag" and n > 1 and k <= _UNROLL_BLOCKS:
                for a in range(k):
                    lam_a, e_a = lam_g[:, a], e[a]
                    if separate:
                        lam_a, e_a = jax.lax.optimization_barrier((lam_a, e_a))
                    part = a if separate else 0
                    parts[part][j] = parts[part][j] + _units(lam_a, e_a.ndim) * e_a
            elif kind == "diag":
                parts[0][j] = parts[0][j] + _diag_contract(lam_g, e, n)
            elif kind == "dense":
                parts[0][j] = parts[0][j] + jnp.tensordot(lam[g], e, axes=2)
    return parts


def reset_traces(traces: Traces, reset: Array) -> Traces:
    return jax.tree.map(lambda e: jnp.where(reset, jnp.zeros_like(e), e), traces)


# --- trace update from reverse passes -------------------------------------------


@dataclasses.dataclass(frozen=True)
class _Rows:
    """Which cotangent rows a trace update needs, and where they sit in the batch."""

    diag: tuple[int | None, ...]  # start row of the k_g "all units" rows, per group
    dense: tuple[int | None, ...]  # start row of the N_g * k_g one-hot rows, per group
    count: int


def _rows(layout: Layout) -> _Rows:
    diag, dense, n = [], [], 0
    for g in range(layout.num_groups):
        if layout.has_diag(g):
            diag.append(n)
            n += layout.blocks[g]
        else:
            diag.append(None)
        if layout.has_dense(g):
            dense.append(n)
            n += layout.units[g] * layout.blocks[g]
        else:
            dense.append(None)
    return _Rows(tuple(diag), tuple(dense), n)


def trace_cotangents(layout: Layout, dtype: Any) -> tuple[_Rows, States]:
    """Batched cotangents on the final state that recover ``M`` and ``G``."""
    rows = _rows(layout)
    cts = []
    for g in range(layout.num_groups):
        n, k = layout.units[g], layout.blocks[g]
        ct = np.zeros((rows.count, n, k))
        diag, dense = rows.diag[g], rows.dense[g]
        if diag is not None:
            for a in range(k):
                ct[diag + a, :, a] = 1.0
        if dense is not None:
            eye = np.eye(n * k).reshape(n * k, n, k)
            ct[dense : dense + n * k] = eye
        cts.append(jnp.asarray(ct, dtype))
    return rows, tuple(cts)


def _diag_propagate(m: Array, e: Any, n_units: int) -> Any:
    """``(M E)[a] = sum_b M[a, :, b] * E[b]`` with ``M`` block diagonal.

    Small blocks give a list of components (element-wise products, fused by
    XLA), others one ``(k, ...)`` array.
    """
    if n_units == 1:
        return jnp.einsum("ab,b...->a...", m[:, 0, :], _as_array(e))
    k = len(e)
    if k <= _UNROLL_BLOCKS:
        nd = e[0].ndim
        return [sum(_units(m[a, :, b], nd) * e[b] for b in range(k)) for a in range(k)]
    return jnp.einsum("anb,bn...->an...", m, _as_array(e))


def _dense_from_diag(r: Array, e: Any, n_units: int) -> Array:
    """Dense rows ``r[i, a, j, b]`` times a ``diag`` trace of the lower group."""
    e = _as_array(e)
    if n_units == 1:
        return jnp.einsum("iab,b...->ia...", r[:, :, 0, :], e)
    return jnp.einsum("iajb,bj...->iaj...", r, e)


def update_traces(
    layout: Layout,
    rows: _Rows,
    g_params: Sequence[Array],
    g_state: States,
    traces: Traces,
) -> Traces:
    """``E_T = M E_0 + G`` from the batched reverse passes.

    Args:
        layout: the system's layout.
        rows: the row bookkeeping returned by :func:`trace_cotangents`.
        g_params: per parameter leaf, the batch of parameter cotangents
            (``(rows.count, *shape)``).
        g_state: per group, the batch of initial-state cotangents
            (``(rows.count, N_h, k_h)``).
        traces: the traces at the start of the segment.
    """
    new = []
    for g in range(layout.num_groups):
        n, k = layout.units[g], layout.blocks[g]
        row = []
        for j in range(len(layout.shapes)):
            kind = layout.kinds[g][j]
            if kind == "diag":
                s = rows.diag[g]
                assert s is not None  # a group with diag traces has their rows
                M = g_state[g][s : s + k]  # (k, N, k): M[a, i, b]
                G = g_params[j][s : s + k]  # (k, *shape)
                E_0 = _components(layout, g, traces[g][j])
                M_E_0 = _diag_propagate(M, E_0, n)
                # E_T = M E_0 + G (component by component where unrolled)
                if isinstance(M_E_0, list):
                    E_T = [p + G[a] for a, p in enumerate(M_E_0)]
                else:
                    E_T = M_E_0 + G
                row.append(_pack(layout, g, E_T))
            elif kind == "dense":
                s = rows.dense[g]
                assert s is not None  # a group with dense traces has their rows
                gp = g_params[j][s : s + n * k].reshape(n, k, *layout.shapes[j])
                acc = gp
                for m_ in range(layout.owners[j], g + 1):
                    e_diag = _diag_trace(layout, traces, m_, j)
                    e0 = traces[m_][j] if e_diag is None else e_diag
                    if e0 is None:
                        continue
                    r = g_state[m_][s : s + n * k].reshape(
                        n, k, layout.units[m_], layout.blocks[m_]
                    )
                    if e_diag is not None:
                        acc = acc + _dense_from_diag(r, e_diag, layout.units[m_])
                    elif m_ == g:
                        # A group's own state Jacobian is block diagonal: unit i
                        # only feels its own past. O(N k^2) instead of O(N^2 k^2).
                        own = jnp.einsum("iaib->iab", r)
                        acc = acc + jnp.einsum("iab,ib...->ia...", own, e0)
                    else:
                        # Below the group, a leaf of a lower group: a dense trace.
                        e0 = cast(Array, e0)
                        acc = acc + jnp.tensordot(r, e0, axes=([2, 3], [0, 1]))
                row.append(acc)
            else:
                row.append(None)
        new.append(tuple(row))
    return tuple(new)


# --- the three methods ------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class System:
    """Pure functions of a recurrent system, over its flat parameter leaves.

    Attributes:
        layout: state groups and trace forms.
        init_state: ``() -> States``: the state an episode starts from.
        prepare: ``(params, xs) -> pre``: work hoisted out of the time loop (input
            projections of the first layer as one matmul over the whole segment).
        core: ``(params, s_tm1, pre_t) -> s_t``: the recurrence proper.
        fast_trace_step: optional hand-written ``(params, s_tm1, x_t, E_tm1) ->
            (s_t, E_t)`` for online RTRL; must equal the generic rule.
    """

    layout: Layout
    init_state: Callable[[], States]
    prepare: Callable[[list[Array], Array], Any]
    core: Callable[[list[Array], States, Any], States]
    fast_trace_step: Callable[..., tuple[States, Traces]] | None = None

    # One step, projection included: what online RTRL differentiates.
    def step(self, params: list[Array], s_tm1: States, x_t: Array) -> States:
        pre = self.prepare(params, x_t[None])
        return self.core(params, s_tm1, jax.tree.map(lambda p: p[0], pre))

    def reset_state(self, s: States, reset: Array) -> States:
        init = self.init_state()
        return tuple(jnp.where(reset, i, x) for i, x in zip(init, s, strict=True))

    def segment(
        self,
        params: list[Array],
        s0: States,
        xs: Array,
        resets: Array,
        remat: bool = False,
    ) -> tuple[States, States]:
        """Forward over a segment: ``(state sequence, final state)``."""
        return self.scan_core(params, s0, self.prepare(params, xs), resets, remat)

    def scan_core(
        self,
        params: list[Array],
        s0: States,
        pre: Any,
        resets: Array,
        remat: bool = False,
    ) -> tuple[States, States]:
        """The recurrence over prepared inputs: ``(state sequence, final state)``.

        With ``remat``, differentiating it stores only the state of each step and
        recomputes the rest of the step on the way back.
        """

        def body(s, inp):
            pre_t, reset_t = inp
            s = self.core(params, self.reset_state(s, reset_t), pre_t)
            return s, s

        if remat:
            body = jax.checkpoint(body, prevent_cse=False)
        s_T, states = jax.lax.scan(body, s0, (pre, resets))
        return states, s_T

    def generic_trace_step(
        self, params: list[Array], s_tm1: States, x_t: Array, traces: Traces
    ) -> tuple[States, Traces]:
        """One step of online RTRL from reverse passes of the one-step function."""
        s_t, vjp = jax.vjp(lambda p, s: self.step(p, s, x_t), params, s_tm1)
        rows, cts = trace_cotangents(self.layout, _dtype(s_t))
        g_params, g_state = jax.vmap(vjp)(cts)
        return s_t, update_traces(self.layout, rows, g_params, g_state, traces)

    def trace_step(
        self, params: list[Array], s_tm1: States, x_t: Array, traces: Traces
    ) -> tuple[States, Traces]:
        if self.fast_trace_step is not None:
            return self.fast_trace_step(params, s_tm1, x_t, traces)
        return self.generic_trace_step(params, s_tm1, x_t, traces)


def _by_component(g: Array) -> Array:
    """The ``contiguous_adjoints`` workaround: the adjoints ``(rows, T, ..., k)``
    of a projection, each of its few components materialised on its own (an
    optimization barrier) before the per-stream trace einsum ``sum_t g_t x_t^T``.

    Left to itself, XLA's CPU backend (jax 0.10) builds each einsum operand with
    one strided gather straight from the scan's time-stacked output. With the
    components materialised, it first copies them batch-major and contiguous,
    and the einsums and their copies got faster: ELSTM chunked at (256, 257, 50,
    32) went from 1.55x to 1.4x BPTT. Same values; the restacking is a copy.
    """
    if g.ndim < 3 or g.shape[-1] > _UNROLL_BLOCKS:
        return g
    comps = jax.lax.optimization_barrier([g[..., a] for a in range(g.shape[-1])])
    return jnp.stack(comps, axis=-1)


def _batched_vjp(vjp, cts):
    """``vmap(vjp)(cts)``, without the batch dimension when there is one row."""
    rows = jax.tree.leaves(cts)[0].shape[0]
    if rows == 1:
        out = vjp(jax.tree.map(lambda c: c[0], cts))
        return jax.tree.map(lambda g: g[None], out)
    return jax.vmap(vjp)(cts)


def _dtype(states: States):
    """The dtype of the state (the cotangents on it must match it)."""
    return jax.tree.leaves(states)[0].dtype


def _zeros_like_tree(tree):
    return jax.tree.map(jnp.zeros_like, tree)


def _parameter_copies(layout: Layout, params: list[Array]) -> tuple[list[Array], ...]:
    """With the ``separate_batch_sums`` workaround, one copy of the parameters per
    part of :func:`contract_parts`, for the carried traces' gradient to arrive on,
    so that under ``vmap`` each part is summed over the batch alone (JAX adds the
    copies' cotangents to the parameters'). Without it, none."""
    if not layout.workarounds.separate_batch_sums:
        return ()
    return tuple(list(params) for _ in range(num_contract_parts(layout)))


def _carried_gradient(
    layout: Layout,
    lam: States,
    traces: Traces,
    params: list[Array],
    copies: tuple[list[Array], ...],
) -> tuple[list[Array] | None, tuple[list[Array], ...]]:
    """``lam . E``, the carried traces' gradient, as the cotangents of a custom
    VJP: ``(for the parameters, for the copies)``. With copies
    (:func:`_parameter_copies`) each part goes to its copy and nothing to the
    parameters; without, the one part goes to the parameters."""
    parts = tuple(contract_parts(layout, lam, traces, params))
    if copies:
        return None, parts
    return parts[0], ()


def run_segment(
    system: System,
    params: list[Array],
    xs: Array,
    s0: States,
    traces0: Traces,
    resets: Array,
    *,
    input_grads: str = "bptt",
    new_traces: str = "reverse",
    remat: bool = False,
) -> tuple[States, States, Traces]:
    """Exact RTRL for a segment with fixed parameters, at the cost of BPTT.

    Parameter gradient: BPTT inside the segment plus ``lambda_0 . E_0``, which
    equals ``sum_t delta_t . E_t`` (per-step RTRL) exactly. New traces
    ``E_T = M E_0 + G`` from reverse passes with cotangent "component ``a`` of every
    unit" on ``s_T``; the input matrices' part is one einsum of pre-activation
    adjoints with the inputs, never a per-step trace write. (Or, with
    ``new_traces="per-step"``, by the per-step recursion: what a single step uses.)

    The hoisted input projection stays outside the custom VJP, so that under
    ``vmap`` its weight gradient is one contraction over batch and time (rather
    than one per stream, summed afterwards).

    Args:
        input_grads: ``"bptt"``: inputs get BPTT gradients inside the segment
            ("chunked"); ``"one-step"``: each input gets the gradient through its own
            step only, the state before it held ("online").
        new_traces: ``"reverse"``: the new traces from reverse passes over the
            segment; ``"per-step"``: from the per-step recursion
            (:meth:`System.trace_step`, a cell's hand-written fast path if any).
        remat: store only the states and recompute each step on the way back.
    """
    layout = system.layout
    one_step = input_grads == "one-step"
    per_step = new_traces == "per-step"
    switches = layout.workarounds
    # With one-step input gradients, the projection's BPTT cotangent must reach
    # the weights but not the inputs; the inputs get theirs inside.
    pre = system.prepare(params, jax.lax.stop_gradient(xs) if one_step else xs)
    copies = _parameter_copies(layout, params)

    def forward(params, pre, xs, s0, traces0, resets):
        (states, s_T), vjp = jax.vjp(
            lambda p, q, s: system.scan_core(p, s, q, resets, remat), params, pre, s0
        )
        if per_step:
            traces_T = _per_step_traces(system, params, xs, s0, traces0, resets)
            return (states, s_T, traces_T), vjp
        rows, cts = trace_cotangents(layout, _dtype(s_T))
        zero_states = _zeros_like_tree(states)
        g_core, g_pre, g_state = _batched_vjp(lambda ct: vjp((zero_states, ct)), cts)
        # The projection's part of the traces: one einsum per stream, by autodiff
        # of the (linear) projection; its forward value is unused and dropped.
        _, vjp_prep = jax.vjp(lambda p: system.prepare(p, xs), params)
        if switches.contiguous_adjoints:
            g_pre = jax.tree.map(_by_component, g_pre)
        (g_proj,) = _batched_vjp(vjp_prep, g_pre)
        # M = d s_T / d s_0 (g_state) and G = d s_T / d theta (g_params), from
        # the reverse passes; the new traces are E_T = M E_0 + G.
        g_params = [a + b for a, b in zip(g_core, g_proj, strict=True)]
        traces_T = update_traces(layout, rows, g_params, g_state, traces0)
        return (states, s_T, traces_T), vjp

    @jax.custom_vjp
    def run(params, pre, xs, s0, traces0, resets, copies):
        return forward(params, pre, xs, s0, traces0, resets)[0]

    def fwd(params, pre, xs, s0, traces0, resets, copies):
        out, vjp = forward(params, pre, xs, s0, traces0, resets)
        return out, (vjp, params, xs, s0, traces0, resets, out[0])

    def bwd(res, cts):
        vjp, params, xs, s0, traces0, resets, states = res
        ct_states = cts[0]
        # The gradient: BPTT inside the segment, plus lambda_0 . E_0.
        g_params, g_pre, lam0 = vjp((ct_states, _zeros_like_tree(s0)))
        on_params, carried = _carried_gradient(layout, lam0, traces0, params, copies)
        if on_params is not None:
            g_params = [a + b for a, b in zip(g_params, on_params, strict=True)]
        g_xs = None
        if one_step:
            g_xs = _one_step_input_grads(
                system, params, xs, s0, resets, states, ct_states
            )
        # The carry is data, not a path for gradients: nothing reaches it.
        return g_params, g_pre, g_xs, None, None, None, carried

    run.defvjp(fwd, bwd)
    return run(params, pre, xs, s0, traces0, resets, copies)


def _one_step_input_grads(system, params, xs, s0, resets, states, ct_states):
    """Gradient of each ``x_t`` through its own step, ``s_{t-1}`` held."""
    s_prev = jax.tree.map(lambda a, b: jnp.concatenate([a[None], b[:-1]]), s0, states)
    s_prev = jax.vmap(system.reset_state)(s_prev, resets)
    pre, vjp_pre = jax.vjp(lambda x: system.prepare(params, x), xs)

    def local(s, pre_t, delta_t):
        _, vjp_in = jax.vjp(lambda q: system.core(params, s, q), pre_t)
        return vjp_in(delta_t)[0]

    g_pre = jax.vmap(local)(s_prev, pre, ct_states)
    return vjp_pre(g_pre)[0]


def _per_step_traces(system, params, xs, s0, traces0, resets) -> Traces:
    """The traces after a segment, advanced step by step (``E_t`` every step)."""

    def body(carry, inp):
        s, e = carry
        x_t, reset_t = inp
        s = system.reset_state(s, reset_t)
        e = reset_traces(e, reset_t)
        return system.trace_step(params, s, x_t, e), None

    (_, traces_T), _ = jax.lax.scan(body, (s0, traces0), (xs, resets))
    return traces_T


def run_per_step(
    system: System,
    params: list[Array],
    xs: Array,
    s0: States,
    traces0: Traces,
    resets: Array,
) -> tuple[States, States, Traces]:
    """Per-step RTRL: ``E_t`` advanced every step (the cell's fast path if any).

    What ``step`` (a streaming learner, PPO's single-step samples) runs. The new
    traces come from the per-step recursion; inputs get one-step gradients. The
    parameter gradient ``sum_t delta_t . E_t`` is computed as
    :func:`run_segment` computes it, BPTT inside the segment plus
    ``lambda_0 . E_0`` (equal, since the parameters are fixed): the backward
    pass reads the carried traces once and never writes a new trace, so a
    learner that discards the new carry (a PPO minibatch of stored carries)
    never builds one per sample.
    """
    return run_segment(
        system,
        params,
        xs,
        s0,
        traces0,
        resets,
        input_grads="one-step",
        new_traces="per-step",
    )


def run_bptt(
    system: System,
    params: list[Array],
    xs: Array,
    s0: States,
    resets: Array,
    remat: bool = False,
    carry_gradient: bool = False,
) -> tuple[States, States]:
    """Truncated BPTT: plain autodiff through this segment, cut at its start
    (unless ``carry_gradient``: then the gradient reaches ``s0``).

    With ``remat``, the reverse pass recomputes each step from the stored states.
    """
    if not carry_gradient:
        s0 = jax.lax.stop_gradient(s0)
    return system.segment(params, s0, xs, resets, remat)


def _attach_traces(layout: Layout, params, s0: States, traces0: Traces) -> States:
    """``s0``, as if a function of the parameters with Jacobian ``traces0``:
    a cotangent ``mu`` on it reaches the parameters as ``mu . E_0``.

    With the ``separate_batch_sums`` workaround, each part of
    :func:`contract_parts` arrives on its own copy of the parameters (as in
    :func:`run_segment`), so that under ``vmap`` each is summed over the batch
    alone.
    """
    copies = _parameter_copies(layout, params)

    @jax.custom_vjp
    def attach(params, copies, s0, traces0):
        return s0

    def fwd(params, copies, s0, traces0):
        return s0, (params, traces0)

    def bwd(res, mu):
        params, traces0 = res
        on_params, on_copies = _carried_gradient(layout, mu, traces0, params, copies)
        return on_params, on_copies, None, None

    attach.defvjp(fwd, bwd)
    return attach(params, copies, s0, traces0)


def states_before(
    system: System,
    params: list[Array],
    xs: Array,
    s0: States,
    traces0: Traces,
    resets: Array,
) -> States:
    """The state before each step ``t`` of the segment, ``before[t]``
    (``before[0] = s0``, the given one), as functions of the parameters whose
    Jacobians are the RTRL traces the carry before step ``t`` holds
    (``traces0`` attached to ``s0``).

    A vector-Jacobian product with cotangents ``cts`` is ``sum_t cts[t] .
    d before[t] / d theta``: one reverse pass over the segment plus ``mu .
    traces0`` (``mu`` that pass's adjoint of ``s0``); no trace is formed per
    step. Inputs are
    constants. Each step's intermediate values are stored, never recomputed:
    a learner takes the VJP once and applies it to every minibatch
    (recomputing them made a PPO minibatch's term 2.3x slower for the eLSTM,
    1.2x for the non-linear RTU).
    """
    xs = jax.lax.stop_gradient(xs)
    s0 = _attach_traces(system.layout, params, jax.lax.stop_gradient(s0), traces0)
    states, _ = system.segment(params, s0, xs, resets)
    return jax.tree.map(lambda a, b: jnp.concatenate([a[None], b[:-1]]), s0, states)
