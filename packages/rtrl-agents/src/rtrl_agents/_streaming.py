"""Streaming actor-critic: one update every environment step, online RTRL.

What RTRL promises and TBPTT cannot do: the core's gradient at step ``t`` is
``delta_t . E_t`` with the traces ``E_t`` carried forward, so every step can
update the parameters with an untruncated gradient and no stored history.

The recipe is Elsayed, Vasan and Mahmood 2024's stream AC(lambda) (released
code ``mohmdelsayed/streaming-drl``): ObGD, eligibility traces, separate
actor and critic networks with sparse initialisation and parameter-free
LayerNorm, and observation normalisation, reward scaling and the
time-in-episode input updated every step. Their wrappers become pure functions
of state here (``_normalize.py``): the statistics live in the agent state, the
episode step count in the actor's carry.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int, PRNGKeyArray

import rtrl_cells as rc

from ._config import StreamingACConfig
from ._core import (
    AbstractAgentState,
    ActorOutput,
    Agent,
    Carry,
    Metrics,
    Trajectory,
    actor_critic_agent,
    actor_step,
    batched_initial_carry,
    check_config,
    guard_nonfinite,
    per_stream,
)
from ._losses import eligibility_trace, obgd_scale, transitions
from ._networks import ActorCriticNet, SeparateActorCriticNet
from ._normalize import (
    ReturnScaler,
    SampleMoments,
    episode_time,
    return_scaler_init,
    sample_moments_init,
    sample_moments_update,
    scale_reward_step,
    standardize,
)


class StepSizes(eqx.Module):
    """The streaming agent's hyperparameters held in state: its step sizes."""

    actor_learning_rate: Float[Array, ""]
    critic_learning_rate: Float[Array, ""]


class EligibilityTraces(NamedTuple):
    """Per-stream accumulating traces (leading axis B).

    With separate networks each covers its own network's parameters (``critic``
    is shaped as the :class:`~rtrl_agents.ValueNet`, ``actor`` as the
    :class:`~rtrl_agents.PolicyNet`); with one network both cover all of it.
    """

    critic: Any
    actor: Any


class StreamingCarry(NamedTuple):
    """The streaming agent's per-stream carry when it has the time input.

    Attributes:
        core: the network's carry (the core's state and RTRL traces).
        episode_step: ``k`` of the last observation acted on (0 at an
            episode's first observation; -1 before any), int32.
    """

    core: Carry
    episode_step: Array


class StreamingACState(AbstractAgentState):
    """The streaming agent's state.

    Attributes:
        params: the network (:class:`~rtrl_agents.SeparateActorCriticNet`, or
            one :class:`~rtrl_agents.ActorCriticNet` without
            ``separate_networks``).
        hyperparams: the actor's and the critic's step sizes.
        update_count: updates (environment steps) applied.
        traces: every stream's eligibility traces.
        observation_moments: the sample moments of every observation seen, all
            streams (``normalize_observations``; else ``None``).
        reward_scaler: each stream's discounted return and the sample moments of
            all of them (``scale_rewards``; else ``None``).
    """

    params: ActorCriticNet | SeparateActorCriticNet
    hyperparams: StepSizes
    update_count: Int[Array, ""]
    traces: EligibilityTraces
    observation_moments: SampleMoments | None = None
    reward_scaler: ReturnScaler | None = None


class _NetStep(NamedTuple):
    """What :func:`~rtrl_agents.actor_step` reads of a timestep, with the
    network's input in place of the raw observation."""

    observation: Array
    reward: Array
    first: Array


def _l1(tree: Any) -> Array:
    return sum((jnp.sum(jnp.abs(x)) for x in jax.tree.leaves(tree)), jnp.zeros(()))


