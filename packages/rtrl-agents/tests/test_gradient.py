"""The R2AC learner's core gradient on one rollout equals full-episode BPTT."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from rtrl_agents_testenvs import DelayedRecall

import rtrl_agents as ra

M = 3


def _setup(method, cell):
    env = DelayedRecall(num_envs=2, delay=5, num_symbols=3)
    net = ra.NetworkConfig(
        torso=ra.TorsoConfig(hidden_sizes=(8,), activation="tanh"),
        core=ra.CoreConfig(cell=cell, hidden_size=5, method=method),
        heads=ra.HeadConfig(hidden_sizes=(4,)),
    )
    agent = ra.r2ac(ra.R2ACConfig(network=net, rollout_length=M), env.spec)
    runner = ra.init_runner(agent, env, jax.random.PRNGKey(3))
    collect = jax.jit(ra.collect, static_argnums=(0, 1))
    batches = []
    for _ in range(3):
        runner, batch, _ = collect(agent, env, runner)
        batches.append(batch)
    return agent, runner.agent.params, batches


def _core_grad(loss_fn, net):
    grads = eqx.filter_jit(eqx.filter_grad(loss_fn))(net)
    return jax.tree.leaves(eqx.filter(grads.core, eqx.is_inexact_array))


def _full_bptt_loss(agent, batches):
    # The whole history from the episode start (init carry, first=True at t=0),
    # differentiated by plain BPTT; the loss only sees the last rollout's steps.
    last = batches[-1]
    obs = jnp.concatenate(
        [b.observation[:, :-1] for b in batches[:-1]] + [last.observation], 1
    )
    rew = jnp.concatenate([b.reward[:, :-1] for b in batches[:-1]] + [last.reward], 1)
    first = jnp.concatenate([b.first[:, :-1] for b in batches[:-1]] + [last.first], 1)
    start = obs.shape[1] - (M + 1)
    cfg = agent.config

    def loss(net):
        def one(o, r, f, a, mu, rr, term, trunc):
            p, v, _ = net.unroll(net.initial_carry(), o, r, f, method="bptt")
            parts = ra.r2ac_stream_loss(
                net, p[start:], v[start:], a, mu, rr, term, trunc, cfg
            )
            return (
                parts.policy
                + cfg.baseline_cost * parts.baseline
                + (cfg.entropy_cost * parts.entropy)
            )

        return jnp.sum(
            jax.vmap(one)(
                obs,
                rew,
                first,
                last.action,
                last.extras.policy,
                last.reward,
                last.terminated,
                last.truncated,
            )
        )

    return loss


@pytest.mark.parametrize(
    ("method", "cell"),
    [
        ("rtrl", "elstm"),
        ("rtrl-online", "elstm"),
        pytest.param("rtrl", "rtu", marks=pytest.mark.slow),
    ],
)
def test_rtrl_agent_gradient_equals_full_bptt(x64, method, cell):
    agent, net, batches = _setup(method, cell)
    assert (
        jax.tree.leaves(eqx.filter(net, eqx.is_inexact_array))[0].dtype == jnp.float64
    )
    got = _core_grad(lambda n: ra.r2ac_loss(n, batches[-1], agent.config)[0], net)
    want = _core_grad(_full_bptt_loss(agent, batches), net)
    # The rollout's history really matters: the first rollout starts the episode.
    assert not bool(jnp.all(batches[-1].first[:, 0]))
    for g, w in zip(got, want, strict=True):
        scale = np.max(np.abs(np.asarray(w)))
        assert scale > 0
        np.testing.assert_allclose(
            np.asarray(g), np.asarray(w), rtol=0, atol=1e-10 * scale
        )


def test_tbptt_agent_gradient_is_truncated(x64):
    agent, net, batches = _setup("tbptt", "elstm")
    got = _core_grad(lambda n: ra.r2ac_loss(n, batches[-1], agent.config)[0], net)
    want = _core_grad(_full_bptt_loss(agent, batches), net)
    err = max(
        float(jnp.max(jnp.abs(g - w)) / jnp.max(jnp.abs(w)))
        for g, w in zip(got, want, strict=True)
    )
    assert err > 1e-3
