"""Loops: a fully jitted ``lax.scan`` loop for pure JAX environments.

PureJaxRL style: :func:`make_train` returns one jitted-able function of a PRNG
key that runs a whole training run, vmappable over seeds; :func:`run_updates`
runs ``K`` updates and returns their metrics stacked, so a host driver
(:func:`train`) pulls metrics off the device once every ``K`` updates.

How an RTRL actor advances its traces (``trace_update``, here and in
:class:`~rtrl_agents.Actor`) is described in :func:`collect`.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array

import rtrl_cells as rc

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


# How an actor may advance traces: the gradient methods that advance them.
TRACE_UPDATES = tuple(m.name for m in rc.METHODS.values() if m.advances_traces)


def uses_traces(net: Any) -> bool:
    """Whether ``net``'s core advances RTRL traces."""
    return net.core is not None and rc.method(net.method).advances_traces


def no_state_only_step(config: Any, option: str) -> str:
    """The one-line refusal of chunked trace updates for an agent without a
    state-only actor step (``option``: the argument that asked for them)."""
    return (
        f"{type(config).__name__}'s agent offers no state-only actor step (its "
        "actor records data of every step that the learner reads, such as PPO's "
        "stored carries, or its input depends on the agent state), so its "
        f"actors must advance the traces every step: use {option}='online'."
    )


def acting_agent(agent: Agent, params: Any, trace_update: str) -> tuple[Agent, bool]:
    """The agent whose ``act`` a rollout steps with, and whether its carry is
    then recomputed by :func:`rollout_final_carry` (``trace_update="chunked"``
    with an RTRL core; see :func:`collect`).

    Raises:
        ValueError: (one line) an unknown ``trace_update``, or ``"chunked"`` for
            an agent that offers no state-only actor step.
    """
    if trace_update not in TRACE_UPDATES:
        raise ValueError(
            f"unknown trace update {trace_update!r}: expected one of "
            f"{', '.join(TRACE_UPDATES)}."
        )
    chunked = rc.method(trace_update) is rc.CHUNKED and uses_traces(params)
    if not chunked:
        return agent, False
    if agent.act_state_only is None:
        raise ValueError(no_state_only_step(agent.config, "trace_update"))
    return dataclasses.replace(agent, act=agent.act_state_only), True


def rollout_final_carry(net: Any, batch: Trajectory) -> Any:
    """The batched carry after ``batch``'s rollout, by one chunked unroll per stream.

    Args:
        net: the parameters the rollout was collected with.
        batch: the rollout (``T + 1`` timesteps; its ``carry_0`` is the start).

    Returns:
        The carry before ``batch.observation[:, T]``: the state and, for RTRL
        cores, the traces.
    """

    def one(c0, obs, reward, first):
        return net.unroll(c0, obs[:-1], reward[:-1], first[:-1], method=rc.CHUNKED)[2]

    return jax.vmap(one)(batch.carry_0, batch.observation, batch.reward, batch.first)


