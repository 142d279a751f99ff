"""PPO observation normalisation and reward scaling: hand-computed values, the
agent's use of them, and resume with the statistics in the checkpoint."""

import dataclasses

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from rtrl_agents_testenvs import DelayedRecall

import rtrl_agents as ra


def _rms(mean, var, count):
    return ra.RunningMeanStd(
        jnp.asarray(mean, jnp.float32),
        jnp.asarray(var, jnp.float32),
        jnp.asarray(count, jnp.float32),
    )


def test_running_mean_std_merge_by_hand():
    # Prior: 2 samples {0, 2} (mean 1, var 1); merge {3, 5}. All four samples
    # {0, 2, 3, 5}: mean 2.5, var (6.25 + 0.25 + 0.25 + 6.25) / 4 = 3.25.
    out = ra.running_mean_std_update(_rms([1.0], [1.0], 2.0), jnp.array([[3.0], [5.0]]))
    np.testing.assert_allclose(out.mean, [2.5], rtol=1e-6)
    np.testing.assert_allclose(out.var, [3.25], rtol=1e-6)
    assert float(out.count) == 4.0
    # A masked sample changes nothing; an all-masked batch leaves the moments.
    masked = ra.running_mean_std_update(
        _rms([1.0], [1.0], 2.0),
        jnp.array([[3.0], [5.0], [100.0]]),
        jnp.array([1.0, 1.0, 0.0]),
    )
    np.testing.assert_allclose(masked.mean, out.mean, rtol=1e-6)
    np.testing.assert_allclose(masked.var, out.var, rtol=1e-6)
    none = ra.running_mean_std_update(out, jnp.array([[7.0]]), jnp.array([0.0]))
    assert float(none.count) == 4.0 and float(none.mean[0]) == 2.5
    # (4 - 2.5) / sqrt(3.25), and clipping.
    np.testing.assert_allclose(
        ra.normalize(out, jnp.array([4.0])), [1.5 / np.sqrt(3.25)], rtol=1e-6
    )
    np.testing.assert_allclose(ra.normalize(out, jnp.array([100.0]), clip=5.0), [5.0])


def test_running_moments_do_not_depend_on_the_batching():
    x = np.random.default_rng(0).normal(3.0, 2.0, (60, 3)).astype(np.float32)
    whole = ra.running_mean_std_update(_rms(np.zeros(3), np.ones(3), 0.0), x)
    rms = _rms(np.zeros(3), np.ones(3), 0.0)
    for chunk in np.split(x, [7, 8, 30]):
        rms = ra.running_mean_std_update(rms, chunk)
    np.testing.assert_allclose(rms.mean, x.mean(0), rtol=1e-5)
    np.testing.assert_allclose(rms.var, x.var(0), rtol=1e-4)
    np.testing.assert_allclose(whole.var, rms.var, rtol=1e-4)
    # gym's prior (count 1e-4, mean 0, var 1) is a negligible pseudo-sample.
    gym = ra.running_mean_std_update(ra.running_mean_std_init((3,)), x)
    np.testing.assert_allclose(gym.mean, x.mean(0), rtol=1e-4)


def test_reward_scaling_by_hand():
    # gamma 0.5, G carried in = 1; rewards 1, 2, 0, 4 with a new episode at t=2:
    # G = 0.5 + 1 = 1.5, 0.75 + 2 = 2.75, 0 (restart), 0 + 4 = 4.
    # Moments of {1.5, 2.75, 0, 4}: mean 2.0625, var 6.453125 - 4.25390625.
    scaler = ra.RewardScaler(jnp.array([1.0]), _rms(0.0, 1.0, 0.0))
    r = jnp.array([[1.0, 2.0, 0.0, 4.0]])
    starts = jnp.array([[False, False, True, False]])
    scaled, out = ra.scale_rewards(scaler, r, starts, 0.5, eps=0.0)
    var = 6.453125 - 2.0625**2
    np.testing.assert_allclose(out.return_rms.var, var, rtol=1e-6)
    np.testing.assert_allclose(out.return_rms.mean, 2.0625, rtol=1e-6)
    np.testing.assert_allclose(out.returns, [4.0])
    np.testing.assert_allclose(scaled, r / np.sqrt(var), rtol=1e-6)
    # A masked step (the ignored step after a last one) neither moves G nor counts.
    _, masked = ra.scale_rewards(
        scaler, r, starts, 0.5, mask=jnp.array([[1.0, 1.0, 1.0, 0.0]])
    )
    np.testing.assert_allclose(masked.returns, [0.0])
    assert float(masked.return_rms.count) == 3.0


def _ppo(env, **kw):
    net = ra.NetworkConfig(
        torso=ra.TorsoConfig(hidden_sizes=(8,), reward_input=False),
        core=ra.CoreConfig(cell="elstm", hidden_size=4, method="rtrl"),
    )
    cfg = ra.PPOConfig(
        network=net, rollout_length=4, num_epochs=2, num_minibatches=2, **kw
    )
    return ra.ppo(cfg, env.spec)


def test_ppo_normalisation_is_on_by_default_and_validated():
    cfg = ra.PPOConfig()
    assert cfg.normalize_observations and cfg.normalize_rewards
    assert cfg.observation_clip == 10.0
    with pytest.raises(ValueError, match="normalize_rewards must be a bool"):
        ra.PPOConfig(normalize_rewards=1)
    with pytest.raises(ValueError, match="observation_clip must be a positive"):
        ra.PPOConfig(observation_clip=0.0)


