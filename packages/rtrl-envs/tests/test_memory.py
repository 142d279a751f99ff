"""Semantics of the memory tasks: optimal policies, memoryless chance, lengths."""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import rtrl_envs


def _scan(env, policy, steps: int, seed: int = 0):
    """Jitted rollout; ``policy(memory, ts) -> (memory, action)``."""

    @jax.jit
    def run(key):
        state, ts = env.reset(key)
        memory = jnp.zeros((env.spec.num_envs, 64), jnp.float32)

        def body(carry, _):
            state, ts, memory = carry
            memory, action = policy(memory, ts)
            state, ts_next = env.step(state, action)
            return (state, ts_next, memory), (ts, action)

        _, (tss, actions) = jax.lax.scan(body, (state, ts, memory), None, steps)
        return tss, actions

    return jax.tree.map(np.asarray, run(jax.random.key(seed)))


@pytest.mark.parametrize(("delay", "k"), [(0, 2), (7, 4), (30, 6)])
def test_delayed_recall_lengths_and_optimal_policy(delay: int, k: int) -> None:
    env = rtrl_envs.make(
        "memory/delayed-recall", num_envs=64, seed=0, delay=delay, num_symbols=k
    )

    def optimal(memory, ts):
        obs = ts.observation
        cue_seen = obs[:, :k].sum(-1) > 0
        memory = jnp.where(cue_seen[:, None], memory.at[:, :k].set(obs[:, :k]), memory)
        return memory, jnp.argmax(memory[:, :k], -1)

    episodes = 20
    tss, _ = _scan(env, optimal, episodes * (delay + 3))
    obs, first, term = tss.observation, tss.first, tss.terminated
    # cue exactly at first steps, query exactly delay + 1 steps later
    np.testing.assert_array_equal(obs[:, :, :k].sum(-1) == 1, first)
    t_first, e_first = np.nonzero(first)
    query = obs[:, :, 2 * k] == 1
    for t, e in zip(t_first, e_first, strict=True):
        if t + delay + 2 < obs.shape[0]:
            assert query[t + delay + 1, e] and not query[t + 1 : t + delay + 1, e].any()
            assert (obs[t + 1 : t + delay + 1, e, k : 2 * k].sum(-1) == 1).all()
            assert term[t + delay + 2, e]  # the query action ends the episode
    # full reward: 1 per episode, every episode
    ends = term.sum()
    assert ends >= 64 * (episodes - 1)
    assert tss.reward.sum() == ends
    assert set(np.unique(tss.reward)) <= {0.0, 1.0}


def test_delayed_recall_memoryless_policy_gets_chance() -> None:
    k = 4
    env = rtrl_envs.make(
        "memory/delayed-recall", num_envs=256, seed=1, delay=3, num_symbols=k
    )
    # a memoryless policy: a fixed random map from observation to action
    table = jax.random.randint(jax.random.key(5), (2 * k + 1,), 0, k)

    def memoryless(memory, ts):
        return memory, table[jnp.argmax(ts.observation, -1)]

    tss, _ = _scan(env, memoryless, 40 * 5)
    per_episode = tss.reward.sum() / tss.terminated.sum()
    assert abs(per_episode - 1 / k) < 0.04  # ~10k episodes: sd ~ 0.004


@pytest.mark.parametrize(("min_length", "max_length"), [(1, 5), (4, 4), (2, 12)])
def test_copy_optimal_full_reward_and_lengths(min_length: int, max_length: int) -> None:
    env = rtrl_envs.make(
        "memory/copy", num_envs=64, seed=0, min_length=min_length, max_length=max_length
    )

    def optimal(memory, ts):
        # memory: [write position, read position, bits...]
        obs = ts.observation
        presenting = obs[:, 0] + obs[:, 1] > 0
        memory = jnp.where(ts.first[:, None], 0.0, memory)
        w = memory[:, 0].astype(jnp.int32)
        r = memory[:, 1].astype(jnp.int32)
        rows = jnp.arange(memory.shape[0])
        written = memory.at[rows, 2 + w].set(obs[:, 1]).at[:, 0].add(1.0)
        memory = jnp.where(presenting[:, None], written, memory)
        action = memory[rows, 2 + r].astype(jnp.int32)
        memory = jnp.where((obs[:, 2] > 0)[:, None], memory.at[:, 1].add(1.0), memory)
        return memory, action

    tss, _ = _scan(env, optimal, 15 * (2 * max_length + 1))
    obs, first, term = tss.observation, tss.first, tss.terminated
    lengths = []
    for e in range(64):
        starts = np.nonzero(first[:, e])[0]
        for a, b in itertools.pairwise(starts):
            ep = obs[a:b, e]
            n_bits = int((ep[:, 0] + ep[:, 1]).sum())
            n_recall = int(ep[:, 2].sum())
            assert n_bits == n_recall and b - a == 2 * n_bits + 1
            assert tss.reward[a:b, e].sum() == n_bits  # every bit right
            assert term[b - 1, e]
            lengths.append(n_bits)
    assert min(lengths) == min_length and max(lengths) == max_length


