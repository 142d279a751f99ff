"""The host driver: TensorBoard and JSON metrics, checkpoints, resume, NaN guard,
and the host loop."""

import glob
import json
import os
import struct

import equinox as eqx
import jax
import numpy as np
import pytest
from rtrl_agents_testenvs import DelayedRecall, HostEnv, NaNReward

import rtrl_agents as ra


def _agent(env, method="rtrl", reward_clip=1.0):
    net = ra.NetworkConfig(
        torso=ra.TorsoConfig(hidden_sizes=(16,)),
        core=ra.CoreConfig(cell="elstm", hidden_size=8, method=method),
    )
    cfg = ra.R2ACConfig(network=net, rollout_length=4, reward_clip=reward_clip)
    return ra.r2ac(cfg, env.spec)


def _read_scalars(log_dir):
    """Parses the TFRecord event file with tensorboardX's protobufs."""
    from tensorboardX.proto import event_pb2

    (path,) = glob.glob(os.path.join(log_dir, "events.out.tfevents.*"))
    scalars = {}
    with open(path, "rb") as f:
        data = f.read()
    pos = 0
    while pos < len(data):
        (length,) = struct.unpack("<Q", data[pos : pos + 8])
        event = event_pb2.Event.FromString(data[pos + 12 : pos + 12 + length])
        pos += 12 + length + 4
        for v in event.summary.value:
            scalars.setdefault(v.tag, []).append((event.step, v.simple_value))
    return scalars


def test_tensorboard_and_jsonl_show_the_scalars(tmp_path):
    env = DelayedRecall(num_envs=4, delay=2)
    agent = _agent(env)
    log_dir = str(tmp_path / "run")
    result = ra.train(
        agent,
        env,
        jax.random.PRNGKey(0),
        ra.LoopConfig(num_updates=6, log_every=2),
        log_dir=log_dir,
        progress=True,
    )
    assert len(result.history) == 3
    scalars = _read_scalars(log_dir)
    for name in (
        "episode_return",
        "episode_length",
        "loss",
        "policy_loss",
        "baseline_loss",
        "entropy",
        "grad_norm",
        "learning_rate",
        "fps",
    ):
        assert f"train/{name}" in scalars, name
    steps = [s for s, _ in scalars["train/loss"]]
    assert steps == [32, 64, 96]  # frames: 2 updates x 4 steps x 4 envs each
    lr = [v for _, v in scalars["train/learning_rate"]]
    np.testing.assert_allclose(lr, 6e-4, rtol=1e-6)
    with open(os.path.join(log_dir, "metrics.jsonl")) as f:
        lines = [json.loads(x) for x in f]
    assert [x["step"] for x in lines] == steps
    np.testing.assert_allclose(
        [x["loss"] for x in lines], [v for _, v in scalars["train/loss"]], rtol=1e-6
    )


def _leaves(tree):
    return [np.asarray(x) for x in jax.tree.leaves(eqx.filter(tree, eqx.is_array))]


def test_resume_is_bit_for_bit(tmp_path):
    env = DelayedRecall(num_envs=4, delay=3)
    agent = _agent(env)
    key = jax.random.PRNGKey(1)
    whole = ra.train(agent, env, key, ra.LoopConfig(num_updates=12, log_every=3))
    ckpt = str(tmp_path / "ckpt")
    # Interrupted after 6 updates (a run configured for 6), then resumed to 12.
    ra.train(
        agent,
        env,
        key,
        ra.LoopConfig(num_updates=6, log_every=3, checkpoint_every=3),
        checkpoint_dir=ckpt,
    )
    resumed = ra.train(
        agent,
        env,
        key,
        ra.LoopConfig(num_updates=12, log_every=3, checkpoint_every=3),
        checkpoint_dir=ckpt,
        resume=True,
        allow_config_change=True,  # 6 -> 12 updates: an explicit extension
    )
    assert len(resumed.history) == 2  # only updates 7..12 ran
    a, b = _leaves(whole.state), _leaves(resumed.state)
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)
    # The traces were restored, not re-initialised: they are non-zero.
    traces = jax.tree.leaves(resumed.state.carry.traces)
    assert any(np.abs(np.asarray(t)).max() > 0 for t in traces)
    assert whole.history[-1]["loss"] == resumed.history[-1]["loss"]


def test_keeps_the_last_n_checkpoints(tmp_path):
    env = DelayedRecall(num_envs=2, delay=2)
    ckpt = str(tmp_path / "ckpt")
    ra.train(
        _agent(env),
        env,
        jax.random.PRNGKey(0),
        ra.LoopConfig(
            num_updates=8, log_every=2, checkpoint_every=2, keep_checkpoints=2
        ),
        checkpoint_dir=ckpt,
    )
    assert ra.Checkpointer(ckpt).all_steps() == [6, 8]


def test_nan_guard_names_the_update_and_keeps_last_good_checkpoint(tmp_path):
    # Rewards turn NaN at env step 21, i.e. in the 6th update (4 steps each).
    env = NaNReward(DelayedRecall(num_envs=2, delay=2), at=21)
    agent = _agent(env, reward_clip=None)
    ckpt = str(tmp_path / "ckpt")
    with pytest.raises(ra.NonFiniteError, match=r"non-finite loss at update 6"):
        ra.train(
            agent,
            env,
            jax.random.PRNGKey(0),
            ra.LoopConfig(num_updates=10, log_every=2, checkpoint_every=2),
            checkpoint_dir=ckpt,
        )
    manager = ra.Checkpointer(ckpt)
    assert manager.latest_step() == 4
    restored = manager.restore(ra.init_runner(agent, env, jax.random.PRNGKey(0)))
    assert all(np.all(np.isfinite(x)) for x in _leaves(restored.agent.params))


def test_host_loop_matches_the_jitted_loop():
    env = DelayedRecall(num_envs=4, delay=3)
    agent = _agent(env)
    host = HostEnv(env)
    cfg = ra.LoopConfig(num_updates=4, log_every=2)
    a = ra.train(agent, env, jax.random.PRNGKey(2), cfg)
    b = ra.train(_agent(host), host, jax.random.PRNGKey(2), cfg)
    assert set(a.history[0]) == set(b.history[0])
    for ha, hb in zip(a.history, b.history, strict=True):
        for k in ("loss", "episode_return", "frames", "grad_norm"):
            np.testing.assert_allclose(ha[k], hb[k], rtol=1e-4, atol=1e-5)
