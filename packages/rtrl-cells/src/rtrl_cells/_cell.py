"""The RTRL contract every cell shares: ``init_carry``, ``step``, ``unroll``."""

from __future__ import annotations

import abc
from typing import Any, ClassVar, Literal

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float

from . import _engine
from ._engine import Layout, LeafInfo, States, System, Traces

Method = Literal["online", "chunked", "bptt"]
METHODS: tuple[str, ...] = ("online", "chunked", "bptt")


class RTRLCarry(eqx.Module):
    """What one stream carries between calls: the state and its RTRL traces.

    Attributes:
        states: one array per state group (layer), shaped ``(units, block)``.
        traces: ``traces[g][j]``: sensitivity of group ``g``'s state to parameter
            leaf ``j`` (``None`` where it is structurally zero). Agents never need to
            look inside; they pass the carry back to the cell.
    """

    states: tuple[Array, ...]
    traces: tuple[tuple[Array | None, ...], ...]


def _stop(tree):
    return jax.tree.map(jax.lax.stop_gradient, tree)


class AbstractCell(eqx.Module):
    """A recurrent cell with exact real-time recurrent learning.

    Subclasses describe their recurrence through a few private hooks; this class
    derives the three gradient methods from them:

    - ``"online"``: a scan of :meth:`step`. The cell's parameter gradient is
      ``sum_t delta_t . E_t`` (exact RTRL); inputs get their one-step gradient.
    - ``"chunked"``: exact RTRL at BPTT cost. BPTT inside the segment plus
      ``lambda_0 . E_0`` for the carried traces; new traces from reverse passes.
    - ``"bptt"``: plain backpropagation through this segment only (truncated at its
      start). Traces are ignored and returned as they came.

    Differentiate any loss of the outputs with ``jax.grad`` / ``eqx.filter_grad``;
    the RTRL gradient arrives through ``jax.custom_vjp``. The returned carry is
    always outside the autodiff graph: nothing flows back into an earlier call.
    """

    # A stack replaces this with False for its layer-local approximation.
    _cross_layer: ClassVar[bool] = True

    @property
    @abc.abstractmethod
    def input_size(self) -> int:
        """Width of ``x_t``."""

    @property
    @abc.abstractmethod
    def output_size(self) -> int:
        """Width of ``y_t``."""

    # -- hooks ---------------------------------------------------------------------

    @abc.abstractmethod
    def _groups(self) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """``(units, blocks)`` of each state group."""

    @abc.abstractmethod
    def _leaf_infos(self) -> Any:
        """A pytree like ``eqx.filter(self, eqx.is_inexact_array)`` of LeafInfo."""

    @abc.abstractmethod
    def _init_state(self) -> States:
        """The state at the start of an episode (no parameter dependence)."""

    @abc.abstractmethod
    def _prepare(self, xs: Array) -> Any:
        """Work hoisted out of the time loop, for a whole segment ``(T, D)``."""

    @abc.abstractmethod
    def _core(self, s_tm1: States, pre_t: Any) -> States:
        """The recurrence: new state from the previous one and prepared input."""

    @abc.abstractmethod
    def _readout(self, s_t: States, x_t: Array) -> Array:
        """The output ``y_t`` from the new state and the input."""

    def _fast_trace_step(self, s_tm1, x_t, traces):
        """Optional hand-written online RTRL step; ``None`` uses the generic one."""
        return None

    _has_fast_path: ClassVar[bool] = False

    def _recompute(self, method: str) -> bool:
        """Whether an unrolled call of ``method`` recomputes each step on the way back.

        An unrolled call normally stores each step's intermediate values for its
        reverse passes. A cell whose step is cheaper to recompute than to store and
        read back answers ``True``, and then only the states are stored. ``"bptt"``
        makes one reverse pass and ``"chunked"`` / ``"online"`` two (the trace pass
        and the gradient's), so the answer may differ by method; ``rtrl-bench
        speed`` decides. Values do not depend on it.
        """
        return False

    # -- engine wiring -------------------------------------------------------------

    def _split(self):
        dyn, static = eqx.partition(self, eqx.is_inexact_array)
        params, treedef = jax.tree.flatten(dyn)
        return params, treedef, static

    def _layout(self) -> Layout:
        params, _, _ = self._split()
        infos = jax.tree.leaves(
            self._leaf_infos(), is_leaf=lambda x: isinstance(x, LeafInfo)
        )
        if len(infos) != len(params):
            raise TypeError(
                f"{type(self).__name__}._leaf_infos() describes {len(infos)} leaves "
                f"but the cell has {len(params)} parameter arrays."
            )
        units, blocks = self._groups()
        shapes = [p.shape for p in params]
        return Layout.build(units, blocks, infos, shapes, self._cross_layer)

    def _system(self, use_fast_path: bool = True) -> tuple[System, list[Array]]:
        params, treedef, static = self._split()

        def rebuild(ps):
            return eqx.combine(jax.tree.unflatten(treedef, ps), static)

        fast = None
        if use_fast_path and self._has_fast_path:

            def fast(ps, s_tm1, x_t, traces):
                return rebuild(ps)._fast_trace_step(s_tm1, x_t, traces)

        system = System(
            layout=self._layout(),
            init_state=self._init_state,
            prepare=lambda ps, xs: rebuild(ps)._prepare(xs),
            core=lambda ps, s, pre: rebuild(ps)._core(s, pre),
            fast_trace_step=fast,
        )
        return system, params

    # -- public contract -----------------------------------------------------------

    def init_carry(self) -> RTRLCarry:
        """The carry of one stream at the start of an episode: zero state, traces."""
        states = self._init_state()
        dtype = states[0].dtype
        return RTRLCarry(states, _engine.zeros_traces(self._layout(), dtype))

    def step(
        self, carry: RTRLCarry, x_t: Float[Array, " D"], reset_t: Bool[Array, ""]
    ) -> tuple[Float[Array, " O"], RTRLCarry]:
        """One step of online RTRL.

        Args:
            carry: from :meth:`init_carry` or the previous call.
            x_t: the input at this step, shape ``(input_size,)``.
            reset_t: true if ``x_t`` is the first observation of an episode; the
                state and the traces are reset before ``x_t`` is processed.

        Returns:
            ``(y_t, carry)``.
        """
        x_t = jnp.asarray(x_t)
        if x_t.shape != (self.input_size,):
            raise ValueError(
                f"{type(self).__name__}.step expected x_t of shape "
                f"({self.input_size},), got {x_t.shape}; batch streams with jax.vmap."
            )
        reset_t = _check_resets(jnp.asarray(reset_t), (), "reset_t")
        ys, carry = self.unroll(carry, x_t[None], reset_t[None], method="online")
        return ys[0], carry

    def unroll(
        self,
        carry: RTRLCarry,
        xs: Float[Array, "T D"],
        resets: Bool[Array, " T"],
        method: Method = "chunked",
    ) -> tuple[Float[Array, "T O"], RTRLCarry]:
        """Run the cell over a segment of ``T`` steps.

        Args:
            carry: from :meth:`init_carry` or the previous call.
            xs: inputs, shape ``(T, input_size)``.
            resets: bool, shape ``(T,)``; ``resets[t]`` is the ``reset_t`` of step t.
            method: ``"online"``, ``"chunked"`` (default) or ``"bptt"``.

        Returns:
            ``(ys, carry_T)`` with ``ys`` of shape ``(T, output_size)``.
        """
        if method not in METHODS:
            raise ValueError(
                f"unknown method {method!r}: expected one of {', '.join(METHODS)}."
            )
        xs = jnp.asarray(xs)
        if xs.ndim != 2 or xs.shape[1] != self.input_size:
            raise ValueError(
                f"{type(self).__name__}.unroll expected xs of shape "
                f"(T, {self.input_size}), got {xs.shape}; batch streams with jax.vmap."
            )
        resets = _check_resets(jnp.asarray(resets), (xs.shape[0],), "resets")
        self._check_carry(carry)
        system, params = self._system()
        s0, e0 = _stop(carry.states), _stop(carry.traces)
        if method == "bptt":
            states, s_T = _engine.run_bptt(
                system, params, xs, s0, resets, remat=self._recompute(method)
            )
            traces_T: Traces = e0
        elif method == "online" and xs.shape[0] == 1:
            # One step (``step``): advance the traces by the per-step recursion.
            states, s_T, traces_T = _engine.run_per_step(
                system, params, xs, s0, e0, resets
            )
        else:
            # Parameters are fixed within a call, so per-step RTRL's gradient
            # sum_t delta_t . E_t equals BPTT in the segment + lambda_0 . E_0:
            # computed that way, "online" costs what "chunked" costs. They differ
            # in what reaches the inputs.
            online = method == "online"
            states, s_T, traces_T = _engine.run_segment(
                system,
                params,
                xs,
                s0,
                e0,
                resets,
                input_grads="one-step" if online else "bptt",
                remat=self._recompute(method),
            )
        ys = jax.vmap(self._readout)(states, xs)
        return ys, RTRLCarry(_stop(s_T), _stop(traces_T))

    def _check_carry(self, carry: RTRLCarry) -> None:
        if not isinstance(carry, RTRLCarry):
            raise ValueError(
                f"expected an RTRLCarry from {type(self).__name__}.init_carry(), "
                f"got {type(carry).__name__}."
            )
        units, blocks = self._groups()
        want = [(n, k) for n, k in zip(units, blocks, strict=True)]
        got = [tuple(s.shape) for s in carry.states]
        if got != want:
            raise ValueError(
                f"carry does not belong to this {type(self).__name__}: state shapes "
                f"{got}, expected {want}; create it with cell.init_carry()."
            )


