"""Typed, frozen, validated configurations with the seeds' defaults.

Every field has a docstring; ``__post_init__`` raises a one-line ``ValueError``
that says what to do, at construction, before anything is compiled.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Literal

import rtrl_cells as rc

# Cell and gradient-method names are rtrl-cells' (rc.CELLS, rc.METHODS); this is
# the one name a configuration adds: no recurrent core at all.
NO_CELL = "none"
ACTIVATIONS: tuple[str, ...] = ("relu", "tanh", "leaky_relu")
# The RTU cell's own choices (rtrl-cells): its recurrence takes no leaky ReLU.
RTU_ACTIVATIONS: tuple[str, ...] = ("relu", "tanh")

Activation = Literal["relu", "tanh", "leaky_relu"]
"""Dense-layer non-linearity; ``"leaky_relu"`` has slope 0.01 below zero
(PyTorch's default, Elsayed et al.'s ``F.leaky_relu``)."""
RTUActivation = Literal["relu", "tanh"]


def _positive_int(owner: str, **values: object) -> None:
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise ValueError(
                f"{owner}.{name} must be a positive int, got {value!r}; "
                f"pass a value >= 1."
            )


def _sizes(owner: str, name: str, values: object, allow_empty: bool = True) -> None:
    if not isinstance(values, tuple):
        raise ValueError(f"{owner}.{name} must be a tuple of ints, got {values!r}.")
    if not allow_empty and not values:
        raise ValueError(f"{owner}.{name} must not be empty.")
    for v in values:
        _positive_int(owner, **{name: v})


def _choice(owner: str, name: str, value: object, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(
            f"{owner}.{name}={value!r} is unknown; use one of {', '.join(choices)}."
        )


def _number(owner: str, name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{owner}.{name} must be a number, got {value!r}.")
    if not math.isfinite(value):
        raise ValueError(f"{owner}.{name} must be a finite number, got {value!r}.")
    return float(value)


def _in_range(owner: str, name: str, value: object, lo: float, hi: float) -> None:
    if not lo <= _number(owner, name, value) <= hi:
        raise ValueError(f"{owner}.{name}={value!r} must lie in [{lo}, {hi}].")


def _positive(owner: str, name: str, value: object) -> None:
    if _number(owner, name, value) <= 0:
        raise ValueError(f"{owner}.{name} must be a positive number, got {value!r}.")


def _non_negative(owner: str, name: str, value: object) -> None:
    if _number(owner, name, value) < 0:
        raise ValueError(f"{owner}.{name} must be >= 0, got {value!r}.")


IMPALA_CPU_STEPS_PER_CALL = 4
"""The default of :attr:`TorsoConfig.cpu_steps_per_call`.

