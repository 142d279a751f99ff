"""PPO and the streaming actor-critic learn; every agent trains with every core."""

import dataclasses

import equinox as eqx
import jax
import numpy as np
import pytest
from rtrl_agents_testenvs import (
    Box,
    DelayedRecall,
    Spec,
    ppo_recall_config,
    recall_config,
    recall_env,
)

import rtrl_agents as ra


def _rate(metrics, frac=0.2):
    n = len(metrics["episodes"])
    k = max(int(n * frac), 1)
    ret = np.asarray(metrics["episode_return_sum"])[-k:].sum()
    eps = np.asarray(metrics["episodes"])[-k:].sum()
    assert eps > 50
    return float(ret / eps)


def _ppo(method, traces, seq_len, env):
    return ra.ppo(ppo_recall_config(method, traces, seq_len), env.spec)


@pytest.mark.parametrize(
    ("method", "traces", "seq_len"),
    [("rtrl", "stale", 1), ("rtrl", "refresh", 1), ("tbptt", "stale", 8)],
)
def test_ppo_learns_a_short_recall(method, traces, seq_len):
    env = DelayedRecall(num_envs=8, delay=2)
    agent = _ppo(method, traces, seq_len, env)
    _, m = jax.jit(ra.make_train(agent, env, 150))(jax.random.PRNGKey(0))
    rate = _rate(m)
    print(f"PPO {method}/{traces}/L={seq_len} success: {rate:.3f}")
    assert rate > 0.85


def test_streaming_ac_learns_online_with_rtrl():
    # The full recipe (separate networks, sparse init, LayerNorm, observation
    # and reward normalisation, time input) on the streaming network at width
    # 32. Its first layer has 6 inputs, so sparsity 0.9 zeroes all its weights
    # (their formula); the LayerNorm's gradient brings it to life.
    env = DelayedRecall(num_envs=4, delay=1)
    cfg = ra.StreamingACConfig(
        network=ra.streaming_network(hidden_size=32),
        discount=0.9,
        actor_kappa=0.3,
        critic_kappa=0.3,
    )
    agent = ra.streaming_ac(cfg, env.spec)
    _, m = jax.jit(ra.make_train(agent, env, 8000))(jax.random.PRNGKey(0))
    rate = _rate(m, 0.1)
    print(f"streaming AC (online RTRL) success: {rate:.3f}")
    assert rate > 0.9


def _small_net(cell, method, reward_input=True):
    return ra.NetworkConfig(
        torso=ra.TorsoConfig(hidden_sizes=(8,), reward_input=reward_input),
        core=ra.CoreConfig(cell=cell, hidden_size=4, method=method),
    )


AGENTS = {
    "r2ac": lambda net, spec: ra.r2ac(
        ra.R2ACConfig(network=net, rollout_length=3), spec
    ),
    "ppo": lambda net, spec: ra.ppo(
        ra.PPOConfig(
            network=net,
            rollout_length=4,
            num_epochs=2,
            num_minibatches=2,
            sequence_length=2,
        ),
        spec,
    ),
    # At these widths (<= 9 inputs per layer) sparsity 0.9 zeroes every weight,
    # and such a network starts with no gradient but its output biases'.
    "streaming": lambda net, spec: ra.streaming_ac(
        ra.StreamingACConfig(network=net, sparse_init=False), spec
    ),
}


# The learning tests cover r2ac/ppo x rtrl/tbptt and streaming x rtrl-online;
# these fast cases cover the rest, the full matrix runs with --runslow.
FAST = [
    ("r2ac", "elstm", "rtrl-online"),
    ("r2ac", "none", "rtrl"),
    ("ppo", "elstm", "rtrl-online"),
    ("ppo", "none", "rtrl"),
    ("streaming", "elstm", "tbptt"),
    ("streaming", "none", "rtrl"),
]
MATRIX = [
    pytest.param(a, c, m, marks=[] if (a, c, m) in FAST else pytest.mark.slow)
    for a in sorted(AGENTS)
    for c, m in [
        ("elstm", "rtrl"),
        ("elstm", "rtrl-online"),
        ("elstm", "tbptt"),
        ("none", "rtrl"),
    ]
]


