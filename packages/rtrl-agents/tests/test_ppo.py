"""PPO's value clipping and refreshed targets (Elelimy et al. 2024's released PPO,
CleanRL's ``ppo_continuous_action.py``)."""

import dataclasses

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from rtrl_agents_testenvs import DelayedRecall, ppo_recall_config

import rtrl_agents as ra


def _collected(config, seed=0):
    env = DelayedRecall(num_envs=4, delay=2)
    agent = ra.ppo(config, env.spec)
    runner = ra.init_runner(agent, env, jax.random.PRNGKey(seed))
    _, batch, _ = jax.jit(lambda r: ra.collect(agent, env, r))(runner)
    return agent, runner.agent, batch


def _random_minibatch(agent, state, key, L=6):
    """Sequences of random observations from the start carry, with targets and
    behaviour values chosen so that both value-loss branches are active."""
    net = state.params
    N = agent.num_envs
    k = jax.random.split(key, 6)
    obs_shape = tuple(agent.spec.observation_shape)
    carry_0 = jax.vmap(net.stored_carry)(agent.initial_carry(state))
    first = jnp.zeros((N, L), bool).at[:, 0].set(True)
    v = jax.vmap(lambda c, o, r, f: net.unroll(c, o, r, f)[1])(
        carry_0,
        obs := jax.random.normal(k[0], (N, L, *obs_shape)),
        jnp.zeros((N, L)),
        first,
    )
    mb = ra.PPOMinibatch(
        carry_0=carry_0,
        observation=obs,
        reward=jnp.zeros((N, L)),
        first=first,
        action=jax.random.randint(k[1], (N, L), 0, agent.spec.action_space.n),
        logp_old=jnp.log(jnp.full((N, L), 0.5)),
        advantage=jax.random.normal(k[2], (N, L)),
        return_=jax.random.normal(k[3], (N, L)),
        # Half the behaviour values far from the current ones (the clip binds).
        value_old=v + jax.random.choice(k[4], jnp.array([0.0, 0.5, -0.7]), (N, L)),
        mask=jnp.ones((N, L)).at[0, -1].set(0.0),
    )
    return mb, v


def test_ppo_value_loss_is_cleanrls_formula():
    rng = np.random.default_rng(0)
    v, v_old, ret = (rng.normal(size=256) for _ in range(3))
    eps = 0.2
    # CleanRL: v_clipped = b_values + clamp(newvalue - b_values, -eps, eps);
    # 0.5 * max((newvalue - returns)^2, (v_clipped - returns)^2).
    want = 0.5 * np.maximum(
        (v - ret) ** 2, (v_old + np.clip(v - v_old, -eps, eps) - ret) ** 2
    )
    got = ra.ppo_value_loss(jnp.asarray(v), jnp.asarray(v_old), jnp.asarray(ret), eps)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)
    plain = ra.ppo_value_loss(
        jnp.asarray(v), jnp.asarray(v_old), jnp.asarray(ret), None
    )
    np.testing.assert_allclose(plain, 0.5 * (v - ret) ** 2, rtol=1e-5, atol=1e-7)
    active = (v_old + np.clip(v - v_old, -eps, eps) - ret) ** 2 > (v - ret) ** 2
    assert 0.1 < active.mean() < 0.9
    # Where the clipped branch wins and v is outside the clip, no value gradient.
    g = jax.grad(
        lambda x: jnp.sum(
            ra.ppo_value_loss(x, jnp.asarray(v_old), jnp.asarray(ret), eps)
        )
    )(jnp.asarray(v))
    outside = active & (np.abs(v - v_old) > eps)
    assert outside.any()
    np.testing.assert_array_equal(np.asarray(g)[outside], 0.0)


