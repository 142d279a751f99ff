"""The experiment registry: named, typed, frozen configurations of the seeds' studies.

An :class:`Experiment` names an environment, the variants it compares (each a
complete agent or learner configuration), a default frame budget that fits this
machine, the paper's budget, and where the reference data holds the paper's
numbers. ``rtrl-bench run NAME --frames N`` runs any of them at any budget.
"""

from __future__ import annotations

import dataclasses
import difflib
from typing import Any, Literal

import rtrl_agents as ra
import rtrl_cells as rc

Metric = Literal["success", "return", "accuracy", "error"]
SequenceTask = Literal["copy", "trace-conditioning"]


class UnknownExperimentError(KeyError):
    """The experiment name is not registered (the message lists close matches)."""

    def __str__(self) -> str:
        return str(self.args[0])


class UnknownVariantError(ValueError):
    """The experiment has no variant of that name (the message lists them)."""


@dataclasses.dataclass(frozen=True)
class EnvConfig:
    """An rtrl-envs environment, as ``rtrl_envs.make(name, num_envs=, seed=, ...)``."""

    name: str
    """The rtrl-envs name, e.g. ``"memory/delayed-recall"``."""

    num_envs: int
    """Parallel streams."""

    options: tuple[tuple[str, Any], ...] = ()
    """Options passed to ``make`` as ``(name, value)`` pairs."""

    eval_options: tuple[tuple[str, Any], ...] = ()
    """Options that replace ``options`` for the held-out greedy evaluation (e.g.
    ProcGen's unseen levels); empty: evaluate on the training distribution."""

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or "/" not in self.name:
            raise ValueError(
                f"EnvConfig.name must be 'family/task', got {self.name!r}."
            )
        if isinstance(self.num_envs, bool) or not (
            isinstance(self.num_envs, int) and self.num_envs > 0
        ):
            raise ValueError(f"EnvConfig.num_envs must be >= 1, got {self.num_envs!r}.")
        for pairs in (self.options, self.eval_options):
            if not all(isinstance(p, tuple) and len(p) == 2 for p in pairs):
                raise ValueError("EnvConfig options must be (name, value) pairs.")


@dataclasses.dataclass(frozen=True)
class SequenceConfig:
    """A supervised (copy) or prediction (trace conditioning) learner on one cell.

    The learner updates every ``update_every`` steps: RTRL carries its traces
    across updates (untruncated gradients); TBPTT backpropagates through the last
    ``update_every`` steps only.
    """

    task: SequenceTask
    """``"copy"`` (predict the pattern's bits) or ``"trace-conditioning"`` (predict
    the discounted sum of the US)."""

    cell: str
    """A registered rtrl-cells cell (a name in ``rtrl_cells.CELLS``)."""

    hidden_size: int
    """Units N."""

    method: str
    """A gradient method of ``rtrl_cells.METHODS`` by name or alias: ``"rtrl"``
    (exact chunked RTRL, traces carried) or ``"tbptt"`` (truncated BPTT)."""

    update_every: int = 1
    """Steps per update (the TBPTT window)."""

    learning_rate: float = 1e-3
    """Adam step size."""

    batch_size: int = 32
    """Parallel streams."""

    max_grad_norm: float = 1.0
    """Global-norm clip."""

    max_length: int = 10
    """Copy only: the longest pattern (lengths uniform in 1..max_length)."""

    discount: float = 0.9
    """Trace conditioning only: the discount of the predicted return."""

    def __post_init__(self) -> None:
        if self.task not in ("copy", "trace-conditioning"):
            raise ValueError(f"SequenceConfig.task={self.task!r} is unknown.")
        for name, names in (
            ("cell", tuple(rc.CELLS)),
            ("method", rc.method_names()),
        ):
            if getattr(self, name) not in names:
                raise ValueError(
                    f"SequenceConfig.{name}={getattr(self, name)!r} is unknown; use "
                    f"one of {', '.join(names)}."
                )
        for name in ("hidden_size", "update_every", "batch_size", "max_length"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"SequenceConfig.{name} must be >= 1, got {v!r}.")
        if not self.learning_rate > 0 or not self.max_grad_norm > 0:
            raise ValueError(
                "SequenceConfig.learning_rate and max_grad_norm must be > 0."
            )
        if not 0 <= self.discount < 1:
            raise ValueError(
                f"SequenceConfig.discount must be in [0, 1), got {self.discount}."
            )


