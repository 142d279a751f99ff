"""DeepMind Lab adapter, tested against a stand-in with the real API's methods."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

import rtrl_envs
from rtrl_envs import _dmlab


class FakeLab:
    """Stand-in for ``deepmind_lab.Lab``: reset, step, observations, is_running.

    Each frame's reward is 1 + the frame index in the episode; episodes last
    ``length`` frames; the frame shows the frame index in every pixel.
    """

    def __init__(self, level, observations, config, renderer, length=10):
        self.level, self.observation_names, self.config = level, observations, config
        self.renderer, self.length = renderer, length
        self.frame, self.actions, self.seeds = 0, [], []

    def reset(self, seed=None):
        self.frame = 0
        self.seeds.append(seed)

    def is_running(self):
        return self.frame < self.length

    def step(self, action, num_steps=1):
        assert self.is_running() and num_steps == 1
        assert action.dtype == np.intc and action.shape == (7,)
        self.actions.append(action.copy())
        reward = 0.0
        for _ in range(num_steps):
            self.frame += 1
            reward += self.frame
        return reward

    def observations(self):
        if not self.is_running():
            raise RuntimeError("no observations after the episode ended")
        h, w = int(self.config["height"]), int(self.config["width"])
        return {"RGB_INTERLEAVED": np.full((h, w, 3), self.frame, np.uint8)}


def _env(num_envs=2, repeat=4, length=10):
    labs = []

    def factory(*args):
        labs.append(FakeLab(*args, length=length))
        return labs[-1]

    opts = rtrl_envs.DMLabOptions(action_repeat=repeat)
    env = rtrl_envs.DMLabEnvironment(
        "dmlab/rooms_watermaze",
        "rooms_watermaze",
        num_envs,
        0,
        opts,
        lab_factory=factory,
    )
    return env, labs


def test_make_without_deepmind_lab_raises_clear_error() -> None:
    if importlib.util.find_spec("deepmind_lab") is not None:
        pytest.skip("deepmind_lab is installed here")
    with pytest.raises(rtrl_envs.BackendNotInstalledError) as info:
        rtrl_envs.make("dmlab/rooms_watermaze", num_envs=1, seed=0)
    msg = str(info.value)
    assert "DeepMind Lab" in msg and "not installed" in msg and "build" in msg


def test_action_set_is_impala_nine() -> None:
    assert len(_dmlab.IMPALA_ACTION_SET) == 9
    # (look L/R, look D/U, strafe L/R, move B/F, fire, jump, crouch)
    assert _dmlab.action_array(0).tolist() == [0, 0, 0, 1, 0, 0, 0]  # forward
    assert _dmlab.action_array(1).tolist() == [0, 0, 0, -1, 0, 0, 0]
    assert _dmlab.action_array(6).tolist() == [-20, 0, 0, 1, 0, 0, 0]
    assert _dmlab.action_array(8).tolist() == [0, 0, 0, 0, 1, 0, 0]  # fire
    assert len(set(_dmlab.IMPALA_ACTION_SET)) == 9


def test_config_level_and_observation_conversion() -> None:
    env, labs = _env()
    assert labs[0].level == "contributed/dmlab30/rooms_watermaze"
    assert labs[0].config["width"] == "96" and labs[0].config["height"] == "72"
    assert labs[0].observation_names == ["RGB_INTERLEAVED"]
    assert env.spec.observation_shape == (72, 96, 3)
    assert env.spec.action_space == rtrl_envs.Discrete(9)
    with pytest.raises(ValueError, match="72x96x3"):
        _dmlab.convert_observation({"RGB_INTERLEAVED": np.zeros((84, 84, 3))})


def test_repeat_sums_rewards_and_follows_convention() -> None:
    env, labs = _env(num_envs=2, repeat=4, length=10)
    state, ts = env.reset(None)
    assert ts.first.all() and (ts.observation == 0).all()
    state, ts = env.step(state, np.array([0, 5]))
    np.testing.assert_array_equal(ts.reward, [1 + 2 + 3 + 4] * 2)
    assert (ts.observation[0] == 4).all()
    assert len(labs[0].actions) == 4 and labs[1].actions[0].tolist()[0] == 20
    state, ts = env.step(state, np.array([0, 0]))  # frames 5..8
    np.testing.assert_array_equal(ts.reward, [5 + 6 + 7 + 8] * 2)
    state, ts = env.step(state, np.array([0, 0]))  # frames 9, 10: episode ends
    np.testing.assert_array_equal(ts.reward, [9 + 10] * 2)
    assert ts.terminated.all() and not ts.truncated.any()
    assert (ts.observation == 8).all()  # last rendered frame is kept
    n_actions = len(labs[0].actions)
    state, ts = env.step(state, np.array([3, 3]))
    assert ts.first.all() and (ts.reward == 0).all() and (ts.observation == 0).all()
    assert len(labs[0].actions) == n_actions  # the reset step ignores the action
    assert len(set(labs[0].seeds)) == 2 and labs[0].seeds != labs[1].seeds


@pytest.mark.skipif(
    importlib.util.find_spec("deepmind_lab") is None,
    reason="DeepMind Lab cannot be built on these machines (not on PyPI)",
)
def test_real_deepmind_lab() -> None:
    env = rtrl_envs.make("dmlab/rooms_watermaze", num_envs=1, seed=0)
    state, ts = env.reset(None)
    assert ts.observation.shape == (1, 72, 96, 3)
    state, ts = env.step(state, np.array([0]))
    assert np.isfinite(ts.reward).all()
