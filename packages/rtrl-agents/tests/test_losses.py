"""Losses against hand-computed values, and split-versus-whole consistency."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import rtrl_agents as ra


def test_vtrace_golden():
    out = ra.vtrace(
        v_tm1=jnp.array([1.0, 2.0, 3.0]),
        v_t=jnp.array([2.0, 3.0, 4.0]),
        r_t=jnp.array([1.0, 0.0, 2.0]),
        discount_t=jnp.array([0.9, 0.9, 0.9]),
        rho_tm1=jnp.array([2.0, 0.5, 1.0]),
    )
    # delta = [1.8, 0.35, 2.6]; acc_2 = 2.6, acc_1 = 0.35 + 0.9*0.5*2.6 = 1.52,
    # acc_0 = 1.8 + 0.9*1*1.52 = 3.168.
    np.testing.assert_allclose(out.vs, [4.168, 3.52, 5.6], rtol=1e-6)
    # pg: rho_pg * (r + gamma * vs_{s+1} - V), vs_T = v_t[-1] = 4.
    np.testing.assert_allclose(out.pg_advantage, [3.168, 1.52, 2.6], rtol=1e-6)


def test_vtrace_mask_cuts_recursion():
    out = ra.vtrace(
        v_tm1=jnp.array([1.0, 2.0, 3.0]),
        v_t=jnp.array([2.0, 3.0, 4.0]),
        r_t=jnp.array([1.0, 0.0, 2.0]),
        discount_t=jnp.array([0.9, 0.9, 0.9]),
        rho_tm1=jnp.array([2.0, 0.5, 1.0]),
        mask_t=jnp.array([1.0, 0.0, 1.0]),
    )
    np.testing.assert_allclose(out.vs, [2.8, 2.0, 5.6], rtol=1e-6)
    np.testing.assert_allclose(out.pg_advantage, [1.8, 0.0, 2.6], rtol=1e-6)


def test_vtrace_on_policy_is_n_step_return():
    # rho = 1 everywhere, lambda = 1: v_s is the discounted return bootstrapped
    # from the last value.
    r = jnp.array([1.0, 2.0, 3.0])
    out = ra.vtrace(
        jnp.array([5.0, 6.0, 7.0]),
        jnp.array([6.0, 7.0, 10.0]),
        r,
        jnp.full(3, 0.5),
        jnp.ones(3),
    )
    want0 = 1 + 0.5 * 2 + 0.25 * 3 + 0.125 * 10
    np.testing.assert_allclose(out.vs[0], want0, rtol=1e-6)


def _rlax_vtrace_td_error_and_advantage(v_tm1, v_t, r_t, discount_t, rho_tm1, lam):
    """rlax 0.1's ``vtrace_td_error_and_advantage`` (rlax/_src/vtrace.py), its
    loops transcribed in NumPy float64 (clip thresholds 1)."""
    c_tm1 = np.minimum(1.0, rho_tm1) * lam
    td = np.minimum(1.0, rho_tm1) * (r_t + discount_t * v_t - v_tm1)
    err, errors = 0.0, []
    for i in reversed(range(len(v_t))):
        err = td[i] + discount_t[i] * c_tm1[i] * err
        errors.append(err)
    targets_tm1 = np.array(errors[::-1]) + v_tm1
    q_bootstrap = np.concatenate(
        [lam * targets_tm1[1:] + (1 - lam) * v_tm1[1:], v_t[-1:]]
    )
    q_estimate = r_t + discount_t * q_bootstrap
    return targets_tm1, np.minimum(1.0, rho_tm1) * (q_estimate - v_tm1)


@pytest.mark.parametrize("lam", [1.0, 0.9, 0.5, 0.0])
def test_vtrace_lambda_in_the_advantage_equals_rlax(x64, lam):
    rng = np.random.default_rng(3)
    T = 12
    v = rng.normal(size=T + 1)
    v_tm1, v_t = v[:-1], v[1:]
    r_t = rng.normal(size=T)
    discount_t = 0.95 * (rng.random(T) > 0.15)  # a few terminations
    rho_tm1 = np.exp(rng.normal(scale=0.7, size=T))
    want_vs, want_pg = _rlax_vtrace_td_error_and_advantage(
        v_tm1, v_t, r_t, discount_t, rho_tm1, lam
    )
    out = ra.vtrace(
        *(jnp.asarray(a) for a in (v_tm1, v_t, r_t, discount_t, rho_tm1)),
        lambda_=lam,
    )
    assert out.vs.dtype == jnp.float64
    np.testing.assert_allclose(out.vs, want_vs, rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(out.pg_advantage, want_pg, rtol=1e-13, atol=1e-13)
    if lam < 1:
        # The advantage really depends on lambda (it did not before).
        _, pg_one = _rlax_vtrace_td_error_and_advantage(
            v_tm1, v_t, r_t, discount_t, rho_tm1, 1.0
        )
        assert np.max(np.abs(pg_one - want_pg)) > 0.05


def test_vtrace_actor_critic_loss_golden():
    logp = jnp.log(jnp.array([0.5, 0.25, 0.5]))
    losses = ra.vtrace_actor_critic_loss(
        logp_tm1=logp,
        entropy_tm1=jnp.array([0.6, 0.7, 0.8]),
        mu_logp_tm1=logp,  # on-policy: rho = 1
        v_tm1=jnp.array([1.0, 2.0, 3.0]),
        v_t=jnp.array([2.0, 3.0, 4.0]),
        r_t=jnp.array([1.0, 0.0, 2.0]),
        discount_t=jnp.array([0.9, 0.9, 0.0]),
        mask_t=jnp.array([1.0, 1.0, 1.0]),
    )
    # delta = [1.8, 0.7, -1]; vs - v = [1.8 + .9*(.7 - .9), .7 - .9, -1]
    adv = np.array([1.8 + 0.9 * (-0.2), -0.2, -1.0])
    vs = np.array([1.0, 2.0, 3.0]) + adv
    pg = np.array([1 + 0.9 * vs[1] - 1, 0 + 0.9 * vs[2] - 2, 2 - 3.0])
    np.testing.assert_allclose(losses.policy, -np.sum(pg * np.asarray(logp)), 1e-5)
    np.testing.assert_allclose(losses.baseline, 0.5 * np.sum(adv**2), rtol=1e-5)
    np.testing.assert_allclose(losses.entropy, -2.1, rtol=1e-6)


def test_gae_golden():
    adv = ra.gae(
        r_t=jnp.array([1.0, 0.0, 2.0]),
        discount_t=jnp.array([0.9, 0.9, 0.0]),
        values=jnp.array([1.0, 2.0, 3.0, 4.0]),
        lambda_=0.5,
    )
    # delta = [1.8, 0.7, -1]; A_2 = -1, A_1 = .7 - .45 = .25, A_0 = 1.8 + .45*.25
    np.testing.assert_allclose(adv, [1.9125, 0.25, -1.0], rtol=1e-6)


def test_gae_mask():
    adv = ra.gae(
        jnp.array([1.0, 5.0, 2.0]),
        jnp.array([0.9, 0.9, 0.9]),
        jnp.array([1.0, 2.0, 3.0, 4.0]),
        0.5,
        mask_t=jnp.array([1.0, 0.0, 1.0]),
    )
    np.testing.assert_allclose(adv, [1.8, 0.0, 2.6], rtol=1e-6)


def test_ppo_clip_golden():
    loss = ra.ppo_clip_loss(
        jnp.array([0.5, 1.5, 1.0, 0.5]), jnp.array([1.0, 1.0, -2.0, -1.0]), 0.2
    )
    np.testing.assert_allclose(loss, [-0.5, -1.2, 2.0, 0.8], rtol=1e-6)


def test_transitions_masks_the_ignored_step():
    tr = ra.transitions(
        reward=jnp.array([0.0, 3.0, 0.0, -5.0]),
        terminated=jnp.array([False, True, False, False]),
        truncated=jnp.array([False, False, False, False]),
        discount=0.9,
        reward_clip=1.0,
    )
    np.testing.assert_allclose(tr.r_t, [1.0, 0.0, -1.0])
    np.testing.assert_allclose(tr.discount_t, [0.0, 0.9, 0.9])
    np.testing.assert_allclose(tr.mask_t, [1.0, 0.0, 1.0])


@pytest.mark.parametrize("split", [1, 3, 5])
def test_split_versus_whole(split):
    key = jax.random.PRNGKey(0)
    k = jax.random.split(key, 4)
    T = 7
    v = jax.random.normal(k[0], (T + 1,))
    r = jax.random.normal(k[1], (T,))
    d = 0.9 * (jax.random.uniform(k[2], (T,)) > 0.2)
    rho = jnp.exp(0.3 * jax.random.normal(k[3], (T,)))
    whole = ra.vtrace(v[:-1], v[1:], r, d, rho)
    tail = ra.vtrace(v[split:-1], v[split + 1 :], r[split:], d[split:], rho[split:])
    np.testing.assert_allclose(whole.vs[split:], tail.vs, rtol=1e-5)
    np.testing.assert_allclose(whole.pg_advantage[split:], tail.pg_advantage, 1e-5)
    a_whole = ra.gae(r, d, v, 0.7)
    a_tail = ra.gae(r[split:], d[split:], v[split:], 0.7)
    np.testing.assert_allclose(a_whole[split:], a_tail, rtol=1e-5)
    # With lambda = 1 the head bootstrapped from the tail's return equals the
    # whole: the value at the split cancels.
    a1_whole = ra.gae(r, d, v, 1.0)
    a1_tail = ra.gae(r[split:], d[split:], v[split:], 1.0)
    v_head = v[: split + 1].at[-1].set(a1_tail[0] + v[split])
    a1_head = ra.gae(r[:split], d[:split], v_head, 1.0)
    np.testing.assert_allclose(a1_whole[:split], a1_head, rtol=1e-5, atol=1e-6)
