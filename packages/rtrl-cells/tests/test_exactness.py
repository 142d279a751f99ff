"""A speed choice that must change no value: recomputation in the reverse pass.

(The exactness of RTRL itself, online and chunked against full BPTT in float64,
is ``check_cell``'s, run on every example cell by ``test_contract.py``.)
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import pytest

import rtrl_cells as rc

T = 5


def _data(cell, key=1):
    xs = jax.random.normal(jax.random.PRNGKey(key), (3, T, cell.input_size))
    resets = jnp.zeros((3, T), bool).at[1, 2].set(True)
    return xs, resets


def _loss(ys):
    return jnp.sum(jnp.cos(ys) * ys)


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


def rel_err(a, b):
    errs = jax.tree.leaves(
        jax.tree.map(lambda x, y: jnp.max(jnp.abs(x - y)) / jnp.max(jnp.abs(y)), a, b)
    )
    return float(max(errs))


def test_recomputation_changes_no_value(cell):
    # Whether an unrolled call recomputes its steps on the way back is a speed
    # choice per cell and method (``_recompute``). For "bptt" the other choice must
    # give the same gradient, or the reference of the exactness checks would
    # depend on it. (The RTRL methods' choices are checked against that reference.)
    xs, resets = _data(cell)

    remat = jax.make_jaxpr(jax.checkpoint(jnp.sin))(1.0).eqns[0].primitive.name

    def recomputes():  # what the traced call does, not what the cell says
        def loss(c):
            return _loss(c.unroll(c.init_carry(), xs[0], resets[0], rc.BPTT)[0])

        return f"{remat}[" in str(eqx.filter_make_jaxpr(loss)(cell)[0])

    g = _segmented_grad(cell, rc.BPTT, xs, resets)
    flipped = not cell._recompute(rc.BPTT)
    assert recomputes() is not flipped
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(type(cell), "_recompute", lambda self, method: flipped)
        assert recomputes() is flipped
        g_flipped = _segmented_grad(cell, rc.BPTT, xs, resets)  # a fresh jit
    assert rel_err(g_flipped, g) <= 1e-12