@pytest.mark.parametrize("clip_value", [True, False])
def test_ppo_loss_value_term_is_the_configured_formula(clip_value):
    config = dataclasses.replace(ppo_recall_config("rtrl"), clip_value=clip_value)
    agent, state, _ = _collected(config)
    mb, v = _random_minibatch(agent, state, jax.random.PRNGKey(1))
    _, metrics = ra.ppo_loss(state.params, mb, config)
    v, v_old, ret, mask = (
        np.asarray(x, np.float64) for x in (v, mb.value_old, mb.return_, mb.mask)
    )
    unclipped = (v - ret) ** 2
    clipped = (v_old + np.clip(v - v_old, -0.2, 0.2) - ret) ** 2
    per = 0.5 * (np.maximum(unclipped, clipped) if clip_value else unclipped)
    want = np.sum(mask * per) / np.sum(mask)
    np.testing.assert_allclose(metrics["value_loss"], want, rtol=1e-5)
    # The two formulas really differ on this batch (the switch matters).
    other = 0.5 * (unclipped if clip_value else np.maximum(unclipped, clipped))
    assert abs(np.sum(mask * other) / np.sum(mask) - want) > 1e-3


def _no_statistics(config, **kw):
    return dataclasses.replace(
        config, normalize_observations=False, normalize_rewards=False, **kw
    )


def _params(state):
    return jax.tree.leaves(eqx.filter(state.params, eqx.is_array))


def test_refresh_recomputes_the_targets_from_the_current_parameters():
    # "refresh" re-runs the rollout before each epoch: carries, values, GAE
    # advantages and value targets all come from the current parameters, so the
    # actor's recorded values cannot matter; with "stale" they are the targets.
    for traces, matters in (("refresh", False), ("stale", True)):
        config = _no_statistics(ppo_recall_config("rtrl", traces), num_epochs=2)
        agent, state, batch = _collected(config)
        wrong = batch._replace(
            extras=batch.extras._replace(value=batch.extras.value + 3.0)
        )
        a, _ = jax.jit(agent.update)(state, batch)
        b, _ = jax.jit(agent.update)(state, wrong)
        diff = max(
            float(jnp.max(jnp.abs(x - y)))
            for x, y in zip(_params(a), _params(b), strict=True)
        )
        assert (diff > 1e-4) == matters, (traces, diff)


@pytest.mark.parametrize("seq_len", [1, 8])
def test_refresh_equals_stale_in_the_first_epoch(seq_len):
    # Before any step the current parameters are the actor's: re-running the
    # rollout gives the stored carries (at every sequence start) and the values
    # back.
    updated = {}
    for traces in ("stale", "refresh"):
        config = _no_statistics(
            ppo_recall_config("rtrl", traces, seq_len=seq_len), num_epochs=1
        )
        agent, state, batch = _collected(config)
        updated[traces], _ = jax.jit(agent.update)(state, batch)
    for x, y in zip(
        _params(updated["stale"]), _params(updated["refresh"]), strict=True
    ):
        np.testing.assert_allclose(x, y, rtol=2e-4, atol=2e-6)


