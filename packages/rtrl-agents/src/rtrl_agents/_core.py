"""The shape every agent has, and the pure pieces they share.

An agent is made by a factory (:func:`~rtrl_agents.r2ac`, :func:`~rtrl_agents.ppo`,
:func:`~rtrl_agents.streaming_ac`) from its config and the environment's spec: an
immutable :class:`Agent` record of pure functions over a typed state,

* ``init(key) -> State``,
* ``initial_carry(state) -> carry`` (the batched core carry of every stream),
* ``act(state, carry, timestep, key, greedy=False) -> (action, carry, extras)``,
* ``update(state, batch) -> (state, metrics)``,

as Optax's transformations are pairs of pure functions. ``update`` takes its batch
(a :class:`Trajectory`) as an argument and never owns a data source; loops
(``_loop.py``, ``_driver.py``) live outside agents and serve every agent.

Shared here: the trajectory, the actor step, the one finite-update guard, the
one way gradients are applied with a step size held in state, and the episode
statistics every loop keeps.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, Generic, NamedTuple, TypeVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jaxtyping import Array, Bool, Float, Int, PRNGKeyArray

from ._networks import ActorCriticNet, SeparateActorCriticNet

Metrics = dict[str, Array]
"""Scalars (or small arrays) an update reports, by name."""

Carry = Any
"""A core carry (``rtrl_cells.RTRLCarry``, or a dummy scalar without a core).
Opaque to agents: what they need of it is a method of the cell or the carry."""


class Hyperparams(eqx.Module):
    """Hyperparameters held in an agent's state (arrays, so that a sweep over
    them does not recompile; a resumed run under an explicitly changed config
    takes them from the new config, see :func:`take_hyperparams`).

    Attributes:
        learning_rate: the base step size (a scalar).
    """

    learning_rate: Float[Array, ""]


class AbstractAgentState(eqx.Module):
    """What every agent's (and learner's) typed state holds.

    Attributes:
        params: the network (an Equinox module; its arrays are the parameters).
        hyperparams: hyperparameters a sweep may vary (arrays).
        update_count: updates applied so far (int32 scalar).
    """

    params: eqx.AbstractVar[Any]
    hyperparams: eqx.AbstractVar[Any]
    update_count: eqx.AbstractVar[Int[Array, ""]]


class AbstractOptimizedState(AbstractAgentState):
    """A state whose parameters an Optax transformation updates.

    Attributes:
        opt_state: the transformation's state.
    """

    opt_state: eqx.AbstractVar[optax.OptState]


S = TypeVar("S", bound=AbstractAgentState)
OptS = TypeVar("OptS", bound=AbstractOptimizedState)
E = TypeVar("E")
ArrayT = TypeVar("ArrayT", np.ndarray, Array)


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

    carry_0: Carry
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


@dataclasses.dataclass(frozen=True, eq=False)
class Agent(Generic[S, E]):
    """An agent: pure functions over its typed state ``S`` (made by a factory).

    Attributes:
        init: ``init(key) -> state``: fresh parameters, optimizer state, ...
        initial_carry: ``initial_carry(state) -> carry``: every stream's core
            carry at the start of its first episode (leading axis ``num_envs``).
        act: ``act(state, carry, timestep, key, greedy=False) -> (action,
            carry, extras)``: one batched step of every stream; ``extras`` is
            what the learner needs of the step (policy, value, and, for agents
            that re-run sequences, the carry kept for the gradient method).
        update: ``update(state, batch) -> (state, metrics)`` on a
            :class:`Trajectory`.
        config: the config the agent was made from.
        spec: the environment spec it was made for.
        rollout_length: steps per stream per update.
        num_envs: streams per update.
        per_stream_state: the learner keeps state per stream from one update
            to the next (PPO's reward scaler, the streaming agent's eligibility
            traces): stream ``i`` of every batch must be the same environment
            stream (the distributed driver keeps the actors' order).
        act_state_only: ``act`` advancing the core's states alone (the traces
            as they were), offered by agents whose ``update`` reads no carry but
            the rollout's first (``carry_0``): their actors may advance the
            traces once per rollout instead of every step
            (``Actor(trace_update="chunked")``). ``None`` for agents that store
            the carry of every step (PPO), or whose actor's input is not the raw
            timestep (the streaming agent with observation normalisation or the
            time input: the chunked re-run could not rebuild it).
    """

    init: Callable[[PRNGKeyArray], S]
    initial_carry: Callable[[S], Carry]
    act: Callable[..., tuple[Array, Carry, E]]
    update: Callable[[S, Trajectory], tuple[S, Metrics]]
    config: Any
    spec: Any
    rollout_length: int
    num_envs: int
    per_stream_state: bool = False
    act_state_only: Callable[..., tuple[Array, Carry, E]] | None = None


def act_state_only(
    state: AbstractAgentState,
    carry: Carry,
    timestep: Any,
    key: PRNGKeyArray,
    greedy: bool = False,
) -> tuple[Array, Carry, ActorOutput]:
    """The actor step of R2AC and the streaming agent with the core's states
    alone advanced (``Agent.act_state_only``)."""
    import rtrl_cells as rc

    return actor_step(state.params, carry, timestep, key, greedy, method=rc.BPTT)


def per_stream(fn: Callable[..., Any], batch: Trajectory, *more: Any) -> Any:
    """``fn`` of every stream of ``batch``, vmapped: ``fn(carry_0, observation,
    reward, first, terminated, truncated, action, *more)`` with each argument one
    stream's (``more``: further per-stream arrays, leading axis ``B``)."""
    return jax.vmap(fn)(
        batch.carry_0,
        batch.observation,
        batch.reward,
        batch.first,
        batch.terminated,
        batch.truncated,
        batch.action,
        *more,
    )


