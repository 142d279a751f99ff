"""The conformance suite: every registered name against the protocol.

The auto-reset convention checked here is the one written in
``rtrl_envs._types`` and the README: ``first[0]`` is true, ``first[t+1] ==
terminated[t] | truncated[t]``, first steps have reward 0, and terminated and
truncated are never both true.
"""

from __future__ import annotations

import jax
import numpy as np
import pytest

import rtrl_envs

# Every environment the seeds evaluate on (and a few gymnax ids) runs by default,
# so CI covers them all; the rest of the registry runs with --runslow.
FAST = {
    "memory/delayed-recall",
    "memory/copy",
    "memory/trace-conditioning",
    "gymnax/CartPole-v1",
    "gymnax/Pendulum-v1",
    "gymnax/Breakout-MinAtar",
    "gymnax/FrozenLake-misc",
    *(f"atari/{g}" for g in ("Breakout", "Gravitar", "MsPacman", "Qbert", "Seaquest")),
    "procgen/chaser",
    *(
        f"mujoco-pomdp/{body}-{mask}"
        for body in ("Ant", "HalfCheetah", "Hopper", "Walker2d")
        for mask in ("P", "V")
    ),
    "popgym/RepeatFirstEasy",
    "popgym/CountRecallEasy",
    "popgym/ConcentrationEasy",
    "popgym/AutoencodeEasy",
    "popgym/HigherLowerEasy",
}
# Names whose episodes end within STEPS random steps in every run.
ENDS = {
    "memory/delayed-recall",
    "memory/copy",
    "gymnax/CartPole-v1",
    "atari/Breakout",
    "mujoco-pomdp/Hopper-P",
    "popgym/RepeatFirstEasy",
    "popgym/AutoencodeEasy",
}
STEPS = 300
# Environments whose random-action trajectories do not depend on the seed at all
# under the same actions (fixed start state, deterministic dynamics).
SEED_INDEPENDENT = {
    "gymnax/SpaceInvaders-MinAtar",
    "gymnax/DeepSea-bsuite",
    "gymnax/DiscountingChain-bsuite",
    "gymnax/Pong-misc",
}


def _params():
    out = []
    for name in rtrl_envs.list_envs():
        marks = []
        if name.startswith("dmlab/"):
            marks.append(
                pytest.mark.skip(
                    reason="DeepMind Lab cannot be built on these machines "
                    "(not on PyPI); see test_dmlab.py for its stand-in tests"
                )
            )
        elif name not in FAST:
            marks.append(pytest.mark.slow)
        out.append(pytest.param(name, marks=marks, id=name))
    return out


def rollout(env, steps: int, seed: int):
    """Random-action rollout; returns the stacked TimeSteps and actions (numpy)."""
    n = env.spec.num_envs
    state, ts = env.reset(jax.random.key(seed))
    key = jax.random.key(1000 + seed)
    out, acts = [ts], []
    for _ in range(steps):
        key, sk = jax.random.split(key)
        a = env.spec.action_space.sample(sk, n)
        state, ts = env.step(state, a)
        out.append(ts)
        acts.append(np.asarray(a))
    stacked = jax.tree.map(lambda *xs: np.stack([np.asarray(x) for x in xs]), *out)
    return stacked, np.stack(acts)


@pytest.mark.parametrize("name", _params())
def test_conformance(name: str) -> None:
    num_envs = 3
    env = rtrl_envs.make(name, num_envs=num_envs, seed=7)
    spec = env.spec
    assert isinstance(env, rtrl_envs.Environment)
    assert spec.name == name and spec.num_envs == num_envs
    traj, _ = rollout(env, STEPS, seed=0)
    T = STEPS + 1

    # spec matches what reset and step return
    assert traj.observation.shape == (T, num_envs, *spec.observation_shape)
    assert traj.observation.dtype == spec.observation_dtype
    assert traj.reward.shape == (T, num_envs) and traj.reward.dtype == np.float32
    for field in (traj.terminated, traj.truncated, traj.first):
        assert field.shape == (T, num_envs) and field.dtype == np.bool_
    if np.issubdtype(spec.observation_dtype, np.floating):
        assert np.isfinite(traj.observation).all()

    # the auto-reset convention
    last = traj.terminated | traj.truncated
    assert traj.first[0].all()
    np.testing.assert_array_equal(traj.first[1:], last[:-1])
    assert not (traj.terminated & traj.truncated).any()
    assert not (traj.first & last).any()
    assert (traj.reward[traj.first] == 0).all()
    assert np.isfinite(traj.reward).all()
    if name in ENDS:
        assert last.any(), "expected an episode to end within the rollout"

    # same seed, same trajectory (JAX environments and envpool); new seed differs
    if spec.is_jax or name.split("/")[0] in ("atari", "procgen", "mujoco-pomdp"):
        again, _ = rollout(rtrl_envs.make(name, num_envs=num_envs, seed=7), STEPS, 0)
        for a, b in zip(traj, again, strict=True):
            np.testing.assert_array_equal(a, b)
        other, _ = rollout(rtrl_envs.make(name, num_envs=num_envs, seed=8), STEPS, 0)
        differs = any(
            not np.array_equal(a, b) for a, b in zip(traj, other, strict=True)
        )
        assert differs or name in SEED_INDEPENDENT