def test_ppo_acts_and_learns_on_normalised_observations():
    env = DelayedRecall(num_envs=4, delay=2)
    agent = _ppo(env)
    plain = _ppo(env, normalize_observations=False, normalize_rewards=False)
    runner = ra.init_runner(agent, env, jax.random.PRNGKey(0))
    # Two rollouts: the first update merges the first rollout's observations.
    runner, batch, _ = eqx.filter_jit(ra.collect)(agent, env, runner)
    state, metrics = eqx.filter_jit(agent.update)(runner.agent, batch)
    seen = np.asarray(batch.observation[:, :-1]).reshape(-1, 5)
    rms = state.obs_rms
    want = ra.running_mean_std_update(ra.running_mean_std_init((5,)), seen)
    np.testing.assert_allclose(rms.mean, want.mean, rtol=1e-6)
    np.testing.assert_allclose(rms.var, want.var, rtol=1e-6)
    assert float(rms.count) == pytest.approx(16 + 1e-4)
    assert float(metrics["reward_scale"]) > 0
    # The actor sees (obs - mean) / std: same as an agent without normalisation
    # given the normalised observations by hand.
    ts = runner.timestep
    key = jax.random.PRNGKey(3)
    normed = ts._replace(
        observation=(ts.observation - rms.mean) / jnp.sqrt(rms.var + 1e-8)
    )
    plain_state = dataclasses.replace(state, obs_rms=None, reward_scaler=None)
    a1, _, e1 = agent.act(state, runner.carry, ts, key)
    a2, _, e2 = plain.act(plain_state, runner.carry, normed, key)
    np.testing.assert_array_equal(a1, a2)
    np.testing.assert_allclose(e1.policy, e2.policy, rtol=1e-5, atol=1e-6)
    assert not np.allclose(ts.observation, normed.observation)


def test_ppo_reward_scaling_is_plain_ppo_on_scaled_rewards():
    env = DelayedRecall(num_envs=4, delay=1)
    scaled = _ppo(env, normalize_observations=False)
    plain = _ppo(env, normalize_observations=False, normalize_rewards=False)
    runner = ra.init_runner(plain, env, jax.random.PRNGKey(1))
    collect = eqx.filter_jit(ra.collect)
    for _ in range(3):  # rollouts with some rewards in them
        runner, batch, _ = collect(plain, env, runner)
    assert float(jnp.sum(batch.reward)) > 0
    s0 = scaled.init(jax.random.PRNGKey(0))
    s1, _ = eqx.filter_jit(scaled.update)(s0, batch)
    # By hand: returns restart at first steps, the ignored step is masked, all
    # rewards divided by the std of the merged returns.
    mask = 1.0 - (batch.terminated[:, :-1] | batch.truncated[:, :-1])
    want_r, want = ra.scale_rewards(
        s0.reward_scaler, batch.reward[:, 1:], batch.first[:, :-1], 0.99, mask
    )
    sc = s1.reward_scaler
    np.testing.assert_allclose(sc.returns, want.returns, rtol=1e-6)
    np.testing.assert_allclose(sc.return_rms.var, want.return_rms.var, rtol=1e-6)
    assert float(sc.return_rms.count) == pytest.approx(float(jnp.sum(mask)) + 1e-4)
    # Same data, same parameters: equal to plain PPO on the scaled rewards.
    manual = batch._replace(reward=jnp.concatenate([batch.reward[:, :1], want_r], 1))
    p0 = dataclasses.replace(s0, reward_scaler=None)
    update = eqx.filter_jit(plain.update)
    p1, _ = update(p0, manual)
    for x, y in zip(
        jax.tree.leaves(eqx.filter(s1.params, eqx.is_array)),
        jax.tree.leaves(eqx.filter(p1.params, eqx.is_array)),
        strict=True,
    ):
        np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6)
    # ... and not equal to plain PPO on the raw rewards.
    p_raw, _ = update(p0, batch)
    assert not np.allclose(
        p_raw.params.value.mlp.layers[-1].weight, s1.params.value.mlp.layers[-1].weight
    )


def test_ppo_resume_with_normalisers_is_bit_for_bit(tmp_path):
    env = DelayedRecall(num_envs=4, delay=2)
    agent = _ppo(env)
    key = jax.random.PRNGKey(2)
    whole = ra.train(agent, env, key, ra.LoopConfig(num_updates=6, log_every=2))
    ckpt = str(tmp_path / "ckpt")
    ra.train(
        agent,
        env,
        key,
        ra.LoopConfig(num_updates=2, log_every=2, checkpoint_every=2),
        checkpoint_dir=ckpt,
    )
    resumed = ra.train(
        agent,
        env,
        key,
        ra.LoopConfig(num_updates=6, log_every=2, checkpoint_every=2),
        checkpoint_dir=ckpt,
        resume=True,
        allow_config_change=True,  # 2 -> 6 updates: an explicit extension
    )
    assert len(resumed.history) == 2
    a = jax.tree.leaves(eqx.filter(whole.state, eqx.is_array))
    b = jax.tree.leaves(eqx.filter(resumed.state, eqx.is_array))
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    ext = resumed.state.agent
    assert float(ext.obs_rms.count) == pytest.approx(6 * 16 + 1e-4)
    assert float(ext.reward_scaler.return_rms.count) > 1.0