def actor_critic_agent(
    config: Any,
    spec: Any,
    init: Callable[[PRNGKeyArray], S],
    update: Callable[[S, Trajectory], tuple[S, Metrics]],
    act: Callable[..., tuple[Array, Carry, E]] | None = None,
    *,
    per_stream_state: bool = False,
    reads_first_carry_only: bool = False,
) -> Agent[S, Any]:
    """The :class:`Agent` record of an actor-critic on an :class:`ActorCriticNet`
    (``state.params``): the batched initial carry and, unless ``act`` is given,
    the shared actor step; ``reads_first_carry_only`` offers
    :func:`act_state_only` (the learner reads ``carry_0`` alone)."""
    num_envs = int(spec.num_envs)

    def initial_carry(state: S) -> Carry:
        return batched_initial_carry(state.params, num_envs)

    def act_online(
        state: S, carry: Carry, timestep: Any, key: PRNGKeyArray, greedy: bool = False
    ) -> tuple[Array, Carry, ActorOutput]:
        return actor_step(state.params, carry, timestep, key, greedy)

    return Agent(
        init=init,
        initial_carry=initial_carry,
        act=act_online if act is None else act,
        update=update,
        config=config,
        spec=spec,
        # The streaming agent's config has none: it updates every step.
        rollout_length=getattr(config, "rollout_length", 1),
        num_envs=num_envs,
        per_stream_state=per_stream_state,
        act_state_only=act_state_only if reads_first_carry_only else None,
    )


def network_factory(
    config: Any, spec: Any, cell: Any = None
) -> Callable[[PRNGKeyArray], ActorCriticNet]:
    """``key -> ActorCriticNet`` for an agent's ``config`` and ``spec``.

    The network is built once on a throwaway key (shapes only), so that a bad
    network or an action space the head cannot serve fails here, before
    anything compiles.
    """

    def make(key: PRNGKeyArray) -> ActorCriticNet:
        return ActorCriticNet(
            config.network,
            tuple(spec.observation_shape),
            spec.action_space,
            key=key,
            reward_clip=config.reward_clip,
            cell=cell,
        )

    eqx.filter_eval_shape(make, jax.random.PRNGKey(0))
    return make


def check_config(config: Any, config_type: type, what: str) -> None:
    """A one-line ``ValueError`` unless ``config`` is a ``config_type``."""
    if not isinstance(config, config_type):
        raise ValueError(
            f"{what} takes a config of type {config_type.__name__}, "
            f"got {type(config).__name__}."
        )


def batched_initial_carry(net: Any, num_envs: int) -> Carry:
    """``num_envs`` copies of the network's episode-start carry."""
    one = net.initial_carry()
    return jax.tree.map(lambda x: jnp.broadcast_to(x, (num_envs, *x.shape)), one)


def actor_step(
    net: ActorCriticNet | SeparateActorCriticNet,
    carry: Carry,
    timestep: Any,
    key: PRNGKeyArray,
    greedy: bool = False,
    method: Any = None,
) -> tuple[Array, Carry, ActorOutput]:
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


def all_finite(tree: Any) -> Bool[Array, ""]:
    """True when every floating-point array of ``tree`` is finite (a bool scalar)."""
    leaves = jax.tree.leaves(eqx.filter(tree, eqx.is_inexact_array))
    if not leaves:
        return jnp.asarray(True)
    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in leaves]))


def guard_nonfinite(
    new: S, old: S, loss: Array, grad_norm: Array
) -> tuple[S, dict[str, Array]]:
    """``new`` if the update that made it is finite throughout, else ``old``.

    The one guard of every agent and learner: a non-finite loss, gradient norm,
    or any non-finite array of the state the update produced (parameters,
    optimizer state, agent-specific state: a finite gradient can still overflow
    a parameter) leaves the old state in place, counts the update, and raises
    flags in the metrics; the driver stops the run on them, naming the update,
    and never checkpoints it.

    Args:
        new: the state the update produced.
        old: the state before it (same structure).
        loss: the update's loss (any shape; all entries must be finite).
        grad_norm: the global norm of its gradient (or update direction).

    Returns:
        ``(state, flags)`` with ``flags`` ``nonfinite_loss``,
        ``nonfinite_grad`` and ``nonfinite_state`` (int32 0/1).
    """
    loss_ok = jnp.all(jnp.isfinite(loss))
    grad_ok = jnp.isfinite(grad_norm)
    state_ok = all_finite(new)
    ok = loss_ok & grad_ok & state_ok
    out = jax.tree.map(
        lambda a, b: jnp.where(ok, a, b) if eqx.is_array(a) else a, new, old
    )
    out = eqx.tree_at(lambda s: s.update_count, out, old.update_count + 1)
    return out, {
        "nonfinite_loss": (~loss_ok).astype(jnp.int32),
        "nonfinite_grad": (~grad_ok).astype(jnp.int32),
        "nonfinite_state": (~state_ok).astype(jnp.int32),
    }


