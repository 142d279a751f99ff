"""RTRL gradients equal full BPTT over the whole history (float64, rel. err. 1e-10).

Written against the public contract only: three segments, carries passed across
calls, a reset inside the middle segment, a loss on the last segment, and the
reference is one ``"bptt"`` unroll over everything from ``init_carry()``.
"""

import functools

import equinox as eqx
import jax
import jax.numpy as jnp
import pytest

import rtrl_cells as rc

CELLS = rc.example_cells(jax.random.PRNGKey(0))
TOL = 1e-10
T = 5


@eqx.filter_jit
def unroll(cell, carry, xs, resets, method):
    return cell.unroll(carry, xs, resets, method)


@eqx.filter_jit
def step(cell, carry, x_t, reset_t):
    return cell.step(carry, x_t, reset_t)


def _data(cell, key=1):
    xs = jax.random.normal(jax.random.PRNGKey(key), (3, T, cell.input_size))
    resets = jnp.zeros((3, T), bool).at[1, 2].set(True)
    return xs, resets


def _loss(ys):
    return jnp.sum(jnp.cos(ys) * ys)


@functools.cache
def _cached_grads(cell_name, method, key):
    cell = CELLS[cell_name]()
    xs, resets = _data(cell, key)
    if method == "full-bptt":
        return _full_bptt_grad(cell, xs, resets)
    return _segmented_grad(cell, method, xs, resets)


def _segmented_grad(cell, method, xs, resets):
    @eqx.filter_jit
    @eqx.filter_grad
    def grad(c):
        carry = c.init_carry()
        _, carry = c.unroll(carry, xs[0], resets[0], method=method)
        _, carry = c.unroll(carry, xs[1], resets[1], method=method)
        ys, _ = c.unroll(carry, xs[2], resets[2], method=method)
        return _loss(ys)

    return grad(cell)


def _full_bptt_grad(cell, xs, resets):
    @eqx.filter_jit
    @eqx.filter_grad
    def grad(c):
        ys, _ = c.unroll(
            c.init_carry(), xs.reshape(-1, c.input_size), resets.reshape(-1), "bptt"
        )
        return _loss(ys[-T:])

    return grad(cell)


def rel_err(a, b):
    errs = jax.tree.leaves(
        jax.tree.map(lambda x, y: jnp.max(jnp.abs(x - y)) / jnp.max(jnp.abs(y)), a, b)
    )
    return float(max(errs))


def test_rtrl_equals_full_bptt(cell_name, rtrl_method):
    g = _cached_grads(cell_name, rtrl_method, 1)
    g_ref = _cached_grads(cell_name, "full-bptt", 1)
    assert rel_err(g, g_ref) <= TOL


def test_truncated_bptt_is_not_exact(cell):
    # The baseline the library exists to beat: cutting gradients at segment starts
    # must lose something on this history, or the test above proves nothing.
    xs, resets = _data(cell)
    resets = resets.at[1, 2].set(False)
    g = _segmented_grad(cell, "bptt", xs, resets)
    g_ref = _full_bptt_grad(cell, xs, resets)
    assert rel_err(g, g_ref) > 1e-4


def test_online_and_chunked_agree(cell_name, cell):
    xs, resets = _data(cell, key=1)
    g_on = _cached_grads(cell_name, "online", 1)
    g_ch = _cached_grads(cell_name, "chunked", 1)
    assert rel_err(g_on, g_ch) <= TOL

    carry_on = carry_ch = cell.init_carry()
    for k in range(3):
        ys_on, carry_on = unroll(cell, carry_on, xs[k], resets[k], "online")
        ys_ch, carry_ch = unroll(cell, carry_ch, xs[k], resets[k], "chunked")
        assert jnp.allclose(ys_on, ys_ch, rtol=1e-12, atol=1e-12)
    assert eqx.tree_equal(carry_on, carry_ch, rtol=1e-10, atol=1e-12)


