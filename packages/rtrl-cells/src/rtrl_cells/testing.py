"""The property suite of rtrl-cells, for any cell: yours joins it in four lines.

Subclass :class:`CellTests` in a pytest file and give it a ``cell`` fixture::

    import jax, pytest
    import rtrl_cells as rc

    class TestIndRNN(rc.testing.CellTests):
        @pytest.fixture
        def cell(self):
            return IndRNN(input_size=3, hidden_size=4, key=jax.random.PRNGKey(0))

pytest then runs every test below on it; rtrl-cells runs the same class over
:func:`rtrl_cells.example_cells`. Each test works on a float64 copy of the cell
under ``jax.enable_x64``, so the exactness checks hold to 1e-10 whatever your
session's precision. This module imports neither pytest nor numpy's testing.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any, final

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

from ._cell import AbstractCell, AbstractElementwiseCell, default_dtype, recurrent
from ._check import _to_float64, check_cell
from ._gradcheck import param_labels, relative_error
from ._methods import BPTT, CHUNKED, METHODS, ONLINE

__all__ = ["CellTests", "LeakyTanh"]

_T = 5


def _data(cell: AbstractCell, key: int = 1, segments: int = 3):
    xs = jax.random.normal(
        jax.random.PRNGKey(key), (segments, _T, cell.input_size), jnp.float64
    )
    resets = jnp.zeros((segments, _T), bool)
    if segments > 1:
        resets = resets.at[1, 2].set(True)
    return xs, resets


def _loss(ys):
    return jnp.sum(jnp.cos(ys) * ys)


def _max_error(a: Any, b: Any) -> float:
    return max(
        (
            relative_error(x, y)
            for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True)
        ),
        default=0.0,
    )


def _close(a: Any, b: Any, rtol: float, atol: float = 0.0) -> bool:
    return bool(eqx.tree_equal(a, b, rtol=rtol, atol=atol))


@contextlib.contextmanager
def _x64(cell: AbstractCell) -> Iterator[AbstractCell]:
    """A float64 copy of ``cell``, under ``jax.enable_x64``."""
    with jax.enable_x64(True):
        yield _to_float64(cell)


class CellTests:
    """The RTRL contract's property tests, for the ``cell`` fixture of a subclass.

    Every test takes ``cell`` (any rtrl-cells cell). What they check:

    - ``test_check_cell``: :func:`rtrl_cells.check_cell` (declarations,
      element-wise structure, traces against ``jax.jacfwd``, a hand-written
      ``trace_step`` against the engine, RTRL gradients against full BPTT);
    - ``test_truncated_bptt_is_not_exact``: the history reaches every traced
      parameter's gradient, so that the exactness checks prove something;
    - ``test_online_and_chunked_agree``: same outputs and carries across calls;
    - ``test_step_is_online_unroll``: ``step`` one at a time is ``"online"``;
    - ``test_step_gradient_is_exact``: the gradient of one ``step`` from a
      carried carry (a streaming learner's, PPO's single-step samples') equals
      full BPTT through the history;
    - ``test_no_gradient_reaches_previous_carry``: carries are data;
    - ``test_inputs_get_gradients``: BPTT input gradients for ``"chunked"``,
      one-step ones for ``"online"``;
    - ``test_vmapped_batch_equals_single_streams``: ``jax.vmap`` over streams
      (gradient and carries, ``"chunked"``);
    - ``test_float32_runs``: a float32 copy runs every method and keeps its dtype.
    """

    def test_check_cell(self, cell: AbstractCell) -> None:
        check_cell(cell)

    def test_truncated_bptt_is_not_exact(self, cell: AbstractCell) -> None:
        # The exactness checks prove something for a parameter only if its
        # gradient needs the history before the last segment: truncated BPTT
        # must then be wrong for every parameter that has a trace.
        with _x64(cell) as c:
            xs, resets = _data(c, segments=2)
            g = jax.tree.leaves(_segmented_grad(c, BPTT, xs, resets))
            g_ref = jax.tree.leaves(_full_bptt_grad(c, xs, resets))
            layout = c._layout()
        traced = [
            any(layout.kinds[h][j] is not None for h in range(layout.num_groups))
            for j in range(len(layout.shapes))
        ]
        for label, a, b, has_trace in zip(
            param_labels(c), g, g_ref, traced, strict=True
        ):
            err = relative_error(a, b)
            assert not has_trace or err > 1e-6, (
                f"truncated BPTT gives {label!r} its full-BPTT gradient (error "
                f"{err:.1e}): the history does not reach it on this data, so the "
                "exactness checks prove nothing for it; build the cell with "
                "another key or size."
            )

    def test_online_and_chunked_agree(self, cell: AbstractCell) -> None:
        with _x64(cell) as c:
            xs, resets = _data(c)
            unroll = eqx.filter_jit(lambda c, k, x, r, m: c.unroll(k, x, r, m))
            carry_on = carry_ch = c.init_carry()
            for k in range(xs.shape[0]):
                ys_on, carry_on = unroll(c, carry_on, xs[k], resets[k], ONLINE.name)
                ys_ch, carry_ch = unroll(c, carry_ch, xs[k], resets[k], CHUNKED.name)
                assert _close(ys_on, ys_ch, rtol=1e-12, atol=1e-12)
            assert _close(carry_on, carry_ch, rtol=1e-10, atol=1e-12)

    def test_step_is_online_unroll(self, cell: AbstractCell) -> None:
        with _x64(cell) as c:
            xs, resets = _data(c, key=3)
            ys, carry_u = eqx.filter_jit(
                lambda c: c.unroll(c.init_carry(), xs[1], resets[1], ONLINE)
            )(c)
            step = eqx.filter_jit(lambda c, k, x, r: c.step(k, x, r))
            carry = c.init_carry()
            for t in range(_T):
                y_t, carry = step(c, carry, xs[1, t], resets[1, t])
                assert _close(y_t, ys[t], rtol=1e-12, atol=1e-12)
            assert _close(carry, carry_u, rtol=1e-12, atol=1e-12)

    def test_step_gradient_is_exact(self, cell: AbstractCell) -> None:
        with _x64(cell) as c:
            xs, resets = _data(c, key=5, segments=2)
            x, r = xs[1, 0], resets[1, 0]
            carry = eqx.filter_jit(
                lambda c: c.unroll(c.init_carry(), xs[0], resets[0], CHUNKED)[1]
            )(c)
            g = eqx.filter_jit(
                eqx.filter_grad(lambda c: _loss(c.step(carry, x, r)[0]))
            )(c)

            def full(c):
                history = jnp.concatenate([xs[0], x[None]])
                ys, _ = c.unroll(
                    c.init_carry(), history, jnp.append(resets[0], r), BPTT
                )
                return _loss(ys[-1])

            g_ref = eqx.filter_jit(eqx.filter_grad(full))(c)
            for label, a, b in zip(
                param_labels(c), jax.tree.leaves(g), jax.tree.leaves(g_ref), strict=True
            ):
                err = relative_error(a, b)
                assert err <= 1e-10, (
                    f"the gradient of one step differs from full BPTT for {label!r} "
                    f"(relative error {err:.1e})."
                )

    def test_no_gradient_reaches_previous_carry(self, cell: AbstractCell) -> None:
        with _x64(cell) as c:
            xs, resets = _data(c)
            carry = eqx.filter_jit(
                lambda c: c.unroll(c.init_carry(), xs[0], resets[0], CHUNKED)[1]
            )(c)

            @eqx.filter_jit
            def grads(c, carry, m):
                def loss_of_carry(carry):
                    ys, carry_T = c.unroll(carry, xs[1], resets[1], m)
                    return _loss(ys) + sum(jnp.sum(s) for s in carry_T.states)

                def loss_of_returned_carry(c):
                    _, carry_T = c.unroll(carry, xs[1], resets[1], m)
                    return sum(jnp.sum(s) for s in jax.tree.leaves(carry_T))

                return (
                    jax.grad(loss_of_carry)(carry),
                    eqx.filter_grad(loss_of_returned_carry)(c),
                )

            for m in METHODS:
                # Nothing flows back into the carry, and the returned carry is
                # data: nothing flows from it back to the parameters.
                for g in grads(c, carry, m):
                    leaves = jax.tree.leaves(g)
                    assert all(float(jnp.max(jnp.abs(x))) == 0.0 for x in leaves), m

    def test_inputs_get_gradients(self, cell: AbstractCell) -> None:
        with _x64(cell) as c:
            xs, resets = _data(c)

            @eqx.filter_jit
            def input_grads(c):
                carry = c.init_carry()

                def grad(m):
                    def loss(x):
                        return _loss(c.unroll(carry, x, resets[0], m)[0])

                    return jax.grad(loss)(xs[0])

                # The one-step gradient of x_2: the state before step 2 held.
                _, carry_2 = c.unroll(carry, xs[0, :2], resets[0, :2], BPTT)

                def one_step(x2):
                    return _loss(c.unroll(carry_2, x2[None], resets[0, 2:3], BPTT)[0])

                one = jax.grad(one_step)(xs[0, 2])
                return grad(CHUNKED), grad(BPTT), grad(ONLINE), one

            chunked, bptt, online, one = input_grads(c)
            # "chunked": BPTT gradients inside the segment.
            assert _close(chunked, bptt, rtol=1e-10, atol=1e-12)
            # "online": each input's one-step gradient.
            assert _close(online[2], one, rtol=1e-10, atol=1e-12)

    def test_vmapped_batch_equals_single_streams(self, cell: AbstractCell) -> None:
        with _x64(cell) as c:
            B = 3
            xs, resets = _data(c, segments=B)
            m = CHUNKED  # "online" runs the same segment code; bptt has no traces
            carry0 = eqx.filter_jit(
                lambda c: c.unroll(c.init_carry(), xs[0], resets[0], m)[1]
            )(c)
            carries = jax.tree.map(lambda x: jnp.stack([x] * B), carry0)

            def loss(c, carry, x, r):
                ys, carry_T = c.unroll(carry, x, r, m)
                return jnp.sum(jnp.tanh(ys)), carry_T

            def total(c):
                losses, carry_T = jax.vmap(loss, in_axes=(None, 0, 0, 0))(
                    c, carries, xs, resets
                )
                return jnp.sum(losses), carry_T

            g_batch, carry_batch = eqx.filter_jit(eqx.filter_grad(total, has_aux=True))(
                c
            )
            one = eqx.filter_jit(eqx.filter_grad(loss, has_aux=True))
            singles = [one(c, carry0, xs[b], resets[b]) for b in range(B)]
            g_sum = jax.tree.map(lambda *gs: sum(gs), *[g for g, _ in singles])
            stacked = jax.tree.map(lambda *k: jnp.stack(k), *[k for _, k in singles])
            assert _close(g_batch, g_sum, rtol=1e-11, atol=1e-14)
            assert _close(carry_batch, stacked, rtol=1e-12, atol=1e-14)

    def test_float32_runs(self, cell: AbstractCell) -> None:
        c = jax.tree.map(
            lambda x: x.astype(jnp.float32) if eqx.is_inexact_array(x) else x, cell
        )
        with jax.enable_x64(False):
            xs = jax.random.normal(jax.random.PRNGKey(1), (_T, c.input_size))
            resets = jnp.zeros(_T, bool)
            outs = eqx.filter_jit(
                lambda c: [c.unroll(c.init_carry(), xs, resets, m) for m in METHODS]
            )(c)
            for ys, carry in outs:
                assert ys.dtype == jnp.float32
                assert all(x.dtype == jnp.float32 for x in jax.tree.leaves(carry))


@final
class LeakyTanh(AbstractElementwiseCell):
    """``h_t = tanh(W x_t + a * h_{t-1} + b)``: a cell outside the registry.

    The smallest element-wise cell, for tests that register a cell of their own
    (``rc.register_cell("leaky", rc.testing.LeakyTanh)``) and follow it through
    the configurations and tools that read the registry.
    """

    W: Float[Array, "N D"] = recurrent()
    a: Float[Array, " N"] = recurrent()
    b: Float[Array, " N"] = recurrent()

    def __init__(
        self, *, input_size: int, hidden_size: int, key: PRNGKeyArray, dtype=None
    ):
        dtype = default_dtype(dtype)
        w = jax.random.normal(key, (hidden_size, input_size), dtype)
        self.W = w / input_size**0.5
        self.a = jnp.full((hidden_size,), 0.5, dtype)
        self.b = jnp.full((hidden_size,), 0.1, dtype)

    @property
    def input_size(self) -> int:
        return self.W.shape[1]

    @property
    def hidden_size(self) -> int:
        return self.W.shape[0]

    @property
    def output_size(self) -> int:
        return self.hidden_size

    @property
    def num_units(self) -> int:
        return self.hidden_size

    @property
    def block_size(self) -> int:
        return 1

    def project(self, x_t):
        return (self.W @ x_t)[:, None]

    def core(self, s_tm1, u_t):
        return jnp.tanh(u_t + self.a[:, None] * s_tm1 + self.b[:, None])

    def readout(self, s_t, x_t):
        return s_t[:, 0]


def _segmented_grad(cell, method, xs, resets):
    @eqx.filter_jit
    @eqx.filter_grad
    def grad(c):
        carry = c.init_carry()
        for k in range(xs.shape[0] - 1):
            _, carry = c.unroll(carry, xs[k], resets[k], method)
        ys, _ = c.unroll(carry, xs[-1], resets[-1], method)
        return _loss(ys)

    return grad(cell)


def _full_bptt_grad(cell, xs, resets):
    @eqx.filter_jit
    @eqx.filter_grad
    def grad(c):
        ys, _ = c.unroll(
            c.init_carry(), xs.reshape(-1, c.input_size), resets.reshape(-1), BPTT
        )
        return _loss(ys[-xs.shape[1] :])

    return grad(cell)
