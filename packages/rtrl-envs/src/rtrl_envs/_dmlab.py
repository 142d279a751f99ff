"""DeepMind Lab adapter on the real ``deepmind_lab`` Python API.

DeepMind Lab is not on PyPI: build it from https://github.com/google-deepmind/lab
(bazel, ``//python/pip_package:build_pip_package``) and pip-install the wheel it
makes. The adapter follows IMPALA (Espeholt et al. 2018) and Irie et al. (2024):
``contributed/dmlab30/<level>``, 72x96 RGB (``RGB_INTERLEAVED``), the 9-action
set below, action repeat 4 with rewards summed.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable
from typing import Any

import jax
import numpy as np

from ._errors import BackendNotInstalledError
from ._host import HostEnvironment, HostState
from ._options import check_int
from ._types import Discrete, EnvSpec, TimeStep, check_action

DMLAB_LEVELS = (
    "rooms_select_nonmatching_object",
    "rooms_watermaze",
    "rooms_keys_doors_puzzle",
)

# (LOOK_LEFT_RIGHT, LOOK_DOWN_UP, STRAFE_LEFT_RIGHT, MOVE_BACK_FORWARD, FIRE,
#  JUMP, CROUCH): IMPALA's DEFAULT_ACTION_SET.
IMPALA_ACTION_SET = (
    (0, 0, 0, 1, 0, 0, 0),  # forward
    (0, 0, 0, -1, 0, 0, 0),  # backward
    (0, 0, -1, 0, 0, 0, 0),  # strafe left
    (0, 0, 1, 0, 0, 0, 0),  # strafe right
    (-20, 0, 0, 0, 0, 0, 0),  # look left
    (20, 0, 0, 0, 0, 0, 0),  # look right
    (-20, 0, 0, 1, 0, 0, 0),  # look left + forward
    (20, 0, 0, 1, 0, 0, 0),  # look right + forward
    (0, 0, 0, 0, 1, 0, 0),  # fire
)
OBSERVATION = "RGB_INTERLEAVED"
HEIGHT, WIDTH = 72, 96

INSTALL_HINT = (
    "DeepMind Lab (the deepmind_lab module) is not installed, and it is not on "
    "PyPI: build it from source (https://github.com/google-deepmind/lab, bazel "
    "build -c opt //python/pip_package:build_pip_package), pip install the wheel "
    "it makes, then pip install 'rtrl-envs[dmlab]'."
)


@dataclasses.dataclass(frozen=True)
class DMLabOptions:
    """Options of ``dmlab/<level>``.

    Attributes:
        action_repeat: simulator frames per agent step (rewards are summed).
        renderer: ``"hardware"`` or ``"software"``.
    """

    action_repeat: int = 4
    renderer: str = "hardware"

    def __post_init__(self) -> None:
        from ._options import check_choice

        check_int("action_repeat", self.action_repeat, 1)
        check_choice("renderer", self.renderer, ("hardware", "software"))


def import_deepmind_lab() -> Any:
    """Imports ``deepmind_lab`` or raises the error that says how to install it."""
    try:
        # By name: deepmind_lab is built from source; type checkers cannot see it.
        return importlib.import_module("deepmind_lab")
    except ImportError as e:
        raise BackendNotInstalledError(INSTALL_HINT) from e


def action_array(index: int) -> np.ndarray:
    """The DMLab action (int32 vector of 7) for an index of the IMPALA set."""
    return np.asarray(IMPALA_ACTION_SET[index], np.intc)


def convert_observation(observations: dict[str, np.ndarray]) -> np.ndarray:
    """The agent's observation: the ``RGB_INTERLEAVED`` frame, 72x96x3 uint8."""
    frame = np.asarray(observations[OBSERVATION])
    if frame.shape != (HEIGHT, WIDTH, 3):
        raise ValueError(f"expected a {HEIGHT}x{WIDTH}x3 frame, got {frame.shape}")
    return frame.astype(np.uint8, copy=False)


def repeat_step(lab: Any, action: np.ndarray, repeat: int) -> tuple[float, bool]:
    """Applies ``action`` for ``repeat`` frames; returns (summed reward, ended).

    Stops early when the episode ends, so no frame is stepped past its end.
    """
    total = 0.0
    for _ in range(repeat):
        total += float(lab.step(action, num_steps=1))
        if not lab.is_running():
            return total, True
    return total, False


class DMLabEnvironment(HostEnvironment):
    """``num_envs`` DeepMind Lab instances stepped on the host.

    An episode ends (``terminated``) when the level stops running; its last
    observation is the last frame rendered before the end. Stream ``i``'s
    episode ``j`` is reset with seed ``hash((seed, i, j))`` (deterministic).

    Args:
        name: the registered name.
        level: a DMLab-30 level, e.g. ``"rooms_watermaze"``.
        num_envs: number of streams.
        seed: base seed.
        options: DMLabOptions.
        lab_factory: builds a ``deepmind_lab.Lab``-like object from
            ``(level, observations, config, renderer)``; the default uses the real
            module (tests pass a stand-in).
    """

    def __init__(
        self,
        name: str,
        level: str,
        num_envs: int,
        seed: int,
        options: DMLabOptions,
        lab_factory: Callable[..., Any] | None = None,
    ) -> None:
        if lab_factory is None:
            lab_module = import_deepmind_lab()

            def real_lab(level, observations, config, renderer):
                return lab_module.Lab(
                    level, observations, config=config, renderer=renderer
                )

            lab_factory = real_lab

        config = {"width": str(WIDTH), "height": str(HEIGHT), "logLevel": "WARN"}
        self._labs = [
            lab_factory(
                f"contributed/dmlab30/{level}", [OBSERVATION], config, options.renderer
            )
            for _ in range(num_envs)
        ]
        self._options = options
        self._seed = int(seed)
        self._episodes = [0] * num_envs
        self._spec = EnvSpec(
            name,
            (HEIGHT, WIDTH, 3),
            np.dtype(np.uint8),
            Discrete(len(IMPALA_ACTION_SET)),
            num_envs,
            False,
        )
        self._obs = np.zeros((num_envs, HEIGHT, WIDTH, 3), np.uint8)
        self._last = np.zeros(num_envs, bool)

    def _reset_one(self, i: int) -> None:
        lab = self._labs[i]
        lab.reset(seed=hash((self._seed, i, self._episodes[i])) % (2**31))
        self._episodes[i] += 1
        self._obs[i] = convert_observation(lab.observations())

    def reset(self, key: jax.Array | None = None) -> tuple[HostState, TimeStep]:
        """Resets every stream; ``key`` is unused (seeded by ``make``'s seed)."""
        del key
        for i in range(self._spec.num_envs):
            self._reset_one(i)
        self._last = np.zeros(self._spec.num_envs, bool)
        return self._next_state(), self._first_timestep(self._obs.copy())

    def step(self, state: HostState, action: Any) -> tuple[HostState, TimeStep]:
        """Steps every stream (see the auto-reset convention)."""
        self._check_state(state)
        action = check_action(self._spec, action)
        n = self._spec.num_envs
        reward = np.zeros(n, np.float32)
        terminated = np.zeros(n, bool)
        first = self._last.copy()
        for i, lab in enumerate(self._labs):
            if first[i]:
                self._reset_one(i)
                continue
            reward[i], terminated[i] = repeat_step(
                lab, action_array(int(action[i])), self._options.action_repeat
            )
            if not terminated[i]:
                self._obs[i] = convert_observation(lab.observations())
        self._last = terminated
        return self._next_state(), TimeStep(
            self._obs.copy(), reward, terminated, np.zeros(n, bool), first
        )
