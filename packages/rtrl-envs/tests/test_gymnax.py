"""gymnax adapter: POMDP mask, truncation kept apart, jit/scan equality."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import rtrl_envs

pytest.importorskip("gymnax")


def _python_rollout(env, actions):
    state, ts = env.reset(jax.random.key(0))
    out = [ts]
    for a in actions:
        state, ts = env.step(state, a)
        out.append(ts)
    return jax.tree.map(lambda *x: np.stack([np.asarray(v) for v in x]), *out)


def test_obs_indices_mask_the_full_observation() -> None:
    full = rtrl_envs.make("gymnax/CartPole-v1", num_envs=4, seed=3)
    pomdp = rtrl_envs.make("gymnax/CartPole-v1", num_envs=4, seed=3, obs_indices=(0, 2))
    assert pomdp.spec.observation_shape == (2,)
    actions = jax.random.randint(jax.random.key(1), (60, 4), 0, 2)
    a, b = _python_rollout(full, actions), _python_rollout(pomdp, actions)
    np.testing.assert_array_equal(b.observation, a.observation[..., [0, 2]])
    np.testing.assert_array_equal(a.reward, b.reward)


def test_truncation_is_not_termination() -> None:
    # Pendulum never terminates; gymnax truncates it after 200 steps.
    env = rtrl_envs.make("gymnax/Pendulum-v1", num_envs=2, seed=0)
    assert isinstance(env.spec.action_space, rtrl_envs.Box)
    actions = jnp.zeros((202, 2, 1))
    traj = _python_rollout(env, actions)
    assert not traj.terminated.any()
    np.testing.assert_array_equal(np.nonzero(traj.truncated[:, 0])[0], [200])
    assert traj.first[201].all()
    # the truncated step carries the episode's last observation, not a reset one
    assert not np.allclose(traj.observation[200], traj.observation[201])
    assert np.isclose(np.linalg.norm(traj.observation[200, :, :2], axis=-1), 1).all()


def test_cartpole_terminates_and_matches_gymnax_dynamics() -> None:
    import gymnax

    env = rtrl_envs.make("gymnax/CartPole-v1", num_envs=1, seed=0)
    genv, params = gymnax.make("CartPole-v1")
    actions = jnp.ones((40, 1), jnp.int32)  # always push right: falls quickly
    traj = _python_rollout(env, actions)
    assert traj.terminated.any() and not traj.truncated.any()
    t_end = int(np.nonzero(traj.terminated[:, 0])[0][0])
    # replay the raw gymnax dynamics from our initial state
    state, _ = env.reset(jax.random.key(0))
    inner = jax.tree.map(lambda x: x[0], state.inner)
    for t in range(1, t_end + 1):
        obs, inner, _r, done, _ = genv.step_env(jax.random.key(0), inner, 1, params)
        np.testing.assert_allclose(traj.observation[t, 0], obs, rtol=1e-5, atol=1e-6)
        assert bool(done) == (t == t_end)


def test_step_inside_jit_scan_equals_python_loop() -> None:
    env = rtrl_envs.make("gymnax/Acrobot-v1", num_envs=3, seed=1)
    actions = jax.random.randint(jax.random.key(2), (50, 3), 0, 3)

    @jax.jit
    def scanned(key):
        state, _ts = env.reset(key)

        def body(s, a):
            s, ts = env.step(s, a)
            return s, ts

        return jax.lax.scan(body, state, actions)[1]

    a = jax.tree.map(np.asarray, scanned(jax.random.key(0)))
    b = _python_rollout(env, actions)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y[1:])
