"""Bad configurations fail at construction, before any compilation; the API."""

import dataclasses

import pytest
from rtrl_agents_testenvs import Box, DelayedRecall, Spec

import rtrl_agents as ra


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: ra.CoreConfig(hidden_size=0), "hidden_size must be a positive int"),
        (lambda: ra.CoreConfig(hidden_size=-3), "hidden_size must be a positive int"),
        (lambda: ra.CoreConfig(method="bptt-full"), "method='bptt-full' is unknown"),
        (lambda: ra.CoreConfig(cell="transformer"), "cell='transformer' is unknown"),
        (lambda: ra.CoreConfig(r_min=0.9, r_max=0.5), "r_min=0.9 exceeds"),
        (
            lambda: ra.TorsoConfig(hidden_sizes=(8, 0)),
            "hidden_sizes must be a positive",
        ),
        (lambda: ra.TorsoConfig(kind="cnn"), "kind='cnn' is unknown"),
        (
            lambda: ra.TorsoConfig(cpu_steps_per_call=0),
            "cpu_steps_per_call must be a positive",
        ),
        (lambda: ra.R2ACConfig(rollout_length=0), "rollout_length must be a positive"),
        (lambda: ra.R2ACConfig(discount=1.5), "discount=1.5 must lie in"),
        (lambda: ra.R2ACConfig(learning_rate=0.0), "learning_rate must be a positive"),
        (lambda: ra.PPOConfig(traces="fresh"), "traces='fresh' is unknown"),
        (
            lambda: ra.PPOConfig(rollout_length=10, sequence_length=3),
            "sequence_length=3 must divide",
        ),
        (lambda: ra.StreamingACConfig(trace_lambda=2.0), "trace_lambda=2.0 must lie"),
        (lambda: ra.LoopConfig(num_updates=0), "num_updates must be a positive"),
        (
            lambda: ra.LoopConfig(log_every=4, checkpoint_every=6),
            "checkpoint_every=6 must be a multiple",
        ),
        (lambda: ra.HeadConfig(distribution="beta"), "distribution='beta' is unknown"),
    ],
)
def test_bad_configs_raise_at_construction(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_configs_are_frozen():
    cfg = ra.R2ACConfig()
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.rollout_length = 3  # type: ignore[misc]


def test_seed_defaults():
    r = ra.R2ACConfig()
    assert (r.learning_rate, r.rms_decay, r.rms_eps) == (6e-4, 0.99, 0.01)
    assert (r.entropy_cost, r.baseline_cost, r.discount) == (0.01, 0.5, 0.99)
    assert (r.reward_clip, r.max_grad_norm, r.clip_rho, r.clip_c) == (1.0, 40.0, 1, 1)
    assert r.network.torso.kind == "impala" and r.network.core.cell == "elstm"
    p = ra.PPOConfig()
    assert (p.rollout_length, p.num_epochs, p.num_minibatches) == (2048, 4, 32)
    assert (p.learning_rate, p.max_grad_norm, p.clip_eps) == (1e-4, 0.5, 0.2)
    assert (p.gae_lambda, p.traces, p.entropy_cost) == (0.95, "stale", 0.0)
    assert p.network.core.cell == "rtu" and p.network.core.hidden_size == 192


def test_action_space_the_head_cannot_serve():
    env = DelayedRecall(num_envs=2)
    net = ra.NetworkConfig(
        torso=ra.TorsoConfig(hidden_sizes=(4,)),
        core=ra.CoreConfig(hidden_size=4),
        heads=ra.HeadConfig(distribution="gaussian"),
    )
    with pytest.raises(ValueError, match="cannot serve a discrete action space"):
        ra.r2ac(ra.R2ACConfig(network=net), env.spec)
    odd = Spec((3,), object(), 2)
    with pytest.raises(ValueError, match="neither discrete"):
        ra.r2ac(
            ra.R2ACConfig(network=dataclasses.replace(net, heads=ra.HeadConfig())), odd
        )
    cont = Spec((3,), Box((-1.0,), (1.0,), (1,)), 2)
    with pytest.raises(ValueError, match="cannot serve a continuous"):
        ra.ppo(
            ra.PPOConfig(
                network=dataclasses.replace(
                    net, heads=ra.HeadConfig(distribution="categorical")
                ),
                rollout_length=4,
                num_minibatches=2,
            ),
            cont,
        )


def test_impala_torso_needs_images():
    env = DelayedRecall(num_envs=2)
    with pytest.raises(ValueError, match="needs image observations"):
        ra.r2ac(ra.R2ACConfig(), env.spec)


def test_ppo_minibatches_must_divide_the_rollout():
    env = DelayedRecall(num_envs=3)
    with pytest.raises(ValueError, match="do not split into num_minibatches=4"):
        ra.ppo(ra.PPOConfig(rollout_length=5, num_minibatches=4), env.spec)


def test_checkpoint_every_needs_a_directory():
    env = DelayedRecall(num_envs=2)
    net = ra.NetworkConfig(
        torso=ra.TorsoConfig(hidden_sizes=(4,)), core=ra.CoreConfig(hidden_size=4)
    )
    agent = ra.r2ac(ra.R2ACConfig(network=net, rollout_length=2), env.spec)
    with pytest.raises(ValueError, match="no checkpoint_dir"):
        ra.train(
            agent,
            env,
            None,
            ra.LoopConfig(num_updates=2, log_every=2, checkpoint_every=2),
        )


def test_public_api_is_pinned():
    assert sorted(ra.__all__) == sorted(
        [
            # Agents: factories of pure functions over typed states.
            "AbstractAgentState",
            "AbstractOptimizedState",
            "Agent",
            "AgentConfig",
            "Hyperparams",
            "make_agent",
            "r2ac",
            "R2ACState",
            "r2ac_loss",
            "r2ac_stream_loss",
            "linear_decay",
            "ppo",
            "PPOState",
            "PPOExtras",
            "PPOMinibatch",
            "ppo_loss",
            "streaming_ac",
            "StreamingACState",
            "StreamingCarry",
            "streaming_inputs",
            "StepSizes",
            "EligibilityTraces",
            "apply_gradients",
            "guard_nonfinite",
            "take_hyperparams",
            "track_episodes",
            "episode_sums",
            # Networks.
            "AbstractRecurrentNet",
            "AbstractTorsoNet",
            "ActorCriticCarry",
            "ActorCriticNet",
            "PolicyNet",
            "ValueNet",
            "SeparateActorCriticNet",
            "layer_norm",
            "sparse_linear",
            "ActorOutput",
            "CategoricalHead",
            "GaussianHead",
            "ImpalaTorso",
            "IMPALA_CPU_STEPS_PER_CALL",
            "MLPTorso",
            "ValueHead",
            # Configs.
            "CoreConfig",
            "HeadConfig",
            "LoopConfig",
            "NetworkConfig",
            "PPOConfig",
            "R2ACConfig",
            "StreamingACConfig",
            "SequenceLearnerConfig",
            "TDPredictorConfig",
            "TorsoConfig",
            "impala_network",
            "rtu_ppo_network",
            "streaming_network",
            # Losses (RLax style).
            "eligibility_trace",
            "gae",
            "obgd_scale",
            "ppo_clip_loss",
            "ppo_value_loss",
            "transitions",
            "vtrace",
            "vtrace_actor_critic_loss",
            # Prediction learners.
            "CumulantBatch",
            "Learner",
            "PredictionNet",
            "SequenceBatch",
            "SequenceLearnerState",
            "TDPredictorState",
            "run_stream",
            "sequence_learner",
            "sequence_loss",
            "td_predictor",
            # Normalisers.
            "RewardScaler",
            "RunningMeanStd",
            "normalize",
            "reward_scaler_init",
            "running_mean_std_init",
            "running_mean_std_update",
            "scale_rewards",
            "SampleMoments",
            "sample_moments_init",
            "sample_moments_update",
            "standardize",
            "ReturnScaler",
            "return_scaler_init",
            "scale_reward_step",
            "episode_time",
            # Loops, actors, the driver, Ray.
            "Actor",
            "DistributedConfig",
            "EnvSpecLike",
            "EnvironmentLike",
            "RolloutWorker",
            "RunnerState",
            "TimeStepLike",
            "TrainResult",
            "Trajectory",
            "actor_name",
            "collect",
            "concat_rollouts",
            "host_params",
            "init_runner",
            "make_train",
            "rollout_final_carry",
            "run_updates",
            "summarise",
            "train",
            "train_distributed",
            # Logging.
            "JsonlWriter",
            "MetricWriter",
            "MultiWriter",
            "ProgressBar",
            "TensorBoardWriter",
            "default_writers",
            # The run record (config.json, checked checkpoints, exact resume).
            "CheckpointMismatchError",
            "CheckpointNotReadableError",
            "CheckpointWarning",
            "Checkpointer",
            "ConfigMismatchError",
            "NonFiniteError",
            "Restored",
            "RunExistsError",
            "RunInUseError",
            "RunLock",
            "RunRecord",
            "array_paths",
            "config_diff",
            "config_from_json",
            "config_to_json",
            "default_run_config",
            "format_diff",
            "holds_run",
            "initial_run_state",
            "open_writers",
            "read_metrics",
            "read_run_config",
        ]
    )
    for name in ra.__all__:
        assert hasattr(ra, name), name


def test_assigning_the_default_steps_per_call_fails_loudly():
    # The constant is only TorsoConfig.cpu_steps_per_call's default: assigning
    # it used to change nothing, silently.
    with pytest.raises(AttributeError, match=r"TorsoConfig\(cpu_steps_per_call="):
        ra.IMPALA_CPU_STEPS_PER_CALL = 2  # type: ignore[misc]
    assert ra.IMPALA_CPU_STEPS_PER_CALL == ra.TorsoConfig().cpu_steps_per_call == 4
