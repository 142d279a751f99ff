"""``check_cell``: the RTRL contract of any cell, checked numerically.

What a cell author declares (which fields are recurrent, their unit axis) is
checked when the cell is constructed; what only numbers can show is checked here,
in float64, on random states, inputs, traces and resets:

1. shapes: ``core`` returns the state's shape, ``readout`` ``(output_size,)``;
2. declarations: no parameter outside the recurrent fields moves the state
   (``jax.jacfwd`` of one step is exactly zero for it);
3. element-wise structure: no unit's new state reads another unit's previous
   state or parameter slice (the cross-unit blocks of the one-step Jacobians are
   zero);
4. one step of the engine's traces equals ``jax.jacfwd`` (including quarter-turn
   twin traces), and so does a hand-written ``trace_step``, if any;
5. the traces ``"online"``, ``"chunked"`` and ``step`` carry after several steps
   from a random carry equal ``jax.jacfwd`` of the final state;
6. the ``"online"`` and ``"chunked"`` gradients over segments with carries passed
   across calls and a reset equal full BPTT.

The first failure raises :class:`CellContractError`, one line naming the
parameter and the property.
"""

from __future__ import annotations

from typing import cast

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import PRNGKeyArray

from . import _engine
from ._cell import AbstractCell, RTRLCarry
from ._gradcheck import _ratio, gradient_errors_by_method, leaf_errors, param_labels
from ._methods import METHODS
from ._stack import AbstractStack

# check_cell forms full Jacobians: parameters x state entries, per step.
MAX_JACOBIAN_ENTRIES = 10_000_000


class CellContractError(ValueError):
    """A cell breaks the RTRL contract; raised by :func:`check_cell`.

    Attributes:
        cell: the cell's class name.
        property: what failed: ``"shapes"``, ``"declared"``, ``"element-wise"``,
            ``"traces"``, ``"fast path"`` or ``"gradient"``.
        parameter: the parameter's path (``"W"``, ``"layers[1].F"``), or ``None``
            when no single parameter is to blame.
    """

    def __init__(self, cell: str, prop: str, message: str, parameter: str | None):
        self.cell, self.property, self.parameter = cell, prop, parameter
        where = f"parameter {parameter!r}: " if parameter is not None else ""
        super().__init__(f"check_cell({cell}) failed [{prop}]: {where}{message}")


def check_cell(
    cell: AbstractCell,
    *,
    key: PRNGKeyArray | None = None,
    rtol: float = 1e-10,
    steps: int = 5,
    segments: int = 3,
) -> None:
    """Checks that ``cell`` keeps the RTRL contract; raises on the first breach.

    Run it on a small instance (a few units and inputs): it forms full Jacobians.
    It works on a float64 copy of the cell (under ``jax.enable_x64``), whatever
    the cell's own dtype. A layer-local approximation is checked layer by layer
    (its gradient is not meant to equal BPTT).

    Args:
        cell: any rtrl-cells cell: a built-in one, a ``Stack``, or your own.
        key: PRNG key of the random states, inputs and traces (default 0).
        rtol: largest relative error allowed (float64).
        steps: length of the segments.
        segments: segments of the gradient check (a reset sits in the second).

    Raises:
        CellContractError: (one line) naming the property and, where one is to
            blame, the parameter: see the module docstring for the checks.
        ValueError: the instance is too large to form its Jacobians.
    """
    if not cell._cross_layer:
        # Only a stack's layer-local approximation turns cross-layer traces off.
        for layer in cast(AbstractStack, cell).layers:
            check_cell(layer, key=key, rtol=rtol, steps=steps, segments=segments)
        return
    key = jax.random.PRNGKey(0) if key is None else key
    with jax.enable_x64(True):
        _Checker(_to_float64(cell), key, rtol, steps, segments).run()


def _to_float64(cell: AbstractCell) -> AbstractCell:
    def cast(x):
        if eqx.is_inexact_array(x):
            return x.astype(jnp.result_type(x.dtype, jnp.float64))
        return x

    return jax.tree.map(cast, cell)


def _off_units(J: jax.Array) -> jax.Array:
    """A ``(N, k, N, ...)`` Jacobian with its unit-diagonal blocks zeroed."""
    n = J.shape[0]
    mask = 1.0 - jnp.eye(n, dtype=J.dtype)
    return J * mask.reshape(n, 1, n, *(1,) * (J.ndim - 3))


