"""What the agents consume from an environment, stated as a small protocol.

``rtrl-agents`` does not import ``rtrl-envs`` (DESIGN section 2); any object with
this shape works, and ``rtrl-bench`` wires the two packages together. The
conventions are those of ``rtrl-envs``:

* Environments are batch-first: every array has a leading ``num_envs`` axis.
* ``reset(key)`` returns ``first=True``, ``reward=0`` in every stream.
* A ``TimeStep`` with ``terminated`` or ``truncated`` carries the *last*
  observation of its episode; the next ``step`` ignores its action and returns
  ``first=True``, ``reward=0`` and the first observation of the next episode.
  So ``first`` is exactly the recurrent cell's ``reset_t``, and a learner masks
  the transition out of a last step.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable


@runtime_checkable
class TimeStepLike(Protocol):
    """One batched step: the fields every environment returns."""

    observation: Any
    reward: Any
    terminated: Any
    truncated: Any
    first: Any


@runtime_checkable
class DiscreteSpaceLike(Protocol):
    """A discrete action space with actions ``0 .. n - 1``."""

    n: int


@runtime_checkable
class BoxSpaceLike(Protocol):
    """A continuous action space of ``shape`` with bounds ``low`` and ``high``."""

    low: Any
    high: Any
    shape: tuple[int, ...]


@runtime_checkable
class EnvSpecLike(Protocol):
    """What an environment produces and consumes."""

    observation_shape: tuple[int, ...]
    action_space: Any
    num_envs: int
    is_jax: bool


@runtime_checkable
class EnvironmentLike(Protocol):
    """``reset(key) -> (state, ts)``, ``step(state, action) -> (state, ts)``, spec.

    With ``spec.is_jax`` true both functions are jittable and ``state`` is the
    whole environment state (the jitted loop carries it); otherwise the simulator
    lives on the host and the host loop drives it.
    """

    @property
    def spec(self) -> Any: ...

    def reset(self, key: Any) -> tuple[Any, Any]: ...

    def step(self, state: Any, action: Any) -> tuple[Any, Any]: ...


def is_discrete(space: Any) -> bool:
    """True for a space with an ``n`` attribute (``Discrete``-like)."""
    return hasattr(space, "n")


def action_dim(space: Any) -> int:
    """The number of actions (discrete) or of action entries (continuous)."""
    if is_discrete(space):
        return int(space.n)
    size = 1
    for d in tuple(space.shape):
        size *= int(d)
    return size