def apply_gradients(
    state: OptS,
    grads: Any,
    optimizer: optax.GradientTransformation,
    learning_rate: Array,
    loss: Array,
    **changes: Any,
) -> tuple[OptS, dict[str, Array]]:
    """One optimizer step on ``state.params``, through :func:`guard_nonfinite`.

    ``optimizer`` transforms the gradient without a step size (clipping,
    moments); the step is ``-learning_rate`` times its output, with the step
    size from the state, so a sweep over it does not recompile.

    Args:
        state: a state with ``params`` and ``opt_state``.
        grads: the gradient (the inexact arrays of ``state.params``).
        optimizer: the step-size-free transformation.
        learning_rate: the step size of this update (a scalar array).
        loss: the loss (checked for finiteness).
        **changes: other fields of the state to replace in the new state
            (agent-specific state the update produced).

    Returns:
        ``(state, metrics)``: ``grad_norm`` and the guard's flags.
    """
    params = eqx.filter(state.params, eqx.is_inexact_array)
    grad_norm = optax.tree.norm(grads)
    updates, opt_state = optimizer.update(grads, state.opt_state, params)
    updates = jax.tree.map(lambda u: -learning_rate * u, updates)
    new = dataclasses.replace(
        state,
        params=eqx.apply_updates(state.params, updates),
        opt_state=opt_state,
        **changes,
    )
    out, flags = guard_nonfinite(new, state, loss, grad_norm)
    return out, {"grad_norm": grad_norm, **flags}


def take_hyperparams(restored: S, fresh: S) -> S:
    """``restored`` with the hyperparameters held in its state taken from
    ``fresh`` (a state initialised from the config now asked for).

    Hyperparameters live in state so that a sweep does not recompile; when a run
    resumes under an explicitly changed config, the new config's values apply,
    not the checkpoint's.
    """
    return dataclasses.replace(restored, hyperparams=fresh.hyperparams)


def hyperparams(learning_rate: float) -> Hyperparams:
    """:class:`Hyperparams` in the default float dtype."""
    return Hyperparams(jnp.asarray(learning_rate, _float_dtype()))


def _float_dtype() -> Any:
    return jnp.zeros(()).dtype


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
            want, got = tuple(want or ()), tuple(got or ())
        if want != got:
            raise ValueError(
                f"{what} was built for {label} {want!r}, but {name} has {got!r}: "
                "build it from this environment's spec."
            )


def track_episodes(
    episode_return: ArrayT, episode_length: ArrayT, timestep: Any
) -> tuple[ArrayT, ArrayT, ArrayT]:
    """Running episode statistics of every stream, advanced by one timestep.

    The one place episodes are counted (the jitted loop, the actors and
    rtrl-bench's evaluation use it). Works on numpy arrays (host loops: no
    device calls) and on JAX arrays (inside ``jit``), keeping ``episode_return``'s
    dtype.

    Args:
        episode_return: ``(B,)`` undiscounted return so far of each stream's
            episode.
        episode_length: ``(B,)`` steps so far.
        timestep: the new batched timestep (``reward``, ``first``,
            ``terminated``, ``truncated``).

    Returns:
        ``(episode_return, episode_length, ended)``: the updated statistics
        (restarted where ``first``) and ``(B,)`` bool, the streams whose episode
        ended at this timestep (their entries then hold its totals).
    """
    xp: Any = np if isinstance(episode_return, np.ndarray) else jnp
    first = xp.asarray(timestep.first)
    ended = xp.asarray(timestep.terminated) | xp.asarray(timestep.truncated)
    reward = xp.asarray(timestep.reward).astype(episode_return.dtype)
    episode_return = xp.where(first, 0, episode_return + reward).astype(
        episode_return.dtype
    )
    episode_length = xp.where(first, 0, episode_length + 1).astype(episode_length.dtype)
    return episode_return, episode_length, ended


def episode_sums(
    episode_return: ArrayT, episode_length: ArrayT, ended: ArrayT
) -> dict[str, ArrayT]:
    """The loops' per-rollout episode record: sums over the episodes that ended."""
    xp: Any = np if isinstance(episode_return, np.ndarray) else jnp
    return {
        "episode_return_sum": xp.sum(xp.where(ended, episode_return, 0)),
        "episode_length_sum": xp.sum(xp.where(ended, episode_length, 0)),
        "episodes": xp.sum(ended),
    }