def test_recomputation_changes_no_value(cell):
    # Whether an unrolled call recomputes its steps on the way back is a speed
    # choice per cell and method (``_recompute``). For "bptt" the other choice must
    # give the same gradient, or the reference above would depend on it. (The
    # RTRL methods' choices are checked against that reference.)
    xs, resets = _data(cell)

    remat = jax.make_jaxpr(jax.checkpoint(jnp.sin))(1.0).eqns[0].primitive.name

    def recomputes():  # what the traced call does, not what the cell says
        def loss(c):
            return _loss(c.unroll(c.init_carry(), xs[0], resets[0], "bptt")[0])

        return f"{remat}[" in str(eqx.filter_make_jaxpr(loss)(cell)[0])

    g = _segmented_grad(cell, "bptt", xs, resets)
    flipped = not cell._recompute("bptt")
    assert recomputes() is not flipped
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(type(cell), "_recompute", lambda self, method: flipped)
        assert recomputes() is flipped
        g_flipped = _segmented_grad(cell, "bptt", xs, resets)  # a fresh jit
    assert rel_err(g_flipped, g) <= 1e-12


def test_step_is_online_unroll(cell):
    xs, resets = _data(cell, key=3)
    ys, carry_u = unroll(cell, cell.init_carry(), xs[1], resets[1], "online")
    carry = cell.init_carry()
    for t in range(T):
        y_t, carry = step(cell, carry, xs[1, t], resets[1, t])
        assert jnp.allclose(y_t, ys[t], rtol=1e-12, atol=1e-12)
    assert eqx.tree_equal(carry, carry_u, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("method", ["online", "chunked", "bptt"])
def test_no_gradient_reaches_previous_carry(cell, method):
    xs, resets = _data(cell)
    _, carry = unroll(cell, cell.init_carry(), xs[0], resets[0], method)

    def loss_of_carry(carry):
        ys, carry_T = cell.unroll(carry, xs[1], resets[1], method)
        return _loss(ys) + sum(jnp.sum(s) for s in carry_T.states)

    g = jax.jit(jax.grad(loss_of_carry))(carry)
    assert all(float(jnp.max(jnp.abs(leaf))) == 0.0 for leaf in jax.tree.leaves(g))

    # And the returned carry is data: nothing flows from it back to the params.
    def loss_of_returned_carry(c):
        _, carry_T = c.unroll(carry, xs[1], resets[1], method)
        return sum(jnp.sum(s) for s in jax.tree.leaves(carry_T))

    g_params = eqx.filter_jit(eqx.filter_grad(loss_of_returned_carry))(cell)
    assert all(float(jnp.max(jnp.abs(x))) == 0.0 for x in jax.tree.leaves(g_params))


def test_inputs_get_gradients(cell):
    xs, resets = _data(cell)
    carry = cell.init_carry()

    def loss_of_inputs(method, x):
        ys, _ = cell.unroll(carry, x, resets[0], method)
        return _loss(ys)

    g_chunked = jax.jit(jax.grad(lambda x: loss_of_inputs("chunked", x)))(xs[0])
    g_bptt = jax.jit(jax.grad(lambda x: loss_of_inputs("bptt", x)))(xs[0])
    # Chunked gives inputs BPTT gradients inside the segment.
    assert jnp.allclose(g_chunked, g_bptt, rtol=1e-10, atol=1e-12)

    # Online gives each input its one-step gradient: ys[t] as a function of xs[t]
    # with the state before step t held fixed.
    g_online = jax.jit(jax.grad(lambda x: loss_of_inputs("online", x)))(xs[0])
    _, carry_ = unroll(cell, carry, xs[0, :2], resets[0, :2], "bptt")

    def one_step(x2):
        y, _ = cell.unroll(carry_, x2[None], resets[0, 2:3], "bptt")
        return _loss(y)

    assert jnp.allclose(g_online[2], jax.grad(one_step)(xs[0, 2]), rtol=1e-10)
