"""envpool adapters: Atari, ProcGen, MuJoCo with -P/-V observation masks.

envpool already follows the package's auto-reset convention (the step after a
last step is a reset step with reward 0 whose action is ignored); the adapter
only tracks ``first`` and converts dtypes, so its overhead is a few numpy ops.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import numpy as np

from ._errors import BackendNotInstalledError, InvalidOptionError, extra_missing
from ._host import HostEnvironment, HostState
from ._options import check_bool, check_choice, check_int
from ._types import Box, Discrete, EnvSpec, TimeStep, check_action

ATARI_GAMES = ("Breakout", "Gravitar", "MsPacman", "Qbert", "Seaquest")
PROCGEN_GAMES = (
    "bigfish", "bossfight", "caveflyer", "chaser", "climber", "coinrun",
    "dodgeball", "fruitbot", "heist", "jumper", "leaper", "maze", "miner",
    "ninja", "plunder", "starpilot",
)  # fmt: skip
QT5_APT_PACKAGE = "libqt5gui5"

# Indices into envpool's (= gymnasium's) v4 observations: qpos without the root
# x (and y for Ant), then qvel. -P keeps positions and angles, -V velocities.
MUJOCO_MASKS: dict[str, dict[str, tuple[int, ...]]] = {
    "Ant": {"P": tuple(range(0, 13)), "V": tuple(range(13, 27))},
    "HalfCheetah": {"P": tuple(range(0, 8)), "V": tuple(range(8, 17))},
    "Hopper": {"P": tuple(range(0, 5)), "V": tuple(range(5, 11))},
    "Walker2d": {"P": tuple(range(0, 8)), "V": tuple(range(8, 17))},
}


def import_envpool() -> Any:
    """Imports envpool or raises the error that names the extra."""
    try:
        import envpool
    except ImportError as e:
        raise extra_missing("envpool", "envpool") from e
    return envpool


@dataclasses.dataclass(frozen=True)
class AtariOptions:
    """Options of ``atari/<Game>`` (the seed's preprocessing is fixed: action
    repeat 4 with max-pool over the last two frames, 84x84 gray, 4-frame stack,
    rewards unclipped).

    Attributes:
        episodic_life: a life loss ends the episode (``terminated``).
        fire_reset: press FIRE after a reset in games that need it.
        noop_max: up to this many random no-ops at the start of a game.
        max_episode_steps: agent steps before truncation (27000 = 108k frames).
        repeat_action_probability: sticky-action probability (0: none, as the seed).
        full_action_space: use all 18 actions instead of the game's minimal set.
    """

    episodic_life: bool = True
    fire_reset: bool = True
    noop_max: int = 30
    max_episode_steps: int = 27000
    repeat_action_probability: float = 0.0
    full_action_space: bool = False

    def __post_init__(self) -> None:
        check_bool("episodic_life", self.episodic_life)
        check_bool("fire_reset", self.fire_reset)
        check_bool("full_action_space", self.full_action_space)
        check_int("noop_max", self.noop_max, 0)
        check_int("max_episode_steps", self.max_episode_steps, 1)
        p = self.repeat_action_probability
        if not isinstance(p, float | int) or isinstance(p, bool) or not 0 <= p <= 1:
            raise InvalidOptionError(
                f"option repeat_action_probability={p!r} is invalid: allowed values "
                "are floats in [0, 1]"
            )


@dataclasses.dataclass(frozen=True)
class ProcgenOptions:
    """Options of ``procgen/<game>`` (64x64 RGB, channels first, 15 actions).

    Attributes:
        distribution_mode: ``"easy"``, ``"hard"`` or ``"extreme"`` (availability
            depends on the game).
        num_levels: number of distinct training levels (0: unlimited).
        start_level: the first level's seed.
    """

    distribution_mode: str = "hard"
    num_levels: int = 500
    start_level: int = 0

    def __post_init__(self) -> None:
        check_choice(
            "distribution_mode", self.distribution_mode, ("easy", "hard", "extreme")
        )
        check_int("num_levels", self.num_levels, 0)
        check_int("start_level", self.start_level, 0)


@dataclasses.dataclass(frozen=True)
class MujocoPomdpOptions:
    """Options of ``mujoco-pomdp/<Robot>-<P|V>``.

    Attributes:
        max_episode_steps: steps before truncation.
    """

    max_episode_steps: int = 1000

    def __post_init__(self) -> None:
        check_int("max_episode_steps", self.max_episode_steps, 1)


def _space(space: Any) -> Discrete | Box:
    if hasattr(space, "n"):
        return Discrete(int(space.n))
    return Box.from_bounds(space.low, space.high, tuple(space.shape))


class EnvpoolEnvironment(HostEnvironment):
    """A host environment over one envpool pool of ``num_envs`` streams.

    Args:
        name: the registered name.
        task_id: envpool's task id.
        num_envs: number of streams.
        seed: envpool's seed; the same seed gives the same trajectory.
        obs_indices: if given, keep these observation entries (MuJoCo masks).
        obs_dtype: if given, cast observations to it.
        **kwargs: passed to ``envpool.make``.
    """

    def __init__(
        self,
        name: str,
        task_id: str,
        num_envs: int,
        seed: int,
        obs_indices: tuple[int, ...] | None = None,
        obs_dtype: Any = None,
        **kwargs: Any,
    ) -> None:
        envpool = import_envpool()
        self._pool = envpool.make(
            task_id, env_type="gymnasium", num_envs=num_envs, seed=seed, **kwargs
        )
        self._indices = None if obs_indices is None else np.asarray(obs_indices)
        obs_space = self._pool.observation_space
        shape = tuple(obs_space.shape)
        if self._indices is not None:
            shape = (len(self._indices),)
        dtype = np.dtype(obs_dtype if obs_dtype is not None else obs_space.dtype)
        self._cast = obs_dtype is not None and dtype != np.dtype(obs_space.dtype)
        self._dtype = dtype
        action_space = _space(self._pool.action_space)
        self._spec = EnvSpec(name, shape, dtype, action_space, num_envs, False)
        self._last = np.zeros(num_envs, bool)

    @property
    def pool(self) -> Any:
        """The underlying envpool pool (the raw backend)."""
        return self._pool

    def _obs(self, obs: np.ndarray) -> np.ndarray:
        if self._indices is not None:
            obs = obs[:, self._indices]
        return obs.astype(self._dtype) if self._cast else obs

    def reset(self, key: jax.Array | None = None) -> tuple[HostState, TimeStep]:
        """Resets every stream. ``key`` is accepted for the protocol and unused:
        envpool is seeded by ``make``'s ``seed``."""
        del key
        obs, _ = self._pool.reset()
        self._last = np.zeros(self._spec.num_envs, bool)
        return self._next_state(), self._first_timestep(self._obs(obs))

    def step(self, state: HostState, action: Any) -> tuple[HostState, TimeStep]:
        """Steps every stream (see the auto-reset convention).

        Actions are checked (:func:`~rtrl_envs.check_action`): a
        discrete action out of range, a wrong shape or dtype raises
        ``InvalidActionError``; continuous actions are clipped to the action
        space, so MuJoCo's control cost is charged on the applied action.
        """
        self._check_state(state)
        action = check_action(self._spec, action)
        obs, reward, terminated, truncated, _ = self._pool.step(action)
        first = self._last
        truncated = truncated & ~terminated
        self._last = terminated | truncated
        ts = TimeStep(
            self._obs(obs),
            np.asarray(reward, np.float32),
            terminated,
            truncated,
            first,
        )
        return self._next_state(), ts


