"""Actors: the part of a run that steps environments and the core's carries.

An :class:`Actor` owns one batch of environments, the batched core carry (the
state and the RTRL traces), a PRNG key and the running episode statistics.
``rollout(state)`` acts with the given parameters for ``rollout_length`` steps and
returns the :class:`~rtrl_agents.Trajectory` a learner consumes, with the carry
from before the rollout in it. It never updates parameters (Acme's split: the
actor produces data, the learner consumes it).

The host driver (``train`` on a host environment) and the distributed system's
Ray actors (``train_distributed``) both act through this class; pure JAX
environments are stepped by the jitted :func:`~rtrl_agents.collect`.

How an RTRL actor advances its traces (``trace_update``: ``"online"`` or
``"chunked"``) is described in :func:`~rtrl_agents.collect`.
"""

from __future__ import annotations

import warnings
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

import rtrl_cells as rc

from ._core import AbstractAgentState, Agent, Trajectory, track_episodes
from ._loop import (
    RunnerState,
    acting_agent,
    collect,
    rollout_final_carry,
    uses_traces,
)


def _jit_state_only(act: Any) -> Any:
    """``act`` (which advances the states alone) jitted for a carry whose traces
    it leaves untouched.

    The jitted step returns the states only (``carry.for_method("bptt")``) and
    the traces are put back around it (``with_traces_from``): returned from a
    jitted call, the unchanged traces would be copied into a new buffer at every
    step (the core's step alone, ELSTM(256) over 32 streams on a 2-core CPU: 2.9
    ms with the copy, 0.3 ms without).
    """

    def states_only(state, carry, timestep, key):
        action, new_carry, extra = act(state, carry, timestep, key)
        return action, new_carry.for_method(rc.BPTT), extra

    step = eqx.filter_jit(states_only)

    def run(state, carry, timestep, key):
        action, states, extra = step(state, carry, timestep, key)
        return action, states.with_traces_from(carry), extra

    return run


class Actor:
    """One batch of environments and its carries, stepped one rollout at a time.

    Args:
        agent: the agent whose ``act`` (``"online"``) or whose network's
            state-only step (``"chunked"``) is used; its ``rollout_length`` is
            the rollout length and its ``num_envs`` must be the environment's.
        env: the batch of environments (host or pure JAX).
        env_key: the key the environments are reset with.
        key: the actor's PRNG key (action sampling).
        state: an agent state (its parameters give the initial carry).
        trace_update: ``"online"`` or ``"chunked"``: how RTRL traces advance
            (see :func:`~rtrl_agents.collect`).
        traces: deprecated name of ``trace_update``.
    """

    def __init__(
        self,
        agent: Agent[Any, Any],
        env: Any,
        env_key: jax.Array,
        key: jax.Array,
        state: AbstractAgentState,
        *,
        trace_update: str = "online",
        traces: str | None = None,
    ):
        if traces is not None:
            warnings.warn(
                "Actor(traces=...) is renamed trace_update=... (PPOConfig.traces "
                "means something else)",
                DeprecationWarning,
                stacklevel=2,
            )
            trace_update = traces
        acting, chunked = acting_agent(agent, state.params, trace_update)
        if int(env.spec.num_envs) != int(agent.num_envs):
            raise ValueError(
                f"the agent was built for {agent.num_envs} streams but the "
                f"environment has {env.spec.num_envs}; build the agent with this "
                "environment's spec."
            )
        self.agent, self.env, self.trace_update = agent, env, trace_update
        self.is_jax = bool(getattr(env.spec, "is_jax", False))
        self.env_state, self.timestep = env.reset(env_key)
        self.carry = agent.initial_carry(state)
        self.key = key
        n = agent.num_envs
        self.episode_return = np.zeros((n,), np.float32)
        self.episode_length = np.zeros((n,), np.int64)
        self._chunked = chunked
        if self.is_jax:
            # The chunked carry is recomputed inside the jitted rollout.
            self._collect = eqx.filter_jit(
                lambda r: collect(agent, env, r, trace_update)
            )
            self._ep = (jnp.asarray(self.episode_return), jnp.zeros((n,), jnp.int32))
        else:
            # A TBPTT core, or chunked trace updates, step the state alone.
            state_only = isinstance(self.carry, rc.RTRLCarry) and (
                chunked or not uses_traces(state.params)
            )
            act = acting.act
            self._act = _jit_state_only(act) if state_only else eqx.filter_jit(act)
            if chunked:
                self._final_carry = eqx.filter_jit(rollout_final_carry)

    @property
    def frames_per_rollout(self) -> int:
        """Environment steps per rollout, over all streams."""
        return int(self.agent.rollout_length * self.agent.num_envs)

    def rollout(self, state: AbstractAgentState) -> tuple[Trajectory, dict[str, float]]:
        """One rollout with ``state``'s parameters.

        Returns:
            ``(batch, stats)``: the trajectory (device arrays) and the episodes
            that ended in it: ``episode_return_sum``, ``episode_length_sum``,
            ``episodes``.
        """
        if self.is_jax:
            batch, stats = self._rollout_jax(state)
        else:
            batch, stats = self._rollout_host(state)
        return batch, stats

    def _rollout_jax(self, state):
        runner = RunnerState(
            agent=state,
            env_state=self.env_state,
            timestep=self.timestep,
            carry=self.carry,
            key=self.key,
            episode_return=self._ep[0],
            episode_length=self._ep[1],
            frames=jnp.zeros((), jnp.int32),
        )
        runner, batch, stats = self._collect(runner)
        self.env_state, self.timestep = runner.env_state, runner.timestep
        self.carry, self.key = runner.carry, runner.key
        self._ep = (runner.episode_return, runner.episode_length)
        return batch, {k: float(v) for k, v in jax.device_get(stats).items()}

    def _rollout_host(self, state):
        ts, carry, key = self.timestep, self.carry, self.key
        carry_0 = carry
        seq, actions, extras = [ts], [], []
        dret = dlen = dn = 0.0
        for _ in range(self.agent.rollout_length):
            key, k = jax.random.split(key)
            ts_j = jax.tree.map(jnp.asarray, ts)
            action, carry, extra = self._act(state, carry, ts_j, k)
            self.env_state, ts = self.env.step(self.env_state, np.asarray(action))
            ret, length, ended = track_episodes(
                self.episode_return, self.episode_length, ts
            )
            self.episode_return, self.episode_length = ret, length
            dret += float(np.sum(ret[ended]))
            dlen += float(np.sum(length[ended]))
            dn += float(np.sum(ended))
            seq.append(ts)
            actions.append(action)
            extras.append(extra)
        self.timestep, self.carry, self.key = ts, carry, key

        def stack(field):
            return jnp.asarray(
                np.stack([np.asarray(getattr(s, field)) for s in seq], 1)
            )

        batch = Trajectory(
            carry_0=carry_0,
            observation=stack("observation"),
            reward=stack("reward"),
            terminated=stack("terminated"),
            truncated=stack("truncated"),
            first=stack("first"),
            action=jnp.stack(actions, 1),
            extras=jax.tree.map(lambda *x: jnp.stack(x, 1), *extras),
        )
        stats = {"episode_return_sum": dret, "episode_length_sum": dlen, "episodes": dn}
        if self._chunked:
            self.carry = self._final_carry(state.params, batch)
        return batch, stats


def concat_rollouts(batches: list[Trajectory]) -> Trajectory:
    """Rollouts of several actors as one batch (streams concatenated on axis 0)."""
    if len(batches) == 1:
        return batches[0]
    return jax.tree.map(lambda *xs: jnp.concatenate(xs, axis=0), *batches)
