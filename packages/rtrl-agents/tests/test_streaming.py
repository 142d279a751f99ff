"""The streaming agent is Elsayed et al. 2024's stream AC(lambda), part by part.

Each switch of ``StreamingACConfig`` against the formula of their released code
(``mohmdelsayed/streaming-drl``): sparse initialisation, parameter-free
LayerNorm, observation normalisation and reward scaling updated every step, the
time-in-episode input, separate actor and critic networks; and every switch off
against the agent as it was (rtrl-agents 0.2).
"""

import dataclasses
import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from rtrl_agents_testenvs import DelayedRecall, Discrete, Spec, TimeStep

import rtrl_agents as ra
import rtrl_cells as rc

OFF = {
    "separate_networks": False,
    "sparse_init": False,
    "layer_norm": False,
    "normalize_observations": False,
    "scale_rewards": False,
    "time_input": False,
}
SPACE = Discrete(2)


def _config(**kw):
    """The full recipe on a small streaming network (fast to compile). Width 16:
    with sparsity 0.9 a layer of <= 9 inputs starts all zero (their formula),
    and a network of such layers has no gradient but its output bias's."""
    kw.setdefault("network", ra.streaming_network(hidden_size=16))
    return ra.StreamingACConfig(**kw)


def _inputs_config(**kw):
    """For the tests of the inputs alone: no recurrent core (quick to compile)."""
    return _config(network=ra.streaming_network(hidden_size=16, cell="none"), **kw)


def _leaves(tree):
    return jax.tree.leaves(eqx.filter(tree, eqx.is_inexact_array))


def _dense_layers(net):
    """Every dense layer of an MLP torso and the heads, by name."""
    nets = (
        {"actor": net.actor, "critic": net.critic}
        if isinstance(net, ra.SeparateActorCriticNet)
        else {"net": net}
    )
    out = {}
    for name, n in nets.items():
        for i, layer in enumerate(n.torso.layers):
            out[f"{name}.torso.{i}"] = layer
        for head in ("policy", "value"):
            if hasattr(n, head):
                for i, layer in enumerate(getattr(n, head).mlp.layers):
                    out[f"{name}.{head}.{i}"] = layer
    return out


class _Stream:
    """Timesteps of ``B`` streams, given as arrays ``(B, N + 1, ...)``."""

    def __init__(self, obs, reward=None, terminated=None, truncated=None, first=None):
        self.obs = np.asarray(obs)
        b, n1 = self.obs.shape[:2]
        zeros = np.zeros((b, n1), bool)
        self.reward = np.zeros((b, n1)) if reward is None else np.asarray(reward)
        self.terminated = zeros if terminated is None else np.asarray(terminated)
        self.truncated = zeros if truncated is None else np.asarray(truncated)
        if first is None:
            first = zeros.copy()
            first[:, 0] = True
        self.first = np.asarray(first)

    def timestep(self, t):
        return TimeStep(
            jnp.asarray(self.obs[:, t]),
            jnp.asarray(self.reward[:, t]),
            jnp.asarray(self.terminated[:, t]),
            jnp.asarray(self.truncated[:, t]),
            jnp.asarray(self.first[:, t]),
        )

    def batch(self, carry, t, action, extras):
        def two(a):
            return jnp.asarray(a[:, t : t + 2])

        return ra.Trajectory(
            carry_0=carry,
            observation=two(self.obs),
            reward=two(self.reward),
            terminated=two(self.terminated),
            truncated=two(self.truncated),
            first=two(self.first),
            action=action[:, None],
            extras=jax.tree.map(lambda x: x[:, None], extras),
        )


def _drive(agent, stream, steps, key=0, state=None, on_step=None):
    """Acts and updates once per step on ``stream``, as the loops do; calls
    ``on_step(t, state_before, carry_before, extras, metrics)``."""
    act, update = eqx.filter_jit(agent.act), eqx.filter_jit(agent.update)
    state = agent.init(jax.random.PRNGKey(key)) if state is None else state
    carry = agent.initial_carry(state)
    metrics = None
    for t in range(steps):
        k = jax.random.PRNGKey(1000 + t)
        action, new_carry, extras = act(state, carry, stream.timestep(t), k)
        new_state, metrics = update(state, stream.batch(carry, t, action, extras))
        if on_step is not None:
            on_step(t, state, carry, extras, metrics)
        state, carry = new_state, new_carry
    return state, carry, metrics