def test_orthogonal_init_has_the_released_gains():
    # Elelimy et al.'s released PPO (and CleanRL): orthogonal weights, zero
    # biases, gain sqrt(2) in hidden layers, 0.01 at the policy's output, 1 at
    # the value's. An orthogonal W (out x in) with gain g has W W^T = g^2 I when
    # out <= in, W^T W = g^2 I otherwise.
    import math

    from rtrl_agents_testenvs import Box

    net_config = ra.rtu_ppo_network()
    assert net_config.init == "orthogonal"
    for space in (
        Box((-1.0,) * 3, (1.0,) * 3, (3,)),
        DelayedRecall(num_envs=1).spec.action_space,
    ):
        net = ra.ActorCriticNet(net_config, (7,), space, key=jax.random.PRNGKey(2))
        layers = [
            *[(layer, math.sqrt(2)) for layer in net.torso.layers],
            *[(layer, math.sqrt(2)) for layer in net.policy.mlp.layers[:-1]],
            (net.policy.mlp.layers[-1], 0.01),
            *[(layer, math.sqrt(2)) for layer in net.value.mlp.layers[:-1]],
            (net.value.mlp.layers[-1], 1.0),
        ]
        assert len(layers) == 5
        for layer, gain in layers:
            w = np.asarray(layer.weight, np.float64)
            gram = w @ w.T if w.shape[0] <= w.shape[1] else w.T @ w
            np.testing.assert_allclose(gram, gain**2 * np.eye(len(gram)), atol=1e-5)
            np.testing.assert_array_equal(layer.bias, 0.0)
    # The default stays Equinox's (not orthogonal, biases not zero).
    default = dataclasses.replace(net_config, init="default")
    net = ra.ActorCriticNet(
        default, (7,), Box((-1.0,) * 3, (1.0,) * 3, (3,)), key=jax.random.PRNGKey(2)
    )
    w = np.asarray(net.torso.layers[0].weight, np.float64)
    assert not np.allclose(w @ w.T, 2 * np.eye(len(w)), atol=1e-2)
    assert np.any(np.asarray(net.torso.layers[0].bias) != 0)
    with pytest.raises(ValueError, match="MLP torso"):
        ra.NetworkConfig(torso=ra.TorsoConfig(kind="impala"), init="orthogonal")


@pytest.mark.parametrize(
    ("method", "traces"), [("rtrl", "stale"), ("rtrl", "refresh"), ("tbptt", "stale")]
)
def test_one_sequence_per_rollout_is_ppo_from_the_first_carry(x64, method, traces):
    # With one sequence per rollout the actor stores each step's state alone
    # (no traces): the sequence starts from the rollout's first carry, and the
    # bootstrap value needs no traces. Reference, built independently: one
    # epoch of one minibatch is one Adam step on ppo_loss of every stream's
    # sequence from carry_0 (with its traces), advantages from GAE with the
    # recorded values and V(x_T) from a (T + 1)-step unroll.
    T = 32
    config = _no_statistics(
        ppo_recall_config(method, traces, seq_len=T), num_epochs=1, num_minibatches=1
    )
    env = DelayedRecall(num_envs=4, delay=2)
    agent = ra.ppo(config, env.spec)
    runner = ra.init_runner(agent, env, jax.random.PRNGKey(0))
    # The second rollout: its first carry holds traces of the first.
    runner, _, _ = jax.jit(lambda r: ra.collect(agent, env, r))(runner)
    _, batch, _ = jax.jit(lambda r: ra.collect(agent, env, r))(runner)
    state = runner.agent
    assert batch.extras.carry.has_traces is False
    assert batch.carry_0.has_traces == (method == "rtrl")
    got, _ = jax.jit(agent.update)(state, batch)

    net = state.params
    carry_0 = jax.vmap(net.stored_carry)(batch.carry_0)
    _, v_all, _ = jax.vmap(net.unroll)(
        carry_0, batch.observation, batch.reward, batch.first
    )
    values = batch.extras.value if traces == "stale" else v_all[:, :T]

    def targets(rw, term, trunc, vals):
        tr = ra.transitions(rw, term, trunc, config.discount, config.reward_clip)
        return ra.gae(tr.r_t, tr.discount_t, vals, config.gae_lambda, tr.mask_t), (
            tr.mask_t
        )

    v_1 = jnp.concatenate([values, v_all[:, T:]], 1)
    adv, mask = jax.vmap(targets)(batch.reward, batch.terminated, batch.truncated, v_1)
    logp_old = jax.vmap(jax.vmap(net.policy.log_prob))(
        batch.extras.policy, batch.action
    )
    mb = ra.PPOMinibatch(
        carry_0, batch.observation[:, :-1], batch.reward[:, :-1],
        batch.first[:, :-1], batch.action, logp_old, adv, adv + values, values, mask,
    )  # fmt: skip
    grads = eqx.filter_grad(lambda n: ra.ppo_loss(n, mb, config)[0])(net)
    params = eqx.filter(net, eqx.is_inexact_array)
    optimizer = optax.chain(
        optax.clip_by_global_norm(config.max_grad_norm),
        optax.scale_by_adam(eps=config.adam_eps),
    )
    step, _ = optimizer.update(grads, optimizer.init(params), params)
    want = eqx.apply_updates(
        net, jax.tree.map(lambda u: -config.learning_rate * u, step)
    )
    for x, y in zip(_params(got), jax.tree.leaves(want), strict=True):
        np.testing.assert_allclose(x, y, rtol=1e-9, atol=1e-12)
    if method != "rtrl":
        return
    # The traces matter: without them the update is another one.
    no_traces = batch._replace(
        carry_0=dataclasses.replace(
            batch.carry_0, traces=jax.tree.map(jnp.zeros_like, batch.carry_0.traces)
        )
    )
    other, _ = jax.jit(agent.update)(state, no_traces)
    assert (
        max(
            float(jnp.max(jnp.abs(x - y)))
            for x, y in zip(_params(got), _params(other), strict=True)
        )
        > 1e-6
    )