AgentConfig = ra.R2ACConfig | ra.PPOConfig | ra.StreamingACConfig | SequenceConfig


@dataclasses.dataclass(frozen=True)
class Variant:
    """One arm of a comparison."""

    name: str
    """Short label, e.g. ``"rtrl"``, ``"tbptt"``, ``"feedforward"``."""

    config: AgentConfig
    """The agent (R2AC, PPO, streaming) or sequence-learner configuration."""

    system: str | None = None
    """The matching ``system`` of the reference data (``"eLSTM-RTRL"``), if any."""

    def __post_init__(self) -> None:
        if not self.name or not isinstance(self.name, str):
            raise ValueError("Variant.name must be a non-empty string.")
        if not isinstance(self.config, AgentConfig):
            raise ValueError(
                f"Variant.config must be an agent or SequenceConfig, got "
                f"{type(self.config).__name__}."
            )

    @property
    def steps_per_update(self) -> int:
        """Environment steps per stream between two updates."""
        c = self.config
        if isinstance(c, ra.StreamingACConfig):
            return 1
        if isinstance(c, SequenceConfig):
            return c.update_every
        return c.rollout_length


@dataclasses.dataclass(frozen=True)
class Experiment:
    """A named study: one environment, several variants, a budget."""

    name: str
    """Registry name, e.g. ``"horizon"``."""

    description: str
    """One line: what it measures."""

    env: EnvConfig
    """The environment (for sequence tasks: the generator's rtrl-envs name)."""

    variants: tuple[Variant, ...]
    """The arms compared."""

    frames: int
    """Default budget: environment steps summed over streams, per variant and seed
    (agent steps; ``action_repeat`` is not counted)."""

    metric: Metric = "return"
    """What the final evaluation reports: ``"success"`` (fraction of episodes with
    return > 0), ``"return"``, ``"accuracy"`` (copy) or ``"error"`` (mean squared
    prediction error, trace conditioning)."""

    eval_episodes: int = 100
    """Held-out episodes of greedy evaluation (RL) or evaluation batches."""

    chance: float | None = None
    """The memoryless policy's score, where known."""

    paper_frames: float | None = None
    """The paper's environment-frame budget, where it has one."""

    reference: tuple[str, str] | None = None
    """``(domain, task)`` of the rows of the reference data to show beside ours."""

    action_repeat: int = 1
    """Environment frames per agent step (to compare with the paper's frames)."""

    requires: str | None = None
    """A module that must be importable to run it (``"deepmind_lab"``)."""

    deviations: tuple[str, ...] = ()
    """Where this implementation deliberately differs from the paper's released
    code in a way that can move the numbers; written into ``result.json`` and
    shown by ``report`` next to the scores."""

    def __post_init__(self) -> None:
        if not self.variants:
            raise ValueError(f"Experiment {self.name!r} needs at least one variant.")
        names = [v.name for v in self.variants]
        if len(set(names)) != len(names):
            raise ValueError(f"Experiment {self.name!r} repeats variant names {names}.")
        if isinstance(self.frames, bool) or not (
            isinstance(self.frames, int) and self.frames > 0
        ):
            raise ValueError(f"Experiment.frames must be >= 1, got {self.frames!r}.")
        if self.metric not in ("success", "return", "accuracy", "error"):
            raise ValueError(f"Experiment.metric={self.metric!r} is unknown.")
        if self.eval_episodes < 1 or self.action_repeat < 1:
            raise ValueError("Experiment.eval_episodes and action_repeat must be >= 1.")

    def variant(self, name: str) -> Variant:
        """The variant called ``name``."""
        for v in self.variants:
            if v.name == name:
                return v
        raise UnknownVariantError(
            f"experiment {self.name!r} has no variant {name!r}; it has "
            f"{', '.join(v.name for v in self.variants)}."
        )


