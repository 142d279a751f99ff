"""The environment protocol: spaces, spec, TimeStep and the auto-reset convention.

Auto-reset convention (the one place it is written in code; the package README
repeats it):

* ``reset(key)`` returns, for every stream, a ``TimeStep`` with ``first=True``,
  ``reward=0``, ``terminated=truncated=False`` and the first observation.
* ``step(state, a_t)`` returns the next ``TimeStep``. When an episode ends, the
  ``TimeStep`` that says so (``terminated`` or ``truncated`` true) carries the
  *last* observation of that episode: bootstrap from it when ``truncated``, use
  zero value when ``terminated``. ``terminated`` and ``truncated`` are never both
  true (a natural end on the time-limit step counts as ``terminated``).
* The ``step`` after such a ``TimeStep`` ignores its action and starts the next
  episode: it returns ``first=True``, ``reward=0``, ``terminated=truncated=False``
  and the first observation of the new episode.
* Hence, per stream, ``first[0] = True`` and
  ``first[t + 1] = terminated[t] | truncated[t]``, which is exactly the
  recurrent cell's ``reset_t``. A learner masks the transition out of a last
  step (its action did nothing and its reward is 0).

This is envpool's and dm_env's convention ("next-step" auto-reset). It needs no
extra ``final_observation`` buffer and costs one ignored action per episode.
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple, Protocol, runtime_checkable

import jax
import jax.numpy as jnp
import numpy as np


class TimeStep(NamedTuple):
    """What every environment returns, batched over ``num_envs`` (leading axis).

    Attributes:
        observation: the observation ``o_t``, shape
            ``(num_envs, *spec.observation_shape)``.
        reward: ``r_t`` (float32), the reward of the transition that led to
            ``o_t``; 0 on first steps. Never clipped here.
        terminated: ``o_t`` is the last observation of an episode that ended
            naturally (value 0 beyond it).
        truncated: ``o_t`` is the last observation of an episode cut by a time
            limit (bootstrap from ``o_t``).
        first: ``o_t`` is the first observation of an episode; the cell's
            ``reset_t``.
    """

    observation: Any
    reward: Any
    terminated: Any
    truncated: Any
    first: Any

    @property
    def last(self) -> Any:
        """``terminated | truncated``: the next step starts a new episode."""
        return self.terminated | self.truncated


@dataclasses.dataclass(frozen=True)
class Discrete:
    """A discrete action space with actions ``0 .. n - 1`` (int32).

    Attributes:
        n: the number of actions.
    """

    n: int

    def __post_init__(self) -> None:
        if not isinstance(self.n, int) or isinstance(self.n, bool) or self.n < 1:
            raise ValueError(f"Discrete.n must be a positive int, got {self.n!r}")

    @property
    def shape(self) -> tuple[int, ...]:
        """The shape of one action: ``()``."""
        return ()

    @property
    def dtype(self) -> np.dtype:
        """The action dtype: int32."""
        return np.dtype(np.int32)

    def sample(self, key: jax.Array, num_envs: int) -> jax.Array:
        """Uniform random actions, shape ``(num_envs,)``."""
        return jax.random.randint(key, (num_envs,), 0, self.n, dtype=jnp.int32)


@dataclasses.dataclass(frozen=True)
class Box:
    """A continuous action space: float32 arrays of ``shape`` in ``[low, high]``.

    Attributes:
        low: lower bound, one value per entry (flattened, as a tuple).
        high: upper bound, one value per entry (flattened, as a tuple).
        shape: the shape of one action.
    """

    low: tuple[float, ...]
    high: tuple[float, ...]
    shape: tuple[int, ...]

    def __post_init__(self) -> None:
        size = int(np.prod(self.shape, dtype=np.int64))
        if len(self.low) != size or len(self.high) != size:
            raise ValueError(
                f"Box bounds must have {size} entries for shape {self.shape}, got "
                f"{len(self.low)} and {len(self.high)}"
            )
        if any(lo > hi for lo, hi in zip(self.low, self.high, strict=True)):
            raise ValueError("Box low must be <= high")

    @classmethod
    def from_bounds(cls, low: Any, high: Any, shape: tuple[int, ...]) -> Box:
        """Builds a Box from scalar or array bounds broadcast to ``shape``."""
        lo = np.broadcast_to(np.asarray(low, np.float64), shape).ravel()
        hi = np.broadcast_to(np.asarray(high, np.float64), shape).ravel()
        return cls(tuple(map(float, lo)), tuple(map(float, hi)), tuple(shape))

    @property
    def dtype(self) -> np.dtype:
        """The action dtype: float32."""
        return np.dtype(np.float32)

    def sample(self, key: jax.Array, num_envs: int) -> jax.Array:
        """Uniform random actions, shape ``(num_envs, *shape)``."""
        lo = jnp.asarray(self.low, jnp.float32).reshape(self.shape)
        hi = jnp.asarray(self.high, jnp.float32).reshape(self.shape)
        u = jax.random.uniform(key, (num_envs, *self.shape), jnp.float32)
        return lo + u * (hi - lo)


ActionSpace = Discrete | Box


def check_action(spec: EnvSpec, action: Any) -> np.ndarray:
    """One batch of actions for a host environment, checked and made ready.

    Discrete actions must be integers in ``[0, n)``; continuous actions must be
    finite real numbers and are clipped to ``[low, high]`` (gymnasium's
    ``ClipAction``: a Gaussian policy's sample is unbounded, and a simulator
    that charges a control cost on the raw action would charge for the part it
    cannot apply).

    Args:
        spec: the environment's spec.
        action: ``(num_envs, *action_space.shape)``.

    Returns:
        The actions as int32 (discrete) or clipped float32 (continuous).

    Raises:
        InvalidActionError: wrong shape or dtype, a discrete action out of
            range, a non-finite continuous action (names the stream).
    """
    from ._errors import InvalidActionError

    space = spec.action_space
    a = np.asarray(action)
    want = (spec.num_envs, *space.shape)
    if a.shape != want:
        raise InvalidActionError(
            f"{spec.name}: actions must have shape {want} (streams x action), got "
            f"{a.shape}."
        )
    if isinstance(space, Discrete):
        if a.dtype.kind not in "iu":
            raise InvalidActionError(
                f"{spec.name}: actions must be integers in [0, {space.n}), got "
                f"dtype {a.dtype}."
            )
        bad = np.flatnonzero((a < 0) | (a >= space.n))
        if bad.size:
            i = int(bad[0])
            raise InvalidActionError(
                f"{spec.name}: action {a[i]} of stream {i} is outside [0, {space.n})."
            )
        return a.astype(np.int32, copy=False)
    if a.dtype.kind not in "fiu":
        raise InvalidActionError(
            f"{spec.name}: actions must be real numbers, got dtype {a.dtype}."
        )
    finite = np.isfinite(a).reshape(a.shape[0], -1).all(axis=1)
    if not finite.all():
        i = int(np.flatnonzero(~finite)[0])
        raise InvalidActionError(
            f"{spec.name}: the action of stream {i} is not finite ({a[i]})."
        )
    low = np.asarray(space.low, np.float32).reshape(space.shape)
    high = np.asarray(space.high, np.float32).reshape(space.shape)
    return np.clip(a.astype(np.float32), low, high)


def check_traced_action(spec: EnvSpec, action: Any) -> Any:
    """The JAX-environment counterpart of :func:`check_action`, at trace time.

    Shape and dtype are checked when ``step`` is traced (one-line
    :class:`InvalidActionError`); values cannot be checked inside ``jit``.
    Continuous actions are clipped to ``[low, high]``. Discrete actions outside
    ``[0, n)`` reach the environment as they are: the memory tasks treat them as
    an action that names no cue (reward 0); gymnax environments do what their
    own ``step`` does with them.
    """
    from ._errors import InvalidActionError

    space = spec.action_space
    a = jnp.asarray(action)
    want = (spec.num_envs, *space.shape)
    if a.shape != want:
        raise InvalidActionError(
            f"{spec.name}: actions must have shape {want} (streams x action), got "
            f"{a.shape}."
        )
    if isinstance(space, Discrete):
        if not jnp.issubdtype(a.dtype, jnp.integer):
            raise InvalidActionError(
                f"{spec.name}: actions must be integers in [0, {space.n}), got "
                f"dtype {a.dtype}."
            )
        return a
    if not (
        jnp.issubdtype(a.dtype, jnp.floating) or jnp.issubdtype(a.dtype, jnp.integer)
    ):
        raise InvalidActionError(
            f"{spec.name}: actions must be real numbers, got dtype {a.dtype}."
        )
    low = jnp.asarray(space.low, jnp.float32).reshape(space.shape)
    high = jnp.asarray(space.high, jnp.float32).reshape(space.shape)
    return jnp.clip(a.astype(jnp.float32), low, high)


@dataclasses.dataclass(frozen=True)
class EnvSpec:
    """What an environment produces and consumes.

    Attributes:
        name: the registered name, e.g. ``"atari/Breakout"``.
        observation_shape: the shape of one stream's observation.
        observation_dtype: the observation dtype (numpy dtype).
        action_space: ``Discrete`` or ``Box``.
        num_envs: the number of streams every call is batched over.
        is_jax: ``True`` for pure JAX environments (``reset``/``step`` are
            jittable and vmappable and ``state`` is the whole state); ``False`` for
            host environments that keep their simulator inside.
    """

    name: str
    observation_shape: tuple[int, ...]
    observation_dtype: np.dtype
    action_space: ActionSpace
    num_envs: int
    is_jax: bool

    def __post_init__(self) -> None:
        object.__setattr__(self, "observation_dtype", np.dtype(self.observation_dtype))
        object.__setattr__(self, "observation_shape", tuple(self.observation_shape))
        if not all(isinstance(d, int) and d >= 0 for d in self.observation_shape):
            raise ValueError(f"bad observation_shape {self.observation_shape!r}")
        if not isinstance(self.action_space, Discrete | Box):
            raise ValueError(
                f"action_space must be Discrete or Box, got {self.action_space!r}"
            )
        if not isinstance(self.num_envs, int) or self.num_envs < 1:
            raise ValueError(f"num_envs must be a positive int, got {self.num_envs!r}")


@runtime_checkable
class Environment(Protocol):
    """The protocol every environment follows (see the module docstring)."""

    @property
    def spec(self) -> EnvSpec:
        """The environment's spec."""
        ...

    def reset(self, key: jax.Array) -> tuple[Any, TimeStep]:
        """Starts an episode in every stream; returns ``(state, timestep)``."""
        ...

    def step(self, state: Any, action: Any) -> tuple[Any, TimeStep]:
        """Advances every stream by one step; returns ``(state, timestep)``."""
        ...
