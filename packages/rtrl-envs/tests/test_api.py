"""The public API, make/list_envs errors, options and lazy backends."""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys

import numpy as np
import pytest

import rtrl_envs
from rtrl_envs import _envpool


def test_public_api_is_pinned() -> None:
    assert sorted(rtrl_envs.__all__) == sorted([
        "AtariOptions", "BackendNotInstalledError", "Box", "CopyBatch",
        "CopyOptions", "DMLabEnvironment", "DMLabOptions", "DelayedRecallOptions",
        "Discrete", "EnvSpec", "Environment", "EnvpoolEnvironment",
        "GymnaxOptions", "HostState", "InvalidActionError", "InvalidOptionError",
        "JaxEnvState",
        "JaxEnvironment", "MujocoPomdpOptions", "PopgymEnvironment",
        "PopgymOptions", "ProcgenOptions", "TimeStep", "TraceConditioningOptions",
        "UnknownEnvironmentError", "copy_task_batch", "discounted_returns",
        "list_envs", "make", "check_action", "check_backend", "check_options",
        "check_traced_action",
    ])  # fmt: skip
    for name in rtrl_envs.__all__:
        assert getattr(rtrl_envs, name).__module__.startswith("rtrl_envs")
    # The module and the installed distribution agree on the version.
    assert rtrl_envs.__version__ == importlib.metadata.version("rtrl-envs")


def test_list_envs_names_the_issue_environments() -> None:
    names = set(rtrl_envs.list_envs())
    required = {
        "memory/delayed-recall", "memory/copy", "memory/trace-conditioning",
        "gymnax/CartPole-v1", "procgen/chaser", "dmlab/rooms_watermaze",
        "dmlab/rooms_select_nonmatching_object", "dmlab/rooms_keys_doors_puzzle",
    }  # fmt: skip
    required |= {f"atari/{g}" for g in _envpool.ATARI_GAMES}
    required |= {
        f"mujoco-pomdp/{r}-{m}"
        for r in ("Ant", "HalfCheetah", "Hopper", "Walker2d")
        for m in "PV"
    }
    required |= {
        f"popgym/{t}Easy"
        for t in ("RepeatFirst", "CountRecall", "Concentration", "Autoencode",
                  "HigherLower")
    }  # fmt: skip
    assert required <= names
    assert set(_envpool.ATARI_GAMES) == {
        "Breakout",
        "Gravitar",
        "MsPacman",
        "Qbert",
        "Seaquest",
    }
    assert rtrl_envs.list_envs("atari") == [f"atari/{g}" for g in _envpool.ATARI_GAMES]
    with pytest.raises(rtrl_envs.UnknownEnvironmentError, match="families"):
        rtrl_envs.list_envs("atary")


def test_gymnax_list_matches_installed_gymnax() -> None:
    gymnax = pytest.importorskip("gymnax")
    from rtrl_envs._gymnax import GYMNAX_IDS

    assert set(GYMNAX_IDS) == set(gymnax.registered_envs) - {"MNISTBandit-bsuite"}


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("memory/delayed-recal", "memory/delayed-recall"),
        ("memory/cpy", "memory/copy"),
        ("atari/Breakot", "atari/Breakout"),
        ("procgen/chasr", "procgen/chaser"),
        ("mujoco-pomdp/Hopper-X", "mujoco-pomdp/Hopper-P"),
        ("gymnax/CartPole-v0", "gymnax/CartPole-v1"),
        ("popgym/RepeatFirst", "popgym/RepeatFirstEasy"),
    ],
)
def test_unknown_name_lists_close_matches(name: str, expected: str) -> None:
    with pytest.raises(rtrl_envs.UnknownEnvironmentError) as info:
        rtrl_envs.make(name, num_envs=1, seed=0)
    assert expected in str(info.value)
    assert name in str(info.value)


def test_atari_accepts_other_envpool_games() -> None:
    env = rtrl_envs.make("atari/Pong", num_envs=1, seed=0)
    assert env.spec.action_space == rtrl_envs.Discrete(6)