def _full(layout: _engine.Layout, traces: _engine.Traces) -> list[list[jax.Array]]:
    """Every trace as the full Jacobian ``d s[g] / d P_j``: ``(N_g, k_g, *P.shape)``."""
    out = []
    for g in range(layout.num_groups):
        n, k = layout.units[g], layout.blocks[g]
        row = []
        for j, shape in enumerate(layout.shapes):
            comps = _engine._diag_trace(layout, traces, g, j)
            if comps is not None:
                e = _engine._as_array([comps[a] for a in range(k)])  # (k, *shape)
                if n == 1:
                    row.append(e[None])
                else:
                    eye = jnp.eye(n, dtype=e.dtype)
                    row.append(jnp.einsum("ij,ai...->iaj...", eye, e))
            elif traces[g][j] is not None:
                row.append(traces[g][j])
            else:
                row.append(jnp.zeros((n, k, *shape), jnp.float64))
        out.append(row)
    return out


def _propagate(J_s, J_p, full_prev):
    """``E_t = (d s_t / d s_{t-1}) E_{t-1} + d s_t / d theta``, all in full form."""
    out = []
    for jp_g, js_g in zip(J_p, J_s, strict=True):
        row = []
        for j, jp in enumerate(jp_g):
            acc = jp
            for h, js in enumerate(js_g):
                acc = acc + jnp.tensordot(js, full_prev[h][j], axes=([2, 3], [0, 1]))
            row.append(acc)
        out.append(row)
    return out


def _leaf_errors(layout, got, ref) -> list[tuple[jax.Array, jax.Array]]:
    """Per parameter leaf ``(max|got - ref|, max|ref|)`` over all groups."""
    groups = range(layout.num_groups)
    return [
        (
            jnp.max(
                jnp.stack([jnp.max(jnp.abs(got[g][j] - ref[g][j])) for g in groups])
            ),
            jnp.max(jnp.stack([jnp.max(jnp.abs(ref[g][j])) for g in groups])),
        )
        for j in range(len(layout.shapes))
    ]


def _jacobians(f, params, s):
    """``(d f / d params, d f / d s)`` of a states-valued ``f``, by group."""
    J = jax.jacfwd(f, argnums=(0, 1))(params, s)
    return [Jg[0] for Jg in J], [Jg[1] for Jg in J]


