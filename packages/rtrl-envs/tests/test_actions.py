"""Actions are checked at every adapter's door (shape, dtype, range), and
continuous actions are clipped to the action space by the adapter."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import rtrl_envs
from rtrl_envs import Box, Discrete, EnvSpec


def _one_line(e: pytest.ExceptionInfo) -> str:
    text = str(e.value)
    assert "\n" not in text
    return text


def test_check_action_refuses_what_a_discrete_space_cannot_take() -> None:
    spec = EnvSpec("toy/discrete", (3,), np.float32, Discrete(4), 2, False)
    np.testing.assert_array_equal(rtrl_envs.check_action(spec, [3, 0]), [3, 0])
    for bad, message in (
        ([99, 0], "toy/discrete: action 99 of stream 0 is outside [0, 4)."),
        ([0, -7], "toy/discrete: action -7 of stream 1 is outside [0, 4)."),
        ([0.0, 1.0], "toy/discrete: actions must be integers in [0, 4), got dtype"),
        ([1, 2, 3], "toy/discrete: actions must have shape (2,) (streams x action)"),
    ):
        with pytest.raises(rtrl_envs.InvalidActionError) as e:
            rtrl_envs.check_action(spec, np.asarray(bad))
        assert _one_line(e).startswith(message)


def test_check_action_clips_a_box_and_refuses_non_finite() -> None:
    spec = EnvSpec("toy/box", (3,), np.float32, Box.from_bounds(-1, 1, (2,)), 2, False)
    a = np.array([[0.5, -3.0], [2.0, 1.0]])
    np.testing.assert_array_equal(
        rtrl_envs.check_action(spec, a), [[0.5, -1.0], [1.0, 1.0]]
    )
    with pytest.raises(rtrl_envs.InvalidActionError, match="stream 1 is not finite"):
        rtrl_envs.check_action(spec, np.array([[0.0, 0.0], [np.nan, 0.0]]))
    with pytest.raises(rtrl_envs.InvalidActionError, match=r"shape \(2, 2\)"):
        rtrl_envs.check_action(spec, np.zeros((2, 3)))


def test_jax_environment_checks_shape_and_dtype_when_traced() -> None:
    env = rtrl_envs.make("memory/delayed-recall", num_envs=3, seed=0)
    state, _ = env.reset(jax.random.PRNGKey(0))
    with pytest.raises(rtrl_envs.InvalidActionError) as e:
        env.step(state, jnp.zeros((2,), jnp.int32))
    assert _one_line(e).startswith("memory/delayed-recall: actions must have shape")
    with pytest.raises(rtrl_envs.InvalidActionError, match="must be integers"):
        env.step(state, jnp.zeros((3,), jnp.float32))
    # Out of range inside jit: documented, the memory task takes it as an
    # action that names no cue.
    env.step(state, jnp.full((3,), 99, jnp.int32))


def test_envpool_atari_refuses_out_of_range_actions() -> None:
    pytest.importorskip("envpool")
    env = rtrl_envs.make("atari/Breakout", num_envs=2, seed=0)
    state, _ = env.reset(None)
    for bad in ([99, 0], [0, -7], [0.5, 1.0]):
        with pytest.raises(rtrl_envs.InvalidActionError) as e:
            env.step(state, np.asarray(bad))
        assert _one_line(e).startswith("atari/Breakout: ")
    env.step(state, np.array([1, 3]))  # the state token is still good


@pytest.mark.parametrize("name", ["mujoco-pomdp/Ant-P", "mujoco-pomdp/HalfCheetah-P"])
def test_mujoco_rewards_are_those_of_the_clipped_action(name: str) -> None:
    # envpool charges MuJoCo's control cost on the raw action: unclipped
    # Gaussian samples cost up to ctrl_cost * sum(a^2 - clip(a)^2) per step.
    pytest.importorskip("envpool")
    raw = rtrl_envs.make(name, num_envs=2, seed=3)
    clipped = rtrl_envs.make(name, num_envs=2, seed=3)
    s1, _ = raw.reset(None)
    s2, _ = clipped.reset(None)
    rng = np.random.default_rng(0)
    shape = (2, *raw.spec.action_space.shape)
    outside = 0
    for _ in range(30):
        a = rng.normal(0.0, 2.0, shape).astype(np.float32)
        outside += int(np.sum(np.abs(a) > 1))
        s1, t1 = raw.step(s1, a)
        s2, t2 = clipped.step(s2, np.clip(a, -1, 1))
        np.testing.assert_array_equal(t1.reward, t2.reward)
        np.testing.assert_array_equal(t1.observation, t2.observation)
    assert outside > 30
