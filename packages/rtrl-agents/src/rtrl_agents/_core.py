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


def all_finite(tree: Any) -> Array:
    """True when every floating-point array of ``tree`` is finite (a bool scalar)."""
    leaves = jax.tree.leaves(eqx.filter(tree, eqx.is_inexact_array))
    if not leaves:
        return jnp.asarray(True)
    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in leaves]))


def guard_nonfinite(
    new: AgentState, old: AgentState, loss: Array, grad_norm: Array
) -> tuple[AgentState, dict[str, Array]]:
    """``new`` if the update that made it is finite throughout, else ``old``.

    The one guard of every agent: a non-finite loss, gradient norm, or any
    non-finite parameter, optimizer state or agent-specific state the update
    produced (a finite gradient can still overflow a parameter) leaves the old
    state in place, counts the update, and raises flags in the metrics; the
    driver stops the run on them, naming the update, and never checkpoints it.

    Args:
        new: the state the update produced.
        old: the state before it.
        loss: the update's loss (any shape; all entries must be finite).
        grad_norm: the global norm of its gradient (or update direction).

    Returns:
        ``(state, flags)`` with ``flags`` ``nonfinite_loss``,
        ``nonfinite_grad`` and ``nonfinite_state`` (int32 0/1).
    """
    loss_ok = jnp.all(jnp.isfinite(loss))
    grad_ok = jnp.isfinite(grad_norm)
    state_ok = all_finite((new.params, new.opt_state, new.extra))
    ok = loss_ok & grad_ok & state_ok
    new = AgentState(new.params, new.opt_state, old.update_count + 1, new.extra)
    old = AgentState(old.params, old.opt_state, old.update_count + 1, old.extra)
    out = jax.tree.map(
        lambda a, b: jnp.where(ok, a, b) if eqx.is_array(a) else a, new, old
    )
    return out, {
        "nonfinite_loss": (~loss_ok).astype(jnp.int32),
        "nonfinite_grad": (~grad_ok).astype(jnp.int32),
        "nonfinite_state": (~state_ok).astype(jnp.int32),
    }


def apply_if_finite(
    state: AgentState,
    grads: Any,
    optimizer: optax.GradientTransformation,
    loss: Array,
    extra: Any = None,
) -> tuple[AgentState, dict[str, Array]]:
    """Applies ``grads`` with ``optimizer`` through :func:`guard_nonfinite`."""
    params = eqx.filter(state.params, eqx.is_inexact_array)
    grad_norm = optax.tree.norm(grads)
    updates, opt_state = optimizer.update(grads, state.opt_state, params)
    new = AgentState(
        eqx.apply_updates(state.params, updates),
        opt_state,
        state.update_count,
        state.extra if extra is None else extra,
    )
    out, flags = guard_nonfinite(new, state, loss, grad_norm)
    return out, {"grad_norm": grad_norm, **flags}


def check_env_matches(spec: Any, env_spec: Any, what: str = "the agent") -> None:
    """Raises a one-line ``ValueError`` if an environment is not the one ``what``
    was built for (observation shape, action space, number of streams)."""
    name = getattr(env_spec, "name", "the environment")
    for field, label in (
        ("observation_shape", "observations of shape"),
        ("action_space", "the action space"),
        ("num_envs", "streams:"),
    ):
        want, got = getattr(spec, field, None), getattr(env_spec, field, None)
        if field == "observation_shape":
            want, got = tuple(want), tuple(got)
        if want != got:
            raise ValueError(
                f"{what} was built for {label} {want!r}, but {name} has {got!r}: "
                "build it from this environment's spec."
            )


def take_hyperparams(restored: AgentState, fresh: AgentState) -> AgentState:
    """``restored`` with the hyperparameters held in its optimizer state taken
    from ``fresh`` (a state initialised from the config now asked for).

    Hyperparameters live in state so that a sweep does not recompile; when a run
    resumes under an explicitly changed config, the new config's values must
    apply, not the checkpoint's. Covers ``optax.inject_hyperparams`` states and
    states whose class sets ``holds_hyperparams = True`` (taken whole).
    """

    def is_hp(x: Any) -> bool:
        return hasattr(x, "hyperparams") or getattr(x, "holds_hyperparams", False)

    def pick(f: Any, r: Any) -> Any:
        if getattr(f, "holds_hyperparams", False):
            return f
        if hasattr(f, "hyperparams"):
            return r._replace(hyperparams=f.hyperparams)
        return r

    opt_state = jax.tree.map(pick, fresh.opt_state, restored.opt_state, is_leaf=is_hp)
    return AgentState(restored.params, opt_state, restored.update_count, restored.extra)


def injected_learning_rate(opt_state: Any) -> Array:
    """The base learning rate held in an ``inject_hyperparams`` state."""

    def has_hp(x):
        return hasattr(x, "hyperparams") and "learning_rate" in x.hyperparams

    for s in jax.tree.leaves(opt_state, is_leaf=has_hp):
        if has_hp(s):
            return s.hyperparams["learning_rate"]
    raise ValueError("the optimizer state holds no injected learning rate.")