def test_unknown_option_names_option_and_allowed() -> None:
    with pytest.raises(rtrl_envs.InvalidOptionError) as info:
        rtrl_envs.make("memory/delayed-recall", num_envs=1, seed=0, dealy=5)
    msg = str(info.value)
    assert "'dealy'" in msg and "delay" in msg and "num_symbols" in msg


@pytest.mark.parametrize(
    ("name", "options", "words"),
    [
        ("memory/delayed-recall", {"delay": -1}, ["delay=-1", ">= 0"]),
        ("memory/delayed-recall", {"num_symbols": 1}, ["num_symbols=1", ">= 2"]),
        ("memory/copy", {"min_length": 5, "max_length": 3}, ["min_length", "<= 3"]),
        ("memory/trace-conditioning", {"isi_max": 3}, ["isi_max", ">= 14"]),
        ("procgen/chaser", {"distribution_mode": "medium"}, ["'easy'", "'hard'"]),
        ("atari/Breakout", {"episodic_life": "yes"}, ["episodic_life", "True"]),
        ("gymnax/CartPole-v1", {"obs_indices": (0, 9)}, ["obs_indices", "[0, 4)"]),
        ("gymnax/CartPole-v1", {"obs_indices": (1, 1)}, ["obs_indices", "distinct"]),
    ],
)
def test_invalid_option_value_names_allowed_values(name, options, words) -> None:
    with pytest.raises(rtrl_envs.InvalidOptionError) as info:
        rtrl_envs.make(name, num_envs=1, seed=0, **options)
    for w in words:
        assert w in str(info.value)


def test_num_envs_validated() -> None:
    with pytest.raises(rtrl_envs.InvalidOptionError, match="num_envs"):
        rtrl_envs.make("memory/copy", num_envs=0, seed=0)


def test_spec_validation() -> None:
    with pytest.raises(ValueError):
        rtrl_envs.Discrete(0)
    with pytest.raises(ValueError):
        rtrl_envs.Box((0.0,), (1.0, 2.0), (1,))
    with pytest.raises(ValueError):
        rtrl_envs.EnvSpec("x", (3,), np.float32, rtrl_envs.Discrete(2), 0, True)
    with pytest.raises(AttributeError):  # frozen
        rtrl_envs.Discrete(2).n = 3  # type: ignore[misc]


@pytest.mark.parametrize(
    ("module", "name", "extra"),
    [
        ("envpool", "atari/Breakout", "envpool"),
        ("gymnax", "gymnax/CartPole-v1", "gymnax"),
        ("popgym", "popgym/RepeatFirstEasy", "popgym"),
    ],
)
def test_missing_backend_names_the_extra(monkeypatch, module, name, extra) -> None:
    monkeypatch.setitem(sys.modules, module, None)  # makes `import module` fail
    if module == "popgym":
        monkeypatch.setitem(sys.modules, "popgym.envs", None)
    with pytest.raises(rtrl_envs.BackendNotInstalledError) as info:
        rtrl_envs.make(name, num_envs=1, seed=0)
    assert f"pip install 'rtrl-envs[{extra}]'" in str(info.value)
    assert isinstance(info.value, ImportError)


def test_procgen_without_qt_names_the_apt_package(monkeypatch) -> None:
    # Simulate the system without Qt5: the extension module fails to load.
    monkeypatch.setitem(sys.modules, "envpool.procgen.procgen_envpool", None)
    with pytest.raises(rtrl_envs.BackendNotInstalledError) as info:
        rtrl_envs.make("procgen/chaser", num_envs=1, seed=0)
    assert "apt-get install libqt5gui5" in str(info.value)


def test_import_is_lazy() -> None:
    code = (
        "import sys, rtrl_envs; rtrl_envs.make('memory/copy', num_envs=1, seed=0);"
        "print([m for m in ('envpool','gymnax','popgym','deepmind_lab') "
        "if m in sys.modules])"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"
