"""The engine's backend workarounds change how XLA computes, never what.

Every switch of ``rc.Workarounds`` must give the same outputs, gradients and new
traces as the default, in float64 to 1e-12 (all off for every registered cell
and the example stacks, each alone for three of them), batched with ``vmap``
(the batch sums are what ``separate_batch_sums`` splits). And each switch must
change the program: a switch wired to nothing would make its A/B in ``rtrl-bench speed``
measure noise.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import rtrl_cells as rc
from rtrl_cells import _check

# Float64 cells (the conftest enables x64 before this module is imported).
CELLS = rc.example_cells(jax.random.PRNGKey(0))

OFF = {name: {name: False} for name in rc.Workarounds.names()}
OFF["all"] = dict.fromkeys(rc.Workarounds.names(), False)
B, T = 2, 5


def _full_traces(cell, carry):
    """Every stream's traces as full Jacobians (one form whatever the storage)."""
    layout = cell._layout()
    return jax.vmap(lambda c: _check._full(layout, c.traces))(carry)


def _run(cell, method):
    """Two segments over ``B`` streams: (ys, grads, final states, full traces).

    Jitted afresh at every call: a cached compilation would not see the switches.
    """
    xs = jax.random.normal(
        jax.random.PRNGKey(3), (2, B, T, cell.input_size), jnp.float64
    )
    resets = jnp.zeros((2, B, T), bool).at[1, 0, 2].set(True)

    def run(cell):
        carry0 = jax.vmap(lambda _: cell.init_carry())(jnp.arange(B))
        _, carry1 = jax.vmap(lambda k, x, r: cell.unroll(k, x, r, rc.CHUNKED))(
            carry0, xs[0], resets[0]
        )

        def loss(c):
            ys, carry2 = jax.vmap(lambda k, x, r: c.unroll(k, x, r, method))(
                carry1, xs[1], resets[1]
            )
            return jnp.sum(jnp.cos(ys) * ys), (ys, carry2)

        grads, (ys, carry2) = eqx.filter_grad(loss, has_aux=True)(cell)
        return ys, grads, carry2.states, _full_traces(cell, carry2)

    return eqx.filter_jit(run)(cell)


def _assert_same(ref, got):
    for a, b in zip(jax.tree.leaves(ref), jax.tree.leaves(got), strict=True):
        np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=1e-12, atol=1e-12)


def test_every_cell_computes_the_same_with_every_workaround_off(cell):
    # ``online`` differs from ``chunked`` only in the inputs' gradients, outside
    # the code the switches touch; the per-step path is tested below.
    ref = _run(cell, rc.CHUNKED)
    with rc.use_workarounds(**OFF["all"]):
        got = _run(cell, rc.CHUNKED)
    _assert_same(ref, got)


@pytest.mark.parametrize("switch", rc.Workarounds.names())
@pytest.mark.parametrize("name", ["ELSTM", "RTU(relu)", "Stack(LRU,RTU(linear))"])
def test_each_workaround_alone_computes_the_same(name, switch):
    cell = CELLS[name]()
    ref = _run(cell, rc.ONLINE)
    with rc.use_workarounds(**OFF[switch]):
        got = _run(cell, rc.ONLINE)
    _assert_same(ref, got)


@pytest.mark.parametrize("name", ["ELSTM", "LRU", "RTU(relu)"])
def test_a_single_step_is_the_same_without_compact_traces(name):
    # A step runs the per-step recursion (and a cell's hand-written fast path).
    cell = CELLS[name]()
    x = jax.random.normal(jax.random.PRNGKey(4), (cell.input_size,), jnp.float64)

    def stepped():
        carry = cell.init_carry()
        for _ in range(3):
            _, carry = cell.step(carry, x, jnp.asarray(False))
        return carry.states, _check._full(cell._layout(), carry.traces)

    ref = stepped()
    with rc.use_workarounds(compact_traces=False):
        got = stepped()
    _assert_same(ref, got)


def _barriers(cell):
    carry = jax.vmap(lambda _: cell.init_carry())(jnp.arange(B))
    xs = jnp.zeros((B, T, cell.input_size), jnp.float64)
    resets = jnp.zeros((B, T), bool)

    def grad(c):
        def loss(c):
            ys, carry_T = jax.vmap(lambda k, x, r: c.unroll(k, x, r, rc.CHUNKED))(
                carry, xs, resets
            )
            return jnp.sum(ys), carry_T

        return eqx.filter_grad(loss, has_aux=True)(c)

    return str(eqx.filter_make_jaxpr(grad)(cell)[0]).count("optimization_barrier")


def test_each_switch_changes_the_program():
    cell = CELLS["LRU"]()
    on = _barriers(cell)
    for name in ("separate_batch_sums", "contiguous_adjoints"):
        with rc.use_workarounds(**{name: False}):
            assert _barriers(cell) < on, f"{name}=False left the barriers in place"
    for name in ("ELSTM", "LRU"):
        c = CELLS[name]()
        shapes = [x.shape for x in jax.tree.leaves(c.init_carry().traces)]
        with rc.use_workarounds(compact_traces=False):
            loose = [x.shape for x in jax.tree.leaves(c.init_carry().traces)]
        assert loose != shapes, f"compact_traces=False did not change {name}'s carry"
    assert rc.workarounds() == rc.Workarounds()  # restored on exit


def test_bad_switches_are_one_line_errors():
    with (
        pytest.raises(ValueError, match="unknown engine workaround 'fast'"),
        rc.use_workarounds(fast=False),
    ):
        pass
    with (
        pytest.raises(ValueError, match="must be True or False"),
        rc.use_workarounds(compact_traces=0),
    ):
        pass
