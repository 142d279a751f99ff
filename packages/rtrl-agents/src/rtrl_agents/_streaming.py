"""Streaming actor-critic: one update every environment step, online RTRL.

What RTRL promises and TBPTT cannot do: the core's gradient at step ``t`` is
``delta_t . E_t`` with the traces ``E_t`` carried forward, so every step can
update the parameters with an untruncated gradient and no stored history.
"""

from __future__ import annotations

import dataclasses
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
    Metrics,
    Trajectory,
    actor_critic_agent,
    check_config,
    guard_nonfinite,
    network_factory,
    per_stream,
)
from ._losses import eligibility_trace, obgd_scale, transitions
from ._networks import ActorCriticNet


class StepSizes(eqx.Module):
    """The streaming agent's hyperparameters held in state: its step sizes."""

    actor_learning_rate: Float[Array, ""]
    critic_learning_rate: Float[Array, ""]


class EligibilityTraces(NamedTuple):
    """Per-stream accumulating traces over all parameters (leading axis B)."""

    critic: Any
    actor: Any


class StreamingACState(AbstractAgentState):
    """The streaming agent's state.

    Attributes:
        params: the network.
        hyperparams: the actor's and the critic's step sizes.
        update_count: updates (environment steps) applied.
        traces: every stream's eligibility traces.
    """

    params: ActorCriticNet
    hyperparams: StepSizes
    update_count: Int[Array, ""]
    traces: EligibilityTraces


def _l1(tree: Any) -> Array:
    return sum((jnp.sum(jnp.abs(x)) for x in jax.tree.leaves(tree)), jnp.zeros(()))


def streaming_ac(
    config: StreamingACConfig, spec: Any, *, cell: rc.AbstractCell | None = None
) -> Agent[StreamingACState, ActorOutput]:
    """TD(lambda) actor-critic with eligibility traces and ObGD step sizes.

    Per stream and step (Elsayed, Vasan and Mahmood 2024, with a recurrent core
    whose gradients come from online RTRL):

    * ``delta = r + gamma V(x') - V(x)`` (0 on the ignored step after a last
      observation, which also clears the traces);
    * ``z_v <- gamma lambda z_v + grad V(x)``, ``z_pi <- gamma lambda z_pi +
      grad [log pi(a|x) + entropy_cost sign(delta) H(pi(.|x))]``, both cleared at
      episode starts (:func:`~rtrl_agents.eligibility_trace`);
    * ``theta += a_v delta z_v + a_pi delta z_pi`` with ObGD's bounded step sizes
      ``a = lr / max(1, lr kappa max(|delta|, 1) ||z||_1)``.

    Updates of several streams are averaged. Runs in the ordinary loops with a
    rollout length of 1 (one update per environment step).

    Args:
        config: the agent's configuration.
        spec: the environment's spec (``num_envs`` may be 1).
        cell: optionally, any rtrl-cells cell to use as the core.

    Returns:
        The agent.
    """
    check_config(config, StreamingACConfig, "streaming_ac")
    make_net = network_factory(config, spec, cell)
    num_envs = int(spec.num_envs)

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
            traces=EligibilityTraces(zeros, zeros),
        )

    def update(
        state: StreamingACState, batch: Trajectory
    ) -> tuple[StreamingACState, Metrics]:
        """One step: TD error, eligibility traces, ObGD update, for every stream."""
        net = state.params
        dyn, static = eqx.partition(net, eqx.is_inexact_array)
        sizes = state.hyperparams

        def one(c0, obs, rew, first, term, trunc, action, z):
            tr = transitions(rew, term, trunc, config.discount, config.reward_clip)

            def outputs(p):
                return eqx.combine(p, static).step(c0, obs[0], rew[0], first[0])

            pol, v, c1 = outputs(dyn)
            _, v_next, _ = net.step(c1, obs[1], rew[1], first[1])
            delta = tr.mask_t[0] * (
                tr.r_t[0] + tr.discount_t[0] * jax.lax.stop_gradient(v_next) - v
            )
            sign = jnp.sign(delta)
            g_v = jax.grad(lambda p: outputs(p)[1])(dyn)

            def actor_objective(p):
                pl = outputs(p)[0]
                return net.policy.log_prob(pl, action[0]) + (
                    config.entropy_cost * sign * net.policy.entropy(pl)
                )

            g_pi = jax.grad(actor_objective)(dyn)
            decay = (
                config.discount * config.trace_lambda * (1.0 - first[0].astype(v.dtype))
            )
            m = tr.mask_t[0]
            z_v = eligibility_trace(z.critic, g_v, decay, m)
            z_pi = eligibility_trace(z.actor, g_pi, decay, m)
            a_v = obgd_scale(
                delta, _l1(z_v), sizes.critic_learning_rate, config.critic_kappa
            )
            a_pi = obgd_scale(
                delta, _l1(z_pi), sizes.actor_learning_rate, config.actor_kappa
            )
            upd = jax.tree.map(lambda zv, zp: delta * (a_v * zv + a_pi * zp), z_v, z_pi)
            ent = net.policy.entropy(pol)
            return upd, EligibilityTraces(z_v, z_pi), delta, v, ent, a_v, a_pi

        upd, z, delta, v, ent, a_v, a_pi = per_stream(one, batch, state.traces)
        mean_upd = jax.tree.map(lambda u: jnp.mean(u, 0), upd)
        norm = jnp.sqrt(sum(jnp.sum(u**2) for u in jax.tree.leaves(mean_upd)))
        new = dataclasses.replace(
            state,
            params=eqx.combine(jax.tree.map(jnp.add, dyn, mean_upd), static),
            traces=z,
        )
        new_state, guard = guard_nonfinite(new, state, delta, norm)
        return new_state, {
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

    return actor_critic_agent(
        config,
        spec,
        init,
        update,
        per_stream_state=True,
        reads_first_carry_only=True,
    )