XLA's CPU convolutions (and their gradients) ran the Atari learner's torso (32
streams x 51 frames of 4 x 84 x 84) 1.9x faster as 13 calls of 4 steps x 32
streams than as one call of 1,632 frames: 14.0 s against 26.8 s for its
forward+backward, jax 0.10, 2 cores (tools/profile_atari_learner.py).
"""


@dataclasses.dataclass(frozen=True)
class TorsoConfig:
    """The observation encoder in front of the recurrent core."""

    kind: Literal["mlp", "impala"] = "mlp"
    """``"mlp"`` for vector observations, ``"impala"`` for pixels (the deep ResNet)."""

    hidden_sizes: tuple[int, ...] = (64,)
    """MLP layer widths (``kind="mlp"``); empty passes the observation through."""

    activation: Activation = "relu"
    """MLP non-linearity: ``"relu"``, ``"tanh"`` or ``"leaky_relu"``."""

    channels: tuple[int, ...] = (16, 32, 32)
    """IMPALA stage channels (``kind="impala"``)."""

    blocks_per_stage: int = 2
    """IMPALA residual blocks per stage."""

    fc_size: int = 256
    """IMPALA fully connected output width."""

    channels_first: bool = True
    """IMPALA observation layout: ``(C, H, W)`` if true (envpool), else HWC."""

    cpu_steps_per_call: int = IMPALA_CPU_STEPS_PER_CALL
    """IMPALA on the CPU backend: time steps of a learner's frames per call of
    the torso (``ImpalaTorso.frames``). Speed only: the function is the same."""

    reward_input: bool = True
    """Concatenate the clipped previous reward to the torso output (the seed's D+1)."""

    def __post_init__(self) -> None:
        _choice("TorsoConfig", "kind", self.kind, ("mlp", "impala"))
        _sizes("TorsoConfig", "hidden_sizes", self.hidden_sizes)
        _choice("TorsoConfig", "activation", self.activation, ACTIVATIONS)
        _sizes("TorsoConfig", "channels", self.channels, allow_empty=False)
        _positive_int(
            "TorsoConfig",
            blocks_per_stage=self.blocks_per_stage,
            fc_size=self.fc_size,
            cpu_steps_per_call=self.cpu_steps_per_call,
        )


@dataclasses.dataclass(frozen=True)
class CoreConfig:
    """The recurrent core: an rtrl-cells cell and how its gradient is computed."""

    cell: str = "elstm"
    """A registered cell (a name in ``rtrl_cells.CELLS``: ``"elstm"``, ``"lru"``,
    ``"rtu"``, ``"gru"``, ``"lstm"``, or one added with ``rc.register_cell``), or
    ``"none"`` (feedforward baseline)."""

    hidden_size: int = 256
    """Units of the cell (N)."""

    method: str = "rtrl"
    """A gradient method of ``rtrl_cells.METHODS``, by name or alias: ``"rtrl"``
    (= ``"chunked"``: exact chunked RTRL in the learner), ``"rtrl-online"`` (=
    ``"online"``: exact, inputs get one-step gradients) or ``"tbptt"`` (=
    ``"bptt"``: gradients stop at the rollout start)."""

    rtu_nonlinear: bool = True
    """RTU only: non-linear (activation inside the recurrence) or linear RTU."""

    rtu_activation: RTUActivation = "relu"
    """RTU only: ``"relu"`` or ``"tanh"``."""

    r_min: float = 0.0
    """LRU/RTU only: smallest initial eigenvalue modulus (ring init)."""

    r_max: float = 1.0
    """LRU/RTU only: largest initial eigenvalue modulus (ring init)."""

    def __post_init__(self) -> None:
        _choice("CoreConfig", "cell", self.cell, (*rc.CELLS, NO_CELL))
        _positive_int("CoreConfig", hidden_size=self.hidden_size)
        _choice("CoreConfig", "method", self.method, rc.method_names())
        _choice("CoreConfig", "rtu_activation", self.rtu_activation, RTU_ACTIVATIONS)
        _in_range("CoreConfig", "r_min", self.r_min, 0.0, 1.0)
        _in_range("CoreConfig", "r_max", self.r_max, 0.0, 1.0)
        if self.r_min > self.r_max:
            raise ValueError(
                f"CoreConfig.r_min={self.r_min} exceeds r_max={self.r_max}; swap them."
            )

    @property
    def recurrent(self) -> bool:
        """False for the feedforward baseline (``cell="none"``)."""
        return self.cell != NO_CELL


@dataclasses.dataclass(frozen=True)
class HeadConfig:
    """Policy and value heads on top of the core."""

    hidden_sizes: tuple[int, ...] = ()
    """Hidden layers of each head (the RTU paper uses ``(64,)`` with tanh)."""

    activation: Activation = "tanh"
    """Hidden-layer non-linearity of the heads."""

    distribution: Literal["auto", "categorical", "gaussian"] = "auto"
    """Policy distribution; ``"auto"`` picks categorical for discrete action
    spaces and a diagonal Gaussian for continuous ones."""

    init_log_std: float = 0.0
    """Gaussian policy only: initial state-independent log standard deviation."""

    def __post_init__(self) -> None:
        _sizes("HeadConfig", "hidden_sizes", self.hidden_sizes)
        _choice("HeadConfig", "activation", self.activation, ACTIVATIONS)
        _choice(
            "HeadConfig",
            "distribution",
            self.distribution,
            ("auto", "categorical", "gaussian"),
        )


@dataclasses.dataclass(frozen=True)
class NetworkConfig:
    """Torso -> core -> policy and value heads."""

    torso: TorsoConfig = dataclasses.field(default_factory=TorsoConfig)
    """The observation encoder."""

    core: CoreConfig = dataclasses.field(default_factory=CoreConfig)
    """The recurrent core and its gradient method."""

    heads: HeadConfig = dataclasses.field(default_factory=HeadConfig)
    """The policy and value heads."""

    init: Literal["default", "orthogonal"] = "default"
    """Initialisation of the MLP torso's and the heads' dense layers.
    ``"default"``: Equinox's (uniform, fan-in scaled; the policy's Gaussian mean
    layer scaled by 0.01). ``"orthogonal"``: orthogonal weights and zero biases
    with gains sqrt(2) for hidden layers, 0.01 for the policy's output and 1 for
    the value's, as the RTU paper's released PPO and CleanRL. The recurrent
    cell keeps its own initialisation either way."""

    def __post_init__(self) -> None:
        if self.init not in ("default", "orthogonal"):
            raise ValueError(
                f"NetworkConfig.init must be 'default' or 'orthogonal', got "
                f"{self.init!r}."
            )
        if self.init == "orthogonal" and self.torso.kind != "mlp":
            raise ValueError(
                "NetworkConfig.init='orthogonal' covers the MLP torso and the heads; "
                f"the {self.torso.kind!r} torso has no orthogonal recipe here: use "
                "init='default'."
            )
        for name, kind in (
            ("torso", TorsoConfig),
            ("core", CoreConfig),
            ("heads", HeadConfig),
        ):
            if not isinstance(getattr(self, name), kind):
                raise ValueError(
                    f"NetworkConfig.{name} must be a {kind.__name__}, "
                    f"got {type(getattr(self, name)).__name__}."
                )


def impala_network(hidden_size: int = 256, method: str = "rtrl") -> NetworkConfig:
    """The seed's R2AC network: IMPALA ResNet torso, eLSTM core, linear heads."""
    return NetworkConfig(
        torso=TorsoConfig(kind="impala"),
        core=CoreConfig(cell="elstm", hidden_size=hidden_size, method=method),
    )


def rtu_ppo_network(method: str = "rtrl") -> NetworkConfig:
    """The RTU paper's PPO network: Dense 64 tanh -> RTU(192) -> heads 64 tanh,
    orthogonal initialisation with the released code's gains."""
    return NetworkConfig(
        torso=TorsoConfig(
            kind="mlp", hidden_sizes=(64,), activation="tanh", reward_input=False
        ),
        core=CoreConfig(cell="rtu", hidden_size=192, method=method),
        heads=HeadConfig(hidden_sizes=(64,), activation="tanh"),
        init="orthogonal",
    )


@dataclasses.dataclass(frozen=True)
class R2ACConfig:
    """R2AC (Irie et al. 2024): IMPALA's V-trace actor-critic on an RTRL core."""

    network: NetworkConfig = dataclasses.field(default_factory=impala_network)
    """The network (default: IMPALA torso + eLSTM(256), the seed's Atari setting)."""

    rollout_length: int = 50
    """M: steps per rollout; the update period and the V-trace horizon (and, for
    TBPTT only, the backprop span)."""

    discount: float = 0.99
    """Discount gamma."""

    baseline_cost: float = 0.5
    """Weight of the value loss ``0.5 * sum (v_s - V)^2``."""

    entropy_cost: float = 0.01
    """Weight of the negative entropy."""

    learning_rate: float = 6e-4
    """Initial RMSProp step size, decayed linearly to 0 over ``decay_updates``."""

    decay_updates: int | None = None
    """Updates over which the step size decays linearly to 0; ``None`` keeps it
    constant (the loops set it to the run's length)."""

    rms_decay: float = 0.99
    """RMSProp alpha."""

    rms_eps: float = 0.01
    """RMSProp epsilon, added outside the square root (PyTorch's convention)."""

    max_grad_norm: float = 40.0
    """Global-norm gradient clip over all parameters."""

    reward_clip: float | None = 1.0
    """Clip rewards to ``[-c, c]`` in the loss and the reward input; ``None``: no
    clipping."""

    clip_rho: float = 1.0
    """V-trace rho_bar (importance weight clip of the value targets)."""

    clip_c: float = 1.0
    """V-trace c_bar (trace cutting)."""

    clip_pg_rho: float = 1.0
    """Importance weight clip of the policy-gradient advantage."""

    def __post_init__(self) -> None:
        if not isinstance(self.network, NetworkConfig):
            raise ValueError("R2ACConfig.network must be a NetworkConfig.")
        _positive_int("R2ACConfig", rollout_length=self.rollout_length)
        _in_range("R2ACConfig", "discount", self.discount, 0.0, 1.0)
        _non_negative("R2ACConfig", "baseline_cost", self.baseline_cost)
        _non_negative("R2ACConfig", "entropy_cost", self.entropy_cost)
        _positive("R2ACConfig", "learning_rate", self.learning_rate)
        if self.decay_updates is not None:
            _positive_int("R2ACConfig", decay_updates=self.decay_updates)
        _in_range("R2ACConfig", "rms_decay", self.rms_decay, 0.0, 1.0)
        _positive("R2ACConfig", "rms_eps", self.rms_eps)
        _positive("R2ACConfig", "max_grad_norm", self.max_grad_norm)
        if self.reward_clip is not None:
            _positive("R2ACConfig", "reward_clip", self.reward_clip)
        for name in ("clip_rho", "clip_c", "clip_pg_rho"):
            _positive("R2ACConfig", name, getattr(self, name))


@dataclasses.dataclass(frozen=True)
class PPOConfig:
    """PPO on an RTRL core (Elelimy et al. 2024's recipe as defaults)."""

    network: NetworkConfig = dataclasses.field(default_factory=rtu_ppo_network)
    """The network (default: Dense 64 tanh -> RTU(192) -> heads 64 tanh)."""

    rollout_length: int = 2048
    """Steps per environment per rollout."""

    num_epochs: int = 4
    """Passes over each rollout."""

    num_minibatches: int = 32
    """Minibatches per epoch."""

    sequence_length: int = 1
    """Length of the training sequences, each re-run from the carry stored before
    its first step. 1 is the paper's recipe for RTRL (single steps re-stepped from
    stored state and traces); for ``tbptt`` it is the backprop window."""

    traces: Literal["stale", "refresh"] = "stale"
    """``"stale"``: stored carries (state and RTRL traces) come from the actor and
    are reused by every epoch (the paper's default, better on Ant-P);
    ``"refresh"``: before each epoch they are recomputed by re-running the rollout
    with the current parameters."""

    stale_traces: Literal["recompute", "store"] = "recompute"
    """How the learner gets the actor's stale traces (RTRL, ``traces="stale"``,
    more than one sequence per rollout). ``"recompute"``: the actor stores each
    step's state alone, and each minibatch's trace term ``sum lambda_t .
    E_{t-1}`` comes from one reverse pass over the rollout from its first carry
    (a VJP of ``rtrl_cells.AbstractCell.states_before``), with the parameters the
    rollout was collected with: the same update as ``"store"`` up to rounding,
    without a trace per step (an RTU(384) stores 0.8 MB per stream and step).
    It needs the learner to update from the parameters that acted (a
    synchronous loop: it raises otherwise), and falls back to ``"store"``
    where the trace term is not a reverse pass of the state: a core whose
    traces are an approximation (``LayerLocalApproxStack``), or ``online``
    sequences longer than one step (whose inputs get one-step gradients).
    ``"store"``: the actor stores each step's traces too (actors that lag the
    learner)."""

    learning_rate: float = 1e-4
    """Adam step size."""

    adam_eps: float = 1e-5
    """Adam epsilon."""

    max_grad_norm: float = 0.5
    """Global-norm gradient clip."""

    clip_eps: float = 0.2
    """PPO ratio clip."""

    value_cost: float = 0.5
    """Weight of the value loss."""

    clip_value: bool = True
    """Clip the value loss around the behaviour values with ``clip_eps``
    (:func:`ppo_value_loss`), as the RTU paper's released PPO and CleanRL do;
    ``False``: the plain ``0.5 (v - R)^2``."""

    entropy_cost: float = 0.0
    """Weight of the negative entropy."""

    discount: float = 0.99
    """Discount gamma."""

    gae_lambda: float = 0.95
    """GAE lambda."""

    normalize_advantages: bool = True
    """Standardise advantages per minibatch."""

    reward_clip: float | None = None
    """Clip rewards to ``[-c, c]`` (after scaling, if ``normalize_rewards``);
    ``None``: no clipping."""

    normalize_observations: bool = True
    """Standardise observations by a running mean and variance (the paper's
    recipe); the statistics live in the agent state and are updated once per
    rollout with its observations, after the update that used them."""

    normalize_rewards: bool = True
    """Divide the learner's rewards by the running std of each stream's
    discounted return (gym's ``NormalizeReward``, the paper's recipe). The
    reward input of the network stays unscaled."""

    observation_clip: float | None = 10.0
    """Clip normalised observations to ``[-c, c]``; ``None``: no clipping."""

    normalize_eps: float = 1e-8
    """Added to the variances before the square root."""

    def __post_init__(self) -> None:
        if not isinstance(self.network, NetworkConfig):
            raise ValueError("PPOConfig.network must be a NetworkConfig.")
        for name in ("normalize_observations", "normalize_rewards", "clip_value"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(
                    f"PPOConfig.{name} must be a bool, got {getattr(self, name)!r}."
                )
        if self.observation_clip is not None:
            _positive("PPOConfig", "observation_clip", self.observation_clip)
        _positive("PPOConfig", "normalize_eps", self.normalize_eps)
        _positive_int(
            "PPOConfig",
            rollout_length=self.rollout_length,
            num_epochs=self.num_epochs,
            num_minibatches=self.num_minibatches,
            sequence_length=self.sequence_length,
        )
        if self.rollout_length % self.sequence_length:
            raise ValueError(
                f"PPOConfig.sequence_length={self.sequence_length} must divide "
                f"rollout_length={self.rollout_length}."
            )
        _choice("PPOConfig", "traces", self.traces, ("stale", "refresh"))
        _choice("PPOConfig", "stale_traces", self.stale_traces, ("recompute", "store"))
        _positive("PPOConfig", "learning_rate", self.learning_rate)
        _positive("PPOConfig", "adam_eps", self.adam_eps)
        _positive("PPOConfig", "max_grad_norm", self.max_grad_norm)
        _positive("PPOConfig", "clip_eps", self.clip_eps)
        _non_negative("PPOConfig", "value_cost", self.value_cost)
        _non_negative("PPOConfig", "entropy_cost", self.entropy_cost)
        _in_range("PPOConfig", "discount", self.discount, 0.0, 1.0)
        _in_range("PPOConfig", "gae_lambda", self.gae_lambda, 0.0, 1.0)
        if self.reward_clip is not None:
            _positive("PPOConfig", "reward_clip", self.reward_clip)


def streaming_network(
    hidden_size: int = 128, cell: str = "elstm", method: str = "rtrl-online"
) -> NetworkConfig:
    """Elsayed et al. 2024's streaming networks with a recurrent core.

    Their actor and critic are ``Linear(128) -> LayerNorm -> LeakyReLU ->
    Linear(128) -> LayerNorm -> LeakyReLU -> output`` (``Actor``/``Critic`` in
    their ``stream_ac_visual_mujoco.py``). Here the core sits between the two
    hidden layers: ``Dense 128 -> cell(128) -> Dense 128 -> output``, leaky ReLU
    (slope 0.01); the LayerNorm and the sparse initialisation are switches of
    :class:`StreamingACConfig` (``layer_norm``, ``sparse_init``).

    Args:
        hidden_size: width of the dense layers and of the cell (their 128).
        cell: the core (a name of ``rtrl_cells.CELLS``, or ``"none"``).
        method: its gradient method (online RTRL: one update per step).
    """
    return NetworkConfig(
        torso=TorsoConfig(
            hidden_sizes=(hidden_size,), activation="leaky_relu", reward_input=False
        ),
        core=CoreConfig(cell=cell, hidden_size=hidden_size, method=method),
        heads=HeadConfig(hidden_sizes=(hidden_size,), activation="leaky_relu"),
    )


@dataclasses.dataclass(frozen=True)
class StreamingACConfig:
    """Streaming actor-critic: one update per environment step (online RTRL).

    Stream AC(lambda) of Elsayed, Vasan and Mahmood 2024 ("Streaming deep
    reinforcement learning finally works"; released code
    ``mohmdelsayed/streaming-drl``, ``stream_ac_visual_mujoco.py`` and
    ``pixel_mujoco/wrappers.py``, cited below by file and name): TD(lambda)
    actor and critic with eligibility traces and the ObGD step-size bound (the
    effective step never overshoots the TD error), sparse initialisation,
    parameter-free LayerNorm, observation normalisation and reward scaling
    updated every step, the time-in-episode input, and separate actor and critic
    networks. Every part of the recipe is a switch here, on by default. With
    every switch off and 0.2's network (``NetworkConfig(torso=TorsoConfig(
    hidden_sizes=(64,), reward_input=False), core=CoreConfig(hidden_size=64,
    method="rtrl-online"))``) this is the agent of rtrl-agents 0.2: one network
    with a policy and a value head, raw observations and rewards.

    Kept apart from their code on purpose: the recurrent core (their networks
    are feedforward); a truncated episode bootstraps from its last value (their
    ``done_mask`` also cuts it at truncation); the Gaussian policy's log-std is
    a state-independent parameter (theirs is ``softplus`` of a linear layer);
    with several streams the updates are averaged and the moments shared.
    """

    network: NetworkConfig = dataclasses.field(default_factory=streaming_network)
    """The network (default :func:`streaming_network`: Dense 128 leaky ReLU ->
    eLSTM(128) -> heads Dense 128 leaky ReLU, as their 128-wide ``Actor`` and
    ``Critic`` with the core between the two hidden layers); its core is
    stepped with online RTRL. With ``separate_networks`` the actor and the
    critic each get one of these, with a policy or a value head."""

    discount: float = 0.99
    """Discount gamma (their ``--gamma 0.99``)."""

    trace_lambda: float = 0.8
    """Eligibility-trace decay lambda of actor and critic (their ``--lamda 0.8``)."""

    actor_learning_rate: float = 1.0
    """ObGD step size of the actor (their ``--lr 1.0``)."""

    critic_learning_rate: float = 1.0
    """ObGD step size of the critic (their ``--lr 1.0``)."""

    actor_kappa: float = 3.0
    """ObGD bound of the actor (their ``--kappa_policy 3.0``)."""

    critic_kappa: float = 2.0
    """ObGD bound of the critic (their ``--kappa_value 2.0``)."""

    entropy_cost: float = 0.01
    """Entropy bonus, times ``sign(delta)``, folded into the actor's eligibility
    trace (their ``--entropy_coeff 0.01``, ``StreamAC.update_params``)."""

    reward_clip: float | None = None
    """Clip the TD rewards (after scaling, with ``scale_rewards``) and the reward
    input to ``[-c, c]``; ``None``: no clipping (theirs)."""

    separate_networks: bool = True
    """Two networks, each with its own torso, core, head, eligibility trace and
    ObGD step (their ``Actor`` and ``Critic``, ``StreamAC.__init__``): the
    critic's update never moves the actor's parameters and vice versa.
    ``False``: one network with a policy and a value head whose two traces
    cover all parameters (rtrl-agents 0.2)."""

    sparse_init: bool = True
    """Sparse initialisation of every dense layer of the MLP torso and the heads
    (their ``initialize_weights`` -> ``sparse_init(m.weight, sparsity=0.9)``,
    ``m.bias.data.fill_(0.0)``): a weight ``(fan_out, fan_in)`` is uniform in
    ``+-sqrt(1 / fan_in)``, then in each output row ``ceil(sparsity * fan_in)``
    inputs drawn at random are set to 0; biases are 0. The recurrent cell and an
    IMPALA torso keep their own initialisation. ``False``: ``network.init``
    (Equinox's default, or orthogonal). As in their code, a layer with at most
    9 inputs starts all zero at sparsity 0.9; the LayerNorm's gradient revives
    it, but a network of such layers only (width < 10) cannot learn."""

    sparsity: float = 0.9
    """Fraction of each output row's inputs zeroed by ``sparse_init`` (their
    ``sparsity=0.9``), in ``[0, 1)``."""

    layer_norm: bool = True
    """LayerNorm without learnable parameters after every hidden dense layer of
    the MLP torso and the heads, before the activation (their
    ``F.layer_norm(x, x.size())``, PyTorch's ``eps = 1e-5``, then
    ``F.leaky_relu``). ``False``: none (rtrl-agents 0.2)."""

    normalize_observations: bool = True
    """Standardise observations by their running sample mean and variance,
    updated every step with the observation before it is used (their
    ``NormalizeObservation`` with ``SampleMeanStd``: Welford, variance 1 until
    two samples, ``(o - mean) / sqrt(var + eps)``, no clipping). The moments are
    shared by the streams and live in the agent state
    (``StreamingACState.observation_moments``). Vector observations only."""

    scale_rewards: bool = True
    """Divide the TD rewards by the running sample std of each stream's
    discounted return ``u <- discount * u * (1 - done) + r``, updated every step
    before it is used (their ``ScaleReward``; the mean is not subtracted). The
    returns are per stream, their moments shared, both in the agent state
    (``StreamingACState.reward_scaler``). The network's reward input stays raw."""

    normalize_eps: float = 1e-8
    """Added to both variances before the square root (their ``epsilon=1e-8``)."""

    time_input: bool = True
    """Append the time in the episode to the (normalised) observation (their
    ``AddTimeInfo``, the outermost wrapper, so it is not normalised): ``-0.5`` on
    the first two observations of an episode, then ``1 / time_limit`` more at
    each step, i.e. ``-0.5 + max(k - 1, 0) / time_limit`` for the ``k``-th
    observation (``k = 0`` at the episode's first). The step count ``k`` of each
    stream is in the actor's carry (it resets at ``first``, as the core's
    state). Vector observations only."""

    time_limit: int = 1000
    """The ``time_limit`` of the time input: their ``pixel_mujoco/wrappers.py``
    fixes it to 1000 (the MuJoCo and DM Control episode length); their
    vector-observation wrapper, which we could not read in its released form,
    is reported to take the environment's ``max_episode_steps``, which an agent
    here cannot see: set it to the task's episode limit."""

    def __post_init__(self) -> None:
        owner = "StreamingACConfig"
        if not isinstance(self.network, NetworkConfig):
            raise ValueError(f"{owner}.network must be a NetworkConfig.")
        _in_range(owner, "discount", self.discount, 0.0, 1.0)
        _in_range(owner, "trace_lambda", self.trace_lambda, 0.0, 1.0)
        for name in (
            "actor_learning_rate",
            "critic_learning_rate",
            "actor_kappa",
            "critic_kappa",
            "normalize_eps",
        ):
            _positive(owner, name, getattr(self, name))
        _non_negative(owner, "entropy_cost", self.entropy_cost)
        if self.reward_clip is not None:
            _positive(owner, "reward_clip", self.reward_clip)
        for name in (
            "separate_networks",
            "sparse_init",
            "layer_norm",
            "normalize_observations",
            "scale_rewards",
            "time_input",
        ):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(
                    f"{owner}.{name} must be a bool, got {getattr(self, name)!r}."
                )
        _number(owner, "sparsity", self.sparsity)
        if not 0.0 <= self.sparsity < 1.0:
            raise ValueError(f"{owner}.sparsity={self.sparsity!r} must lie in [0, 1).")
        _positive_int(owner, time_limit=self.time_limit)
        if self.sparse_init and self.network.init != "default":
            raise ValueError(
                f"{owner}.sparse_init=True replaces network.init="
                f"{self.network.init!r}; set sparse_init=False or init='default'."
            )
        if self.network.torso.kind != "mlp":
            for name in ("normalize_observations", "time_input"):
                if getattr(self, name):
                    raise ValueError(
                        f"{owner}.{name} applies to vector observations (an MLP "
                        f"torso); set it False for the {self.network.torso.kind!r} "
                        "torso."
                    )


@dataclasses.dataclass(frozen=True)
class LoopConfig:
    """How long a run lasts and how often it reports and checkpoints.

    A kill loses at most the work since the last checkpoint: checkpoints are
    saved after a report once ``checkpoint_every`` updates or
    ``checkpoint_seconds`` of wall time have passed since the last one (either
    or both), and after the last update.
    """

    num_updates: int = 1000
    """Agent updates in the run."""

    log_every: int = 10
    """K: updates per device call; metrics leave the device once per K updates."""

    checkpoint_every: int | None = None
    """Save a checkpoint every this many updates (a multiple of ``log_every``);
    ``None``: not by count."""

    checkpoint_seconds: float | None = None
    """Also save when this many seconds of wall time have passed since the last
    checkpoint (checked at each report); ``None``: not by time."""

    keep_checkpoints: int = 3
    """How many of the latest checkpoints to keep (2 or more leave a fallback
    when the newest cannot be read)."""

    def __post_init__(self) -> None:
        _positive_int(
            "LoopConfig",
            num_updates=self.num_updates,
            log_every=self.log_every,
            keep_checkpoints=self.keep_checkpoints,
        )
        if self.checkpoint_every is not None:
            _positive_int("LoopConfig", checkpoint_every=self.checkpoint_every)
            if self.checkpoint_every % self.log_every:
                raise ValueError(
                    f"LoopConfig.checkpoint_every={self.checkpoint_every} must be a "
                    f"multiple of log_every={self.log_every}."
                )
        if self.checkpoint_seconds is not None:
            _positive("LoopConfig", "checkpoint_seconds", self.checkpoint_seconds)


@dataclasses.dataclass(frozen=True)
class SequenceLearnerConfig:
    """Supervised sequence learning (the copy task) on an rtrl-cells core."""

    core: CoreConfig = dataclasses.field(
        default_factory=lambda: CoreConfig(
            cell="elstm", hidden_size=32, method="rtrl-online"
        )
    )
    """The cell and its gradient method (``cell="none"``: memoryless readout)."""

    segment_length: int = 1
    """Steps per update (1: every step); the carry and traces cross segments."""

    loss: Literal["bce", "mse"] = "bce"
    """``"bce"``: sigmoid cross-entropy per output bit; ``"mse"``: squared error."""

    learning_rate: float = 1e-3
    """Adam step size."""

    adam_eps: float = 1e-8
    """Adam epsilon."""

    max_grad_norm: float | None = 1.0
    """Global-norm gradient clip; ``None``: no clipping."""

    def __post_init__(self) -> None:
        if not isinstance(self.core, CoreConfig):
            raise ValueError("SequenceLearnerConfig.core must be a CoreConfig.")
        _positive_int("SequenceLearnerConfig", segment_length=self.segment_length)
        _choice("SequenceLearnerConfig", "loss", self.loss, ("bce", "mse"))
        _positive("SequenceLearnerConfig", "learning_rate", self.learning_rate)
        _positive("SequenceLearnerConfig", "adam_eps", self.adam_eps)
        if self.max_grad_norm is not None:
            _positive("SequenceLearnerConfig", "max_grad_norm", self.max_grad_norm)


@dataclasses.dataclass(frozen=True)
class TDPredictorConfig:
    """TD(lambda) prediction with online RTRL (trace conditioning)."""

    core: CoreConfig = dataclasses.field(
        default_factory=lambda: CoreConfig(
            cell="elstm", hidden_size=16, method="rtrl-online"
        )
    )
    """The cell and its gradient method (``cell="none"``: memoryless baseline;
    ``"tbptt"``: one-step gradients)."""

    discount: float = 0.9
    """Gamma of the predicted discounted sum of the cumulant."""

    trace_lambda: float = 0.9
    """Eligibility-trace decay lambda."""

    optimizer: Literal["adam", "sgd"] = "adam"
    """Applies the TD(lambda) direction ``-delta z`` with Adam or plain SGD."""

    segment_length: int = 1
    """Steps per update (1: every step); the eligibility trace moves every step.
    Within a segment the core runs with its method, so a TBPTT core's gradient
    of ``v_t`` reaches back to the segment's start (its truncation window)."""

    learning_rate: float = 1e-3
    """Step size."""

    adam_eps: float = 1e-8
    """Adam epsilon."""

    max_grad_norm: float | None = None
    """Global-norm clip of the update direction; ``None``: no clipping."""

    def __post_init__(self) -> None:
        if not isinstance(self.core, CoreConfig):
            raise ValueError("TDPredictorConfig.core must be a CoreConfig.")
        if self.max_grad_norm is not None:
            _positive("TDPredictorConfig", "max_grad_norm", self.max_grad_norm)
        _in_range("TDPredictorConfig", "discount", self.discount, 0.0, 1.0)
        _in_range("TDPredictorConfig", "trace_lambda", self.trace_lambda, 0.0, 1.0)
        _choice("TDPredictorConfig", "optimizer", self.optimizer, ("adam", "sgd"))
        _positive_int("TDPredictorConfig", segment_length=self.segment_length)
        _positive("TDPredictorConfig", "learning_rate", self.learning_rate)
        _positive("TDPredictorConfig", "adam_eps", self.adam_eps)
