"""The RTRL contract every cell shares: ``init_carry``, ``step``, ``unroll``."""

from __future__ import annotations

import abc
import dataclasses
from typing import TYPE_CHECKING, Any, ClassVar, dataclass_transform

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float

from . import _engine
from ._engine import Layout, LeafInfo, States, System, Traces
from ._methods import ONLINE, GradientMethod
from ._methods import method as resolve_method


class RTRLCarry(eqx.Module):
    """What one stream carries between calls: the state and its RTRL traces.

    Attributes:
        states: one array per state group (layer), shaped ``(units, block)``.
        traces: ``traces[g][j]``: sensitivity of group ``g``'s state to parameter
            leaf ``j`` (``None`` where it is structurally zero). Agents never need to
            look inside; they pass the carry back to the cell.
    """

    states: tuple[Array, ...]
    traces: Traces

    @property
    def has_traces(self) -> bool:
        """Whether this carry holds traces (not one kept for ``"bptt"`` only)."""
        return bool(self.traces)

    def for_method(self, method: str | GradientMethod) -> RTRLCarry:
        """What an unroll of ``method`` reads of this carry.

        Methods that advance traces read all of it; truncated BPTT reads the
        states alone, so this returns a carry without traces (``unroll`` with
        ``"bptt"`` takes it and returns one without traces). A learner that
        stores a carry per step stores this: the traces only where RTRL needs
        them.

        Args:
            method: a gradient method or its name (see ``rtrl_cells.METHODS``).
        """
        if resolve_method(method).advances_traces:
            return self
        return RTRLCarry(self.states, ())

    def with_traces_from(self, other: RTRLCarry) -> RTRLCarry:
        """These states with ``other``'s traces.

        A caller that steps the state alone (``"bptt"``) from a carry kept with
        :meth:`for_method` puts the untouched traces back with this, so that a
        jitted step need not return (and copy) traces it never changed.
        """
        return RTRLCarry(self.states, other.traces)


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

    @property
    def exact_traces(self) -> bool:
        """Whether the carried traces are the exact sensitivities ``d s / d
        theta`` of the state (not for the layer-local approximation), which
        :meth:`states_before` stands in for."""
        return self._cross_layer

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

    def _fast_trace_step(self, s_tm1: States, x_t: Array, traces: Traces):
        """A hand-written online RTRL step, used when :attr:`_has_fast_path`."""
        raise NotImplementedError

    @property
    def _has_fast_path(self) -> bool:
        """Whether online RTRL steps use :meth:`_fast_trace_step`."""
        return False

    def _recompute(self, method: GradientMethod) -> bool:
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

            def fast_trace_step(ps, s_tm1, x_t, traces):
                return rebuild(ps)._fast_trace_step(s_tm1, x_t, traces)

            fast = fast_trace_step

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
        ys, carry = self.unroll(carry, x_t[None], reset_t[None], method=ONLINE)
        return ys[0], carry

    def unroll(
        self,
        carry: RTRLCarry,
        xs: Float[Array, "T D"],
        resets: Bool[Array, " T"],
        method: str | GradientMethod = "chunked",
    ) -> tuple[Float[Array, "T O"], RTRLCarry]:
        """Run the cell over a segment of ``T`` steps.

        Args:
            carry: from :meth:`init_carry` or the previous call.
            xs: inputs, shape ``(T, input_size)``.
            resets: bool, shape ``(T,)``; ``resets[t]`` is the ``reset_t`` of step t.
            method: ``"online"``, ``"chunked"`` (default) or ``"bptt"``, an alias
                of one (``"rtrl-online"``, ``"rtrl"``, ``"tbptt"``) or a
                :class:`GradientMethod` (see :data:`METHODS`).

        Returns:
            ``(ys, carry_T)`` with ``ys`` of shape ``(T, output_size)``.

        Raises:
            ValueError: (one line) for an unknown method, inputs or resets of the
                wrong shape or dtype, or a carry of another cell.
        """
        m = resolve_method(method)
        xs = jnp.asarray(xs)
        if xs.ndim != 2 or xs.shape[1] != self.input_size:
            raise ValueError(
                f"{type(self).__name__}.unroll expected xs of shape "
                f"(T, {self.input_size}), got {xs.shape}; batch streams with jax.vmap."
            )
        resets = _check_resets(jnp.asarray(resets), (xs.shape[0],), "resets")
        self._check_carry(carry)
        if m.advances_traces and not carry.has_traces:
            raise ValueError(
                f"method {m.name!r} advances RTRL traces but this carry holds none "
                f"(it was kept for 'bptt' with carry.for_method); pass the whole "
                "carry."
            )
        system, params = self._system()
        s0, e0 = _stop(carry.states), _stop(carry.traces)
        if not m.advances_traces:
            if m.carry_gradient:
                s0 = carry.states
            states, s_T = _engine.run_bptt(
                system,
                params,
                xs,
                s0,
                resets,
                remat=self._recompute(m),
                carry_gradient=m.carry_gradient,
            )
            traces_T: Traces = e0
        elif m is ONLINE and xs.shape[0] == 1:
            # One step (``step``): advance the traces by the per-step recursion.
            states, s_T, traces_T = _engine.run_per_step(
                system, params, xs, s0, e0, resets
            )
        else:
            # Parameters are fixed within a call, so per-step RTRL's gradient
            # sum_t delta_t . E_t equals BPTT in the segment + lambda_0 . E_0:
            # computed that way, "online" costs what "chunked" costs. They differ
            # in what reaches the inputs.
            states, s_T, traces_T = _engine.run_segment(
                system,
                params,
                xs,
                s0,
                e0,
                resets,
                input_grads="one-step" if m is ONLINE else "bptt",
                remat=self._recompute(m),
            )
        ys = jax.vmap(self._readout)(states, xs)
        return ys, RTRLCarry(_stop(s_T), _stop(traces_T))

    def states_before(
        self,
        carry_0: RTRLCarry,
        xs: Float[Array, "T D"],
        resets: Bool[Array, " T"],
    ) -> States:
        """The state before each step of a trajectory, differentiable with
        respect to the parameters through the whole history: the Jacobian of
        ``states[t]`` is the RTRL trace ``E_{t-1}`` the carry before step ``t``
        holds (``carry_0``'s traces at ``t = 0``).

        A vector-Jacobian product with cotangents ``lambda`` is therefore
        ``sum_t lambda_t . E_{t-1}``: the stale-trace term of a learner that
        stored each step's state alone. With ``lambda_t`` the adjoints of the
        stored states (from ``unroll`` with ``BPTT.to_carry()``), it gives
        exactly what the traces an online actor held at those steps would have
        given had they been stored, for one reverse pass over the trajectory
        and one contraction of ``carry_0``'s traces; no per-step trace is
        formed. The values are the states an online actor steps through;
        inputs are constants, and the parameters should be the ones the
        trajectory ran with (the actor's). A learner takes the VJP once
        (``jax.vjp`` / ``eqx.filter_vjp``, streams batched with ``jax.vmap``
        inside it, so that the parameter gradient is one contraction over
        streams) and applies it to each minibatch's cotangents: the forward
        pass is not repeated.

        Args:
            carry_0: the carry before step 0, with its traces.
            xs: the trajectory's inputs ``(T, input_size)``.
            resets: ``(T,)`` bool, as :meth:`unroll`'s.

        Returns:
            One array per state group, ``(T, units, block)``: ``carry.states``
            of the carry step ``t`` starts from, before its reset.

        Raises:
            ValueError: (one line) a carry without traces or of another cell,
                inputs or resets of the wrong shape, or a cell whose traces
                are not the exact sensitivities (the layer-local
                approximation).
        """
        if not self.exact_traces:
            raise ValueError(
                f"{type(self).__name__}'s traces are an approximation, not "
                "d s / d theta along the trajectory, so a reverse pass cannot "
                "stand in for them: store the traces instead."
            )
        xs = jnp.asarray(xs)
        if xs.ndim != 2 or xs.shape[1] != self.input_size:
            raise ValueError(
                f"{type(self).__name__}.states_before expected xs of shape "
                f"(T, {self.input_size}), got {xs.shape}; batch streams with "
                "jax.vmap."
            )
        resets = _check_resets(jnp.asarray(resets), (xs.shape[0],), "resets")
        self._check_carry(carry_0)
        if not carry_0.has_traces:
            raise ValueError(
                "states_before needs carry_0's traces (this carry was kept for "
                "'bptt' with carry.for_method); pass the whole carry."
            )
        system, params = self._system()
        return _engine.states_before(
            system,
            params,
            xs,
            carry_0.states,
            _stop(carry_0.traces),
            resets,
        )

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