def _episodes(lengths, rng, truncate=()):
    """One stream of episodes: a first observation, then ``L`` steps each; the
    last step terminates (or is truncated for the episodes in ``truncate``)."""
    first, reward, term, trunc = [], [], [], []
    for i, n in enumerate(lengths):
        first += [True] + [False] * n
        reward += [0.0, *(rng.normal(size=n) * 2.0 + 0.5)]
        end = [False] * n + [True]
        term += [False] * (n + 1) if i in truncate else end
        trunc += end if i in truncate else [False] * (n + 1)
    return (np.asarray(x)[None] for x in (first, reward, term, trunc))


# ------------------------------------------------------------ sparse init


def test_sparse_linear_zeroes_ceil_sparsity_of_each_row():
    for fan_in, fan_out, sparsity in [(37, 16, 0.9), (128, 128, 0.9), (10, 5, 0.5)]:
        layer = eqx.nn.Linear(fan_in, fan_out, key=jax.random.PRNGKey(0))
        sparse = ra.sparse_linear(layer, sparsity, jax.random.PRNGKey(1))
        w = np.asarray(sparse.weight)
        zeros = math.ceil(sparsity * fan_in)
        assert (np.sum(w == 0, axis=1) == zeros).all()
        bound = math.sqrt(1.0 / fan_in)
        assert np.abs(w).max() <= bound and np.abs(w).max() > 0.5 * bound
        assert np.all(np.asarray(sparse.bias) == 0)
        # Rows draw their zeros independently (not the same inputs everywhere).
        assert len({tuple(np.flatnonzero(r == 0)) for r in w}) > 1


def test_agent_networks_are_sparse_and_the_off_switch_gives_the_old_init():
    spec = Spec((13,), SPACE, 2)
    key = jax.random.PRNGKey(3)
    net = ra.streaming_ac(_config(), spec).init(key).params
    layers = _dense_layers(net)
    # Each network: one torso layer, a hidden and an output head layer; the
    # time input makes 14 inputs.
    assert len(layers) == 6 and layers["actor.torso.0"].weight.shape == (16, 14)
    for name, layer in layers.items():
        w = np.asarray(layer.weight)
        fan_in = w.shape[1]
        assert (np.sum(w == 0, axis=1) == math.ceil(0.9 * fan_in)).all(), name
        assert np.abs(w).max() <= math.sqrt(1.0 / fan_in), name
        assert np.all(np.asarray(layer.bias) == 0), name
    # sparse_init=False: exactly the network's own (Equinox default) init.
    cfg = _config(sparse_init=False, separate_networks=False, time_input=False)
    old = ra.streaming_ac(cfg, spec).init(key).params
    ref = ra.ActorCriticNet(cfg.network, (13,), SPACE, key=key, reward_clip=None)
    assert all(
        np.array_equal(a, b) for a, b in zip(_leaves(old), _leaves(ref), strict=True)
    )
    assert not any(np.all(np.asarray(w) == 0) for w in _leaves(ref))


# ------------------------------------------------------------ LayerNorm


def test_layer_norm_standardises_every_hidden_layer_without_parameters(x64):
    spec = Spec((20,), SPACE, 1)
    cfg = _config(network=ra.streaming_network(hidden_size=16), time_input=False)
    net = ra.streaming_ac(cfg, spec).init(jax.random.PRNGKey(0)).params
    # Large weights, so that every pre-activation's variance dwarfs eps = 1e-5.
    big = jax.tree.map(lambda w: 100.0 * w if eqx.is_array(w) else w, net)
    rng = np.random.default_rng(0)
    for n in (big.actor, big.critic):
        head = n.policy.mlp if isinstance(n, ra.PolicyNet) else n.value.mlp
        for mlp, x, out in [
            (n.torso.layers, rng.normal(size=(20,)), n.torso),
            (head.layers[:-1], rng.normal(size=(16,)), None),
        ]:
            h = jnp.asarray(x)
            for layer in mlp:
                z = ra.layer_norm(layer(h))  # the hidden layer's features
                assert abs(float(jnp.mean(z))) < 1e-12
                assert abs(float(jnp.var(z)) - 1.0) < 1e-5
                h = jax.nn.leaky_relu(z)
            # The modules apply it so: linear, LayerNorm, then the activation.
            got = out(jnp.asarray(x)) if out is not None else head(jnp.asarray(x))
            want = h if out is not None else head.layers[-1](h)
            assert np.allclose(got, want, rtol=1e-12, atol=1e-12)
    # PyTorch's formula: population variance, eps 1e-5 inside the square root.
    v = jnp.asarray([1.0, 2.0, 4.0])
    want = (v - v.mean()) / jnp.sqrt(v.var() + 1e-5)
    assert np.allclose(ra.layer_norm(v), want, rtol=1e-14)
    # No learnable parameters: the same arrays as without LayerNorm.
    plain = ra.streaming_ac(dataclasses.replace(cfg, layer_norm=False), spec)
    plain_net = plain.init(jax.random.PRNGKey(0)).params
    arrays, plain_arrays = _leaves(net), _leaves(plain_net)
    assert len(arrays) == len(plain_arrays)
    assert all(np.array_equal(a, b) for a, b in zip(arrays, plain_arrays, strict=True))
    x = jnp.asarray(rng.normal(size=(20,)))
    assert not np.allclose(net.actor.torso(x), plain_net.actor.torso(x))


