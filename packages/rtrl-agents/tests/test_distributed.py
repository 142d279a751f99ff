"""The distributed R2AC on a real local Ray cluster (loopback only).

The module starts one Ray head node on 127.0.0.1 with ``ray start`` and every
test joins it by address, as a user joins a real cluster. Skipped, with the
reason, where Ray is not installed (``pip install 'rtrl-agents[ray]'``).
"""

from __future__ import annotations

import dataclasses
import functools
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from rtrl_agents_testenvs import (
    hanging_env,
    ppo_recall_config,
    recall_config,
    recall_env,
)

import rtrl_agents as ra
import rtrl_cells as rc

ray = pytest.importorskip("ray", reason="needs the ray extra: rtrl-agents[ray]")

TESTS = Path(__file__).parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def cluster():
    """A one-node Ray cluster on loopback; yields its address."""
    port = _free_port()
    env = dict(os.environ)
    # Actors import this test module's environments and run JAX on the CPU.
    env["PYTHONPATH"] = os.pathsep.join(
        [str(TESTS), *filter(None, [env.get("PYTHONPATH")])]
    )
    env["JAX_PLATFORMS"] = "cpu"
    env["RAY_USAGE_STATS_ENABLED"] = "0"
    # Actors at the learner's priority (Ray nices workers to 15 by default, which
    # starves them next to the learner on a 2-core machine).
    env["RAY_worker_niceness"] = "0"
    ray_cli = [sys.executable, "-m", "ray.scripts.scripts"]
    subprocess.run(
        [
            *ray_cli,
            "start",
            "--head",
            "--node-ip-address=127.0.0.1",
            f"--port={port}",
            "--num-cpus=4",
            "--include-dashboard=false",
            "--disable-usage-stats",
        ],
        check=True,
        env=env,
        capture_output=True,
    )
    try:
        yield f"127.0.0.1:{port}"
    finally:
        if ray.is_initialized():
            ray.shutdown()
        subprocess.run([*ray_cli, "stop", "--force"], env=env, capture_output=True)


def _success(history, tail=0.2):
    tail = history[-max(1, int(len(history) * tail)) :]
    ret = sum(h.get("episode_return", 0.0) * h["episodes"] for h in tail)
    return ret / max(sum(h["episodes"] for h in tail), 1.0)


class _KillActor:
    """A metric writer that kills one actor (by its Ray name) at a report."""

    def __init__(self, name: str, at_report: int):
        self.name, self.at, self.reports, self.killed = name, at_report, 0, False

    def write(self, step, scalars):
        self.reports += 1
        if self.reports == self.at:
            ray.kill(ray.get_actor(self.name), no_restart=True)
            self.killed = True

    def close(self):
        pass


def test_two_actors_learn_delayed_recall_and_survive_a_killed_actor(cluster):
    # The single-machine learning test's task and agent (delay 8 > M = 4, so only
    # RTRL can learn it), as 2 actors x 16 streams, 2 rollouts per update: the
    # learner sees 32 streams per update as the single-machine R2AC does.
    updates = 8000
    killer = _KillActor(ra.actor_name("recall", 0, 0), at_report=8)
    result = ra.train_distributed(
        recall_config("rtrl", updates=updates),
        recall_env,
        jax.random.PRNGKey(0),
        ra.LoopConfig(num_updates=updates, log_every=400),
        ra.DistributedConfig(num_actors=2, rollouts_per_update=2, max_in_flight=2),
        address=cluster,
        writers=killer,
        name="recall",
    )
    assert killer.killed
    last = result.history[-1]
    assert last["updates"] == updates
    assert last["actor_restarts"] == 1
    rate = _success(result.history)
    print(f"distributed R2AC RTRL success {rate:.3f}; last report {last}")
    assert rate > 0.9
    assert 0.0 < last["learner_share"] < 1.0
    assert last["policy_lag"] >= 0.0


def test_ppo_learns_on_ray_actors_and_survives_a_killed_actor(cluster):
    # The single-machine PPO learning test's task and agent (delay 2, RTRL eLSTM,
    # single-step sequences), as 2 actors x 4 streams: one rollout of each actor
    # per update, in the actors' order (PPO's reward scaler keeps per-stream
    # returns), so the learner sees the 8 streams of the single-machine test.
    updates = 150
    # Actors lag the learner: PPO reads the traces they stored.
    killer = _KillActor(ra.actor_name("ppo", 1, 0), at_report=5)
    result = ra.train_distributed(
        dataclasses.replace(ppo_recall_config(), stale_traces="store"),
        functools.partial(recall_env, num_envs=4, delay=2),
        jax.random.PRNGKey(0),
        ra.LoopConfig(num_updates=updates, log_every=10),
        ra.DistributedConfig(num_actors=2, rollouts_per_update=2, max_in_flight=2),
        address=cluster,
        writers=killer,
        name="ppo",
    )
    assert killer.killed
    last = result.history[-1]
    assert last["updates"] == updates
    assert last["actor_restarts"] == 1
    rate = _success(result.history)
    print(f"distributed PPO RTRL success {rate:.3f}; last report {last}")
    assert rate > 0.85
    assert 0.0 < last["learner_share"] < 1.0
    # Rollouts wait for the other actor's, but never pile up: the queue stays
    # bounded, so the parameters they were collected with stay recent.
    assert last["policy_lag"] <= 3.0
    # The learner's state holds the reward scaler of all 8 streams.
    assert result.state.agent.reward_scaler.returns.shape == (8,)