# The key under which a field's Equinox metadata marks it recurrent.
_RECURRENT = "rtrl_cells.recurrent"


def recurrent(**kwargs: Any) -> Any:
    """Declares a field of an element-wise cell a recurrent parameter.

    Use it as the field's default in the class body, as with ``eqx.field``::

        class IndRNN(rc.AbstractElementwiseCell):
            u: Float[Array, " N"] = rc.recurrent()  # drives the recurrence
            W: Float[Array, "N D"] = rc.recurrent()
            C: Float[Array, "O N"]  # output only

    A recurrent field holds one floating-point array whose leading axis is the
    unit axis (size ``num_units``): unit ``i``'s next state reads only ``P[i]``.
    Exact RTRL keeps traces for these fields alone; the other array fields may
    shape the output but not the state. The declaration is checked when a cell is
    constructed (shapes) and by :func:`rtrl_cells.check_cell` (numerically: that
    no undeclared field drives the state, and that no unit reads another's slice).

    Args:
        **kwargs: passed on to ``eqx.field`` (not ``static``: a recurrent
            parameter is an array).

    Returns:
        The field specification.
    """
    if kwargs.get("static"):
        raise TypeError(
            "a recurrent field is an array: rc.recurrent() takes no static."
        )
    metadata = {**kwargs.pop("metadata", {}), _RECURRENT: True}
    return eqx.field(metadata=metadata, **kwargs)