@pytest.mark.parametrize(
    ("cell", "method", "seq_len", "statistics"),
    [
        ("elstm", "rtrl-online", 1, False),
        ("rtu", "rtrl", 1, False),
        ("elstm", "rtrl", 4, False),
        ("lru", "rtrl", 1, True),
    ],
)
def test_recomputed_stale_traces_update_as_the_stored_ones(
    x64, cell, method, seq_len, statistics
):
    # stale_traces="recompute" stores no trace per step: each minibatch's
    # lambda . E comes from one reverse pass over the rollout. Two updates (the
    # second from a rollout whose first carry holds traces) must equal those
    # from the stored traces; with observation normalisation, reward scaling
    # and the reward input too (the core's inputs the learner rebuilds must be
    # the actor's).
    base = ppo_recall_config(method, "stale", seq_len=seq_len)
    base = dataclasses.replace(base, num_epochs=2)
    if not statistics:
        base = _no_statistics(base)
    network = base.network
    base = dataclasses.replace(
        base,
        network=dataclasses.replace(
            network,
            torso=dataclasses.replace(network.torso, reward_input=statistics),
            core=dataclasses.replace(network.core, cell=cell, hidden_size=8),
        ),
    )
    env = DelayedRecall(num_envs=4, delay=2)
    params = {}
    for mode in ("store", "recompute"):
        agent = ra.ppo(dataclasses.replace(base, stale_traces=mode), env.spec)
        runner = ra.init_runner(agent, env, jax.random.PRNGKey(0))
        _, batch, _ = jax.jit(lambda r, a=agent: ra.collect(a, env, r))(runner)
        assert batch.extras.carry.has_traces == (mode == "store")
        runner, _ = jax.jit(lambda r, a=agent: ra.run_updates(a, env, r, 2))(runner)
        params[mode] = _params(runner.agent)
    moved = 0.0
    for x, y, x0 in zip(
        params["store"],
        params["recompute"],
        _params(agent.init(jax.random.PRNGKey(0))),
        strict=True,
    ):
        np.testing.assert_allclose(y, x, rtol=1e-9, atol=1e-12)
        moved = max(moved, float(jnp.max(jnp.abs(x - x0))))
    assert moved > 1e-4


def test_recomputed_stale_traces_refuse_a_rollout_acted_with_other_parameters():
    config = _no_statistics(ppo_recall_config("rtrl", "stale"), num_epochs=1)
    agent, state, batch = _collected(config)
    lagged = batch._replace(
        extras=batch.extras._replace(update_count=batch.extras.update_count - 1)
    )
    jax.block_until_ready(jax.jit(agent.update)(state, batch))
    with pytest.raises(Exception, match="stale_traces='store'"):
        jax.block_until_ready(jax.jit(agent.update)(state, lagged))