# ----------------------------------------------------------------- constructors


def _mlp_net(cell: str, hidden: int, method: str, torso=(32,)) -> ra.NetworkConfig:
    return ra.NetworkConfig(
        torso=ra.TorsoConfig(hidden_sizes=torso),
        core=ra.CoreConfig(cell=cell, hidden_size=hidden, method=method),
    )


def _ff(net: ra.NetworkConfig) -> ra.NetworkConfig:
    return dataclasses.replace(
        net, core=dataclasses.replace(net.core, cell="none", method="tbptt")
    )


def _r2ac_arms(
    net: ra.NetworkConfig,
    rollout: int,
    feedforward: bool = True,
    **kw: Any,
) -> tuple[Variant, ...]:
    """R2AC with the eLSTM trained by RTRL, by TBPTT, and (optionally) without it."""
    arms = []
    for method, system in (("rtrl", "eLSTM-RTRL"), ("tbptt", "eLSTM-TBPTT")):
        n = dataclasses.replace(net, core=dataclasses.replace(net.core, method=method))
        cfg = ra.R2ACConfig(network=n, rollout_length=rollout, **kw)
        arms.append(Variant(method, cfg, system))
    if feedforward:
        cfg = ra.R2ACConfig(network=_ff(net), rollout_length=rollout, **kw)
        arms.append(Variant("feedforward", cfg, "feedforward"))
    return tuple(arms)


#: The horizon study's size, chosen to finish in minutes on 2 CPU cores.
HORIZON_M = 4
HORIZON_DELAY = 4 * HORIZON_M
HORIZON_ENVS = 32
HORIZON_UPDATES = 16_000


def _horizon() -> Experiment:
    # No torso: the observation (and the previous reward) go straight into the
    # eLSTM, whose input weights get the exact RTRL gradient across the delay.
    # R2AC truncates the torso's gradient at the rollout start, so a torso never
    # learns from the query's reward to keep the cues apart; with an MLP(32) torso
    # (ReLU: 1 of 3 seeds, tanh: 1 of 12) RTRL solved the task and then lost the
    # cue for good late in training. See the README's horizon study.
    net = _mlp_net("elstm", 32, "rtrl", torso=())
    return Experiment(
        name="horizon",
        description=(
            f"delayed recall, delay {HORIZON_DELAY} = 4 x M (M = {HORIZON_M}): the "
            "cue and the query never share a rollout; R2AC, no torso, eLSTM(32) "
            "with RTRL, TBPTT, feedforward"
        ),
        env=EnvConfig(
            "memory/delayed-recall",
            HORIZON_ENVS,
            (("delay", HORIZON_DELAY), ("num_symbols", 2)),
        ),
        variants=_r2ac_arms(net, HORIZON_M, learning_rate=5e-3),
        frames=HORIZON_UPDATES * HORIZON_M * HORIZON_ENVS,
        metric="success",
        eval_episodes=256,
        chance=0.5,
    )


def _copy() -> Experiment:
    arms = tuple(
        Variant(
            f"rtrl-L{length}",
            SequenceConfig(
                task="copy",
                cell="elstm",
                hidden_size=256,
                method="rtrl",
                update_every=1,
                learning_rate=3e-4,
                batch_size=32,
                max_length=length,
            ),
        )
        for length in (5, 10, 20)
    )
    return Experiment(
        name="copy",
        description=(
            "copy task (supervised): RTRL eLSTM(256) updated every step, pattern "
            "lengths up to 5, 10, 20 (total sequence 2L)"
        ),
        env=EnvConfig("memory/copy", 32),
        variants=arms,
        frames=2_000_000,
        metric="accuracy",
        eval_episodes=10,
        chance=0.5,
    )


