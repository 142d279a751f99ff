"""rtrl_envs: every environment of the seeds behind one protocol.

``make(name, *, num_envs, seed, **options)`` returns an environment with
``spec``, ``reset(key) -> (state, TimeStep)`` and
``step(state, action) -> (state, TimeStep)``, batched over ``num_envs``. The
auto-reset convention is written in ``rtrl_envs._types`` and the README.
"""

from ._dmlab import DMLabEnvironment as DMLabEnvironment
from ._dmlab import DMLabOptions as DMLabOptions
from ._envpool import AtariOptions as AtariOptions
from ._envpool import EnvpoolEnvironment as EnvpoolEnvironment
from ._envpool import MujocoPomdpOptions as MujocoPomdpOptions
from ._envpool import ProcgenOptions as ProcgenOptions
from ._errors import BackendNotInstalledError as BackendNotInstalledError
from ._errors import InvalidActionError as InvalidActionError
from ._errors import InvalidOptionError as InvalidOptionError
from ._errors import UnknownEnvironmentError as UnknownEnvironmentError
from ._gymnax import GymnaxOptions as GymnaxOptions
from ._host import HostState as HostState
from ._jax_env import JaxEnvironment as JaxEnvironment
from ._jax_env import JaxEnvState as JaxEnvState
from ._memory import CopyBatch as CopyBatch
from ._memory import CopyOptions as CopyOptions
from ._memory import DelayedRecallOptions as DelayedRecallOptions
from ._memory import TraceConditioningOptions as TraceConditioningOptions
from ._memory import copy_task_batch as copy_task_batch
from ._memory import discounted_returns as discounted_returns
from ._popgym import PopgymEnvironment as PopgymEnvironment
from ._popgym import PopgymOptions as PopgymOptions
from ._registry import check_backend as check_backend
from ._registry import check_options as check_options
from ._registry import list_envs as list_envs
from ._registry import make as make
from ._types import Box as Box
from ._types import Discrete as Discrete
from ._types import Environment as Environment
from ._types import EnvSpec as EnvSpec
from ._types import TimeStep as TimeStep
from ._types import check_action as check_action
from ._types import check_traced_action as check_traced_action

__version__ = "0.2.1"

__all__ = [
    "AtariOptions",
    "BackendNotInstalledError",
    "Box",
    "CopyBatch",
    "CopyOptions",
    "DMLabEnvironment",
    "DMLabOptions",
    "DelayedRecallOptions",
    "Discrete",
    "EnvSpec",
    "Environment",
    "EnvpoolEnvironment",
    "GymnaxOptions",
    "HostState",
    "InvalidActionError",
    "InvalidOptionError",
    "JaxEnvState",
    "JaxEnvironment",
    "MujocoPomdpOptions",
    "PopgymEnvironment",
    "PopgymOptions",
    "ProcgenOptions",
    "TimeStep",
    "TraceConditioningOptions",
    "UnknownEnvironmentError",
    "check_action",
    "check_backend",
    "check_options",
    "check_traced_action",
    "copy_task_batch",
    "discounted_returns",
    "list_envs",
    "make",
]
