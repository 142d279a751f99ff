"""rtrl-agents: R2AC, PPO, streaming actor-critic and prediction learners on
rtrl-cells cores."""

from ._actor import Actor as Actor
from ._actor import concat_rollouts as concat_rollouts
from ._actor import rollout_final_carry as rollout_final_carry
from ._checkpoint import Checkpointer as Checkpointer
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
from ._core import ActorOutput as ActorOutput
from ._core import AgentState as AgentState
from ._core import Trajectory as Trajectory
from ._distributed import DistributedConfig as DistributedConfig
from ._distributed import RolloutWorker as RolloutWorker
from ._distributed import actor_name as actor_name
from ._distributed import host_params as host_params
from ._distributed import train_distributed as train_distributed
from ._driver import NonFiniteError as NonFiniteError
from ._driver import TrainResult as TrainResult
from ._driver import summarise as summarise
from ._driver import train as train
from ._env import EnvironmentLike as EnvironmentLike
from ._env import EnvSpecLike as EnvSpecLike
from ._env import TimeStepLike as TimeStepLike
from ._logging import JsonlWriter as JsonlWriter
from ._logging import MetricWriter as MetricWriter
from ._logging import MultiWriter as MultiWriter
from ._logging import ProgressBar as ProgressBar
from ._logging import TensorBoardWriter as TensorBoardWriter
from ._loop import RunnerState as RunnerState
from ._loop import collect as collect
from ._loop import init_runner as init_runner
from ._loop import make_train as make_train
from ._loop import run_updates as run_updates
from ._losses import gae as gae
from ._losses import ppo_clip_loss as ppo_clip_loss
from ._losses import transitions as transitions
from ._losses import vtrace as vtrace
from ._losses import vtrace_actor_critic_loss as vtrace_actor_critic_loss
from ._networks import ActorCriticNet as ActorCriticNet
from ._networks import CategoricalHead as CategoricalHead
from ._networks import GaussianHead as GaussianHead
from ._networks import ImpalaTorso as ImpalaTorso
from ._networks import MLPTorso as MLPTorso
from ._networks import ValueHead as ValueHead
from ._normalize import RewardScaler as RewardScaler
from ._normalize import RunningMeanStd as RunningMeanStd
from ._normalize import normalize as normalize
from ._normalize import reward_scaler_init as reward_scaler_init
from ._normalize import running_mean_std_init as running_mean_std_init
from ._normalize import running_mean_std_update as running_mean_std_update
from ._normalize import scale_rewards as scale_rewards
from ._ppo import PPO as PPO
from ._ppo import PPOExtras as PPOExtras
from ._ppo import PPOState as PPOState
from ._prediction import CumulantBatch as CumulantBatch
from ._prediction import PredictionNet as PredictionNet
from ._prediction import SequenceBatch as SequenceBatch
from ._prediction import SequenceLearner as SequenceLearner
from ._prediction import TDPredictor as TDPredictor
from ._prediction import TDState as TDState
from ._prediction import run_stream as run_stream
from ._r2ac import R2AC as R2AC
from ._streaming import StreamingAC as StreamingAC

__all__ = [
    "PPO",
    "R2AC",
    "Actor",
    "ActorCriticNet",
    "ActorOutput",
    "AgentState",
    "CategoricalHead",
    "Checkpointer",
    "CoreConfig",
    "CumulantBatch",
    "DistributedConfig",
    "EnvSpecLike",
    "EnvironmentLike",
    "GaussianHead",
    "HeadConfig",
    "ImpalaTorso",
    "JsonlWriter",
    "LoopConfig",
    "MLPTorso",
    "MetricWriter",
    "MultiWriter",
    "NetworkConfig",
    "NonFiniteError",
    "PPOConfig",
    "PPOExtras",
    "PPOState",
    "PredictionNet",
    "ProgressBar",
    "R2ACConfig",
    "RewardScaler",
    "RolloutWorker",
    "RunnerState",
    "RunningMeanStd",
    "SequenceBatch",
    "SequenceLearner",
    "SequenceLearnerConfig",
    "StreamingAC",
    "StreamingACConfig",
    "TDPredictor",
    "TDPredictorConfig",
    "TDState",
    "TensorBoardWriter",
    "TimeStepLike",
    "TorsoConfig",
    "TrainResult",
    "Trajectory",
    "ValueHead",
    "actor_name",
    "collect",
    "concat_rollouts",
    "gae",
    "host_params",
    "impala_network",
    "init_runner",
    "make_train",
    "normalize",
    "ppo_clip_loss",
    "reward_scaler_init",
    "rollout_final_carry",
    "rtu_ppo_network",
    "run_stream",
    "run_updates",
    "running_mean_std_init",
    "running_mean_std_update",
    "scale_rewards",
    "summarise",
    "train",
    "train_distributed",
    "transitions",
    "vtrace",
    "vtrace_actor_critic_loss",
]

__version__ = "0.3.0"