@pytest.mark.parametrize(("agent_name", "cell", "method"), MATRIX)
def test_every_agent_trains_with_every_core_method(agent_name, cell, method):
    env = DelayedRecall(num_envs=2, delay=2)
    agent = AGENTS[agent_name](_small_net(cell, method), env.spec)
    runner, m = jax.jit(ra.make_train(agent, env, 3))(jax.random.PRNGKey(0))
    assert int(runner.agent.update_count) == 3
    assert np.all(np.isfinite(np.asarray(m["loss"])))
    assert np.all(np.asarray(m["nonfinite_loss"]) == 0)
    before = ra.init_runner(agent, env, jax.random.PRNGKey(0)).agent.params
    moved = jax.tree.leaves(
        jax.tree.map(
            lambda a, b: float(np.max(np.abs(np.asarray(a) - np.asarray(b)))),
            eqx.filter(before, eqx.is_inexact_array),
            eqx.filter(runner.agent.params, eqx.is_inexact_array),
        )
    )
    assert max(moved) > 0


@pytest.mark.parametrize(
    "cell",
    [
        "lru",
        pytest.param("rtu", marks=pytest.mark.slow),
        pytest.param("gru", marks=pytest.mark.slow),
    ],
)
def test_r2ac_with_other_cells(cell):
    env = DelayedRecall(num_envs=2, delay=2)
    agent = AGENTS["r2ac"](_small_net(cell, "rtrl"), env.spec)
    _, m = jax.jit(ra.make_train(agent, env, 2))(jax.random.PRNGKey(0))
    assert np.all(np.isfinite(np.asarray(m["loss"])))


class _Continuous:
    """A one-step continuous task: reward -(a - target)^2, target in the obs."""

    def __init__(self, num_envs=4):
        self.spec = Spec((1,), Box((-2.0,), (2.0,), (1,)), num_envs)

    def reset(self, key):
        import jax.numpy as jnp

        n = self.spec.num_envs
        target = jax.random.uniform(key, (n, 1), minval=-1, maxval=1)
        from rtrl_agents_testenvs import TimeStep

        ts = TimeStep(
            target,
            jnp.zeros(n),
            jnp.zeros(n, bool),
            jnp.zeros(n, bool),
            jnp.ones(n, bool),
        )
        return (key, target, jnp.zeros(n, bool)), ts

    def step(self, state, action):
        import jax.numpy as jnp
        from rtrl_agents_testenvs import TimeStep

        key, target, last = state
        key, k = jax.random.split(key)
        n = self.spec.num_envs
        reward = jnp.where(last, 0.0, -jnp.sum((action - target) ** 2, -1))
        new_target = jax.random.uniform(k, (n, 1), minval=-1, maxval=1)
        target = jnp.where(last[:, None], new_target, target)
        term = ~last
        ts = TimeStep(target, reward, term, jnp.zeros(n, bool), last)
        return (key, target, term), ts


def test_ppo_with_a_gaussian_head_learns_a_continuous_task():
    env = _Continuous(num_envs=8)
    net = ra.NetworkConfig(
        torso=ra.TorsoConfig(hidden_sizes=(16,), reward_input=False),
        core=ra.CoreConfig(cell="rtu", hidden_size=8, method="rtrl"),
        heads=ra.HeadConfig(init_log_std=-0.5),
    )
    cfg = ra.PPOConfig(
        network=net, rollout_length=16, num_minibatches=4, learning_rate=3e-3
    )
    agent = ra.ppo(cfg, env.spec)
    _, m = jax.jit(ra.make_train(agent, env, 80))(jax.random.PRNGKey(0))
    ret = np.asarray(m["episode_return_sum"]) / np.maximum(np.asarray(m["episodes"]), 1)
    assert ret[-10:].mean() > ret[:10].mean() + 0.1
    assert ret[-10:].mean() > -0.3


def test_train_is_vmappable_over_seeds():
    env = DelayedRecall(num_envs=2, delay=2)
    agent = AGENTS["r2ac"](_small_net("elstm", "rtrl"), env.spec)
    keys = jax.random.split(jax.random.PRNGKey(0), 3)
    _, m = jax.jit(jax.vmap(ra.make_train(agent, env, 2)))(keys)
    loss = np.asarray(m["loss"])
    assert loss.shape == (3, 2)
    assert len(np.unique(loss[:, 0])) == 3


