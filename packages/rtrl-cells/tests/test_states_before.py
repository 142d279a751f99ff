"""``states_before``: the stale-trace term of RTRL without a stored trace.

A learner that re-steps from a stored carry ``(s_{t-1}, E_{t-1})`` gets the RTRL
gradient ``direct_t + lambda_t . E_{t-1}``. One that stores the state alone gets
``direct_t`` and ``lambda_t`` from ``unroll`` with ``BPTT.to_carry()``, and the sum
of the ``lambda_t . E_{t-1}`` as one VJP of ``states_before`` over the
trajectory. The two must agree to float64 rounding, resets and carried traces
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


def test_states_before_vjp_equals_the_stored_traces_term(cell):
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
            cell.states_before(carry_0, xs, resets)
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
        before = carry.states
        _, carry = cell.step(carry, x_t, reset_t)
        return carry, (term, lam, before)

    _, (terms, cts, before) = jax.lax.scan(per_step, carry_0, (xs, resets, w))
    want = jax.tree.leaves(jax.tree.map(lambda a: jnp.sum(a, 0), terms))
    scale = max(float(jnp.max(jnp.abs(a))) for a in want)
    assert scale > 1e-3  # the stale term is not trivially zero
    # The values are the states an online actor steps through; the VJP with
    # the adjoints is the stored traces' term.
    states, vjp = eqx.filter_vjp(lambda c: c.states_before(carry_0, xs, resets), cell)
    for a, b in zip(states, before, strict=True):
        assert jnp.allclose(a, b, rtol=1e-12, atol=1e-12)
    got = jax.tree.leaves(vjp(cts)[0])
    assert len(want) == len(got)
    for a, b in zip(want, got, strict=True):
        assert jnp.allclose(a, b, rtol=1e-10, atol=1e-12 * scale)


def test_states_before_batched_vjp_is_the_same_with_and_without_workarounds():
    # Under vmap, the carried traces' term arrives on copies of the parameters
    # (separate_batch_sums); the gradient must not depend on it.
    cell = rc.RTU(input_size=3, hidden_size=4, key=jax.random.PRNGKey(0))
    B, T = 3, 5
    xs = jax.random.normal(jax.random.PRNGKey(1), (B, T, 3))
    resets = jnp.zeros((B, T), bool).at[1, 2].set(True)
    carry_0 = jax.vmap(
        lambda x: cell.unroll(cell.init_carry(), x, jnp.zeros(T, bool))[1]
    )(xs)
    cts = (jax.random.normal(jax.random.PRNGKey(2), (B, T, 4, 2)),)

    def vjp():
        _, f = eqx.filter_vjp(
            lambda c: jax.vmap(c.states_before)(carry_0, xs, resets), cell
        )
        return f(cts)[0]

    with rc.use_workarounds(separate_batch_sums=True):
        on = vjp()
    with rc.use_workarounds(separate_batch_sums=False):
        off = vjp()
    assert max(float(jnp.max(jnp.abs(a))) for a in jax.tree.leaves(on)) > 1e-3
    for a, b in zip(jax.tree.leaves(on), jax.tree.leaves(off), strict=True):
        assert jnp.allclose(a, b, rtol=1e-12, atol=1e-14)


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


def test_states_before_and_to_carry_refuse_what_they_cannot_do():
    cell = rc.ELSTM(input_size=3, hidden_size=4, key=jax.random.PRNGKey(0))
    carry = cell.init_carry()
    xs, resets = jnp.zeros((5, 3)), jnp.zeros(5, bool)
    with pytest.raises(ValueError, match="adds lambda_0"):
        rc.CHUNKED.to_carry()
    with pytest.raises(ValueError, match="needs carry_0's traces"):
        cell.states_before(carry.for_method("bptt"), xs, resets)
    with pytest.raises(ValueError, match="expected xs of shape"):
        cell.states_before(carry, jnp.zeros((5, 2)), resets)
    with pytest.raises(ValueError, match="resets must have shape"):
        cell.states_before(carry, xs, jnp.zeros(4, bool))
