"""Learning tests: RTRL solves a delayed recall whose delay exceeds the rollout
length M; the same agent with TBPTT stays near chance."""

import jax
import numpy as np
import pytest
from rtrl_agents_testenvs import DelayedRecall, recall_config

import rtrl_agents as ra

DELAY, M, UPDATES = 8, 4, 8000


def _success(method: str, seed: int = 0) -> float:
    # Cue at t=0, 8 steps of distractor noise, query at t=9: with M=4 the cue and
    # the query are never in the same rollout.
    env = DelayedRecall(num_envs=32, delay=DELAY, num_symbols=2, num_noise=2)
    cfg = recall_config(method, rollout_length=M, updates=UPDATES)
    agent = ra.r2ac(cfg, env.spec)
    _, metrics = jax.jit(ra.make_train(agent, env, UPDATES))(jax.random.PRNGKey(seed))
    ret = np.asarray(metrics["episode_return_sum"])[-UPDATES // 10 :].sum()
    n = np.asarray(metrics["episodes"])[-UPDATES // 10 :].sum()
    assert n > 1000
    return float(ret / n)


def test_r2ac_rtrl_solves_delayed_recall_beyond_rollout():
    rate = _success("rtrl")
    print(f"R2AC RTRL success rate (delay {DELAY} > M={M}): {rate:.3f}")
    assert rate > 0.9


def test_r2ac_tbptt_stays_near_chance():
    rate = _success("tbptt")
    print(f"R2AC TBPTT success rate (delay {DELAY} > M={M}): {rate:.3f}")
    assert rate < 0.65


@pytest.mark.slow
def test_r2ac_rtrl_online_solves_delayed_recall_beyond_rollout():
    assert _success("rtrl-online") > 0.9
