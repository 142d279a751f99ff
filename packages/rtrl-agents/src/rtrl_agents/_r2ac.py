"""R2AC (Irie et al. 2024): IMPALA's V-trace actor-critic on an RTRL core."""

from __future__ import annotations

from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import optax
from jaxtyping import Array

import rtrl_cells as rc

from ._config import R2ACConfig
from ._core import (
    AbstractActorCritic,
    ActorOutput,
    AgentState,
    Trajectory,
    actor_step,
    apply_if_finite,
    batched_initial_carry,
    injected_learning_rate,
)
from ._losses import transitions, vtrace_actor_critic_loss
from ._networks import ActorCriticNet


def _linear_decay(total: int | None):
    if total is None:
        return lambda count: jnp.ones((), jnp.float32)
    return lambda count: jnp.clip(1.0 - count / total, 0.0, 1.0)


def r2ac_stream_loss(
    net: ActorCriticNet,
    policy_params: Array,
    values: Array,
    action: Array,
    behaviour_policy: Array,
    reward: Array,
    terminated: Array,
    truncated: Array,
    config: R2ACConfig,
):
    """The seed's losses for one stream from the network's outputs on ``T + 1``
    steps: ``(policy, baseline, entropy)``, each summed over time."""
    tr = transitions(reward, terminated, truncated, config.discount, config.reward_clip)
    logp = jax.vmap(net.policy.log_prob)(policy_params[:-1], action)
    mu_logp = jax.vmap(net.policy.log_prob)(behaviour_policy, action)
    ent = jax.vmap(net.policy.entropy)(policy_params[:-1])
    return vtrace_actor_critic_loss(
        logp,
        ent,
        mu_logp,
        values[:-1],
        values[1:],
        tr.r_t,
        tr.discount_t,
        tr.mask_t,
        clip_rho=config.clip_rho,
        clip_c=config.clip_c,
        clip_pg_rho=config.clip_pg_rho,
    )


class R2AC(AbstractActorCritic):
    """IMPALA's V-trace actor-critic with an RTRL (or TBPTT, or no) core.

    * ``act`` steps the core online: RTRL cores advance their traces with the
      actor's parameters, resetting them at episode starts.
    * ``update`` re-runs torso and core from the carry stored before the rollout
      (state and traces) with the current parameters. With ``method="rtrl"`` or
      ``"rtrl-online"`` the core's gradient is exact RTRL: never truncated. With
      ``"tbptt"`` it stops at the rollout start. The torso gets BPTT gradients
      through the core, truncated at the rollout start (as in the seed).
    * Losses summed over time and batch; RMSProp with a linearly decaying step
      size and a global-norm clip, as in the seed.

    The jitted loop acts with the parameters of the previous update, so the
    behaviour policy never lags the learner by more than one update; V-trace
    corrects the difference.

    Args:
        config: the agent's configuration.
        spec: the environment's spec (``observation_shape``, ``action_space``,
            ``num_envs``).
        cell: optionally, any rtrl-cells cell to use as the core.
    """

    config_type = R2ACConfig

    def __init__(
        self, config: R2ACConfig, spec: Any, *, cell: rc.AbstractCell | None = None
    ):
        super().__init__(config, spec, cell=cell)
        self.rollout_length = config.rollout_length
        self.optimizer = optax.chain(
            optax.clip_by_global_norm(config.max_grad_norm),
            optax.inject_hyperparams(optax.rmsprop)(
                learning_rate=config.learning_rate,
                decay=config.rms_decay,
                eps=config.rms_eps,
                eps_in_sqrt=False,
            ),
            optax.scale_by_schedule(_linear_decay(config.decay_updates)),
        )

    def init(self, key: Array) -> AgentState:
        """Fresh parameters and optimizer state."""
        net = self._make_net(key)
        opt_state = self.optimizer.init(eqx.filter(net, eqx.is_inexact_array))
        return AgentState(net, opt_state, jnp.zeros((), jnp.int32))

    def initial_carry(self, state: AgentState) -> Any:
        """The batched carry at the start of every stream's first episode."""
        return batched_initial_carry(state.params, self.num_envs)

    def act(
        self,
        state: AgentState,
        carry: Any,
        timestep: Any,
        key: Array,
        greedy: bool = False,
    ) -> tuple[Array, Any, ActorOutput]:
        """Samples actions for every stream (greedy: the mode) and steps the core."""
        return actor_step(state.params, carry, timestep, key, greedy)

    def loss(self, net: ActorCriticNet, batch: Trajectory) -> tuple[Array, dict]:
        """Total loss of a batch and its parts."""
        cfg = self.config

        def one(c0, obs, rew, first, term, trunc, action, behaviour):
            p, v, _ = net.unroll(c0, obs, rew, first)
            return r2ac_stream_loss(net, p, v, action, behaviour, rew, term, trunc, cfg)

        parts = jax.vmap(one)(
            batch.carry_0,
            batch.observation,
            batch.reward,
            batch.first,
            batch.terminated,
            batch.truncated,
            batch.action,
            batch.extras.policy,
        )
        pg, bl, ent = (jnp.sum(x) for x in parts)
        total = pg + cfg.baseline_cost * bl + cfg.entropy_cost * ent
        valid = jnp.maximum(
            jnp.sum(1.0 - (batch.terminated[:, :-1] | batch.truncated[:, :-1])), 1.0
        )
        return total, {
            "loss": total,
            "policy_loss": pg,
            "baseline_loss": bl,
            "entropy": -ent / valid,
        }

    def update(
        self, state: AgentState, batch: Trajectory
    ) -> tuple[AgentState, dict[str, Array]]:
        """One RMSProp step on one batch of rollouts."""
        (loss, metrics), grads = eqx.filter_value_and_grad(self.loss, has_aux=True)(
            state.params, batch
        )
        new_state, guard = apply_if_finite(state, grads, self.optimizer, loss)
        decay = _linear_decay(self.config.decay_updates)(state.update_count)
        lr = injected_learning_rate(state.opt_state) * decay
        return new_state, {**metrics, **guard, "learning_rate": lr}