def recurrent_fields(cell: Any) -> tuple[str, ...]:
    """Names of the fields declared with :func:`recurrent`, in definition order.

    Args:
        cell: an element-wise cell, or its class.
    """
    cls = cell if isinstance(cell, type) else type(cell)
    return tuple(
        f.name for f in dataclasses.fields(cls) if f.metadata.get(_RECURRENT, False)
    )


if TYPE_CHECKING:
    # Type checkers learn a Module's field specifiers from equinox's metaclass
    # (dataclass_transform), which names dataclasses.field and eqx.field only; this
    # one adds ``recurrent``, so that a field declared with it has no default.
    # Static only: at run time the metaclass is equinox's own.
    @dataclass_transform(field_specifiers=(dataclasses.field, eqx.field, recurrent))
    class _ElementwiseCellMeta(type(eqx.Module)): ...

else:
    _ElementwiseCellMeta = type(eqx.Module)


class AbstractElementwiseCell(AbstractCell, metaclass=_ElementwiseCellMeta):
    """A cell whose recurrence is block-diagonal: units of a few components each.

    The state has shape ``(num_units, block_size)``; unit ``i``'s next state depends
    on its own previous state and on the input, through parameters whose slice
    ``P[i]`` (leading axis ``num_units``) belongs to that unit alone. Exact RTRL for
    such a cell carries ``block_size * |theta_rec|`` numbers per stream, and the
    engine derives it from :meth:`project` and :meth:`core` by autodiff.

    A dense cell is the case ``num_units = 1``: one block holding the whole state,
    every parameter belonging to it (exact dense RTRL, O(N^4) per step).

    Subclasses declare the fields that drive the recurrence with
    :func:`rtrl_cells.recurrent`; the other array fields only shape the output and
    get ordinary gradients. Construction checks the declarations (see
    ``__check_init__``); :func:`rtrl_cells.check_cell` checks the rest.

    A subclass may hand-write the per-step recursion by overriding
    :meth:`trace_step`; the engine's own is derived by autodiff otherwise, and
    :func:`rtrl_cells.check_cell` compares the two.
    """

    @property
    @abc.abstractmethod
    def num_units(self) -> int:
        """Number of independent units (blocks) of the state."""

    @property
    @abc.abstractmethod
    def block_size(self) -> int:
        """Components per unit."""

    @abc.abstractmethod
    def project(self, x_t: Array) -> Any:
        """The input's part of a step, from ``x_t`` of shape ``(input_size,)``.

        Computed for a whole segment at once, outside the time loop. Usually the
        input matrices' products, shaped ``(num_units, m)``: row ``i`` may only
        use unit ``i``'s parameter slices. Its result is ``core``'s ``u_t``.
        """

    @abc.abstractmethod
    def core(self, s_tm1: Array, u_t: Any) -> Array:
        """``s_t`` of shape ``(num_units, block_size)`` from ``s_{t-1}`` and ``u_t``.

        Element-wise: unit ``i``'s new state reads only ``s_tm1[i]``, ``u_t``'s
        unit-``i`` part and unit ``i``'s slices of the recurrent parameters.
        """

    @abc.abstractmethod
    def readout(self, s_t: Array, x_t: Array) -> Array:
        """``y_t`` of shape ``(output_size,)`` from the new state and the input.

        Any function (units may mix here): it is differentiated by plain autodiff.
        """

    def trace_step(
        self, s_tm1: Array, x_t: Array, traces: dict[str, Array | None]
    ) -> tuple[Array, dict[str, Array]]:
        """Optional: one hand-written step of online RTRL, state and traces.

        Not overriding it lets the engine derive the step by autodiff. An override
        must equal that (:func:`rtrl_cells.check_cell` compares them); it is what
        :meth:`step` and a streaming learner run.

        Args:
            s_tm1: the previous state, ``(num_units, block_size)``.
            x_t: the input, ``(input_size,)``.
            traces: for every recurrent field ``P``, ``d s_{t-1} / d P`` as
                ``(block_size, *P.shape)`` with ``E[a][i, ...] = d s_{t-1}[i, a] /
                d P[i, ...]`` (nothing else is nonzero); ``None`` for a field whose
                trace is a quarter turn of another's (``_twins``), which is not kept.

        Returns:
            ``(s_t, new_traces)``: the new state and ``d s_t / d P`` in the same
            form, for every recurrent field that has a trace.
        """
        raise NotImplementedError

    @property
    def _has_fast_path(self) -> bool:
        return type(self).trace_step is not AbstractElementwiseCell.trace_step

    def __check_init__(self) -> None:
        """Checks the declarations: one-line TypeError naming the field.

        Raises:
            TypeError: the class sets ``rec_fields`` (no longer read), or a field
                declared recurrent is static, is not one floating-point array, or
                has a leading axis other than the unit axis; or ``_twins`` names
                a field that is not recurrent.
        """
        cls = type(self)
        name = cls.__name__
        if hasattr(cls, "rec_fields"):
            raise TypeError(
                f"{name}.rec_fields is no longer read (rtrl-cells 0.3): declare each "
                "recurrent field in the class body as `P: Array = rc.recurrent()`."
            )
        n = self.num_units
        rec = recurrent_fields(cls)
        for f in dataclasses.fields(cls):
            if f.name not in rec:
                continue
            if f.metadata.get("static", False):
                raise TypeError(
                    f"{name}.{f.name} is declared recurrent and static; a recurrent "
                    "parameter is an array field: drop static=True."
                )
            value = getattr(self, f.name)
            if not eqx.is_inexact_array(value):
                raise TypeError(
                    f"{name}.{f.name} is declared recurrent but holds "
                    f"{_describe(value)}; a recurrent field holds one floating-point "
                    "array (give each array of a sub-module its own field)."
                )
            if n > 1 and (value.ndim == 0 or value.shape[0] != n):
                raise TypeError(
                    f"{name}.{f.name} is declared recurrent with shape "
                    f"{tuple(value.shape)}, but a recurrent parameter's leading axis "
                    f"is the unit axis (num_units={n}): give each unit its own slice, "
                    f"shape ({n}, ...), or make the cell dense (num_units=1)."
                )
        for twin, source in self._twins().items():
            for field in (twin, source):
                if field not in rec:
                    raise TypeError(
                        f"{name}._twins() names {field!r}, which is not a recurrent "
                        f"field of {name} (recurrent: {', '.join(rec) or 'none'})."
                    )

    def _groups(self):
        return (self.num_units,), (self.block_size,)

    def _twins(self) -> dict[str, str]:
        """``{field: source}``: ``field``'s trace is a quarter turn of ``source``'s.

        For a two-component cell whose recurrence is complex-linear in the state
        and whose input enters as ``(B_re x, B_im x)``: then ``d h / d B_im = i
        d h / d B_re`` exactly, and the engine keeps only the source's trace (see
        ``LeafInfo.twin``). Empty by default. Both must be recurrent fields
        (checked at construction); :func:`rtrl_cells.check_cell` checks the
        quarter turn against ``jax.jacfwd``.
        """
        return {}

    def _leaf_infos(self):
        dyn = eqx.filter(self, eqx.is_inexact_array)
        names = self._param_names()
        rec = recurrent_fields(self)
        twins = {f: names.index(src) for f, src in self._twins().items()}
        return jax.tree_util.tree_map_with_path(
            lambda path, _: LeafInfo(0, path[0].name in rec, twins.get(path[0].name)),
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

    def _fast_trace_step(self, s_tm1, x_t, traces):
        # ``trace_step`` indexes every trace's components as E[a]; the engine
        # stores them in the layout's form (see ``_engine``).
        layout = self._layout()
        k = self.block_size
        names = self._param_names()
        by_name = {
            n: None if e is None else _engine._components(layout, 0, e)
            for n, e in zip(names, traces[0], strict=True)
        }
        s_t, new = self.trace_step(s_tm1[0], x_t, by_name)
        packed = []
        for n, kind, shape in zip(names, layout.kinds[0], layout.shapes, strict=True):
            if kind != "diag":
                packed.append(None)
                continue
            e = new.get(n)
            want = (k, *shape)
            if e is None or tuple(jnp.shape(e)) != want:
                got = "nothing" if e is None else f"shape {tuple(jnp.shape(e))}"
                raise ValueError(
                    f"{type(self).__name__}.trace_step returned {got} for {n!r}; "
                    f"expected its new trace, shape {want}."
                )
            packed.append(_engine._pack(layout, 0, e))
        return (s_t,), (tuple(packed),)

    def _param_names(self) -> list[str]:
        dyn = eqx.filter(self, eqx.is_inexact_array)
        paths = jax.tree_util.tree_flatten_with_path(dyn)[0]
        return [path[0].name for path, _ in paths]


def _describe(value: Any) -> str:
    if eqx.is_array(value):
        return f"an array of dtype {value.dtype}"
    return "None" if value is None else f"a {type(value).__name__}"


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
