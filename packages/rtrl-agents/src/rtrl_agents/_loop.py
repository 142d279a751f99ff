"""Loops: a fully jitted ``lax.scan`` loop for pure JAX environments.

PureJaxRL style: :func:`make_train` returns one jitted-able function of a PRNG
key that runs a whole training run, vmappable over seeds; :func:`run_updates`
runs ``K`` updates and returns their metrics stacked, so a host driver
(:func:`train`) pulls metrics off the device once every ``K`` updates.
"""

from __future__ import annotations

from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array

from ._core import (
    AbstractAgentState,
    Agent,
    Trajectory,
    check_env_matches,
    episode_sums,
    track_episodes,
)


class RunnerState(eqx.Module):
    """Everything a run carries between updates; checkpointing saves all of it.

    Attributes:
        agent: the agent's state (parameters, optimizer state, counters).
        env_state: the environment's state (pure JAX environments only).
        timestep: the current batched timestep.
        carry: the actor's batched core carry (state and RTRL traces).
        key: the run's PRNG key (raw ``uint32`` key data).
        episode_return: running undiscounted return of each stream's episode.
        episode_length: running length of each stream's episode.
        frames: environment steps taken so far, over all streams.
    """

    agent: AbstractAgentState
    env_state: Any
    timestep: Any
    carry: Any
    key: Array
    episode_return: Array
    episode_length: Array
    frames: Array


def _raw_key(key: Array) -> Array:
    if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        return jax.random.key_data(key)
    return key


def init_runner(agent: Agent, env: Any, key: Array) -> RunnerState:
    """Fresh agent, environment and carries from one key.

    Raises:
        ValueError: ``env`` is not the environment the agent was built for.
    """
    check_env_matches(agent.spec, env.spec)
    key = _raw_key(key)
    k_agent, k_env, k_run = jax.random.split(key, 3)
    state = agent.init(k_agent)
    env_state, ts = env.reset(k_env)
    n = agent.num_envs
    return RunnerState(
        agent=state,
        env_state=env_state,
        timestep=ts,
        carry=agent.initial_carry(state),
        key=k_run,
        episode_return=jnp.zeros((n,), jnp.float32),
        episode_length=jnp.zeros((n,), jnp.int32),
        frames=jnp.zeros((), jnp.int32),
    )


def collect(
    agent: Agent, env: Any, runner: RunnerState
) -> tuple[RunnerState, Trajectory, dict]:
    """One rollout of ``agent.rollout_length`` steps in every stream."""

    def body(carry, _):
        r, ep_ret, ep_len = carry
        key, k_act = jax.random.split(r.key)
        action, new_core, extras = agent.act(r.agent, r.carry, r.timestep, k_act)
        env_state, ts = env.step(r.env_state, action)
        ep_ret, ep_len, ended = track_episodes(ep_ret, ep_len, ts)
        out = (r.timestep, action, extras, episode_sums(ep_ret, ep_len, ended))
        r = eqx.tree_at(
            lambda s: (s.env_state, s.timestep, s.carry, s.key),
            r,
            (env_state, ts, new_core, key),
        )
        return (r, ep_ret, ep_len), out

    carry_0 = runner.carry
    (runner, ep_ret, ep_len), (ts, actions, extras, stats) = jax.lax.scan(
        body,
        (runner, runner.episode_return, runner.episode_length),
        None,
        length=agent.rollout_length,
    )
    last = runner.timestep

    def stack(seq, final):
        return jnp.swapaxes(jnp.concatenate([seq, jnp.asarray(final)[None]]), 0, 1)

    batch = Trajectory(
        carry_0=carry_0,
        observation=stack(ts.observation, last.observation),
        reward=stack(ts.reward, last.reward),
        terminated=stack(ts.terminated, last.terminated),
        truncated=stack(ts.truncated, last.truncated),
        first=stack(ts.first, last.first),
        action=jnp.swapaxes(actions, 0, 1),
        extras=jax.tree.map(lambda x: jnp.swapaxes(x, 0, 1), extras),
    )
    frames = agent.rollout_length * agent.num_envs
    runner = eqx.tree_at(
        lambda s: (s.episode_return, s.episode_length, s.frames),
        runner,
        (ep_ret, ep_len, runner.frames + frames),
    )
    return runner, batch, {k: jnp.sum(v).astype(jnp.float32) for k, v in stats.items()}


def update_step(
    agent: Agent, env: Any, runner: RunnerState
) -> tuple[RunnerState, dict]:
    """Collect one rollout with the current parameters, then update on it."""
    runner, batch, ep = collect(agent, env, runner)
    state, metrics = agent.update(runner.agent, batch)
    runner = eqx.tree_at(lambda s: s.agent, runner, state)
    return runner, {**metrics, **ep, "frames": runner.frames}


def run_updates(
    agent: Agent, env: Any, runner: RunnerState, num_updates: int
) -> tuple[RunnerState, dict[str, Array]]:
    """``num_updates`` updates in one ``lax.scan``; metrics stacked on axis 0."""

    def body(r, _):
        return update_step(agent, env, r)

    return jax.lax.scan(body, runner, None, length=num_updates)


def make_train(agent: Agent, env: Any, num_updates: int):
    """A whole training run as one pure function of a PRNG key.

    ``jax.jit(make_train(agent, env, n))(key)`` trains; ``jax.vmap`` of it trains
    several seeds at once. Returns ``(runner_state, metrics)`` with metrics
    stacked over updates.
    """

    def train(key: Array) -> tuple[RunnerState, dict[str, Array]]:
        runner = init_runner(agent, env, key)
        return run_updates(agent, env, runner, num_updates)

    return train
