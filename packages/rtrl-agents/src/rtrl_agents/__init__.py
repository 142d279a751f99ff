"""rtrl-agents: R2AC, PPO, streaming actor-critic and prediction learners on
rtrl-cells cores, as factories of pure functions over typed states."""

import sys as _sys
import types as _types

from ._actor import Actor as Actor
from ._actor import concat_rollouts as concat_rollouts
from ._checkpoint import Checkpointer as Checkpointer
from ._checkpoint import Restored as Restored
from ._checkpoint import array_paths as array_paths
from ._config import IMPALA_CPU_STEPS_PER_CALL as IMPALA_CPU_STEPS_PER_CALL
from ._config import CoreConfig as CoreConfig
from ._config import HeadConfig as HeadConfig
from ._config import LoopConfig as LoopConfig
from ._config import NetworkConfig as NetworkConfig
from ._config import PPOConfig as PPOConfig
from ._config import R2ACConfig as R2ACConfig
from ._config import SequenceLearnerConfig as SequenceLearnerConfig
from ._config import StreamingACConfig as StreamingACConfig
from ._config import TDPredictorConfig as TDPredictorConfig
from ._config import TorsoConfig as TorsoConfig
from ._config import impala_network as impala_network
from ._config import rtu_ppo_network as rtu_ppo_network
from ._config import streaming_network as streaming_network
from ._core import AbstractAgentState as AbstractAgentState
from ._core import AbstractOptimizedState as AbstractOptimizedState
from ._core import ActorOutput as ActorOutput
from ._core import Agent as Agent
from ._core import Hyperparams as Hyperparams
from ._core import Trajectory as Trajectory
from ._core import apply_gradients as apply_gradients
from ._core import episode_sums as episode_sums
from ._core import guard_nonfinite as guard_nonfinite
from ._core import take_hyperparams as take_hyperparams
from ._core import track_episodes as track_episodes
from ._distributed import DistributedConfig as DistributedConfig
from ._distributed import RolloutWorker as RolloutWorker
from ._distributed import actor_name as actor_name
from ._distributed import host_params as host_params
from ._distributed import train_distributed as train_distributed
from ._driver import TrainResult as TrainResult
from ._driver import default_run_config as default_run_config
from ._driver import initial_run_state as initial_run_state
from ._driver import open_writers as open_writers
from ._driver import summarise as summarise
from ._driver import train as train
from ._env import EnvironmentLike as EnvironmentLike
from ._env import EnvSpecLike as EnvSpecLike
from ._env import TimeStepLike as TimeStepLike
from ._errors import CheckpointMismatchError as CheckpointMismatchError
from ._errors import CheckpointNotReadableError as CheckpointNotReadableError
from ._errors import CheckpointWarning as CheckpointWarning
from ._errors import ConfigMismatchError as ConfigMismatchError
from ._errors import NonFiniteError as NonFiniteError
from ._errors import RunExistsError as RunExistsError
from ._errors import RunInUseError as RunInUseError
from ._logging import JsonlWriter as JsonlWriter
from ._logging import MetricWriter as MetricWriter
from ._logging import MultiWriter as MultiWriter
from ._logging import ProgressBar as ProgressBar
from ._logging import TensorBoardWriter as TensorBoardWriter
from ._logging import default_writers as default_writers
from ._loop import RunnerState as RunnerState
from ._loop import collect as collect
from ._loop import init_runner as init_runner
from ._loop import make_train as make_train
from ._loop import rollout_final_carry as rollout_final_carry
from ._loop import run_updates as run_updates
from ._losses import eligibility_trace as eligibility_trace
from ._losses import gae as gae
from ._losses import obgd_scale as obgd_scale
from ._losses import ppo_clip_loss as ppo_clip_loss
from ._losses import ppo_value_loss as ppo_value_loss
from ._losses import transitions as transitions
from ._losses import vtrace as vtrace
from ._losses import vtrace_actor_critic_loss as vtrace_actor_critic_loss
from ._make import AgentConfig as AgentConfig
from ._make import make_agent as make_agent
from ._networks import AbstractRecurrentNet as AbstractRecurrentNet
from ._networks import AbstractTorsoNet as AbstractTorsoNet
from ._networks import ActorCriticCarry as ActorCriticCarry
from ._networks import ActorCriticNet as ActorCriticNet
from ._networks import CategoricalHead as CategoricalHead
from ._networks import GaussianHead as GaussianHead
from ._networks import ImpalaTorso as ImpalaTorso
from ._networks import MLPTorso as MLPTorso
from ._networks import PolicyNet as PolicyNet
from ._networks import SeparateActorCriticNet as SeparateActorCriticNet
from ._networks import ValueHead as ValueHead
from ._networks import ValueNet as ValueNet
from ._networks import layer_norm as layer_norm
from ._networks import sparse_linear as sparse_linear
from ._normalize import ReturnScaler as ReturnScaler
from ._normalize import RewardScaler as RewardScaler
from ._normalize import RunningMeanStd as RunningMeanStd
from ._normalize import SampleMoments as SampleMoments
from ._normalize import episode_time as episode_time
from ._normalize import normalize as normalize
from ._normalize import return_scaler_init as return_scaler_init
from ._normalize import reward_scaler_init as reward_scaler_init
from ._normalize import running_mean_std_init as running_mean_std_init
from ._normalize import running_mean_std_update as running_mean_std_update
from ._normalize import sample_moments_init as sample_moments_init
from ._normalize import sample_moments_update as sample_moments_update
from ._normalize import scale_reward_step as scale_reward_step
from ._normalize import scale_rewards as scale_rewards
from ._normalize import standardize as standardize
from ._ppo import PPOExtras as PPOExtras
from ._ppo import PPOMinibatch as PPOMinibatch
from ._ppo import PPOState as PPOState
from ._ppo import ppo as ppo
from ._ppo import ppo_loss as ppo_loss
from ._prediction import CumulantBatch as CumulantBatch
from ._prediction import Learner as Learner
from ._prediction import PredictionNet as PredictionNet
from ._prediction import SequenceBatch as SequenceBatch
from ._prediction import SequenceLearnerState as SequenceLearnerState
from ._prediction import TDPredictorState as TDPredictorState
from ._prediction import run_stream as run_stream
from ._prediction import sequence_learner as sequence_learner
from ._prediction import sequence_loss as sequence_loss
from ._prediction import td_predictor as td_predictor
from ._r2ac import R2ACState as R2ACState
from ._r2ac import linear_decay as linear_decay
from ._r2ac import r2ac as r2ac
from ._r2ac import r2ac_loss as r2ac_loss
from ._r2ac import r2ac_stream_loss as r2ac_stream_loss
from ._record import RunLock as RunLock
from ._record import RunRecord as RunRecord
from ._record import holds_run as holds_run
from ._record import read_metrics as read_metrics
from ._record import read_run_config as read_run_config
from ._serialize import config_diff as config_diff
from ._serialize import config_from_json as config_from_json
from ._serialize import config_to_json as config_to_json
from ._serialize import format_diff as format_diff
from ._streaming import EligibilityTraces as EligibilityTraces
from ._streaming import StepSizes as StepSizes
from ._streaming import StreamingACState as StreamingACState
from ._streaming import StreamingCarry as StreamingCarry
from ._streaming import streaming_ac as streaming_ac
from ._streaming import streaming_inputs as streaming_inputs

