"""gymnax adapter (gymnax 1.x), with an observation mask for POMDPs."""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ._errors import InvalidOptionError, close_matches, extra_missing
from ._types import Box, Discrete

# gymnax 1.0's registered_envs, minus MNISTBandit-bsuite (downloads MNIST when
# made, so it is not listed; make() still accepts it). A test checks this list
# against the installed gymnax.
GYMNAX_IDS = (
    "CartPole-v1",
    "Pendulum-v1",
    "Acrobot-v1",
    "MountainCar-v0",
    "MountainCarContinuous-v0",
    "Asterix-MinAtar",
    "Breakout-MinAtar",
    "Freeway-MinAtar",
    "Seaquest-MinAtar",
    "SpaceInvaders-MinAtar",
    "Catch-bsuite",
    "DeepSea-bsuite",
    "MemoryChain-bsuite",
    "UmbrellaChain-bsuite",
    "DiscountingChain-bsuite",
    "SimpleBandit-bsuite",
    "FourRooms-misc",
    "MetaMaze-misc",
    "PointRobot-misc",
    "BernoulliBandit-misc",
    "GaussianBandit-misc",
    "Reacher-misc",
    "Swimmer-misc",
    "Pong-misc",
    "FrozenLake-misc",
)


@dataclasses.dataclass(frozen=True)
class GymnaxOptions:
    """Options of ``gymnax/<id>``.

    Every other keyword of ``make("gymnax/<id>", ...)`` sets a field of the
    environment's gymnax ``EnvParams`` (e.g. ``memory_length=20`` on
    ``MemoryChain-bsuite``, ``max_steps_in_episode``); it lands in ``params``.

    Attributes:
        obs_indices: if given, the observation is the flattened gymnax
            observation restricted to these entries (in this order), making a
            POMDP; e.g. ``(0, 2)`` on CartPole keeps cart position and pole angle.
        params: ``(field, value)`` pairs replacing the gymnax ``EnvParams``
            defaults; checked against the environment's fields and their types.
    """

    obs_indices: tuple[int, ...] | None = None
    params: tuple[tuple[str, Any], ...] = ()

    def __post_init__(self) -> None:
        idx = self.obs_indices
        if idx is None:
            return
        if isinstance(idx, list):
            object.__setattr__(self, "obs_indices", idx := tuple(idx))
        ok = isinstance(idx, tuple) and len(idx) > 0
        ok = ok and all(isinstance(i, int) and not isinstance(i, bool) for i in idx)
        if not ok or len(set(idx)) != len(idx):
            raise InvalidOptionError(
                f"option obs_indices={idx!r} is invalid: allowed values are None or a "
                "non-empty tuple of distinct int indices into the flat observation"
            )


def import_gymnax() -> Any:
    """Imports gymnax or raises the error that names the extra."""
    try:
        import gymnax
    except ImportError as e:
        raise extra_missing("gymnax", "gymnax") from e
    return gymnax


def _replace_params(env_id: str, params: Any, values: dict[str, Any]) -> Any:
    """gymnax ``EnvParams`` with ``values`` set, each checked against the field
    it replaces (it must exist and keep its type: an int field takes ints)."""
    fields = {f.name: getattr(params, f.name) for f in dataclasses.fields(params)}
    for key, value in values.items():
        if key not in fields:
            near = close_matches(key, fields)
            hint = f" Did you mean {', '.join(near)}?" if near else ""
            raise InvalidOptionError(
                f"unknown option {key!r} for gymnax/{env_id}; allowed options: "
                f"obs_indices, {', '.join(sorted(fields))}.{hint}"
            )
        default = fields[key]
        kind = type(default) if not hasattr(default, "dtype") else type(default.item())
        ok = isinstance(value, kind) and not (
            isinstance(value, bool) and kind is not bool
        )
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value, ok = float(value), True
        if not ok:
            raise InvalidOptionError(
                f"option {key}={value!r} is invalid for gymnax/{env_id}: allowed "
                f"values are {kind.__name__}s (default {default!r})"
            )
        values[key] = value
    return params.replace(**values)


class GymnaxCore:
    """One stream of a gymnax environment, stepped without gymnax's auto-reset.

    gymnax 1.x's ``step`` returns six values and resets in the same step;
    this core uses ``step_env``/``reset_env`` and ``is_truncated`` instead, so
    ``JaxEnvironment`` applies the package's convention and the last
    observation of an episode is kept.
    """

    def __init__(self, env_id: str, options: GymnaxOptions) -> None:
        gymnax = import_gymnax()
        self.env, self.params = gymnax.make(env_id)
        if options.params:
            self.params = _replace_params(env_id, self.params, dict(options.params))
        obs_space = self.env.observation_space(self.params)
        act_space = self.env.action_space(self.params)
        shape = tuple(obs_space.shape)
        self.obs_dtype = np.dtype(obs_space.dtype)
        self.indices: np.ndarray | None = None
        if options.obs_indices is not None:
            size = int(np.prod(shape, dtype=np.int64))
            if any(not -size <= i < size for i in options.obs_indices):
                raise InvalidOptionError(
                    f"option obs_indices={options.obs_indices!r} is invalid for "
                    f"gymnax/{env_id}: allowed values are indices in [0, {size})"
                )
            self.indices = np.asarray(options.obs_indices, np.int32)
            shape = (len(options.obs_indices),)
        self.observation_shape = shape
        if hasattr(act_space, "n"):
            self.action_space: Discrete | Box = Discrete(int(act_space.n))
        else:
            self.action_space = Box.from_bounds(
                act_space.low, act_space.high, tuple(act_space.shape)
            )

    def _obs(self, obs: Any) -> jax.Array:
        obs = jnp.asarray(obs).astype(self.obs_dtype)
        if self.indices is not None:
            obs = obs.reshape(-1)[self.indices]
        return obs

    def reset(self, key: jax.Array):
        obs, inner = self.env.reset_env(key, self.params)
        return inner, self._obs(obs)

    def step(self, key: jax.Array, inner: Any, action: jax.Array):
        obs, inner, reward, terminated, _ = self.env.step_env(
            key, inner, action, self.params
        )
        truncated = self.env.is_truncated(inner, self.params)
        return (
            inner,
            self._obs(obs),
            jnp.asarray(reward, jnp.float32),
            jnp.asarray(terminated, bool),
            jnp.asarray(truncated, bool),
        )