def _check_resets(resets: Array, shape: tuple[int, ...], name: str) -> Array:
    if resets.dtype != jnp.bool_:
        raise ValueError(
            f"{name} must be a bool array (true where an episode starts), "
            f"got dtype {resets.dtype}."
        )
    if resets.shape != shape:
        raise ValueError(f"{name} must have shape {shape}, got {resets.shape}.")
    return resets


def trace_size(cell: AbstractCell) -> int:
    """Number of RTRL trace entries one stream of ``cell`` carries."""
    return cell._layout().trace_size()


class AbstractElementwiseCell(AbstractCell):
    """A cell whose recurrence is block-diagonal: units of a few components each.

    The state has shape ``(num_units, block_size)``; unit ``i``'s next state depends
    on its own previous state and on the input, through parameters whose slice
    ``P[i]`` (leading axis ``num_units``) belongs to that unit alone. Exact RTRL for
    such a cell carries ``block_size * |theta_rec|`` numbers per stream, and the
    engine derives it from :meth:`project` and :meth:`core` by autodiff.

    A dense cell is the case ``num_units = 1``: one block holding the whole state,
    every parameter belonging to it (exact dense RTRL, O(N^4) per step).

    Subclasses list the fields that drive the recurrence in ``rec_fields``; the
    other array fields only shape the output and get ordinary gradients.
    """

    rec_fields: ClassVar[tuple[str, ...]]

    @property
    @abc.abstractmethod
    def num_units(self) -> int:
        """Number of independent units (blocks) of the state."""

    @property
    @abc.abstractmethod
    def block_size(self) -> int:
        """Components per unit."""

    @abc.abstractmethod
    def project(self, x_t: Array) -> Array:
        """Input projection (linear in the parameters' unit slices)."""

    @abc.abstractmethod
    def core(self, s_tm1: Array, u_t: Array) -> Array:
        """``s_t`` of shape ``(num_units, block_size)`` from ``s_{t-1}`` and ``u_t``."""

    @abc.abstractmethod
    def readout(self, s_t: Array, x_t: Array) -> Array:
        """``y_t`` from the new state and the input."""

    def _groups(self):
        return (self.num_units,), (self.block_size,)

    def _twins(self) -> dict[str, str]:
        """``{field: source}``: ``field``'s trace is a quarter turn of ``source``'s.

        For a two-component cell whose recurrence is complex-linear in the state
        and whose input enters as ``(B_re x, B_im x)``: then ``d h / d B_im = i
        d h / d B_re`` exactly, and the engine keeps only the source's trace (see
        ``LeafInfo.twin``). Empty by default.
        """
        return {}

    def _leaf_infos(self):
        dyn = eqx.filter(self, eqx.is_inexact_array)
        names = self._param_names()
        twins = {f: names.index(src) for f, src in self._twins().items()}
        return jax.tree_util.tree_map_with_path(
            lambda path, _: LeafInfo(
                0, path[0].name in self.rec_fields, twins.get(path[0].name)
            ),
            dyn,
        )

    def _dtype(self):
        return jax.tree.leaves(eqx.filter(self, eqx.is_inexact_array))[0].dtype

    def _init_state(self):
        return (jnp.zeros((self.num_units, self.block_size), self._dtype()),)

    def _prepare(self, xs):
        return jax.vmap(self.project)(xs)

    def _core(self, s_tm1, pre_t):
        return (self.core(s_tm1[0], pre_t),)

    def _readout(self, s_t, x_t):
        return self.readout(s_t[0], x_t)

    # Hand-written online RTRL, by field name: subclasses override
    # ``trace_step_by_name`` and set ``_has_fast_path = True``.
    def _fast_trace_step(self, s_tm1, x_t, traces):
        # ``trace_step_by_name`` indexes every trace's components as E[a]; the
        # engine stores them in the layout's form (see ``_engine``).
        layout = self._layout()
        k = self.block_size
        names = self._param_names()
        by_name = {
            n: None if e is None else _engine._components(e, k)
            for n, e in zip(names, traces[0], strict=True)
        }
        s_t, new = self.trace_step_by_name(s_tm1[0], x_t, by_name)
        out = (new.get(n) for n in names)
        return (s_t,), (
            tuple(None if e is None else _engine._pack(layout, 0, e) for e in out),
        )

    def trace_step_by_name(self, s_tm1, x_t, traces):
        raise NotImplementedError

    def _param_names(self) -> list[str]:
        dyn = eqx.filter(self, eqx.is_inexact_array)
        paths = jax.tree_util.tree_flatten_with_path(dyn)[0]
        return [path[0].name for path, _ in paths]


def default_dtype(dtype=None):
    """The dtype new parameters get: float64 under ``jax_enable_x64``, else float32."""
    if dtype is not None:
        return jnp.dtype(dtype)
    return jnp.zeros(()).dtype


def check_sizes(**sizes: int) -> None:
    """Raise a one-line ValueError unless every size is a positive int."""
    for name, value in sizes.items():
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise ValueError(f"{name} must be a positive int, got {value!r}.")
