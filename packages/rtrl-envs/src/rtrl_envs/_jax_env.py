"""Pure JAX environments: a single-stream core, batched and auto-reset here."""

from __future__ import annotations

from typing import Any, NamedTuple, Protocol

import jax
import jax.numpy as jnp

from ._types import EnvSpec, TimeStep, check_traced_action


class JaxCore(Protocol):
    """One stream of a pure JAX environment, without auto-reset.

    ``reset(key) -> (inner, obs)`` and
    ``step(key, inner, action) -> (inner, obs, reward, terminated, truncated)``,
    both jittable and unbatched.
    """

    def reset(self, key: jax.Array) -> tuple[Any, jax.Array]: ...

    def step(
        self, key: jax.Array, inner: Any, action: jax.Array
    ) -> tuple[Any, jax.Array, jax.Array, jax.Array, jax.Array]: ...


class JaxEnvState(NamedTuple):
    """The state of a pure JAX environment, batched over ``num_envs``.

    Attributes:
        inner: the core's state.
        key: one PRNG key per stream.
        last: the previous TimeStep ended its episode, so the next ``step``
            resets (the auto-reset convention).
    """

    inner: Any
    key: jax.Array
    last: jax.Array


def _reset_one(core: JaxCore, key: jax.Array) -> tuple[JaxEnvState, TimeStep]:
    key, k_reset = jax.random.split(key)
    inner, obs = core.reset(k_reset)
    no = jnp.zeros((), bool)
    ts = TimeStep(obs, jnp.zeros((), jnp.float32), no, no, jnp.ones((), bool))
    return JaxEnvState(inner, key, no), ts


def _step_one(
    core: JaxCore, state: JaxEnvState, action: jax.Array
) -> tuple[JaxEnvState, TimeStep]:
    key, k_step, k_reset = jax.random.split(state.key, 3)
    inner_s, obs_s, r_s, term_s, trunc_s = core.step(k_step, state.inner, action)
    inner_r, obs_r = core.reset(k_reset)
    reset = state.last

    def pick(a: jax.Array, b: jax.Array) -> jax.Array:
        return jnp.where(reset, a, b)

    inner = jax.tree.map(pick, inner_r, inner_s)
    obs = pick(obs_r, obs_s)
    term = jnp.logical_and(~reset, term_s)
    trunc = jnp.logical_and(jnp.logical_and(~reset, trunc_s), ~term)
    reward = jnp.where(reset, 0.0, r_s).astype(jnp.float32)
    ts = TimeStep(obs, reward, term, trunc, reset)
    return JaxEnvState(inner, key, term | trunc), ts


class JaxEnvironment:
    """A pure JAX environment batched over ``num_envs`` streams.

    ``reset`` and ``step`` are pure, jitted, and may be called inside
    ``jax.jit``/``jax.vmap``/``lax.scan``. ``step`` checks the actions' shape
    and dtype when traced and clips continuous actions to the action space
    (:func:`~rtrl_envs.check_traced_action` says what happens to discrete
    actions out of range). All randomness comes from the key given
    to ``reset`` folded with the ``seed`` given to ``make``.
    """

    def __init__(self, core: JaxCore, spec: EnvSpec, seed: int) -> None:
        self._core = core
        self._spec = spec
        self._seed = int(seed)
        self.reset = jax.jit(self._reset)
        self.step = jax.jit(self._step)

    @property
    def spec(self) -> EnvSpec:
        """The environment's spec."""
        return self._spec

    @property
    def core(self) -> JaxCore:
        """The single-stream core (no auto-reset), for unbatched use."""
        return self._core

    def _reset(self, key: jax.Array) -> tuple[JaxEnvState, TimeStep]:
        key = jax.random.fold_in(key, self._seed)
        keys = jax.random.split(key, self._spec.num_envs)
        return jax.vmap(lambda k: _reset_one(self._core, k))(keys)

    def _step(
        self, state: JaxEnvState, action: jax.Array
    ) -> tuple[JaxEnvState, TimeStep]:
        action = check_traced_action(self._spec, action)
        return jax.vmap(lambda s, a: _step_one(self._core, s, a))(state, action)

    def __repr__(self) -> str:
        return f"JaxEnvironment({self._spec.name!r}, num_envs={self._spec.num_envs})"