def atari_kwargs(options: AtariOptions) -> dict[str, Any]:
    """envpool.make keyword arguments for the seed's Atari preprocessing."""
    return dict(
        frame_skip=4,
        stack_num=4,
        img_height=84,
        img_width=84,
        gray_scale=True,
        reward_clip=False,
        episodic_life=options.episodic_life,
        use_fire_reset=options.fire_reset,
        noop_max=options.noop_max,
        max_episode_steps=options.max_episode_steps,
        repeat_action_probability=float(options.repeat_action_probability),
        full_action_space=options.full_action_space,
    )


def make_atari(name: str, game: str, num_envs: int, seed: int, options: AtariOptions):
    """``atari/<Game>``: envpool ``<Game>-v5`` with the seed's preprocessing."""
    return EnvpoolEnvironment(
        name, f"{game}-v5", num_envs, seed, **atari_kwargs(options)
    )


def atari_games_available() -> list[str]:
    """Every Atari game the installed envpool has."""
    envpool = import_envpool()
    specs = getattr(getattr(envpool, "registration", None), "registry", None)
    specs = getattr(specs, "specs", None)
    if specs is None:  # pragma: no cover - an envpool without its registry
        ids = [e for e in envpool.list_all_envs() if e.endswith("-v5")]
    else:  # MuJoCo's tasks are "-v5" too: keep the Atari module's
        ids = [
            e for e, s in specs.items() if e.endswith("-v5") and s[0] == "envpool.atari"
        ]
    return sorted(e[: -len("-v5")] for e in ids)


def procgen_task_id(game: str, options: ProcgenOptions) -> str:
    """envpool's task id, e.g. ``ChaserHard-v0``."""
    return f"{game.capitalize()}{options.distribution_mode.capitalize()}-v0"


def require_qt5() -> None:
    """Raises BackendNotInstalledError naming the apt package if Qt5 is missing."""
    try:
        import envpool.procgen.procgen_envpool  # noqa: F401
    except ImportError as e:
        raise BackendNotInstalledError(
            "ProcGen (envpool) needs the system Qt5 runtime, which is missing "
            f"({e.__cause__ or e}). Install the Debian package {QT5_APT_PACKAGE}: "
            f"apt-get install {QT5_APT_PACKAGE}"
        ) from e


def make_procgen(
    name: str, game: str, num_envs: int, seed: int, options: ProcgenOptions
):
    """``procgen/<game>``: envpool ProcGen, 64x64x3 uint8 channels first."""
    envpool = import_envpool()
    require_qt5()
    task_id = procgen_task_id(game, options)
    if task_id not in envpool.list_all_envs():
        modes = sorted(
            m.lower()
            for m in ("easy", "hard", "extreme", "memory", "exploration")
            if f"{game.capitalize()}{m.capitalize()}-v0" in envpool.list_all_envs()
        )
        raise InvalidOptionError(
            f"option distribution_mode={options.distribution_mode!r} is invalid for "
            f"{name}: allowed values are {', '.join(map(repr, modes))}"
        )
    return EnvpoolEnvironment(
        name,
        task_id,
        num_envs,
        seed,
        num_levels=options.num_levels,
        start_level=options.start_level,
    )


def make_mujoco_pomdp(
    name: str,
    robot: str,
    mask: str,
    num_envs: int,
    seed: int,
    options: MujocoPomdpOptions,
):
    """``mujoco-pomdp/<Robot>-<P|V>``: envpool ``<Robot>-v4``, masked, float32."""
    return EnvpoolEnvironment(
        name,
        f"{robot}-v4",
        num_envs,
        seed,
        obs_indices=MUJOCO_MASKS[robot][mask],
        obs_dtype=np.float32,
        max_episode_steps=options.max_episode_steps,
    )