class _Checker:
    def __init__(self, cell, key, rtol, steps, segments):
        self.cell = cell
        self.name = type(cell).__name__
        self.rtol, self.steps, self.segments = rtol, steps, segments
        self.key = key
        self.system, self.params = cell._system()
        self.layout = self.system.layout
        self.labels = param_labels(cell)

    def fail(self, prop: str, message: str, parameter: str | None = None):
        raise CellContractError(self.name, prop, message, parameter)

    def _check_leaves(self, prop: str, errors, message: str) -> None:
        """Fails on the leaf with the largest relative error above ``rtol``."""
        rel = [_ratio(float(d), float(s)) for d, s in errors]
        j = int(np.argmax(rel))
        if not rel[j] <= self.rtol:
            self.fail(prop, message.format(err=rel[j], j=j), self.labels[j])

    # -- random inputs ------------------------------------------------------------

    def _states(self, key):
        units, blocks = self.cell._groups()
        keys = jax.random.split(key, len(units))
        return tuple(
            0.5 * jax.random.normal(k, (n, b), jnp.float64)
            for k, n, b in zip(keys, units, blocks, strict=True)
        )

    def _traces(self, key):
        zeros = _engine.zeros_traces(self.layout, jnp.float64)
        leaves, treedef = jax.tree.flatten(zeros)
        keys = jax.random.split(key, max(len(leaves), 1))
        return jax.tree.unflatten(
            treedef,
            [
                0.5 * jax.random.normal(k, x.shape, x.dtype)
                for k, x in zip(keys, leaves, strict=False)
            ],
        )

    # -- the checks ---------------------------------------------------------------

    def run(self) -> None:
        size = sum(int(np.prod(s)) for s in self.layout.shapes)
        state = sum(n * k for n, k in zip(*self.cell._groups(), strict=True))
        if size * state > MAX_JACOBIAN_ENTRIES:
            raise ValueError(
                f"check_cell forms Jacobians of {size} parameters x {state} state "
                f"entries ({self.name}): check a small instance (a few units and "
                "inputs, e.g. hidden_size=4, input_size=3)."
            )
        k_s, k_x, k_e, k_seq, k_grad = jax.random.split(self.key, 5)
        s = self._states(k_s)
        x = jax.random.normal(k_x, (self.cell.input_size,), jnp.float64)
        e = self._traces(k_e)
        self.check_shapes(s, x)
        self.check_one_step(s, x, e)
        if self.cell._has_fast_path:
            self.check_fast_path(s, x, e)
        self.check_segments(k_seq)
        self.check_gradients(k_grad)

    def check_shapes(self, s, x) -> None:
        cell, system = self.cell, self.system
        init = cell._init_state()
        want = [tuple(a.shape) for a in s]
        if [tuple(a.shape) for a in init] != want:
            self.fail(
                "shapes",
                f"the initial state has shapes {[tuple(a.shape) for a in init]}, "
                f"expected {want} (num_units, block_size).",
            )
        out = jax.eval_shape(lambda p, s_: system.step(p, s_, x), self.params, s)
        got = [tuple(a.shape) for a in out]
        if got != want:
            self.fail(
                "shapes",
                f"core returned states of shapes {got} from states of shapes {want}; "
                "it must return (num_units, block_size).",
            )
        y = jax.eval_shape(cell._readout, s, x)
        if tuple(y.shape) != (cell.output_size,):
            self.fail(
                "shapes",
                f"readout returned shape {tuple(y.shape)}, but output_size is "
                f"{cell.output_size}.",
            )

    def check_one_step(self, s, x, e) -> None:
        system, layout = self.system, self.layout
        groups = range(layout.num_groups)

        @jax.jit
        def one_step(params, s, e):
            J_p, J_s = _jacobians(lambda p, s_: system.step(p, s_, x), params, s)
            _, e_t = system.generic_trace_step(params, s, x, e)
            ref = _propagate(J_s, J_p, _full(layout, e))
            zero = jnp.zeros((), jnp.float64)
            return {
                "scale": jnp.max(
                    jnp.stack([jnp.max(jnp.abs(a)) for row in J_p for a in row])
                ),
                "dep": [[jnp.max(jnp.abs(a)) for a in J_p[g]] for g in groups],
                "off_p": [
                    [
                        jnp.max(jnp.abs(_off_units(a)))
                        if layout.units[g] > 1 and kind in ("diag", "twin")
                        else zero
                        for a, kind in zip(J_p[g], layout.kinds[g], strict=True)
                    ]
                    for g in groups
                ],
                "off_s": [
                    jnp.max(jnp.abs(_off_units(J_s[g][g])))
                    if layout.units[g] > 1
                    else zero
                    for g in groups
                ],
                "traces": _leaf_errors(layout, _full(layout, e_t), ref),
            }

        out = jax.tree.map(float, one_step(self.params, s, e))
        atol = 1e-13 * max(out["scale"], 1.0)

        # Declarations: a parameter without a trace must not move the state.
        for g in groups:
            for j, kind in enumerate(layout.kinds[g]):
                dep = out["dep"][g][j]
                if kind is None and dep > atol:
                    label = self.labels[j]
                    self.fail(
                        "declared",
                        f"the state depends on it (max |d s_t / d {label}| = "
                        f"{dep:.1e}) but it is not declared recurrent; declare its "
                        "field with rc.recurrent().",
                        label,
                    )

        # Element-wise structure, parameters: unit i reads only P[i].
        for g in groups:
            for j, off in enumerate(out["off_p"][g]):
                if off > atol:
                    label = self.labels[j]
                    self.fail(
                        "element-wise",
                        f"unit i's new state reads {label}[j] for j != i (max "
                        f"|d s_t[i] / d {label}[j]| = {off:.1e}); a recurrent "
                        "parameter's leading axis is the unit axis, and unit i reads "
                        f"only its own slice {label}[i].",
                        label,
                    )

        # Element-wise structure, state: unit i reads only s_{t-1}[i].
        for g in groups:
            off = out["off_s"][g]
            if off > atol:
                culprits = self._mixing_parameters(g, s, x, atol)
                through = (
                    f", through {' and '.join(repr(c) for c in culprits)} (zeroed, "
                    "no unit reads another)"
                    if culprits
                    else ""
                )
                self.fail(
                    "element-wise",
                    f"units mix: unit i's new state reads s_(t-1)[j] for j != i (max "
                    f"|d s_t[i] / d s_(t-1)[j]| = {off:.1e}){through}; an "
                    "element-wise core reads only a unit's own state: make the cell "
                    "dense (num_units=1) or keep the mixing out of core.",
                    culprits[0] if len(culprits) == 1 else None,
                )

        # One step of the engine's traces against jax.jacfwd.
        twins = {
            j: self.labels[layout.twins[j]]
            for j in range(len(self.labels))
            if layout.kinds[layout.owners[j]][j] == "twin"
        }
        rel = [_ratio(d, sc) for d, sc in out["traces"]]
        for j, err in enumerate(rel):
            if not err <= self.rtol:
                self.fail(
                    "traces",
                    f"its trace is declared a quarter turn of {twins[j]!r}'s "
                    f"(_twins) but jax.jacfwd disagrees (relative error {err:.1e})."
                    if j in twins
                    else "one step of the engine's trace differs from jax.jacfwd "
                    f"(relative error {err:.1e}).",
                    self.labels[j],
                )

    def _mixing_parameters(self, g, s, x, atol) -> list[str]:
        """The parameters that, zeroed one at a time, leave no unit reading another."""
        system = self.system

        @jax.jit
        def mixing(params):
            J = jax.jacfwd(lambda s_: system.step(params, s_, x))(s)
            return jnp.max(jnp.abs(_off_units(J[g][g])))

        found = []
        for j, p in enumerate(self.params):
            zeroed = list(self.params)
            zeroed[j] = jnp.zeros_like(p)
            left = float(mixing(zeroed))
            if np.isfinite(left) and left <= atol:
                found.append(self.labels[j])
        return found

    def check_fast_path(self, s, x, e) -> None:
        system, layout = self.system, self.layout

        @jax.jit
        def compare(params, s, e):
            s_g, e_g = system.generic_trace_step(params, s, x, e)
            s_f, e_f = system.fast_trace_step(params, s, x, e)
            return leaf_errors(s_f, s_g), _leaf_errors(
                layout, _full(layout, e_f), _full(layout, e_g)
            )

        try:
            states, traces = compare(self.params, s, e)
        except ValueError as err:  # a trace missing or misshapen: one line
            self.fail("fast path", str(err))
        for d, sc in states:
            err = _ratio(float(d), float(sc))
            if not err <= self.rtol:
                self.fail(
                    "fast path",
                    "the hand-written trace_step's new state differs from core's "
                    f"(relative error {err:.1e}).",
                )
        self._check_leaves(
            "fast path",
            traces,
            "the hand-written trace_step's trace differs from the engine's "
            "(relative error {err:.1e}).",
        )

    def check_segments(self, key) -> None:
        system, layout, T = self.system, self.layout, self.steps
        k_s, k_e, k_x = jax.random.split(key, 3)
        s0, e0 = self._states(k_s), self._traces(k_e)
        xs = jax.random.normal(k_x, (T, self.cell.input_size), jnp.float64)
        resets = jnp.zeros((T,), bool)
        carry0 = RTRLCarry(s0, e0)
        methods = [m for m in METHODS.values() if m.advances_traces]

        def stepped(c):
            def body(carry, x_t):
                return c.step(carry, x_t, jnp.asarray(False))[1], None

            return jax.lax.scan(body, carry0, xs)[0]

        @eqx.filter_jit
        def compare(c):
            params = c._system()[1]
            J_p, J_s = _jacobians(
                lambda p, s_: system.segment(p, s_, xs, resets)[1], params, s0
            )
            ref = _propagate(J_s, J_p, _full(layout, e0))
            carries = [c.unroll(carry0, xs, resets, m)[1] for m in methods]
            carries.append(stepped(c))
            return [_leaf_errors(layout, _full(layout, k.traces), ref) for k in carries]

        whats = [f"the traces {m.name!r} carries" for m in methods]
        whats.append("the traces step carries")
        for what, errors in zip(whats, compare(self.cell), strict=True):
            self._check_leaves(
                "traces",
                errors,
                f"{what} after {T} steps from a random carry differ from "
                "jax.jacfwd of the final state (relative error {err:.1e}).",
            )

    def check_gradients(self, key) -> None:
        exact = tuple(m for m in METHODS.values() if m.exact)
        by_method = gradient_errors_by_method(
            self.cell, exact, key, self.segments, self.steps
        )
        for name, errs in by_method.items():
            label, err = max(errs.items(), key=lambda kv: kv[1])
            if not err <= self.rtol:
                self.fail(
                    "gradient",
                    f"the {name!r} gradient over {self.segments} segments (carries "
                    f"passed on, a reset inside) differs from full BPTT by {err:.1e} "
                    f"(relative; tolerance {self.rtol:g}).",
                    label,
                )