def collect(
    agent: Agent, env: Any, runner: RunnerState, trace_update: str = "online"
) -> tuple[RunnerState, Trajectory, dict]:
    """One rollout of ``agent.rollout_length`` steps in every stream.

    How an RTRL actor advances its traces (``trace_update``, a gradient method
    of ``rtrl_cells.METHODS`` that advances traces; :class:`~rtrl_agents.Actor`
    takes the same):

    * ``"online"``: the per-step RTRL recursion at every step (``net.step``).
    * ``"chunked"``: every step advances the state only; at the rollout's end
      the carry (state and traces) is recomputed from the rollout's first carry
      by one chunked unroll with the parameters acted with
      (:func:`rollout_final_carry`: reverse passes and one einsum instead of
      ``T`` per-step trace updates, at the price of a second torso pass). Both
      give the same carry up to rounding; the learner cannot tell them apart.
      Only agents that offer a state-only actor step (``Agent.act_state_only``:
      R2AC, and the streaming agent without input processing; not PPO, whose
      actor records each step's carry) accept it.

    Raises:
        ValueError: (one line) an unknown ``trace_update``, or ``"chunked"``
            for an agent that offers no state-only step.
    """
    params = runner.agent.params
    agent, chunked = acting_agent(agent, params, trace_update)
    T = agent.rollout_length
    # The actor's extras (PPO's stored carries with their traces: the bulk of a
    # rollout) are written batch-major in place, step by step, into a buffer
    # carried through the scan. Stacked time-major by the scan and transposed
    # afterwards they cost a second copy: for PPO with an RTU(384) over 16
    # streams, 812 MB of XLA temporaries and a third of the rollout's time.
    extras_shape = jax.eval_shape(
        lambda r: agent.act(r.agent, r.carry, r.timestep, r.key)[2], runner
    )
    extras_0 = jax.tree.map(
        lambda x: jnp.zeros((x.shape[0], T, *x.shape[1:]), x.dtype), extras_shape
    )

    def body(carry, t):
        r, ep_ret, ep_len, extras = carry
        key, k_act = jax.random.split(r.key)
        action, new_core, extras_t = agent.act(r.agent, r.carry, r.timestep, k_act)
        extras = jax.tree.map(
            lambda buf, x: jax.lax.dynamic_update_index_in_dim(buf, x, t, 1),
            extras,
            extras_t,
        )
        env_state, ts = env.step(r.env_state, action)
        ep_ret, ep_len, ended = track_episodes(ep_ret, ep_len, ts)
        out = (r.timestep, action, episode_sums(ep_ret, ep_len, ended))
        r = eqx.tree_at(
            lambda s: (s.env_state, s.timestep, s.carry, s.key),
            r,
            (env_state, ts, new_core, key),
        )
        return (r, ep_ret, ep_len, extras), out

    carry_0 = runner.carry
    (runner, ep_ret, ep_len, extras), (ts, actions, stats) = jax.lax.scan(
        body,
        (runner, runner.episode_return, runner.episode_length, extras_0),
        jnp.arange(T),
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
        extras=extras,
    )
    frames = agent.rollout_length * agent.num_envs
    carry = rollout_final_carry(params, batch) if chunked else runner.carry
    runner = eqx.tree_at(
        lambda s: (s.episode_return, s.episode_length, s.frames, s.carry),
        runner,
        (ep_ret, ep_len, runner.frames + frames, carry),
    )
    return runner, batch, {k: jnp.sum(v).astype(jnp.float32) for k, v in stats.items()}


def update_step(
    agent: Agent, env: Any, runner: RunnerState, trace_update: str = "online"
) -> tuple[RunnerState, dict]:
    """Collect one rollout with the current parameters, then update on it."""
    runner, batch, ep = collect(agent, env, runner, trace_update)
    state, metrics = agent.update(runner.agent, batch)
    runner = eqx.tree_at(lambda s: s.agent, runner, state)
    return runner, {**metrics, **ep, "frames": runner.frames}


def run_updates(
    agent: Agent,
    env: Any,
    runner: RunnerState,
    num_updates: int,
    trace_update: str = "online",
) -> tuple[RunnerState, dict[str, Array]]:
    """``num_updates`` updates in one ``lax.scan``; metrics stacked on axis 0
    (``trace_update`` as :func:`collect`'s)."""

    def body(r, _):
        return update_step(agent, env, r, trace_update)

    return jax.lax.scan(body, runner, None, length=num_updates)


def make_train(agent: Agent, env: Any, num_updates: int, trace_update: str = "online"):
    """A whole training run as one pure function of a PRNG key.

    ``jax.jit(make_train(agent, env, n))(key)`` trains; ``jax.vmap`` of it trains
    several seeds at once. Returns ``(runner_state, metrics)`` with metrics
    stacked over updates. ``trace_update`` (``"online"`` or ``"chunked"``) is how
    the actor advances RTRL traces (:func:`collect`): ``"chunked"`` is exact
    too, and faster where the torso is cheap against the core's per-step trace
    update (R2AC with an MLP torso); it raises for agents that offer no
    state-only step (PPO).

    Raises:
        ValueError: (one line, when called) an unknown ``trace_update``, or
            ``"chunked"`` for an agent that offers no state-only step (PPO).
    """

    def train(key: Array) -> tuple[RunnerState, dict[str, Array]]:
        runner = init_runner(agent, env, key)
        return run_updates(agent, env, runner, num_updates, trace_update)

    return train