# ------------------------------------------------------------ observations


def _policy_on(net, carry, x, stream, t):
    """The policy the network outputs on the input ``x`` (what act should use)."""
    ts = stream.timestep(t)
    p, _, _ = jax.vmap(net.step)(carry, jnp.asarray(x), ts.reward, ts.first)
    return p


@pytest.mark.parametrize("streams", [1, 3])
def test_observation_moments_are_numpys_and_include_the_current_step(streams, x64):
    n, d = 12, 3
    rng = np.random.default_rng(streams)
    obs = rng.normal(size=(streams, n + 1, d)) * [1.0, 10.0, 0.1] + [5.0, -3.0, 0.0]
    stream = _Stream(obs)
    cfg = _inputs_config(time_input=False)
    agent = ra.streaming_ac(cfg, Spec((d,), SPACE, streams))

    def check(t, state, carry, extras, metrics):
        seen = obs[:, : t + 1].reshape(-1, d)
        var = seen.var(0, ddof=1) if len(seen) > 1 else np.ones(d)
        x = (obs[:, t] - seen.mean(0)) / np.sqrt(var + 1e-8)
        want = _policy_on(state.params, carry, x, stream, t)
        assert np.allclose(extras.policy, want, rtol=1e-10, atol=1e-12)
        # The learner standardises the step the actor saw the same way.
        assert np.isclose(metrics["value"], np.mean(extras.value), rtol=1e-10)

    state, _, _ = _drive(agent, stream, n, on_step=check)
    m = state.observation_moments
    seen = obs[:, :n].reshape(-1, d)  # obs[:, n] is the next update's
    assert float(m.count) == streams * n
    assert np.allclose(m.mean, seen.mean(0), rtol=1e-12, atol=1e-12)
    assert np.allclose(m.var, seen.var(0, ddof=1), rtol=1e-12, atol=1e-12)


def test_sample_moments_start_at_the_first_sample_with_variance_one(x64):
    m = ra.sample_moments_init((2,))
    m = ra.sample_moments_update(m, jnp.asarray([[3.0, -1.0]]))
    assert np.allclose(m.mean, [3.0, -1.0]) and np.allclose(m.var, [1.0, 1.0])
    assert np.allclose(ra.standardize(m, jnp.asarray([3.0, -1.0])), 0.0)
    xs = np.random.default_rng(0).normal(size=(9, 2))
    one_by_one = m
    for x in xs:
        one_by_one = ra.sample_moments_update(one_by_one, x[None])
    at_once = ra.sample_moments_update(m, xs)
    every = np.concatenate([[[3.0, -1.0]], xs])
    for mm in (one_by_one, at_once):
        assert np.allclose(mm.mean, every.mean(0), rtol=1e-13)
        assert np.allclose(mm.var, every.var(0, ddof=1), rtol=1e-13)


# ------------------------------------------------------------ rewards


def test_reward_scale_is_numpys_std_of_the_discounted_returns(x64):
    rng = np.random.default_rng(0)
    first, reward, term, trunc = _episodes([4, 3, 6, 2], rng, truncate=(2,))
    n = first.shape[1] - 1
    stream = _Stream(rng.normal(size=(1, n + 1, 2)), reward, term, trunc, first)
    gamma = 0.9
    cfg = _inputs_config(discount=gamma, time_input=False)
    agent = ra.streaming_ac(cfg, Spec((2,), SPACE, 1))
    done = term | trunc
    # Their ScaleReward, one real transition at a time (none from a last
    # observation to the next episode's first).
    u, us, want = 0.0, [], []
    for t in range(n):
        if not done[0, t]:
            u = gamma * u * (1.0 - done[0, t + 1]) + reward[0, t + 1]
            us.append(u)
        var = np.var(us, ddof=1) if len(us) > 1 else 1.0
        want.append(np.sqrt(var + 1e-8))
    got = []
    state, _, _ = _drive(
        agent, stream, n, on_step=lambda *a: got.append(float(a[-1]["reward_scale"]))
    )
    assert np.allclose(got, want, rtol=1e-12)
    scaler = state.reward_scaler
    assert np.isclose(scaler.returns[0], u, rtol=1e-12)
    assert np.isclose(scaler.moments.var, np.var(us, ddof=1), rtol=1e-12)
    assert float(scaler.moments.count) == len(us) < n