def test_impala_torso_shapes():
    torso = ra.ImpalaTorso(
        (4, 84, 84), ra.TorsoConfig(kind="impala"), key=jax.random.PRNGKey(0)
    )
    x = jax.ShapeDtypeStruct((4, 84, 84), np.uint8)
    assert eqx.filter_eval_shape(torso, x).shape == (256,)
    hwc = ra.ImpalaTorso(
        (72, 96, 3),
        ra.TorsoConfig(kind="impala", channels_first=False, fc_size=32),
        key=jax.random.PRNGKey(0),
    )
    x = jax.ShapeDtypeStruct((72, 96, 3), np.uint8)
    assert eqx.filter_eval_shape(hwc, x).shape == (32,)


def test_impala_torso_frames_equal_one_vmapped_call(x64):
    # On the CPU the learner's frames go through the torso a few steps at a time
    # (ImpalaTorso.frames): the same function, values and parameter gradients,
    # under vmap over streams as in the learner; float64.
    import jax.numpy as jnp

    k = 3  # not the default: the config's value is the one in force
    torso = ra.ImpalaTorso(
        (2, 12, 12),
        ra.TorsoConfig(
            kind="impala",
            channels=(3, 4),
            blocks_per_stage=1,
            fc_size=8,
            cpu_steps_per_call=k,
        ),
        key=jax.random.PRNGKey(0),
    )
    torso = jax.tree.map(
        lambda x: x.astype(jnp.float64) if eqx.is_inexact_array(x) else x, torso
    )
    T = 2 * k + 1  # two full calls and a partial one
    obs = jax.random.randint(jax.random.PRNGKey(1), (3, T, 2, 12, 12), 0, 256)
    obs = obs.astype(jnp.uint8)

    def loss(t, frames):
        return jnp.sum(jnp.sin(jax.vmap(frames, in_axes=(None, 0))(t, obs)))

    one_call = lambda t, o: jax.vmap(t)(o)  # noqa: E731
    split = lambda t, o: t.frames(o)  # noqa: E731
    np.testing.assert_allclose(
        jax.vmap(lambda o: torso.frames(o))(obs),
        jax.vmap(lambda o: one_call(torso, o))(obs),
        rtol=1e-12,
        atol=1e-12,
    )
    g_split = eqx.filter_grad(loss)(torso, split)
    g_one = eqx.filter_grad(loss)(torso, one_call)
    for a, b in zip(jax.tree.leaves(g_split), jax.tree.leaves(g_one), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)
    if jax.default_backend() == "cpu":  # three calls of the torso in the graph

        def convs(f, o):
            return str(jax.make_jaxpr(f)(o)).count("conv_general_dilated")

        assert convs(torso.frames, obs[0]) == 3 * convs(jax.vmap(torso), obs[0, :k])


def test_r2ac_with_the_impala_torso_updates():
    class Pixels(DelayedRecall):
        def __init__(self):
            super().__init__(num_envs=2, delay=1)
            self.spec = Spec((3, 12, 12), self.spec.action_space, 2)

        def _obs(self, key, t, cue):
            base = super()._obs(key, t, cue)
            img = (base[..., :3, None, None] * 255).astype(np.uint8)
            return jax.numpy.broadcast_to(img, (*t.shape, 3, 12, 12))

    env = Pixels()
    net = ra.NetworkConfig(
        torso=ra.TorsoConfig(
            kind="impala", channels=(4, 4), blocks_per_stage=1, fc_size=16
        ),
        core=ra.CoreConfig(cell="elstm", hidden_size=8),
    )
    agent = ra.r2ac(ra.R2ACConfig(network=net, rollout_length=3), env.spec)
    _, m = jax.jit(ra.make_train(agent, env, 2))(jax.random.PRNGKey(0))
    assert np.all(np.isfinite(np.asarray(m["loss"])))


