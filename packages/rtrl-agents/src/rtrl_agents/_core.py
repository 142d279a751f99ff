"""The pure core every agent shares: state, trajectories, the actor step.

An agent is ``init``, ``act`` and ``update`` over an explicit :class:`AgentState`;
``update`` takes its batch (a :class:`Trajectory`) as an argument and never owns
a data source. Loops (``_loop.py``) live outside agents.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Protocol

import equinox as eqx
import jax
import jax.numpy as jnp
import optax
from jaxtyping import Array

from ._networks import ActorCriticNet


class AgentState(eqx.Module):
    """What an agent learns and carries between updates.

    Attributes:
        params: the network (an Equinox module; its arrays are the parameters).
        opt_state: the optimizer state (hyperparameters that a sweep varies live
            here, through ``optax.inject_hyperparams``).
        update_count: number of updates applied so far (int32 scalar).
        extra: agent-specific state (e.g. eligibility traces), or ``None``.
    """

    params: ActorCriticNet
    opt_state: Any
    update_count: Array
    extra: Any = None


class Trajectory(NamedTuple):
    """A batch of rollouts of ``T + 1`` timesteps, batch-first.

    The last timestep is the first of the next rollout (it bootstraps).

    Attributes:
        carry_0: per-stream core carry from before ``observation[:, 0]``: the
            state and the RTRL traces the learner starts from.
        observation: ``(B, T + 1, *obs_shape)``.
        reward: ``(B, T + 1)``; ``reward[:, s]`` arrived with observation ``s``.
        terminated: ``(B, T + 1)`` bool.
        truncated: ``(B, T + 1)`` bool.
        first: ``(B, T + 1)`` bool; the cell's resets.
        action: ``(B, T, *action_shape)``, taken at steps ``0 .. T - 1``.
        extras: what the actor recorded at each step (agent-specific), ``(B, T,
            ...)``.
    """

    carry_0: Any
    observation: Array
    reward: Array
    terminated: Array
    truncated: Array
    first: Array
    action: Array
    extras: Any


class ActorOutput(NamedTuple):
    """What the shared actor step records per stream and step."""

    policy: Array
    """The behaviour policy's distribution parameters."""
    value: Array
    """The value estimate ``V(x_t)``."""


class Agent(Protocol):
    """What the loops need from an agent."""

    rollout_length: int
    num_envs: int

    def init(self, key: Array) -> AgentState: ...

    def initial_carry(self, state: AgentState) -> Any: ...

    def act(
        self, state: AgentState, carry: Any, timestep: Any, key: Array
    ) -> tuple[Array, Any, Any]: ...

    def update(
        self, state: AgentState, batch: Trajectory
    ) -> tuple[AgentState, dict[str, Array]]: ...


class AbstractActorCritic:
    """What R2AC, PPO and the streaming agent share: config, spec and network.

    Subclasses set ``config_type`` and call ``super().__init__``; the network is
    built once on a throwaway key at construction, so that a bad network or an
    action space the head cannot serve fails there, before anything compiles.
    """

    config_type: type

    def __init__(self, config: Any, spec: Any, *, cell: Any = None):
        if not isinstance(config, self.config_type):
            raise ValueError(
                f"{type(self).__name__} takes a config of type "
                f"{self.config_type.__name__}, "
                f"got {type(config).__name__}."
            )
        self.config = config
        self.spec = spec
        self.num_envs = int(spec.num_envs)
        self._cell = cell
        eqx.filter_eval_shape(self._make_net, jax.random.PRNGKey(0))

    def _make_net(self, key: Array) -> ActorCriticNet:
        return ActorCriticNet(
            self.config.network,
            tuple(self.spec.observation_shape),
            self.spec.action_space,
            key=key,
            reward_clip=self.config.reward_clip,
            cell=self._cell,
        )


def batched_initial_carry(net: ActorCriticNet, num_envs: int) -> Any:
    """``num_envs`` copies of the network's episode-start carry."""
    one = net.initial_carry()
    return jax.tree.map(lambda x: jnp.broadcast_to(x, (num_envs, *x.shape)), one)


def actor_step(
    net: ActorCriticNet,
    carry: Any,
    timestep: Any,
    key: Array,
    greedy: bool = False,
    method: str | None = None,
) -> tuple[Array, Any, ActorOutput]:
    """One batched actor step: sample ``a_t`` and advance the carries.

    RTRL cores advance their traces with online RTRL using the actor's copy of
    the parameters, resetting them at ``first``; the learner later starts from
    the carry stored before the rollout. ``method="bptt"`` advances the state
    only (the traces stay as they are).
    """
    num_envs = timestep.first.shape[0]

    def one(c, obs, r, f, k):
        p, v, c = net.step(c, obs, r, f, method=method)
        a = net.policy.mode(p) if greedy else net.policy.sample(k, p)
        return a, c, ActorOutput(p, v)

    keys = jax.random.split(key, num_envs)
    return jax.vmap(one)(
        carry,
        jnp.asarray(timestep.observation),
        jnp.asarray(timestep.reward),
        jnp.asarray(timestep.first),
        keys,
    )


def apply_if_finite(
    state: AgentState,
    grads: Any,
    optimizer: optax.GradientTransformation,
    loss: Array,
    extra: Any = None,
) -> tuple[AgentState, dict[str, Array]]:
    """Applies ``grads`` unless the loss or a gradient is non-finite.

    A non-finite update leaves the state untouched and raises flags in the
    metrics; the host loop stops the run on them, naming the update.
    """
    params = eqx.filter(state.params, eqx.is_inexact_array)
    grad_norm = optax.tree.norm(grads)
    updates, opt_state = optimizer.update(grads, state.opt_state, params)
    new_params = eqx.apply_updates(state.params, updates)
    loss_ok = jnp.isfinite(loss)
    grad_ok = jnp.isfinite(grad_norm)
    ok = loss_ok & grad_ok
    new = AgentState(
        new_params,
        opt_state,
        state.update_count + 1,
        state.extra if extra is None else extra,
    )
    old = AgentState(state.params, state.opt_state, state.update_count + 1, state.extra)
    out = jax.tree.map(
        lambda a, b: jnp.where(ok, a, b) if eqx.is_array(a) else a, new, old
    )
    metrics = {
        "grad_norm": grad_norm,
        "nonfinite_loss": (~loss_ok).astype(jnp.int32),
        "nonfinite_grad": (~grad_ok).astype(jnp.int32),
    }
    return out, metrics


def injected_learning_rate(opt_state: Any) -> Array:
    """The base learning rate held in an ``inject_hyperparams`` state."""

    def has_hp(x):
        return hasattr(x, "hyperparams") and "learning_rate" in x.hyperparams

    for s in jax.tree.leaves(opt_state, is_leaf=has_hp):
        if has_hp(s):
            return s.hyperparams["learning_rate"]
    raise ValueError("the optimizer state holds no injected learning rate.")