def test_scaled_rewards_divide_by_the_scale_of_this_step(x64):
    scaler = ra.return_scaler_init(2)
    r = jnp.asarray([1.0, 3.0])
    scaled, scaler = ra.scale_reward_step(scaler, r, jnp.asarray([False, True]), 0.5)
    # u = r for both; sample std of {1, 3} is sqrt(2).
    assert np.allclose(scaler.returns, [1.0, 3.0])
    assert np.allclose(scaled, r / np.sqrt(2.0 + 1e-8))
    scaled, scaler = ra.scale_reward_step(
        scaler, r, jnp.asarray([False, True]), 0.5, mask_t=jnp.asarray([1.0, 0.0])
    )
    assert np.allclose(scaler.returns, [1.5, 3.0])  # the masked stream keeps u
    assert np.isclose(scaler.moments.var, np.var([1.0, 3.0, 1.5], ddof=1))


# ------------------------------------------------------------ time input


def test_time_input_follows_their_wrapper_and_restarts_each_episode(x64):
    first, reward, term, trunc = _episodes([6, 2, 3], np.random.default_rng(0))
    n = first.shape[1] - 1
    obs = np.random.default_rng(1).normal(size=(1, n + 1, 2))
    stream = _Stream(obs, reward, term, trunc, first)
    limit = 4
    cfg = _inputs_config(time_limit=limit, normalize_observations=False)
    agent = ra.streaming_ac(cfg, Spec((2,), SPACE, 1))

    # Their AddTimeInfo: reset shows -0.5; a step shows epi_time, then adds 1/L.
    epi_time, want = None, []
    for f in first[0]:
        if f:
            epi_time = -0.5
            want.append(epi_time)
        else:
            want.append(epi_time)
            epi_time += 1.0 / limit
    assert want[:4] == [-0.5, -0.5, -0.5 + 1 / limit, -0.5 + 2 / limit]

    def check(t, state, carry, extras, metrics):
        x = np.concatenate([obs[:, t], [[want[t]]]], axis=-1)
        got = _policy_on(state.params, carry.core, x, stream, t)
        assert np.allclose(extras.policy, got, rtol=1e-10, atol=1e-12), t

    _, carry, _ = _drive(agent, stream, n, on_step=check)
    steps = [0]
    for f in first[0, 1:n]:
        steps.append(0 if f else steps[-1] + 1)
    assert int(carry.episode_step[0]) == steps[-1]
    k = np.arange(8)
    assert np.allclose(
        ra.episode_time(k, limit), -0.5 + np.maximum(k - 1, 0) / limit, rtol=1e-15
    )


# ------------------------------------------------------------ two networks


def _updates(cfg):
    """``sizes -> (params before, params after 6 updates)`` on a short recall,
    compiled once (the step sizes are arrays of the state)."""
    env = DelayedRecall(num_envs=2, delay=1)
    agent = ra.streaming_ac(cfg, env.spec)
    runner = ra.init_runner(agent, env, jax.random.PRNGKey(0))
    run = eqx.filter_jit(lambda r: ra.run_updates(agent, env, r, 6))

    def with_sizes(**sizes):
        r = runner
        for name, value in sizes.items():
            r = eqx.tree_at(
                lambda r, name=name: getattr(r.agent.hyperparams, name),
                r,
                jnp.asarray(value, jnp.float32),
            )
        after, m = run(r)
        assert np.all(np.asarray(m["nonfinite_loss"]) == 0)
        return r.agent.params, after.agent.params

    return with_sizes


def _moved(a, b):
    return max(
        float(np.max(np.abs(np.asarray(x) - np.asarray(y))))
        for x, y in zip(_leaves(a), _leaves(b), strict=True)
    )