def _trace() -> Experiment:
    # Equal recurrent parameters at D = 12 (CS, US, 10 distractors): about 1.6k.
    arms = tuple(
        Variant(
            name,
            SequenceConfig(
                task="trace-conditioning",
                cell=cell,
                hidden_size=n,
                method=method,
                update_every=window,
                learning_rate=1e-3,
                batch_size=8,
            ),
        )
        for name, cell, n, method, window in (
            ("rtu-rtrl", "rtu", 64, "rtrl", 1),
            # The RTU paper's LRU baseline (square C readout, no skip term).
            ("lru-rtrl", "online-lru", 23, "rtrl", 1),
            ("gru-tbptt", "gru", 17, "tbptt", 8),
        )
    )
    return Experiment(
        name="trace-conditioning",
        description=(
            "trace conditioning (Rafiee et al. 2023, ISI 14-26): predict the "
            "discounted US; RTU and LRU with RTRL vs GRU with TBPTT(8), ~1.6k "
            "recurrent parameters each"
        ),
        env=EnvConfig("memory/trace-conditioning", 8),
        variants=arms,
        frames=200_000,
        metric="error",
        eval_episodes=4,
    )


DMLAB_LEVELS = (
    "rooms_select_nonmatching_object",
    "rooms_watermaze",
    "rooms_keys_doors_puzzle",
)
ATARI_GAMES = ("Breakout", "Gravitar", "MsPacman", "Qbert", "Seaquest")


def _dmlab(level: str, m: int) -> Experiment:
    net = ra.NetworkConfig(
        torso=ra.TorsoConfig(kind="impala", channels_first=False),
        core=ra.CoreConfig(cell="elstm", hidden_size=512),
    )
    paper = {"rooms_select_nonmatching_object": 3.2e8, "rooms_watermaze": 1.2e9}
    return Experiment(
        name=f"dmlab-{level.removeprefix('rooms_').replace('_', '-')}-m{m}",
        description=f"DMLab {level}, R2AC eLSTM(512) RTRL vs TBPTT, M = {m}",
        env=EnvConfig(f"dmlab/{level}", 32),
        variants=_r2ac_arms(net, m, feedforward=level == "rooms_keys_doors_puzzle"),
        frames=1_000_000,
        paper_frames=paper.get(level, 4e8),
        reference=("dmlab", level),
        action_repeat=4,
        requires="deepmind_lab",
    )


def _atari(game: str) -> Experiment:
    return Experiment(
        name=f"atari-{game.lower()}",
        description=f"Atari {game}, R2AC eLSTM(256): feedforward, TBPTT, RTRL, M = 50",
        env=EnvConfig(f"atari/{game}", 32),
        variants=_r2ac_arms(ra.impala_network(256), 50),
        frames=1_000_000,
        paper_frames=8e8,
        reference=("atari", game),
        action_repeat=4,
    )


def _chaser(m: int) -> Experiment:
    return Experiment(
        name=f"procgen-chaser-m{m}",
        description=(
            f"ProcGen chaser hard, 500 training levels, R2AC eLSTM(256), M = {m}; "
            "greedy evaluation on unseen levels"
        ),
        env=EnvConfig(
            "procgen/chaser",
            32,
            (("distribution_mode", "hard"), ("num_levels", 500)),
            (("distribution_mode", "hard"), ("num_levels", 0), ("start_level", 500)),
        ),
        variants=_r2ac_arms(ra.impala_network(256), m),
        frames=1_000_000,
        paper_frames=2e8,
    )