def test_per_stream_agents_need_one_rollout_of_each_actor(cluster):
    with pytest.raises(ValueError, match="set rollouts_per_update=2"):
        ra.train_distributed(
            ppo_recall_config(),
            functools.partial(recall_env, num_envs=4, delay=2),
            jax.random.PRNGKey(0),
            ra.LoopConfig(num_updates=2, log_every=1),
            ra.DistributedConfig(num_actors=2, rollouts_per_update=1),
            address=cluster,
        )
    with pytest.raises(ValueError, match="use actor_traces='online'"):
        ra.train_distributed(
            ppo_recall_config(),
            functools.partial(recall_env, num_envs=4, delay=2),
            jax.random.PRNGKey(0),
            ra.LoopConfig(num_updates=2, log_every=1),
            ra.DistributedConfig(
                num_actors=2, rollouts_per_update=2, actor_traces="chunked"
            ),
            address=cluster,
        )
    # Recomputed stale traces need the parameters that acted.
    with pytest.raises(ValueError, match="use stale_traces='store'"):
        ra.train_distributed(
            ppo_recall_config(),
            functools.partial(recall_env, num_envs=4, delay=2),
            jax.random.PRNGKey(0),
            ra.LoopConfig(num_updates=2, log_every=1),
            ra.DistributedConfig(num_actors=2, rollouts_per_update=2),
            address=cluster,
        )


@pytest.mark.parametrize("host", [False, True], ids=["jax-env", "host-env"])
def test_shipped_rollouts_and_the_learner_gradient_match_one_machine(cluster, host):
    config = recall_config("rtrl")
    env_fn = functools.partial(recall_env, num_envs=4, host=host)
    env = env_fn(0)
    agent = ra.r2ac(config, env.spec)
    state = agent.init(jax.random.PRNGKey(3))
    params = ra.host_params(state)
    ray.init(address=cluster)
    try:
        worker = ray.remote(ra.RolloutWorker).remote(config, env_fn, 7)
        worker.set_params.remote(0, ray.put(params))
        shipped = [ray.get(worker.rollout.remote())[1] for _ in range(2)]
    finally:
        ray.shutdown()
    # The single-machine loop's rollouts from the same keys and parameters.
    k_init, k_env, k_act = jax.random.split(jax.random.PRNGKey(7), 3)
    del k_init
    actor = ra.Actor(agent, env, k_env, k_act, state)
    local = [actor.rollout(state)[0] for _ in range(2)]
    for a, b in zip(shipped, local, strict=True):
        for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
            np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    # The second rollout starts from carried, non-zero RTRL traces.
    traces = jax.tree.leaves(shipped[1].carry_0.traces)
    assert max(float(np.abs(t).max()) for t in traces) > 0

    def grads(batch):
        batch = jax.tree.map(jnp.asarray, batch)
        return eqx.filter_grad(lambda p: ra.r2ac_loss(p, batch, config)[0])(
            state.params
        )

    # The learner's gradient on the shipped batch of both rollouts (as
    # concatenated from two actors) equals the single-machine gradient.
    g_learner = grads(
        ra.concat_rollouts([jax.tree.map(jnp.asarray, b) for b in shipped])
    )
    g_local = jax.tree.map(lambda a, b: a + b, grads(local[0]), grads(local[1]))
    for x, y in zip(jax.tree.leaves(g_learner), jax.tree.leaves(g_local), strict=True):
        np.testing.assert_allclose(x, y, rtol=2e-5, atol=1e-6)