def test_each_update_moves_only_its_own_network():
    updates = _updates(_config())
    before, after = updates(actor_learning_rate=0.0)
    assert _moved(before.actor, after.actor) == 0.0
    assert _moved(before.critic, after.critic) > 0.0
    before, after = updates(critic_learning_rate=0.0)
    assert _moved(before.critic, after.critic) == 0.0
    assert _moved(before.actor, after.actor) > 0.0
    # One network: a silent actor still moves the shared torso (the critic's).
    before, after = _updates(_config(separate_networks=False))(actor_learning_rate=0)
    assert _moved(before.torso, after.torso) > 0.0


def test_no_gradient_crosses_between_actor_and_critic():
    spec = Spec((3,), SPACE, 1)

    def grads(cfg):
        agent = ra.streaming_ac(cfg, spec)
        state = agent.init(jax.random.PRNGKey(0))
        net = state.params
        c = jax.tree.map(lambda x: x[0], agent.initial_carry(state))
        c = c.core if isinstance(c, ra.StreamingCarry) else c
        shape = (net.actor if cfg.separate_networks else net).observation_shape
        x = jnp.ones(shape)

        def out(n, i):
            p, v, _ = n.step(c, x, jnp.zeros(()), jnp.asarray(True))
            return n.policy.log_prob(p, jnp.asarray(1)) if i == 0 else v

        g_pi, g_v = (eqx.filter_grad(lambda n, i=i: out(n, i))(net) for i in (0, 1))
        return net, state, g_pi, g_v

    net, state, g_pi, g_v = grads(_config())
    assert all(np.all(g == 0) for g in _leaves(g_pi.critic))
    assert any(np.any(g != 0) for g in _leaves(g_pi.actor))
    assert all(np.all(g == 0) for g in _leaves(g_v.actor))
    assert any(np.any(g != 0) for g in _leaves(g_v.critic))
    # Each trace covers its own network only.
    assert isinstance(state.traces.critic, ra.ValueNet)
    assert isinstance(state.traces.actor, ra.PolicyNet)
    assert len(jax.tree.leaves(state.traces.critic)) == len(_leaves(net.critic))
    assert len(jax.tree.leaves(state.traces.actor)) == len(_leaves(net.actor))
    # With one network the value's gradient reaches what the policy reads.
    _, _, _, g_v = grads(_config(separate_networks=False, time_input=False))
    assert any(np.any(g != 0) for g in _leaves(g_v.torso))


# ------------------------------------------------------------ all off = 0.2


def _old_update(config, state, batch):
    """The streaming update of rtrl-agents 0.2 (one network, two heads, raw
    observations and rewards), written out again as the reference."""
    net = state.params
    dyn, static = eqx.partition(net, eqx.is_inexact_array)
    sizes = state.hyperparams

    def l1(tree):
        return sum(jnp.sum(jnp.abs(x)) for x in jax.tree.leaves(tree))

    def one(c0, obs, rew, first, term, trunc, action, zc, za):
        tr = ra.transitions(rew, term, trunc, config.discount, config.reward_clip)

        def outputs(p):
            return eqx.combine(p, static).step(c0, obs[0], rew[0], first[0])

        _, v, c1 = outputs(dyn)
        _, v_next, _ = net.step(c1, obs[1], rew[1], first[1])
        delta = tr.mask_t[0] * (
            tr.r_t[0] + tr.discount_t[0] * jax.lax.stop_gradient(v_next) - v
        )
        g_v = jax.grad(lambda p: outputs(p)[1])(dyn)

        def actor(p):
            pl = outputs(p)[0]
            return net.policy.log_prob(pl, action[0]) + (
                config.entropy_cost * jnp.sign(delta) * net.policy.entropy(pl)
            )

        g_pi = jax.grad(actor)(dyn)
        decay = config.discount * config.trace_lambda * (1.0 - first[0])
        z_v = ra.eligibility_trace(zc, g_v, decay, tr.mask_t[0])
        z_pi = ra.eligibility_trace(za, g_pi, decay, tr.mask_t[0])
        a_v = ra.obgd_scale(
            delta, l1(z_v), sizes.critic_learning_rate, config.critic_kappa
        )
        a_pi = ra.obgd_scale(
            delta, l1(z_pi), sizes.actor_learning_rate, config.actor_kappa
        )
        upd = jax.tree.map(lambda a, b: delta * (a_v * a + a_pi * b), z_v, z_pi)
        return upd, z_v, z_pi

    upd, z_v, z_pi = jax.vmap(one)(
        batch.carry_0,
        batch.observation,
        batch.reward,
        batch.first,
        batch.terminated,
        batch.truncated,
        batch.action,
        state.traces.critic,
        state.traces.actor,
    )
    params = jax.tree.map(lambda p, u: p + jnp.mean(u, 0), dyn, upd)
    return eqx.combine(params, static), ra.EligibilityTraces(z_v, z_pi)


