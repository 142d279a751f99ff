"""``trace_surrogate``: the stale-trace term of RTRL without a stored trace.

A learner that re-steps from a stored carry ``(s_{t-1}, E_{t-1})`` gets the RTRL
gradient ``direct_t + lambda_t . E_{t-1}``. One that stores the state alone gets
``direct_t`` and ``lambda_t`` from ``unroll`` with ``BPTT.to_carry()``, and the
sum of the ``lambda_t . E_{t-1}`` from the gradient of one ``trace_surrogate``
over the trajectory. The two must agree to float64 rounding, resets and carried traces
included.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import pytest

import rtrl_cells as rc


def _inputs(cell, key, T):
    k1, k2 = jax.random.split(key)
    return jax.random.normal(k1, (T, cell.input_size)), jax.random.normal(
        k2, (T, cell.output_size)
    )


def test_trace_surrogate_gradient_equals_the_stored_traces_term(cell):
    T = 6
    xs_pre, _ = _inputs(cell, jax.random.PRNGKey(1), 5)
    xs, w = _inputs(cell, jax.random.PRNGKey(2), T)
    resets = jnp.zeros(T, bool).at[3].set(True)
    # Carried traces from an earlier segment, so E_0 is not zero.
    _, carry_0 = cell.unroll(
        cell.init_carry(), xs_pre, jnp.zeros(5, bool), method="online"
    )
    if isinstance(cell, rc.LayerLocalApproxStack):
        with pytest.raises(ValueError, match="approximation"):
            cell.trace_surrogate(carry_0, xs, resets, carry_0.states)
        return

    def rtrl_loss(c, carry, x_t, reset_t, w_t):
        y, _ = c.unroll(carry, x_t[None], reset_t[None], method="online")
        return jnp.vdot(w_t, y[0])

    def bptt_loss(c_and_states, x_t, reset_t, w_t):
        c, states = c_and_states
        y, _ = c.unroll(
            rc.RTRLCarry(states, ()), x_t[None], reset_t[None], rc.BPTT.to_carry()
        )
        return jnp.vdot(w_t, y[0])

    def per_step(carry, inp):
        x_t, reset_t, w_t = inp
        g_rtrl = eqx.filter_grad(rtrl_loss)(cell, carry, x_t, reset_t, w_t)
        g_direct, lam = eqx.filter_grad(bptt_loss)(
            (cell, carry.states), x_t, reset_t, w_t
        )
        # The stored-trace learner's lambda_t . E_{t-1}.
        term = jax.tree.map(lambda a, b: a - b, g_rtrl, g_direct)
        _, carry = cell.step(carry, x_t, reset_t)
        return carry, (term, lam)

    _, (terms, cts) = jax.lax.scan(per_step, carry_0, (xs, resets, w))
    stale = jax.tree.map(lambda a: jnp.sum(a, 0), terms)
    got = eqx.filter_grad(lambda c: c.trace_surrogate(carry_0, xs, resets, cts))(cell)
    want_leaves, got_leaves = jax.tree.leaves(stale), jax.tree.leaves(got)
    assert len(want_leaves) == len(got_leaves)
    scale = max(float(jnp.max(jnp.abs(a))) for a in want_leaves)
    assert scale > 1e-3  # the stale term is not trivially zero
    for a, b in zip(want_leaves, got_leaves, strict=True):
        assert jnp.allclose(a, b, rtol=1e-10, atol=1e-12 * scale)


def test_bptt_to_carry_passes_the_gradient_to_the_carry_and_only_then():
    cell = rc.ELSTM(input_size=3, hidden_size=4, key=jax.random.PRNGKey(0))
    xs = jax.random.normal(jax.random.PRNGKey(1), (5, 3))
    resets = jnp.zeros(5, bool)
    states = (jax.random.normal(jax.random.PRNGKey(2), (4, 1)),)

    def loss(s, method):
        ys, _ = cell.unroll(rc.RTRLCarry(s, ()), xs, resets, method=method)
        return jnp.sum(ys**2)

    cut = jax.grad(loss)(states, rc.BPTT)
    assert float(jnp.max(jnp.abs(cut[0]))) == 0.0
    lam = jax.grad(loss)(states, rc.BPTT.to_carry())
    fd = jax.jacfwd(lambda s: loss((s,), rc.BPTT.to_carry()))(states[0])
    assert float(jnp.max(jnp.abs(lam[0]))) > 1e-3
    assert jnp.allclose(lam[0], fd, rtol=1e-10)


def test_trace_surrogate_and_to_carry_refuse_what_they_cannot_do():
    cell = rc.ELSTM(input_size=3, hidden_size=4, key=jax.random.PRNGKey(0))
    carry = cell.init_carry()
    xs, resets = jnp.zeros((5, 3)), jnp.zeros(5, bool)
    cts = (jnp.zeros((5, 4, 1)),)
    with pytest.raises(ValueError, match="adds lambda_0"):
        rc.CHUNKED.to_carry()
    with pytest.raises(ValueError, match="needs carry_0's traces"):
        cell.trace_surrogate(carry.for_method("bptt"), xs, resets, cts)
    with pytest.raises(ValueError, match=r"one \(T, units, block\) array"):
        cell.trace_surrogate(carry, xs, resets, (jnp.zeros((4, 4, 1)),))
    with pytest.raises(ValueError, match="expected xs of shape"):
        cell.trace_surrogate(carry, jnp.zeros((5, 2)), resets, cts)
