"""Finite differences, float32, mixed dtypes, and the layer-local approximation.

(Batching, the hand-written fast paths and the rest of the contract are
``rtrl_cells.testing.CellTests``', run on every example cell.)
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import rtrl_cells as rc


def _tree_close(a, b, rtol, atol=0.0):
    return bool(eqx.tree_equal(a, b, rtol=rtol, atol=atol))


@pytest.mark.parametrize("method", ["online", "chunked"])
def test_finite_differences_agree(method):
    cell = rc.ELSTM(input_size=2, hidden_size=2, key=jax.random.PRNGKey(3))
    xs = jax.random.normal(jax.random.PRNGKey(4), (2, 4, 2))
    resets = jnp.zeros((2, 4), bool)

    def loss(c):
        carry = c.init_carry()
        _, carry = c.unroll(carry, xs[0], resets[0], method)
        ys, _ = c.unroll(carry, xs[1], resets[1], method)
        return jnp.sum(jnp.sin(ys))

    g = eqx.filter_grad(loss)(cell)
    params, treedef = jax.tree.flatten(eqx.filter(cell, eqx.is_array))
    static = eqx.partition(cell, eqx.is_array)[1]
    eps = 1e-6
    loss_jit = jax.jit(
        lambda ps: loss(eqx.combine(jax.tree.unflatten(treedef, ps), static))
    )
    for j, (p, gp) in enumerate(zip(params, jax.tree.leaves(g), strict=True)):
        flat = np.asarray(p).ravel()
        for idx in range(min(flat.size, 3)):
            bumped = []
            for sign in (1, -1):
                q = flat.copy()
                q[idx] += sign * eps
                ps = list(params)
                ps[j] = jnp.asarray(q.reshape(p.shape))
                bumped.append(float(loss_jit(ps)))
            fd = (bumped[0] - bumped[1]) / (2 * eps)
            assert abs(fd - float(np.asarray(gp).ravel()[idx])) < 1e-7


def test_float32_by_default_and_runs():
    cell = rc.ELSTM(
        input_size=3, hidden_size=4, key=jax.random.PRNGKey(0), dtype=jnp.float32
    )
    assert cell.F.dtype == jnp.float32
    xs = jax.random.normal(jax.random.PRNGKey(1), (5, 3), jnp.float32)
    resets = jnp.zeros(5, bool)
    for method in ("online", "chunked", "bptt"):
        ys, carry = cell.unroll(cell.init_carry(), xs, resets, method)
        assert ys.dtype == jnp.float32
        assert all(x.dtype == jnp.float32 for x in jax.tree.leaves(carry))
    g_on = eqx.filter_grad(
        lambda c: jnp.sum(c.unroll(c.init_carry(), xs, resets, "online")[0])
    )(cell)
    g_bp = eqx.filter_grad(
        lambda c: jnp.sum(c.unroll(c.init_carry(), xs, resets, "bptt")[0])
    )(cell)
    assert _tree_close(g_on, g_bp, rtol=1e-4, atol=1e-6)


# --- the layer-local approximation, against its own stated properties ------------


def _two_segment_grad(cell, method, xs, resets):
    @eqx.filter_jit
    @eqx.filter_grad
    def grad(c):
        _, carry = c.unroll(c.init_carry(), xs[0], resets[0], method)
        ys, _ = c.unroll(carry, xs[1], resets[1], method)
        return jnp.sum(jnp.sin(ys))

    return grad(cell)


@pytest.mark.parametrize("method", ["online", "chunked"])
def test_layer_local_equals_exact_for_one_layer(method):
    layer = rc.ELSTM(input_size=3, hidden_size=4, key=jax.random.PRNGKey(0))
    xs = jax.random.normal(jax.random.PRNGKey(1), (2, 5, 3))
    resets = jnp.zeros((2, 5), bool)
    g_exact = _two_segment_grad(rc.Stack([layer]), method, xs, resets)
    g_approx = _two_segment_grad(rc.LayerLocalApproxStack([layer]), method, xs, resets)
    g_cell = _two_segment_grad(layer, method, xs, resets)
    assert _tree_close(g_approx.layers, g_exact.layers, rtol=1e-12, atol=1e-15)
    assert _tree_close(g_approx.layers[0], g_cell, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("method", ["online", "chunked"])
def test_layer_local_differs_on_two_layers_but_keeps_its_promises(method):
    l1 = rc.ELSTM(input_size=3, hidden_size=4, key=jax.random.PRNGKey(0))
    l2 = rc.ELSTM(input_size=4, hidden_size=3, key=jax.random.PRNGKey(1))
    exact, approx = rc.Stack([l1, l2]), rc.LayerLocalApproxStack([l1, l2])
    xs = jax.random.normal(jax.random.PRNGKey(2), (2, 5, 3))
    resets = jnp.zeros((2, 5), bool)
    g_exact = _two_segment_grad(exact, method, xs, resets)
    g_approx = _two_segment_grad(approx, method, xs, resets)
    # The bottom layer's recurrent weights lose the cross-layer credit...
    diff = jnp.max(jnp.abs(g_exact.layers[0].F - g_approx.layers[0].F))
    assert diff > 1e-3 * jnp.max(jnp.abs(g_exact.layers[0].F))
    # ...while the top layer's gradient only needs its own traces: exact.
    assert _tree_close(g_approx.layers[1], g_exact.layers[1], rtol=1e-11, atol=1e-14)
    # The traces it keeps are exactly the exact stack's own-layer blocks.
    _, c_exact = exact.unroll(exact.init_carry(), xs[0], resets[0], method)
    _, c_approx = approx.unroll(approx.init_carry(), xs[0], resets[0], method)
    layout = exact._layout()
    for g in range(2):
        for j, kind in enumerate(layout.kinds[g]):
            if kind == "diag":
                np.testing.assert_allclose(
                    c_approx.traces[g][j], c_exact.traces[g][j], rtol=1e-12
                )
            else:
                assert c_approx.traces[g][j] is None


@pytest.mark.parametrize("method", ["online", "chunked"])
def test_inputs_of_another_float_dtype(method):
    # float64 parameters fed float32 observations (x64 on): the state takes the
    # parameters' dtype and the RTRL cotangents must follow the state, not xs.
    cell = rc.RTU(input_size=3, hidden_size=2, key=jax.random.PRNGKey(0))
    assert cell.W1.dtype == jnp.float64
    xs = jax.random.normal(jax.random.PRNGKey(1), (4, 3), jnp.float32)
    resets = jnp.zeros(4, bool)

    def loss(c, x):
        return jnp.sum(c.unroll(c.init_carry(), x, resets, method)[0])

    g32 = eqx.filter_grad(loss)(cell, xs)
    g64 = eqx.filter_grad(loss)(cell, xs.astype(jnp.float64))
    assert _tree_close(g32, g64, rtol=1e-6, atol=1e-7)