def streaming_inputs(
    config: StreamingACConfig,
    moments: SampleMoments | None,
    observation: Array,
    first: Array,
    episode_step_tm1: Array | None,
) -> tuple[Array, SampleMoments | None, Array | None]:
    """The network's input for one batched step, and the state it advances.

    Their wrappers in order: the observation is merged into the moments, then
    standardised with them (so step ``t`` uses statistics that include it;
    ``NormalizeObservation``), then the time in the episode is appended
    (``AddTimeInfo``, not normalised).

    Args:
        config: which parts are on (``normalize_observations``,
            ``time_input``, ``time_limit``, ``normalize_eps``).
        moments: the observation moments before this step (or ``None``).
        observation: ``(B, *obs_shape)``.
        first: ``(B,)`` bool.
        episode_step_tm1: ``(B,)`` the episode step of each stream's previous
            observation (or ``None`` without the time input).

    Returns:
        ``(x, moments, episode_step)``: the network's input ``(B, *shape)``
        (``(B, prod(obs_shape) + 1)`` with the time input), the moments
        including this step, and each stream's episode step ``k``.
    """
    x = jnp.asarray(observation)
    if config.normalize_observations:
        assert moments is not None
        moments = sample_moments_update(moments, x)
        x = standardize(moments, x, config.normalize_eps)
    step = None
    if config.time_input:
        assert episode_step_tm1 is not None
        step = jnp.where(first, 0, episode_step_tm1 + 1).astype(jnp.int32)
        flat = x.reshape(x.shape[0], -1).astype(jnp.zeros(()).dtype)
        time = episode_time(step, config.time_limit).astype(flat.dtype)
        x = jnp.concatenate([flat, time[:, None]], axis=-1)
    return x, moments, step


def _network_shape(
    config: StreamingACConfig, observation_shape: tuple[int, ...]
) -> tuple[int, ...]:
    """The network's input shape: the observation's, flattened with one more
    entry (the time) with ``time_input``."""
    shape = tuple(int(d) for d in observation_shape)
    return (math.prod(shape) + 1,) if config.time_input else shape


