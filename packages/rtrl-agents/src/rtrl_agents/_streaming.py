"""Streaming actor-critic: one update every environment step, online RTRL.

What RTRL promises and TBPTT cannot do: the core's gradient at step ``t`` is
``delta_t . E_t`` with the traces ``E_t`` carried forward, so every step can
update the parameters with an untruncated gradient and no stored history.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array

import rtrl_cells as rc

from ._config import StreamingACConfig
from ._core import (
    AbstractActorCritic,
    AgentState,
    Trajectory,
    actor_step,
    batched_initial_carry,
    guard_nonfinite,
)
from ._losses import obgd_scale, transitions


class StepSizes(NamedTuple):
    """The streaming agent's "optimizer state": step sizes a sweep may vary."""

    actor_learning_rate: Array
    critic_learning_rate: Array

    holds_hyperparams = True
    """Every field comes from the config (taken anew when a resumed run's config
    changes; see ``take_hyperparams``)."""


class EligibilityTraces(NamedTuple):
    """Per-stream accumulating traces over all parameters (leading axis B)."""

    critic: Any
    actor: Any


def _l1(tree) -> Array:
    return sum(jnp.sum(jnp.abs(x)) for x in jax.tree.leaves(tree))


class StreamingAC(AbstractActorCritic):
    """TD(lambda) actor-critic with eligibility traces and ObGD step sizes.

    Per stream and step (Elsayed, Vasan and Mahmood 2024, with a recurrent core
    whose gradients come from online RTRL):

    * ``delta = r + gamma V(x') - V(x)`` (0 on the ignored step after a last
      observation, which also clears the traces);
    * ``z_v <- gamma lambda z_v + grad V(x)``, ``z_pi <- gamma lambda z_pi +
      grad [log pi(a|x) + entropy_cost sign(delta) H(pi(.|x))]``, both cleared at
      episode starts;
    * ``theta += a_v delta z_v + a_pi delta z_pi`` with ObGD's bounded step sizes
      ``a = lr / max(1, lr kappa max(|delta|, 1) ||z||_1)``.

    Updates of several streams are averaged. Runs in the ordinary loops with a
    rollout length of 1 (one update per environment step).

    Args:
        config: the agent's configuration.
        spec: the environment's spec (``num_envs`` may be 1).
        cell: optionally, any rtrl-cells cell to use as the core.
    """

    rollout_length = 1
    config_type = StreamingACConfig

    def __init__(
        self,
        config: StreamingACConfig,
        spec: Any,
        *,
        cell: rc.AbstractCell | None = None,
    ):
        super().__init__(config, spec, cell=cell)

    def init(self, key: Array) -> AgentState:
        """Fresh parameters, step sizes and zero eligibility traces."""
        net = self._make_net(key)
        params = eqx.filter(net, eqx.is_inexact_array)
        zeros = jax.tree.map(
            lambda x: jnp.zeros((self.num_envs, *x.shape), x.dtype), params
        )
        cfg = self.config
        sizes = StepSizes(
            jnp.asarray(cfg.actor_learning_rate, jnp.float32),
            jnp.asarray(cfg.critic_learning_rate, jnp.float32),
        )
        return AgentState(
            net, sizes, jnp.zeros((), jnp.int32), EligibilityTraces(zeros, zeros)
        )

    def initial_carry(self, state: AgentState) -> Any:
        """The batched carry at the start of every stream's first episode."""
        return batched_initial_carry(state.params, self.num_envs)

    def act(
        self, state: AgentState, carry: Any, timestep: Any, key: Array, greedy=False
    ):
        """Samples actions and steps the core with online RTRL."""
        return actor_step(state.params, carry, timestep, key, greedy)

    def update(
        self, state: AgentState, batch: Trajectory
    ) -> tuple[AgentState, dict[str, Array]]:
        """One step: TD error, eligibility traces, ObGD update, for every stream."""
        cfg = self.config
        net = state.params
        dyn, static = eqx.partition(net, eqx.is_inexact_array)
        sizes: StepSizes = state.opt_state

        def one(c0, obs, rew, first, term, trunc, action, z):
            tr = transitions(rew, term, trunc, cfg.discount, cfg.reward_clip)

            def outputs(p):
                n = eqx.combine(p, static)
                pol, v, c1 = n.step(c0, obs[0], rew[0], first[0])
                return pol, v, c1

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
                    cfg.entropy_cost * sign * net.policy.entropy(pl)
                )

            g_pi = jax.grad(actor_objective)(dyn)
            # Clear at episode starts; the ignored step clears and adds nothing.
            keep = cfg.discount * cfg.trace_lambda * (1.0 - first[0].astype(v.dtype))
            m = tr.mask_t[0]
            z_v = jax.tree.map(lambda e, g: m * (keep * e + g), z.critic, g_v)
            z_pi = jax.tree.map(lambda e, g: m * (keep * e + g), z.actor, g_pi)
            a_v = obgd_scale(
                delta, _l1(z_v), sizes.critic_learning_rate, cfg.critic_kappa
            )
            a_pi = obgd_scale(
                delta, _l1(z_pi), sizes.actor_learning_rate, cfg.actor_kappa
            )
            upd = jax.tree.map(lambda zv, zp: delta * (a_v * zv + a_pi * zp), z_v, z_pi)
            ent = net.policy.entropy(pol)
            return upd, EligibilityTraces(z_v, z_pi), delta, v, ent, a_v, a_pi

        upd, z, delta, v, ent, a_v, a_pi = jax.vmap(one)(
            batch.carry_0,
            batch.observation,
            batch.reward,
            batch.first,
            batch.terminated,
            batch.truncated,
            batch.action,
            state.extra,
        )
        mean_upd = jax.tree.map(lambda u: jnp.mean(u, 0), upd)
        norm = jnp.sqrt(sum(jnp.sum(u**2) for u in jax.tree.leaves(mean_upd)))
        new_state, guard = guard_nonfinite(
            AgentState(
                eqx.combine(jax.tree.map(jnp.add, dyn, mean_upd), static),
                sizes,
                state.update_count,
                z,
            ),
            state,
            delta,
            norm,
        )
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