TRUNCATION = (
    "an episode cut by the time limit bootstraps from the value of its last "
    "observation, where the paper's released code treats it as a termination "
    "(value 0); this changes the value targets of the last steps before a "
    "time-limit cut only"
)


def _ppo_arms(rollout: int = 2048, linear_rtu: bool = False) -> tuple[Variant, ...]:
    """The RTU paper's three PPO arms at about 24.9k recurrent parameters each
    (input 64): RTU(192) 24,960, the paper's online LRU(84) 25,116, GRU(64)
    24,832; orthogonal init, observation and reward normalisation, value clip."""
    arms = []
    for name, cell, n, method, seq, options in (
        ("rtu-rtrl", "rtu", 192, "rtrl", 1, {"rtu_nonlinear": not linear_rtu}),
        ("lru-rtrl", "online-lru", 84, "rtrl", 1, {}),
        ("gru-tbptt", "gru", 64, "tbptt", 16, {}),
    ):
        net = ra.rtu_ppo_network(method)
        core = dataclasses.replace(net.core, cell=cell, hidden_size=n, **options)
        net = dataclasses.replace(net, core=core)
        cfg = ra.PPOConfig(network=net, rollout_length=rollout, sequence_length=seq)
        arms.append(Variant(name, cfg))
    return tuple(arms)


def _mujoco(task: str) -> Experiment:
    return Experiment(
        name=f"mujoco-{task.lower()}",
        description=(
            f"MuJoCo POMDP {task}, PPO with linear RTU(192)/online LRU(84) RTRL vs "
            "GRU(64) TBPTT (about 24.9k recurrent parameters each)"
        ),
        env=EnvConfig(f"mujoco-pomdp/{task}", 1),
        # The RTU paper's released MuJoCo-P configs use the linear RTU.
        variants=_ppo_arms(linear_rtu=True),
        deviations=(TRUNCATION,),
        frames=200_000,
    )


def _popgym(task: str) -> Experiment:
    return Experiment(
        name=f"popgym-{task.lower()}",
        description=(
            f"POPGym {task}, PPO with RTU(192)/online LRU(84) RTRL vs GRU(64) TBPTT "
            "(about 24.9k recurrent parameters each)"
        ),
        env=EnvConfig(f"popgym/{task}", 8),
        variants=_ppo_arms(rollout=256),
        deviations=(TRUNCATION,),
        frames=200_000,
    )


def _streaming() -> Experiment:
    # Elsayed et al. 2024's stream AC(lambda) recipe in full (StreamingACConfig's
    # defaults: separate actor and critic, sparse init, LayerNorm, observation
    # and reward normalisation, time input), each network with an eLSTM(128).
    cfg = ra.StreamingACConfig()
    net = cfg.network
    tbptt = dataclasses.replace(net, core=dataclasses.replace(net.core, method="tbptt"))
    return Experiment(
        name="streaming",
        description=(
            "stream AC(lambda) (Elsayed et al. 2024's recipe, one update per step, "
            "online RTRL eLSTM(128)) on a short delayed recall, against the same "
            "agent with one-step TBPTT"
        ),
        env=EnvConfig("memory/delayed-recall", 1, (("delay", 2), ("num_symbols", 2))),
        variants=(
            Variant("rtrl-online", cfg),
            Variant("tbptt", dataclasses.replace(cfg, network=tbptt)),
        ),
        frames=50_000,
        metric="success",
        chance=0.5,
        deviations=(
            TRUNCATION,
            "Elsayed et al.'s networks are feed-forward; here a recurrent core "
            "(online RTRL) sits between the two hidden layers of each network",
            "a Gaussian policy's log-std is a free parameter, where their code "
            "computes it from the state (not used by this discrete task)",
        ),
    )


#: MemoryChain lengths registered: the context bit is shown once and asked for
#: after ``memory_length`` steps; R2AC's rollout is 8 steps.
MEMORY_CHAIN_LENGTHS = (8, 32, 128)
MEMORY_CHAIN_M = 8