def test_every_switch_off_is_the_agent_of_0_2(x64):
    old_net = ra.NetworkConfig(
        torso=ra.TorsoConfig(hidden_sizes=(8,), reward_input=False),
        core=ra.CoreConfig(cell="elstm", hidden_size=4, method="rtrl-online"),
    )
    cfg = ra.StreamingACConfig(network=old_net, **OFF)
    agent = ra.streaming_ac(cfg, Spec((3,), SPACE, 2))
    key = jax.random.PRNGKey(0)
    state = agent.init(key)
    assert isinstance(state.params, ra.ActorCriticNet)
    assert state.observation_moments is None and state.reward_scaler is None
    assert isinstance(agent.initial_carry(state), rc.RTRLCarry)
    assert agent.act_state_only is not None  # chunked actor traces still offered
    ref = ra.ActorCriticNet(old_net, (3,), SPACE, key=key, reward_clip=None)
    assert eqx.tree_equal(state.params, ref)

    rng = np.random.default_rng(0)
    episodes = _episodes([3, 4], rng)
    first, reward, term, trunc = (np.repeat(a, 2, 0) for a in episodes)
    n = first.shape[1] - 1
    stream = _Stream(rng.normal(size=(2, n + 1, 3)), reward, term, trunc, first)
    act, update = eqx.filter_jit(agent.act), eqx.filter_jit(agent.update)
    old_update = eqx.filter_jit(lambda s, b: _old_update(cfg, s, b))
    start, carry = state, agent.initial_carry(state)
    for t in range(n):
        k = jax.random.PRNGKey(t)
        action, new_carry, extras = act(state, carry, stream.timestep(t), k)
        batch = stream.batch(carry, t, action, extras)
        new, _ = update(state, batch)
        params, traces = old_update(state, batch)
        assert eqx.tree_equal(new.params, params, rtol=1e-12, atol=1e-14), t
        assert eqx.tree_equal(new.traces, traces, rtol=1e-12, atol=1e-14), t
        state, carry = new, new_carry
    assert _moved(start.params, state.params) > 0.0


# ------------------------------------------------------------ config, record


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"sparsity": 1.0}, r"StreamingACConfig\.sparsity=1\.0 must lie in \[0, 1\)"),
        ({"time_limit": 0}, r"StreamingACConfig\.time_limit must be a positive int"),
        ({"separate_networks": 1}, r"StreamingACConfig\.separate_networks must be"),
        ({"normalize_eps": 0.0}, r"StreamingACConfig\.normalize_eps must be"),
        (
            {"network": ra.rtu_ppo_network()},
            r"StreamingACConfig\.sparse_init=True replaces network\.init='orthogonal'",
        ),
        (
            {"network": ra.impala_network(), "sparse_init": False},
            r"StreamingACConfig\.normalize_observations applies to vector",
        ),
    ],
)
def test_config_refuses_in_one_line_naming_the_field(kw, match):
    with pytest.raises(ValueError, match=match) as e:
        ra.StreamingACConfig(**kw)
    assert "\n" not in str(e.value)


def test_statistics_and_episode_steps_are_checkpointed(tmp_path):
    env = DelayedRecall(num_envs=2, delay=1)
    agent = ra.streaming_ac(_inputs_config(), env.spec)
    runner = ra.init_runner(agent, env, jax.random.PRNGKey(0))
    runner, _ = eqx.filter_jit(lambda r: ra.run_updates(agent, env, r, 7))(runner)
    ckpt = ra.Checkpointer(str(tmp_path / "ckpt"))
    ckpt.save(7, runner)
    fresh = ra.init_runner(agent, env, jax.random.PRNGKey(1))
    back = ckpt.restore(fresh)
    assert float(back.agent.observation_moments.count) == 14
    assert eqx.tree_equal(
        back.agent.observation_moments, runner.agent.observation_moments
    )
    assert eqx.tree_equal(back.agent.reward_scaler, runner.agent.reward_scaler)
    assert np.array_equal(back.carry.episode_step, runner.carry.episode_step)
    assert int(np.max(back.carry.episode_step)) > 0
