"""``make`` and ``list_envs``: every environment behind one name space."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from ._errors import InvalidOptionError, UnknownEnvironmentError, close_matches
from ._options import check_int, parse_options
from ._types import Environment, EnvSpec

_MEMORY = ("memory/delayed-recall", "memory/copy", "memory/trace-conditioning")


def _listed() -> dict[str, list[str]]:
    from ._dmlab import DMLAB_LEVELS
    from ._envpool import ATARI_GAMES, MUJOCO_MASKS, PROCGEN_GAMES
    from ._gymnax import GYMNAX_IDS
    from ._popgym import POPGYM_LEVELS, POPGYM_TASKS

    return {
        "memory": list(_MEMORY),
        "gymnax": [f"gymnax/{i}" for i in GYMNAX_IDS],
        "atari": [f"atari/{g}" for g in ATARI_GAMES],
        "procgen": [f"procgen/{g}" for g in PROCGEN_GAMES],
        "mujoco-pomdp": [
            f"mujoco-pomdp/{r}-{m}" for r in MUJOCO_MASKS for m in MUJOCO_MASKS[r]
        ],
        "popgym": [f"popgym/{t}{lv}" for t in POPGYM_TASKS for lv in POPGYM_LEVELS],
        "dmlab": [f"dmlab/{lv}" for lv in DMLAB_LEVELS],
    }


def list_envs(family: str | None = None) -> list[str]:
    """The registered environment names, optionally of one family.

    ``atari/<Game>`` accepts every game of the installed envpool and
    ``gymnax/<id>`` every gymnax id; the list names the ones this project uses.

    Args:
        family: e.g. ``"atari"``; None for all.
    """
    listed = _listed()
    if family is None:
        return [n for names in listed.values() for n in names]
    if family not in listed:
        raise UnknownEnvironmentError(
            f"unknown family {family!r}; families: {', '.join(listed)}"
        )
    return list(listed[family])


def _unknown(name: str, candidates: list[str]) -> UnknownEnvironmentError:
    near = close_matches(name, candidates)
    hint = f" Close matches: {', '.join(near)}." if near else ""
    return UnknownEnvironmentError(
        f"unknown environment {name!r}.{hint} See rtrl_envs.list_envs()."
    )


def check_backend(name: str) -> None:
    """Raises if the backend ``name`` needs is missing, without making anything.

    Cheap: imports the backend module (envpool, gymnax, popgym, deepmind_lab;
    ProcGen also loads the system Qt5 runtime) and builds no environment, so a
    runner can check every backend before it creates a run folder.

    Raises:
        UnknownEnvironmentError: ``name``'s family is not registered.
        BackendNotInstalledError: the backend is missing (says how to install).
    """
    family = name.partition("/")[0]
    if name in _MEMORY:
        return
    if family in ("atari", "procgen", "mujoco-pomdp"):
        from ._envpool import import_envpool, require_qt5

        import_envpool()
        if family == "procgen":
            require_qt5()
    elif family == "gymnax":
        from ._gymnax import import_gymnax

        import_gymnax()
    elif family == "popgym":
        from ._popgym import import_popgym

        import_popgym()
    elif family == "dmlab":
        from ._dmlab import import_deepmind_lab

        import_deepmind_lab()
    else:
        raise _unknown(name, list_envs())


def make(name: str, *, num_envs: int, seed: int, **options: Any) -> Environment:
    """Makes the environment ``name`` with ``num_envs`` streams.

    Args:
        name: a name from ``list_envs()``, e.g. ``"memory/copy"``.
        num_envs: number of streams every call is batched over.
        seed: the seed. Pure JAX environments fold it into the key given to
            ``reset``; host environments seed their simulators with it.
        **options: the family's options (see each options dataclass).

    Returns:
        An environment with ``spec``, ``reset`` and ``step``.

    Raises:
        UnknownEnvironmentError: ``name`` is not registered (lists close matches).
        InvalidOptionError: an option is unknown or invalid.
        BackendNotInstalledError: the backend (an extra, a system library or
            DeepMind Lab) is missing.
    """
    check_int("num_envs", num_envs, 1)
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise InvalidOptionError(
            f"option seed={seed!r} is invalid: allowed values are ints"
        )
    return _plan(name, options)(num_envs, seed)


def check_options(name: str, **options: Any) -> None:
    """Raises if ``make(name, **options)`` would refuse the name or an option,
    without building a simulator (a runner checks this before it makes a run
    folder).

    Raises:
        UnknownEnvironmentError, InvalidOptionError, BackendNotInstalledError:
            as :func:`make`.
    """
    _plan(name, options)


def _plan(name: str, options: dict[str, Any]) -> Callable[[int, int], Environment]:
    """Checks ``name`` and ``options``; returns ``build(num_envs, seed)``."""
    all_names = list_envs()
    family, _, rest = name.partition("/")

    if name in _MEMORY:
        return _plan_memory(name, options)
    if family == "gymnax" and rest:
        from ._gymnax import GYMNAX_IDS, GymnaxCore, GymnaxOptions

        if rest not in GYMNAX_IDS and rest != "MNISTBandit-bsuite":
            raise _unknown(name, all_names)
        own = {k: v for k, v in options.items() if k in ("obs_indices", "params")}
        params = tuple((k, v) for k, v in options.items() if k not in own)
        opts = parse_options(GymnaxOptions, name, own)
        if params:
            opts = dataclasses.replace(opts, params=opts.params + params)
        core = GymnaxCore(rest, opts)
        return lambda n, seed: _jax_env(name, core, n, seed, core.obs_dtype)
    if family == "atari" and rest:
        from ._envpool import AtariOptions, atari_games_available, make_atari

        opts = parse_options(AtariOptions, name, options)
        games = atari_games_available()
        if rest not in games:
            raise _unknown(name, [f"atari/{g}" for g in games])
        return lambda n, seed: make_atari(name, rest, n, seed, opts)
    if name in all_names and family == "procgen":
        from ._envpool import ProcgenOptions, make_procgen

        opts = parse_options(ProcgenOptions, name, options)
        return lambda n, seed: make_procgen(name, rest, n, seed, opts)
    if name in all_names and family == "mujoco-pomdp":
        from ._envpool import MujocoPomdpOptions, make_mujoco_pomdp

        robot, mask = rest.rsplit("-", 1)
        opts = parse_options(MujocoPomdpOptions, name, options)
        return lambda n, seed: make_mujoco_pomdp(name, robot, mask, n, seed, opts)
    if name in all_names and family == "popgym":
        from ._popgym import PopgymEnvironment, PopgymOptions

        parse_options(PopgymOptions, name, options)
        return lambda n, seed: PopgymEnvironment(name, rest, n, seed)
    if name in all_names and family == "dmlab":
        from ._dmlab import DMLabEnvironment, DMLabOptions

        opts = parse_options(DMLabOptions, name, options)
        return lambda n, seed: DMLabEnvironment(name, rest, n, seed, opts)
    raise _unknown(name, all_names)


def _jax_env(name: str, core: Any, num_envs: int, seed: int, obs_dtype: Any):
    from ._jax_env import JaxEnvironment

    spec = EnvSpec(
        name, core.observation_shape, obs_dtype, core.action_space, num_envs, True
    )
    return JaxEnvironment(core, spec, seed)


def _plan_memory(name: str, options: dict[str, Any]):
    import numpy as np

    from . import _memory as m

    if name == "memory/delayed-recall":
        core: Any = m.DelayedRecall(
            parse_options(m.DelayedRecallOptions, name, options)
        )
    elif name == "memory/copy":
        core = m.Copy(parse_options(m.CopyOptions, name, options))
    else:
        core = m.TraceConditioning(
            parse_options(m.TraceConditioningOptions, name, options)
        )
    return lambda n, seed: _jax_env(name, core, n, seed, np.float32)
