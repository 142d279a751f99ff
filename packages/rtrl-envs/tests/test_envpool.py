"""envpool adapters: the seed's Atari preprocessing, ProcGen options, MuJoCo masks."""

from __future__ import annotations

import numpy as np
import pytest

import rtrl_envs
from rtrl_envs import _envpool

envpool = pytest.importorskip("envpool")


def test_atari_preprocessing_is_the_seeds() -> None:
    env = rtrl_envs.make("atari/Breakout", num_envs=2, seed=0)
    assert env.spec.observation_shape == (4, 84, 84)
    assert env.spec.observation_dtype == np.uint8
    cfg = env.pool.spec.config
    assert cfg.task == "breakout"
    assert (cfg.frame_skip, cfg.stack_num, cfg.img_height, cfg.img_width) == (
        4,
        4,
        84,
        84,
    )
    assert cfg.gray_scale and cfg.episodic_life and cfg.use_fire_reset
    assert cfg.noop_max == 30 and not cfg.reward_clip
    assert cfg.repeat_action_probability == 0.0


def test_atari_rewards_are_unclipped() -> None:
    # MsPacman pellets are worth 10: random play collects them quickly.
    env = rtrl_envs.make("atari/MsPacman", num_envs=2, seed=0)
    state, _ = env.reset(None)
    rng = np.random.default_rng(0)
    rewards = []
    for _ in range(150):
        state, ts = env.step(state, rng.integers(0, env.spec.action_space.n, 2))
        rewards.append(ts.reward)
    assert np.max(rewards) >= 10


def test_episodic_life_ends_episode_on_life_loss() -> None:
    env = rtrl_envs.make("atari/Breakout", num_envs=1, seed=0)
    off = rtrl_envs.make("atari/Breakout", num_envs=1, seed=0, episodic_life=False)
    rng = np.random.default_rng(0)
    ends = {}
    for key, e in (("on", env), ("off", off)):
        state, _ = e.reset(None)
        n = 0
        for _ in range(400):
            state, ts = e.step(state, rng.integers(0, 4, 1))
            n += int(ts.terminated[0])
        ends[key] = n
    assert ends["on"] > ends["off"]


@pytest.mark.slow
@pytest.mark.parametrize("game", _envpool.ATARI_GAMES)
def test_every_seed_atari_game_makes(game: str) -> None:
    env = rtrl_envs.make(f"atari/{game}", num_envs=1, seed=0)
    _state, ts = env.reset(None)
    assert ts.observation.shape == (1, 4, 84, 84)


def test_procgen_options_reach_envpool() -> None:
    env = rtrl_envs.make(
        "procgen/chaser", num_envs=1, seed=0, num_levels=7, start_level=3,
        distribution_mode="easy",
    )  # fmt: skip
    cfg = env.pool.spec.config
    assert (cfg.num_levels, cfg.start_level, cfg.env_name) == (7, 3, "chaser")
    default = rtrl_envs.make("procgen/chaser", num_envs=1, seed=0).pool.spec.config
    assert default.num_levels == 500 and default.start_level == 0
    assert default.distribution_mode != cfg.distribution_mode  # hard vs easy
    spec = rtrl_envs.make("procgen/chaser", num_envs=1, seed=0).spec
    assert spec.observation_shape == (3, 64, 64)


@pytest.mark.parametrize(
    ("robot", "p", "v"),
    [("Ant", 13, 14), ("HalfCheetah", 8, 9), ("Hopper", 5, 6), ("Walker2d", 8, 9)],
)
def test_mujoco_masks_select_positions_or_velocities(robot, p, v) -> None:
    raw = envpool.make(f"{robot}-v4", env_type="gymnasium", num_envs=2, seed=4)
    obs_raw, _ = raw.reset()
    for mask, size in (("P", p), ("V", v)):
        env = rtrl_envs.make(f"mujoco-pomdp/{robot}-{mask}", num_envs=2, seed=4)
        assert env.spec.observation_shape == (size,)
        assert env.spec.observation_dtype == np.float32
        _, ts = env.reset(None)
        idx = _envpool.MUJOCO_MASKS[robot][mask]
        np.testing.assert_allclose(ts.observation, obs_raw[:, idx].astype(np.float32))
    assert p + v == obs_raw.shape[1]
    # positions come first in the layout: qpos (root x, y dropped), then qvel
    assert raw.spec.config.max_episode_steps == 1000


def test_mujoco_truncation_keeps_last_observation() -> None:
    env = rtrl_envs.make(
        "mujoco-pomdp/HalfCheetah-V", num_envs=2, seed=0, max_episode_steps=5
    )
    state, ts = env.reset(None)
    obs = []
    for _ in range(6):
        state, ts = env.step(state, np.zeros((2, 6), np.float32))
        obs.append(ts)
    assert obs[4].truncated.all() and not obs[4].terminated.any()
    assert obs[5].first.all() and (obs[5].reward == 0).all()


def test_host_env_rejects_stale_state() -> None:
    env = rtrl_envs.make("mujoco-pomdp/Hopper-P", num_envs=1, seed=0)
    state, _ = env.reset(None)
    new_state, _ = env.step(state, np.zeros((1, 3)))
    with pytest.raises(RuntimeError, match="stale"):
        env.step(state, np.zeros((1, 3)))
    env.step(new_state, np.zeros((1, 3)))