@pytest.mark.parametrize(
    ("method", "stale_traces"),
    [("tbptt", "recompute"), ("rtrl", "recompute"), ("rtrl", "store")],
)
def test_ppo_stores_per_step_only_what_its_method_needs(method, stale_traces):
    # A dense GRU's RTRL traces are N x |theta| per stream: kept for every step
    # of a rollout they ran PPO out of memory. TBPTT needs the state alone, and
    # so does RTRL whose learner recomputes the stale traces' term.
    import dataclasses

    env = DelayedRecall(num_envs=2, delay=2)
    config = dataclasses.replace(ppo_recall_config(method), stale_traces=stale_traces)
    core = dataclasses.replace(config.network.core, cell="gru", hidden_size=16)
    network = dataclasses.replace(config.network, core=core)
    agent = ra.ppo(dataclasses.replace(config, network=network), env.spec)
    runner = ra.init_runner(agent, env, jax.random.PRNGKey(0))
    _, batch, _ = jax.eval_shape(lambda r: ra.collect(agent, env, r), runner)
    stored = batch.extras.carry
    nbytes = sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(stored))
    states = 2 * config.rollout_length * 16 * 4  # B x T x N float32
    if method == "tbptt" or stale_traces == "recompute":
        assert not stored.has_traces
        assert nbytes == states
    else:
        assert stored.has_traces
        assert nbytes > 1000 * states


def test_jitted_loop_with_chunked_trace_updates_equals_online(x64, monkeypatch):
    # make_train(trace_update="chunked"): every step advances the states alone
    # and the carry is recomputed once per rollout by a chunked unroll. Exact:
    # the parameters, the carry (traces included) and every metric after three
    # updates equal the online loop's (float64).
    import rtrl_agents._loop as loop

    env = recall_env(0, num_envs=4)
    agent = ra.r2ac(recall_config("rtrl", rollout_length=8), env.spec)
    key = jax.random.PRNGKey(3)
    recomputed = []

    def counted(net, batch):
        recomputed.append(True)
        return final_carry(net, batch)

    final_carry = loop.rollout_final_carry
    monkeypatch.setattr(loop, "rollout_final_carry", counted)
    runs = {}
    for t in ("online", "chunked"):
        runs[t] = jax.jit(ra.make_train(agent, env, 3, trace_update=t))(key)
        # The chunked loop (and it alone) recomputes the carry per rollout.
        assert bool(recomputed) == (t == "chunked")
    (a, ma), (b, mb) = runs["online"], runs["chunked"]
    traces = jax.tree.leaves(a.carry.traces)
    assert max(float(np.abs(t).max()) for t in traces) > 0
    for x, y in zip(
        jax.tree.leaves((a.agent.params, a.carry, ma)),
        jax.tree.leaves((b.agent.params, b.carry, mb)),
        strict=True,
    ):
        np.testing.assert_allclose(x, y, rtol=1e-9, atol=1e-12)
    # PPO's actor records each step's carry: chunked is refused in one line.
    ppo = ra.ppo(ppo_recall_config("rtrl"), env.spec)
    with pytest.raises(ValueError, match="offers no state-only actor step"):
        jax.eval_shape(ra.make_train(ppo, env, 1, trace_update="chunked"), key)
    with pytest.raises(ValueError, match="unknown trace update 'per-step'"):
        jax.eval_shape(ra.make_train(agent, env, 1, trace_update="per-step"), key)


def test_jitted_rollout_stores_each_steps_extras_where_the_host_loop_does():
    # The jitted loop writes the actor's extras (PPO storing the traces: each
    # step's carry with its traces) batch-major in place; the host loop stacks
    # what act returned, step by step. The two trajectories must be the same.
    config = dataclasses.replace(ppo_recall_config("rtrl"), stale_traces="store")
    env = recall_env(0, num_envs=4)
    agent = ra.ppo(config, env.spec)
    state = agent.init(jax.random.PRNGKey(1))
    keys = jax.random.split(jax.random.PRNGKey(2))
    host = ra.Actor(agent, recall_env(0, num_envs=4, host=True), *keys, state)
    pure = ra.Actor(agent, env, *keys, state)
    for _ in range(2):
        a, _ = host.rollout(state)
        b, _ = pure.rollout(state)
        assert b.extras.carry.has_traces
        assert b.extras.value.shape == (4, config.rollout_length)
        for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
            np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6)
    traces = jax.tree.leaves(b.extras.carry.traces)
    assert max(float(np.abs(t[:, 1:]).max()) for t in traces) > 0