def test_copy_memoryless_policy_gets_half() -> None:
    env = rtrl_envs.make("memory/copy", num_envs=256, seed=2, max_length=6)
    table = jax.random.randint(jax.random.key(3), (3,), 0, 2)

    def memoryless(memory, ts):
        return memory, table[jnp.argmax(ts.observation, -1)]

    tss, _ = _scan(env, memoryless, 200)
    recall = tss.observation[..., 2] == 1
    # reward is earned on the step after a recall observation
    rate = tss.reward[1:][recall[:-1]].mean()
    assert abs(rate - 0.5) < 0.02


def test_copy_task_batch_is_consistent() -> None:
    batch = rtrl_envs.copy_task_batch(jax.random.key(0), 128, max_length=8)
    inputs, targets, mask = map(np.asarray, batch[:3])
    assert inputs.shape == (128, 16, 3) and targets.shape == mask.shape == (128, 16)
    np.testing.assert_array_equal(np.asarray(batch.resets)[:, 0], True)
    for b in range(128):
        bits = inputs[b, :, 1][inputs[b, :, :2].sum(-1) == 1]
        length = len(bits)
        assert 1 <= length <= 8
        np.testing.assert_array_equal(mask[b], inputs[b, :, 2] == 1)
        np.testing.assert_array_equal(targets[b][mask[b]], bits)
        assert mask[b].sum() == length and not mask[b, :length].any()
    assert targets.dtype == np.int32


def test_trace_conditioning_intervals_and_cumulant() -> None:
    opts = dict(isi_min=5, isi_max=9, iti_min=20, iti_max=30, num_distractors=4)
    env = rtrl_envs.make("memory/trace-conditioning", num_envs=16, seed=0, **opts)
    assert env.spec.observation_shape == (6,)
    tss, _ = _scan(env, lambda m, ts: (m, jnp.zeros(16, jnp.int32)), 2000)
    obs = tss.observation
    np.testing.assert_array_equal(tss.reward[1:], obs[1:, :, 1])  # cumulant = US
    assert not (tss.terminated | tss.truncated).any()  # continuing
    isis, itis = [], []
    for e in range(16):
        cs_on = np.nonzero(np.diff(obs[:, e, 0], prepend=0) == 1)[0]
        us_on = np.nonzero(np.diff(obs[:, e, 1], prepend=0) == 1)[0]
        assert cs_on[0] == 0
        for c, c_next in itertools.pairwise(cs_on):
            us = us_on[(us_on > c) & (us_on < c_next)]
            assert len(us) == 1  # exactly one US per trial
            isis.append(us[0] - c)
            itis.append(c_next - us[0])
        assert (obs[cs_on[0] : cs_on[0] + 4, e, 0] == 1).all()  # CS lasts 4 steps
    assert min(isis) == 5 and max(isis) == 9
    assert min(itis) == 20 and max(itis) == 30
    # distractors occur and are independent of the CS
    assert obs[:, :, 2:].mean() > 0.02


def test_discounted_returns_golden() -> None:
    c = jnp.asarray([0.0, 1.0, 0.0, 2.0])
    g = np.asarray(rtrl_envs.discounted_returns(c, 0.5))
    np.testing.assert_allclose(g, [1.0 + 0.25 * 2, 0.5 * 2, 2.0, 0.0])


def test_memory_env_under_vmap_and_ignores_action_on_reset() -> None:
    env = rtrl_envs.make("memory/delayed-recall", num_envs=2, seed=0, delay=1)
    _states, tss = jax.vmap(env.reset)(jax.random.split(jax.random.key(0), 3))
    assert tss.observation.shape == (3, 2, 9)
    assert not np.array_equal(tss.observation[0], tss.observation[1])
    state, ts = env.reset(jax.random.key(1))
    for _ in range(3):
        state, ts = env.step(state, jnp.zeros(2, jnp.int32))
    assert ts.terminated.all()
    s0, t0 = env.step(state, jnp.zeros(2, jnp.int32))
    s1, t1 = env.step(state, jnp.ones(2, jnp.int32))
    assert t0.first.all()
    s0 = s0._replace(key=jax.random.key_data(s0.key))
    s1 = s1._replace(key=jax.random.key_data(s1.key))
    for a, b in zip(jax.tree.leaves((s0, t0)), jax.tree.leaves((s1, t1)), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