def test_ctrl_c_writes_a_checkpoint_and_stops_the_actors_then_resume(cluster, tmp_path):
    class _Interrupt:
        def __init__(self):
            self.reports = 0

        def write(self, step, scalars):
            self.reports += 1
            if self.reports == 3:
                raise KeyboardInterrupt

        def close(self):
            pass

    ckpt = str(tmp_path / "ckpt")
    loop = ra.LoopConfig(num_updates=40, log_every=4, checkpoint_every=8)
    cfg = ra.DistributedConfig(num_actors=2)
    ray.init(address=cluster)  # already connected: train_distributed joins it
    try:
        with pytest.raises(KeyboardInterrupt):
            ra.train_distributed(
                recall_config("rtrl"),
                recall_env,
                jax.random.PRNGKey(0),
                loop,
                cfg,
                writers=_Interrupt(),
                checkpoint_dir=ckpt,
                name="interrupted",
            )
        # The interrupt came in the report of update 12, between the checkpoints
        # at 8 and 16: the state of the last completed report (8) is kept, so
        # that checkpoint and logs agree.
        assert ra.Checkpointer(ckpt).latest_step() == 8
        for i in range(2):
            deadline = time.time() + 30
            while True:
                try:
                    ray.get_actor(ra.actor_name("interrupted", i))
                except ValueError:
                    break
                assert time.time() < deadline, f"actor {i} still alive"
                time.sleep(0.2)
        resumed = ra.train_distributed(
            recall_config("rtrl"),
            recall_env,
            jax.random.PRNGKey(0),
            loop,
            cfg,
            checkpoint_dir=ckpt,
            name="resumed",
            resume=True,
        )
    finally:
        ray.shutdown()
    assert resumed.history[0]["updates"] == 12
    assert resumed.history[-1]["updates"] == 40
    assert resumed.history[-1]["frames"] == 40 * 4 * 16


def test_a_stuck_actor_times_out_with_a_message(cluster):
    with pytest.raises(TimeoutError, match="no rollout arrived within 3 s"):
        ra.train_distributed(
            recall_config("rtrl"),
            hanging_env,
            jax.random.PRNGKey(0),
            ra.LoopConfig(num_updates=2, log_every=1),
            ra.DistributedConfig(num_actors=1, queue_timeout_s=3.0),
            address=cluster,
        )


def _assert_same_rollouts(actor_a, actor_b, state, rtol, atol, rounds=3):
    """Both actors' rollouts (same actions) and final carries agree."""
    for _ in range(rounds):
        a, _ = actor_a.rollout(state)
        b, _ = actor_b.rollout(state)
        np.testing.assert_array_equal(a.action, b.action)
        for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
            np.testing.assert_allclose(
                np.asarray(x, np.float64), np.asarray(y, np.float64), rtol, atol
            )
    for x, y in zip(
        jax.tree.leaves(actor_a.carry), jax.tree.leaves(actor_b.carry), strict=True
    ):
        np.testing.assert_allclose(x, y, rtol=rtol, atol=atol)


@pytest.mark.parametrize("host", [False, True], ids=["jax-env", "host-env"])
def test_chunked_actor_traces_equal_online_ones(host):
    config = recall_config("rtrl")
    env = recall_env(0, num_envs=4, host=host)
    agent = ra.r2ac(config, env.spec)
    state = agent.init(jax.random.PRNGKey(1))
    keys = jax.random.split(jax.random.PRNGKey(2))
    online = ra.Actor(agent, env, *keys, state, trace_update="online")
    chunked = ra.Actor(agent, env, *keys, state, trace_update="chunked")
    _assert_same_rollouts(online, chunked, state, rtol=1e-4, atol=1e-5)
    assert max(float(jnp.abs(t).max()) for t in jax.tree.leaves(online.carry)) > 0


@pytest.mark.parametrize("method", ["tbptt", "rtrl"])
def test_state_only_host_actor_equals_the_jitted_loop(method):
    # On a host environment, a TBPTT core (or an RTRL core whose traces are
    # updated chunked) is stepped by a jitted call that returns the states alone,
    # the traces put back around it. Its rollouts and carries must equal those of
    # the jitted loop on the same environment in JAX.
    config = recall_config(method)
    agent = ra.r2ac(config, recall_env(0, num_envs=4).spec)
    state = agent.init(jax.random.PRNGKey(1))
    keys = jax.random.split(jax.random.PRNGKey(2))
    host_env = recall_env(0, num_envs=4, host=True)
    host = ra.Actor(agent, host_env, *keys, state, trace_update="chunked")
    pure = ra.Actor(
        agent, recall_env(0, num_envs=4), *keys, state, trace_update="chunked"
    )
    _assert_same_rollouts(host, pure, state, rtol=1e-5, atol=1e-6)
    assert isinstance(host.carry, rc.RTRLCarry)
    # A TBPTT core carries no traces at all; an RTRL core's move.
    assert host.carry.has_traces == (method == "rtrl")
    if method == "rtrl":
        traces = jax.tree.leaves(host.carry.traces)
        assert max(float(jnp.abs(t).max()) for t in traces) > 0


def test_bad_distributed_configs():
    with pytest.raises(ValueError, match="num_actors must be a positive int"):
        ra.DistributedConfig(num_actors=0)
    with pytest.raises(ValueError, match="actor_traces must be 'online' or"):
        ra.DistributedConfig(actor_traces="per-step")
    with pytest.raises(ValueError, match="max_in_flight must be an int >= num_a"):
        ra.DistributedConfig(num_actors=3, max_in_flight=2)
    with pytest.raises(ValueError, match="queue_timeout_s must be > 0"):
        ra.DistributedConfig(queue_timeout_s=0)