__all__ = [
    "IMPALA_CPU_STEPS_PER_CALL",
    "AbstractAgentState",
    "AbstractOptimizedState",
    "AbstractRecurrentNet",
    "AbstractTorsoNet",
    "Actor",
    "ActorCriticCarry",
    "ActorCriticNet",
    "ActorOutput",
    "Agent",
    "AgentConfig",
    "CategoricalHead",
    "CheckpointMismatchError",
    "CheckpointNotReadableError",
    "CheckpointWarning",
    "Checkpointer",
    "ConfigMismatchError",
    "CoreConfig",
    "CumulantBatch",
    "DistributedConfig",
    "EligibilityTraces",
    "EnvSpecLike",
    "EnvironmentLike",
    "GaussianHead",
    "HeadConfig",
    "Hyperparams",
    "ImpalaTorso",
    "JsonlWriter",
    "Learner",
    "LoopConfig",
    "MLPTorso",
    "MetricWriter",
    "MultiWriter",
    "NetworkConfig",
    "NonFiniteError",
    "PPOConfig",
    "PPOExtras",
    "PPOMinibatch",
    "PPOState",
    "PolicyNet",
    "PredictionNet",
    "ProgressBar",
    "R2ACConfig",
    "R2ACState",
    "Restored",
    "ReturnScaler",
    "RewardScaler",
    "RolloutWorker",
    "RunExistsError",
    "RunInUseError",
    "RunLock",
    "RunRecord",
    "RunnerState",
    "RunningMeanStd",
    "SampleMoments",
    "SeparateActorCriticNet",
    "SequenceBatch",
    "SequenceLearnerConfig",
    "SequenceLearnerState",
    "StepSizes",
    "StreamingACConfig",
    "StreamingACState",
    "StreamingCarry",
    "TDPredictorConfig",
    "TDPredictorState",
    "TensorBoardWriter",
    "TimeStepLike",
    "TorsoConfig",
    "TrainResult",
    "Trajectory",
    "ValueHead",
    "ValueNet",
    "actor_name",
    "apply_gradients",
    "array_paths",
    "collect",
    "concat_rollouts",
    "config_diff",
    "config_from_json",
    "config_to_json",
    "default_run_config",
    "default_writers",
    "eligibility_trace",
    "episode_sums",
    "episode_time",
    "format_diff",
    "gae",
    "guard_nonfinite",
    "holds_run",
    "host_params",
    "impala_network",
    "init_runner",
    "initial_run_state",
    "layer_norm",
    "linear_decay",
    "make_agent",
    "make_train",
    "normalize",
    "obgd_scale",
    "open_writers",
    "ppo",
    "ppo_clip_loss",
    "ppo_loss",
    "ppo_value_loss",
    "r2ac",
    "r2ac_loss",
    "r2ac_stream_loss",
    "read_metrics",
    "read_run_config",
    "return_scaler_init",
    "reward_scaler_init",
    "rollout_final_carry",
    "rtu_ppo_network",
    "run_stream",
    "run_updates",
    "running_mean_std_init",
    "running_mean_std_update",
    "sample_moments_init",
    "sample_moments_update",
    "scale_reward_step",
    "scale_rewards",
    "sequence_learner",
    "sequence_loss",
    "sparse_linear",
    "standardize",
    "streaming_ac",
    "streaming_inputs",
    "streaming_network",
    "summarise",
    "take_hyperparams",
    "td_predictor",
    "track_episodes",
    "train",
    "train_distributed",
    "transitions",
    "vtrace",
    "vtrace_actor_critic_loss",
]

__version__ = "0.6.1"


class _Package(_types.ModuleType):
    """The package's module type: assigning a constant that is only a default
    fails loudly instead of changing nothing."""

    def __setattr__(self, name: str, value: object) -> None:
        if name == "IMPALA_CPU_STEPS_PER_CALL":
            raise AttributeError(
                "rtrl_agents.IMPALA_CPU_STEPS_PER_CALL is the default of "
                "TorsoConfig.cpu_steps_per_call, and assigning it would change "
                "nothing: set TorsoConfig(cpu_steps_per_call=...) instead."
            )
        super().__setattr__(name, value)


_sys.modules[__name__].__class__ = _Package
