"""POPGym adapter: flattening and equality with the raw popgym environments."""

from __future__ import annotations

import numpy as np
import pytest

import rtrl_envs
from rtrl_envs._popgym import POPGYM_TASKS, flatten_observation

popgym = pytest.importorskip("popgym")
gym_spaces = pytest.importorskip("gymnasium.spaces")


def test_flatten_observation_golden() -> None:
    space = gym_spaces.Tuple((gym_spaces.Discrete(2), gym_spaces.MultiDiscrete([3, 2])))
    out = flatten_observation(space, (1, np.array([2, 0])))
    np.testing.assert_array_equal(out, [0, 1, 0, 0, 1, 1, 0])
    assert out.dtype == np.float32


@pytest.mark.parametrize("task", POPGYM_TASKS)
def test_adapter_equals_raw_popgym(task: str) -> None:
    import popgym.envs

    name = f"popgym/{task}Easy"
    env = rtrl_envs.make(name, num_envs=2, seed=11)
    raws = [getattr(popgym.envs, f"{task}Easy")() for _ in range(2)]
    space = raws[0].observation_space
    state, ts = env.reset(None)
    last = [False, False]
    for i, raw in enumerate(raws):
        obs, _ = raw.reset(seed=11 + i)
        np.testing.assert_array_equal(
            ts.observation[i], flatten_observation(space, obs)
        )
    rng = np.random.default_rng(0)
    ended = 0
    for _ in range(120):
        action = rng.integers(0, env.spec.action_space.n, 2)
        state, ts = env.step(state, action)
        for i, raw in enumerate(raws):
            if last[i]:
                obs, _ = raw.reset()
                r, done = 0.0, False
                assert ts.first[i]
            else:
                obs, r, te, tr, _ = raw.step(int(action[i]))
                done = te or tr
                ended += done
            np.testing.assert_array_equal(
                ts.observation[i], flatten_observation(space, obs)
            )
            assert np.isclose(ts.reward[i], r)
            last[i] = done
    assert ended > 0 or task in ("Concentration", "HigherLower")