def _memory_chain(length: int) -> Experiment:
    # As the horizon study: no torso, eLSTM(32), so that the core's input
    # weights, not a truncated torso, carry the context across the rollouts.
    net = _mlp_net("elstm", 32, "rtrl", torso=())
    return Experiment(
        name=f"gymnax-memorychain-l{length}",
        description=(
            f"gymnax MemoryChain-bsuite, memory_length {length} (R2AC rollout "
            f"M = {MEMORY_CHAIN_M}): the context bit must be recalled "
            f"{length} steps later; eLSTM(32), RTRL vs TBPTT vs feedforward"
        ),
        env=EnvConfig("gymnax/MemoryChain-bsuite", 32, (("memory_length", length),)),
        variants=_r2ac_arms(net, MEMORY_CHAIN_M, learning_rate=5e-3),
        frames=2_000_000,
        metric="success",
        eval_episodes=256,
        chance=0.5,
    )


def _minatar(game: str) -> Experiment:
    net = _mlp_net("elstm", 128, "rtrl", torso=(256,))
    return Experiment(
        name=f"gymnax-{game.lower()}-minatar",
        description=(
            f"gymnax {game}-MinAtar (10x10 object channels, flattened), R2AC "
            "MLP(256) + eLSTM(128), M = 20: RTRL vs TBPTT vs feedforward"
        ),
        env=EnvConfig(f"gymnax/{game}-MinAtar", 32),
        variants=_r2ac_arms(net, 20, learning_rate=6e-4),
        frames=2_000_000,
        metric="return",
        eval_episodes=32,
    )


def _gymnax() -> Experiment:
    net = _mlp_net("elstm", 64, "rtrl", torso=(64,))
    return Experiment(
        name="gymnax",
        description=(
            "any gymnax environment (--env.name gymnax/<id>, --env.option "
            "KEY=VALUE for its EnvParams; default CartPole-v1): R2AC MLP(64) + "
            "eLSTM(64), M = 20, RTRL vs TBPTT vs feedforward"
        ),
        env=EnvConfig("gymnax/CartPole-v1", 16),
        variants=_r2ac_arms(net, 20, learning_rate=6e-4),
        frames=500_000,
        metric="return",
        eval_episodes=32,
    )


def _build() -> dict[str, Experiment]:
    exps = [_horizon(), _copy(), _trace()]
    exps += [_dmlab(level, m) for level in DMLAB_LEVELS[:2] for m in (10, 50, 100)]
    exps += [_dmlab(DMLAB_LEVELS[2], 100)]
    exps += [_atari(g) for g in ATARI_GAMES]
    exps += [_chaser(m) for m in (5, 50)]
    exps += [_mujoco(t) for t in ("Ant-P", "HalfCheetah-P", "Hopper-P", "Walker2d-P")]
    exps += [_popgym(t) for t in ("RepeatFirstMedium", "CountRecallMedium")]
    exps += [_streaming()]
    exps += [_memory_chain(n) for n in MEMORY_CHAIN_LENGTHS]
    exps += [_minatar("Breakout"), _gymnax()]
    return {e.name: e for e in exps}


EXPERIMENTS: dict[str, Experiment] = _build()
"""Every registered experiment, by name, in registration order."""


def list_experiments() -> tuple[str, ...]:
    """The registered names, in registration order."""
    return tuple(EXPERIMENTS)


def get_experiment(name: str) -> Experiment:
    """The experiment called ``name``.

    Raises:
        UnknownExperimentError: ``name`` is not registered; the message lists the
            closest names.
    """
    try:
        return EXPERIMENTS[name]
    except KeyError:
        close = difflib.get_close_matches(name, EXPERIMENTS, n=4, cutoff=0.5)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise UnknownExperimentError(
            f"unknown experiment {name!r}.{hint} `rtrl-bench list` shows all "
            f"{len(EXPERIMENTS)}."
        ) from None