def streaming_ac(
    config: StreamingACConfig, spec: Any, *, cell: rc.AbstractCell | None = None
) -> Agent[StreamingACState, ActorOutput]:
    """Stream AC(lambda): TD(lambda) actor-critic with eligibility traces and
    ObGD step sizes, one update per environment step.

    Per stream and step (Elsayed, Vasan and Mahmood 2024, ``StreamAC`` and
    ``ObGD`` in their ``stream_ac_visual_mujoco.py``, with recurrent cores whose
    gradients come from online RTRL):

    * the network's input: the observation standardised by running moments that
      include it, with the time in the episode appended; the TD reward divided
      by the running std of the discounted return (each switchable, see
      :class:`~rtrl_agents.StreamingACConfig`);
    * ``delta = r + gamma V(x') - V(x)`` (0 on the ignored step after a last
      observation, which also clears the traces);
    * ``z_v <- gamma lambda z_v + grad V(x)``, ``z_pi <- gamma lambda z_pi +
      grad [log pi(a|x) + entropy_cost sign(delta) H(pi(.|x))]``, both cleared at
      episode starts (:func:`~rtrl_agents.eligibility_trace`); with separate
      networks each trace covers its own network only;
    * ``theta_v += a_v delta z_v``, ``theta_pi += a_pi delta z_pi`` with ObGD's
      bounded step sizes ``a = lr / max(1, lr kappa max(|delta|, 1) ||z||_1)``,
      the L1 norm over the network's own trace.

    Updates of several streams are averaged; the observation and return
    moments are shared by the streams (each stream's discounted return is its
    own), so one stream is exactly their single-stream recipe. Runs in the
    ordinary loops with a rollout length of 1 (``update`` reads the batch's two
    timesteps). With the observation normalisation or the time input, the
    actor's input depends on the agent state and the carry, so the agent
    offers no state-only actor step (``trace_update="chunked"``; with one step
    per rollout it would save nothing).

    Args:
        config: the agent's configuration.
        spec: the environment's spec (``num_envs`` may be 1).
        cell: optionally, any rtrl-cells cell to use as the core (with separate
            networks it starts both cores).

    Returns:
        The agent.
    """
    check_config(config, StreamingACConfig, "streaming_ac")
    num_envs = int(spec.num_envs)
    obs_shape = tuple(int(d) for d in spec.observation_shape)
    net_shape = _network_shape(config, obs_shape)
    network = SeparateActorCriticNet if config.separate_networks else ActorCriticNet

    def make_net(key: PRNGKeyArray) -> ActorCriticNet | SeparateActorCriticNet:
        return network(
            config.network,
            net_shape,
            spec.action_space,
            key=key,
            reward_clip=config.reward_clip,
            cell=cell,
            layer_norm=config.layer_norm,
            sparsity=config.sparsity if config.sparse_init else None,
        )

    # Shapes only: a bad network fails here, before anything compiles.
    eqx.filter_eval_shape(make_net, jax.random.PRNGKey(0))

    separate = config.separate_networks

    def init(key: PRNGKeyArray) -> StreamingACState:
        net = make_net(key)
        params = eqx.filter(net, eqx.is_inexact_array)
        zeros = jax.tree.map(lambda x: jnp.zeros((num_envs, *x.shape), x.dtype), params)
        dtype = jnp.zeros(()).dtype
        sizes = StepSizes(
            jnp.asarray(config.actor_learning_rate, dtype),
            jnp.asarray(config.critic_learning_rate, dtype),
        )
        return StreamingACState(
            params=net,
            hyperparams=sizes,
            update_count=jnp.zeros((), jnp.int32),
            traces=(
                EligibilityTraces(zeros.critic, zeros.actor)
                if separate
                else EligibilityTraces(zeros, zeros)
            ),
            observation_moments=(
                sample_moments_init(obs_shape)
                if config.normalize_observations
                else None
            ),
            reward_scaler=(
                return_scaler_init(num_envs) if config.scale_rewards else None
            ),
        )

    def update(
        state: StreamingACState, batch: Trajectory
    ) -> tuple[StreamingACState, Metrics]:
        """One step: TD error, eligibility traces, ObGD update, for every stream."""
        net = state.params
        dyn, static = eqx.partition(net, eqx.is_inexact_array)
        sizes = state.hyperparams

        # The inputs of both timesteps, as the actor saw them: each observation
        # is merged into the moments before it is standardised.
        obs, first = batch.observation, batch.first
        carry_0, step_tm1 = batch.carry_0, None
        if config.time_input:
            carry_0, step_tm1 = batch.carry_0.core, batch.carry_0.episode_step
        inputs_0, moments, step_0 = streaming_inputs(
            config, state.observation_moments, obs[:, 0], first[:, 0], step_tm1
        )
        inputs_1, _, _ = streaming_inputs(
            config, moments, obs[:, 1], first[:, 1], step_0
        )

        # The TD reward, scaled by the return's std updated with this step.
        done = batch.terminated | batch.truncated
        td_reward, scaler = batch.reward, state.reward_scaler
        if config.scale_rewards:
            assert scaler is not None
            r_1, scaler = scale_reward_step(
                scaler,
                batch.reward[:, 1],
                done[:, 1],
                config.discount,
                mask_t=1.0 - done[:, 0].astype(batch.reward.dtype),
                eps=config.normalize_eps,
            )
            td_reward = batch.reward.at[:, 1].set(r_1.astype(batch.reward.dtype))
        net_batch = batch._replace(
            carry_0=carry_0, observation=jnp.stack([inputs_0, inputs_1], axis=1)
        )

        def one(c0, x, rew, first, term, trunc, action, z, td_rew):
            tr = transitions(td_rew, term, trunc, config.discount, config.reward_clip)
            x_0, r_0, f_0 = x[0], rew[0], first[0]
            # Each output from the parameters it depends on: the critic's and
            # the actor's own with separate networks, all of them with one.
            if isinstance(net, SeparateActorCriticNet):
                p_v, p_pi = dyn.critic, dyn.actor

                def critic_value(p):
                    return eqx.combine(p, static.critic).step(c0.critic, x_0, r_0, f_0)

                def actor_policy(p):
                    net_pi = eqx.combine(p, static.actor)
                    return net_pi.step(c0.actor, x_0, r_0, f_0)[0]

                policy = actor_policy
                (v, c1), g_v = jax.value_and_grad(critic_value, has_aux=True)(p_v)
                v_next = net.critic.step(c1, x[1], rew[1], first[1])[0]
            else:
                p_v = p_pi = dyn

                def shared_value(p):
                    _, v, c1 = eqx.combine(p, static).step(c0, x_0, r_0, f_0)
                    return v, c1

                def shared_policy(p):
                    return eqx.combine(p, static).step(c0, x_0, r_0, f_0)[0]

                policy = shared_policy
                (v, c1), g_v = jax.value_and_grad(shared_value, has_aux=True)(p_v)
                v_next = net.step(c1, x[1], rew[1], first[1])[1]
            delta = tr.mask_t[0] * (
                tr.r_t[0] + tr.discount_t[0] * jax.lax.stop_gradient(v_next) - v
            )
            sign = jnp.sign(delta)

            def actor_objective(p):
                pl = policy(p)
                objective = net.policy.log_prob(pl, action[0]) + (
                    config.entropy_cost * sign * net.policy.entropy(pl)
                )
                return objective, pl

            (_, pol), g_pi = jax.value_and_grad(actor_objective, has_aux=True)(p_pi)
            decay = config.discount * config.trace_lambda * (1.0 - f_0.astype(v.dtype))
            m = tr.mask_t[0]
            z_v = eligibility_trace(z.critic, g_v, decay, m)
            z_pi = eligibility_trace(z.actor, g_pi, decay, m)
            a_v = obgd_scale(
                delta, _l1(z_v), sizes.critic_learning_rate, config.critic_kappa
            )
            a_pi = obgd_scale(
                delta, _l1(z_pi), sizes.actor_learning_rate, config.actor_kappa
            )
            if separate:
                upd = (
                    jax.tree.map(lambda zv: delta * (a_v * zv), z_v),
                    jax.tree.map(lambda zp: delta * (a_pi * zp), z_pi),
                )
            else:
                upd = jax.tree.map(
                    lambda zv, zp: delta * (a_v * zv + a_pi * zp), z_v, z_pi
                )
            ent = net.policy.entropy(pol)
            return upd, EligibilityTraces(z_v, z_pi), delta, v, ent, a_v, a_pi

        upd, z, delta, v, ent, a_v, a_pi = per_stream(
            one, net_batch, state.traces, td_reward
        )
        mean_upd = jax.tree.map(lambda u: jnp.mean(u, 0), upd)
        norm = jnp.sqrt(sum(jnp.sum(u**2) for u in jax.tree.leaves(mean_upd)))
        if separate:
            new_dyn = eqx.tree_at(
                lambda n: (n.critic, n.actor),
                dyn,
                (
                    jax.tree.map(jnp.add, dyn.critic, mean_upd[0]),
                    jax.tree.map(jnp.add, dyn.actor, mean_upd[1]),
                ),
            )
        else:
            new_dyn = jax.tree.map(jnp.add, dyn, mean_upd)
        new = dataclasses.replace(
            state,
            params=eqx.combine(new_dyn, static),
            traces=z,
            observation_moments=moments,
            reward_scaler=scaler,
        )
        new_state, guard = guard_nonfinite(new, state, delta, norm)
        metrics = {
            "loss": jnp.mean(0.5 * delta**2),
            "td_error": jnp.mean(jnp.abs(delta)),
            "value": jnp.mean(v),
            "entropy": jnp.mean(ent),
            "critic_step": jnp.mean(a_v),
            "actor_step": jnp.mean(a_pi),
            "grad_norm": norm,
            "learning_rate": sizes.critic_learning_rate,
            **guard,
        }
        if scaler is not None:
            scale = jnp.sqrt(scaler.moments.var + config.normalize_eps)
            metrics["reward_scale"] = scale
        return new_state, metrics

    def initial_carry(state: StreamingACState) -> Carry:
        core = batched_initial_carry(state.params, num_envs)
        if not config.time_input:
            return core
        return StreamingCarry(core, jnp.full((num_envs,), -1, jnp.int32))

    def act(
        state: StreamingACState,
        carry: Carry,
        timestep: Any,
        key: PRNGKeyArray,
        greedy: bool = False,
    ) -> tuple[Array, Carry, ActorOutput]:
        """The shared actor step on the network's input: the observation
        standardised with moments that include it (not stored: the learner
        merges it), the time in the episode appended (the step count carried)."""
        first = jnp.asarray(timestep.first)
        core, step_tm1 = carry, None
        if config.time_input:
            core, step_tm1 = carry.core, carry.episode_step
        x, _, step = streaming_inputs(
            config, state.observation_moments, timestep.observation, first, step_tm1
        )
        net_step = _NetStep(x, jnp.asarray(timestep.reward), first)
        action, core, extras = actor_step(state.params, core, net_step, key, greedy)
        if config.time_input:
            assert step is not None
            core = StreamingCarry(core, step)
        return action, core, extras

    processes_inputs = config.normalize_observations or config.time_input
    agent = actor_critic_agent(
        config,
        spec,
        init,
        update,
        act if processes_inputs else None,
        per_stream_state=True,
        reads_first_carry_only=not processes_inputs,
    )
    return dataclasses.replace(agent, initial_carry=initial_carry)
