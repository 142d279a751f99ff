"""``rtrl-bench e2e``: whole jitted training runs, ours against PureJaxRL's.

PureJaxRL (Lu et al. 2022) made "the whole training run is one jitted function"
the standard of speed for RL in JAX; its ``ppo_rnn.py`` (PPO with a GRU trained
by BPTT over the whole rollout) is the anchor here. Its structure is re-written
below in plain JAX and Equinox (not imported: PureJaxRL is not a package, and
Flax is not a dependency of this project), then timed side by side with this
project's agents on the same gymnax environment, streams and rollout:

* ``purejaxrl``: PureJaxRL's PPO-RNN, GRU(128), BPTT over the rollout;
* ``ppo-gru-tbptt``: our PPO, GRU(128), TBPTT over the rollout;
* ``ppo-elstm-seq``: our PPO, eLSTM(176), RTRL, one sequence per rollout;
* ``ppo-elstm-step``: our PPO, eLSTM(176), RTRL, single-step samples re-stepped
  from the stored states with the actor's stale traces (the RTU paper's
  recipe; their term recomputed per minibatch, ``stale_traces="recompute"``);
* ``ppo-rtu-step``: the same with the non-linear RTU(384);
* ``r2ac-elstm``: our R2AC, eLSTM(176), RTRL, the actor's traces advanced
  online (every step);
* ``r2ac-elstm-chunked``: the same with the actor's traces advanced chunked
  (``make_train(..., trace_update="chunked")``: states every step, the carry
  recomputed once per rollout; exact as well).

The recurrent widths give every core about 99k parameters on a 128-wide input.
Every system has the same network around its core (Dense 128 relu, heads with
one hidden layer of 128 relu, orthogonal initialisation) and PPO's settings are
PureJaxRL's (4 epochs, 4 minibatches, clip 0.2, value clip, entropy 0.01, Adam
2.5e-4, no observation or reward normalisation).

Each system's ``train(key)`` (``updates`` updates from a fresh start) is jitted
and compiled first; then the systems are timed round by round, interleaved,
and the median is reported as environment steps per second of the whole loop
(acting, environment, learning), with the compiler's temporary and output
buffer sizes (``memory_analysis()``).
"""

from __future__ import annotations

import dataclasses
import functools
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax

#: The environment of the comparison (gymnax id).
ENV_ID = "MemoryChain-bsuite"
#: The anchor system: ratios are to it.
ANCHOR = "purejaxrl"


@dataclasses.dataclass(frozen=True)
class E2ESettings:
    """The shared settings of a comparison.

    Attributes:
        num_envs: parallel environments (PureJaxRL's ``NUM_ENVS``).
        num_steps: rollout length (``NUM_STEPS``); each update sees
            ``num_envs * num_steps`` environment steps.
        updates: updates per timed call of ``train``.
        runs: timed calls per system (after compilation).
        width: every width (embedding, heads, recurrent cores) is multiplied
            by this; 1.0 is the comparison, smaller is for tests.
        seed: PRNG seed of the first timed call (later calls add the round).
    """

    num_envs: int = 16
    num_steps: int = 128
    updates: int = 16
    runs: int = 5
    width: float = 1.0
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("num_envs", "num_steps", "updates", "runs"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(
                    f"e2e: {name} must be a positive integer, got {value!r}."
                )
        if not self.width > 0:
            raise ValueError(f"e2e: width must be positive, got {self.width!r}.")
        if self.num_envs % 4:
            raise ValueError(
                f"e2e: num_envs={self.num_envs} must be a multiple of 4 (PPO's 4 "
                "minibatches split the environments)."
            )

    def size(self, n: int) -> int:
        """A width of the comparison, scaled by :attr:`width` (at least 2)."""
        return max(2, round(n * self.width))


@dataclasses.dataclass(frozen=True)
class E2ERow:
    """One system's throughput.

    Attributes:
        system: the system's name (module docstring).
        description: what it is, in words.
        recurrent_params: parameters of the recurrent core.
        steps_per_s: median environment steps per second of ``train``.
        ratio: ``steps_per_s`` over the anchor's (``nan`` without the anchor).
        temp_mb: XLA temporary buffers of the compiled ``train``, MB (1e6 bytes).
        output_mb: its output buffers, MB.
        compile_s: seconds to lower and compile ``train``.
        runs: timed calls.
    """

    system: str
    description: str
    recurrent_params: int
    steps_per_s: float
    ratio: float
    temp_mb: float
    output_mb: float
    compile_s: float
    runs: int


# --- PureJaxRL's ppo_rnn.py, re-written -------------------------------------


def _orthogonal_dense(d_in: int, d_out: int, gain: float, key) -> eqx.nn.Linear:
    layer = eqx.nn.Linear(d_in, d_out, key=key)
    w = jax.nn.initializers.orthogonal(gain)(key, (d_out, d_in), jnp.float32)
    return eqx.tree_at(lambda m: (m.weight, m.bias), layer, (w, jnp.zeros((d_out,))))


class PureJaxRLNet(eqx.Module):
    """PureJaxRL's ``ActorCriticRNN``: Dense 128 relu -> GRU (reset where
    ``done``) -> actor Dense 128 relu -> logits, critic Dense 128 relu -> value."""

    embedding: eqx.nn.Linear
    gru: eqx.nn.GRUCell
    actor_hidden: eqx.nn.Linear
    actor_out: eqx.nn.Linear
    critic_hidden: eqx.nn.Linear
    critic_out: eqx.nn.Linear

    def __init__(self, obs_dim: int, num_actions: int, width: int, hidden: int, key):
        k = jax.random.split(key, 6)
        self.embedding = _orthogonal_dense(obs_dim, width, float(np.sqrt(2)), k[0])
        self.gru = eqx.nn.GRUCell(width, hidden, key=k[1])
        self.actor_hidden = _orthogonal_dense(hidden, width, 2.0, k[2])
        self.actor_out = _orthogonal_dense(width, num_actions, 0.01, k[3])
        self.critic_hidden = _orthogonal_dense(hidden, width, 2.0, k[4])
        self.critic_out = _orthogonal_dense(width, 1, 1.0, k[5])

    def __call__(self, h, obs, done):
        """``h (B, H)``, ``obs (T, B, O)``, ``done (T, B)`` -> ``(h_T, logits
        (T, B, A), values (T, B))`` (ScannedRNN's reset, then GRUCell)."""
        x = jax.nn.relu(jax.vmap(jax.vmap(self.embedding))(obs))

        def step(h, inp):
            x_t, done_t = inp
            h = jnp.where(done_t[:, None], jnp.zeros_like(h), h)
            h = jax.vmap(self.gru)(x_t, h)
            return h, h

        h, ys = jax.lax.scan(step, h, (x, done))
        head = jax.vmap(
            jax.vmap(lambda m, y: m(y), in_axes=(None, 0)), in_axes=(None, 0)
        )
        logits = head(self.actor_out, jax.nn.relu(head(self.actor_hidden, ys)))
        value = head(self.critic_out, jax.nn.relu(head(self.critic_hidden, ys)))
        return h, logits, value[..., 0]


class _Transition(eqx.Module):
    done: jax.Array
    action: jax.Array
    value: jax.Array
    reward: jax.Array
    log_prob: jax.Array
    obs: jax.Array


def _gae(traj: _Transition, last_val, last_done, gamma: float, lam: float):
    """PureJaxRL's ``_calculate_gae`` (``done`` is the flag before each
    observation, so ``1 - next_done`` cuts at episode ends)."""

    def body(carry, t):
        gae, next_value, next_done = carry
        delta = t.reward + gamma * next_value * (1 - next_done) - t.value
        gae = delta + gamma * lam * (1 - next_done) * gae
        return (gae, t.value, t.done), gae

    _, adv = jax.lax.scan(
        body,
        (jnp.zeros_like(last_val), last_val, last_done),
        traj,
        reverse=True,
    )
    return adv, adv + traj.value


def make_purejaxrl_train(settings: E2ESettings) -> tuple[Callable, int]:
    """PureJaxRL's ``make_train`` for PPO-RNN on :data:`ENV_ID`:
    ``(train(key), recurrent_params)``."""
    import gymnax

    env, env_params = gymnax.make(ENV_ID)
    obs_dim = int(np.prod(env.observation_space(env_params).shape))
    num_actions = int(env.action_space(env_params).n)
    E, T, U = settings.num_envs, settings.num_steps, settings.updates
    width, hidden = settings.size(128), settings.size(128)
    epochs, minibatches, clip_eps = 4, 4, 0.2
    gamma, lam, vf_coef, ent_coef = 0.99, 0.95, 0.5, 0.01
    schedule = optax.linear_schedule(2.5e-4, 0.0, U * epochs * minibatches)
    tx = optax.chain(optax.clip_by_global_norm(0.5), optax.adam(schedule, eps=1e-5))
    net0 = PureJaxRLNet(obs_dim, num_actions, width, hidden, jax.random.key(0))
    recurrent = sum(x.size for x in jax.tree.leaves(eqx.filter(net0.gru, eqx.is_array)))

    def reset(keys):
        obs, state = jax.vmap(env.reset, in_axes=(0, None))(keys, env_params)
        return obs.reshape(E, -1), state

    def train(key):
        key, k_net, k_env = jax.random.split(key, 3)
        net = PureJaxRLNet(obs_dim, num_actions, width, hidden, k_net)
        params, static = eqx.partition(net, eqx.is_array)
        opt_state = tx.init(params)
        obs, env_state = reset(jax.random.split(k_env, E))
        h0 = jnp.zeros((E, hidden))
        runner = (params, opt_state, env_state, obs, jnp.zeros((E,), bool), h0, key)

        def update(runner, _):
            params, opt_state, env_state, obs, done, h, key = runner
            net = eqx.combine(params, static)
            h_start = h

            def env_step(c, _):
                env_state, obs, done, h, key = c
                key, k_act, k_step = jax.random.split(key, 3)
                h, logits, value = net(h, obs[None], done[None])
                action = jax.random.categorical(k_act, logits[0])
                log_prob = jax.nn.log_softmax(logits[0])[jnp.arange(E), action]
                # gymnax 1.x: auto-reset, and terminated / truncated apart.
                obs2, env_state, reward, term, trunc, _ = jax.vmap(
                    env.step, in_axes=(0, 0, 0, None)
                )(jax.random.split(k_step, E), env_state, action, env_params)
                done2 = term | trunc
                t = _Transition(done, action, value[0], reward, log_prob, obs)
                return (env_state, obs2.reshape(E, -1), done2, h, key), t

            (env_state, obs, done, h, key), traj = jax.lax.scan(
                env_step, (env_state, obs, done, h, key), None, length=T
            )
            _, _, last_val = net(h, obs[None], done[None])
            adv, targets = _gae(traj, last_val[0], done, gamma, lam)

            def loss_fn(p, h0, tr, gae, tgt):
                _, logits, value = eqx.combine(p, static)(h0, tr.obs, tr.done)
                logp_all = jax.nn.log_softmax(logits)
                log_prob = jnp.take_along_axis(logp_all, tr.action[..., None], -1)[
                    ..., 0
                ]
                v_clip = tr.value + jnp.clip(value - tr.value, -clip_eps, clip_eps)
                v_loss = (
                    0.5
                    * jnp.maximum(
                        jnp.square(value - tgt), jnp.square(v_clip - tgt)
                    ).mean()
                )
                ratio = jnp.exp(log_prob - tr.log_prob)
                gae = (gae - gae.mean()) / (gae.std() + 1e-8)
                pg = -jnp.minimum(
                    ratio * gae, jnp.clip(ratio, 1 - clip_eps, 1 + clip_eps) * gae
                ).mean()
                entropy = -(jnp.exp(logp_all) * logp_all).sum(-1).mean()
                return pg + vf_coef * v_loss - ent_coef * entropy

            def epoch(c, _):
                params, opt_state, key = c
                key, k_perm = jax.random.split(key)
                perm = jax.random.permutation(k_perm, E)
                batch = (h_start, traj, adv, targets)
                # Environments on axis 0 of the carry, axis 1 of the rest.
                h_b = h_start[perm].reshape(minibatches, -1, hidden)
                rest = jax.tree.map(
                    lambda x: jnp.swapaxes(
                        jnp.take(x, perm, axis=1).reshape(
                            (T, minibatches, -1, *x.shape[2:])
                        ),
                        0,
                        1,
                    ),
                    batch[1:],
                )

                def minibatch(c, mb):
                    params, opt_state = c
                    grads = jax.grad(loss_fn)(params, *mb)
                    updates, opt_state = tx.update(grads, opt_state, params)
                    return (optax.apply_updates(params, updates), opt_state), None

                (params, opt_state), _ = jax.lax.scan(
                    minibatch, (params, opt_state), (h_b, *rest)
                )
                return (params, opt_state, key), None

            (params, opt_state, key), _ = jax.lax.scan(
                epoch, (params, opt_state, key), None, length=epochs
            )
            metric = traj.reward.sum()
            return (params, opt_state, env_state, obs, done, h, key), metric

        return jax.lax.scan(update, runner, None, length=U)

    return train, int(recurrent)


# --- this project's agents ----------------------------------------------------


def _network(settings: E2ESettings, cell: str, hidden: int, method: str, **core):
    import rtrl_agents as ra

    width = settings.size(128)
    return ra.NetworkConfig(
        torso=ra.TorsoConfig(
            kind="mlp", hidden_sizes=(width,), activation="relu", reward_input=False
        ),
        core=ra.CoreConfig(
            cell=cell, hidden_size=settings.size(hidden), method=method, **core
        ),
        heads=ra.HeadConfig(hidden_sizes=(width,), activation="relu"),
        init="orthogonal",
    )


def _ppo(settings: E2ESettings, net, sequence_length: int):
    import rtrl_agents as ra

    return ra.PPOConfig(
        network=net,
        rollout_length=settings.num_steps,
        num_epochs=4,
        num_minibatches=4,
        sequence_length=sequence_length,
        learning_rate=2.5e-4,
        entropy_cost=0.01,
        normalize_observations=False,
        normalize_rewards=False,
    )


def _ours(
    settings: E2ESettings, config, trace_update: str = "online"
) -> tuple[Callable, int]:
    import rtrl_agents as ra
    import rtrl_envs

    env = rtrl_envs.make(f"gymnax/{ENV_ID}", num_envs=settings.num_envs, seed=0)
    agent = ra.make_agent(config, env.spec)
    state = agent.init(jax.random.key(0))
    core = state.params.core if hasattr(state.params, "core") else None
    recurrent = sum(x.size for x in jax.tree.leaves(eqx.filter(core, eqx.is_array)))
    train = ra.make_train(agent, env, settings.updates, trace_update=trace_update)
    return train, int(recurrent)


def _systems(settings: E2ESettings) -> dict[str, tuple[str, Callable[[], Any]]]:
    import rtrl_agents as ra

    s = settings
    gru = functools.partial(_network, s, "gru", 128, "tbptt")
    elstm = functools.partial(_network, s, "elstm", 176, "rtrl")
    rtu = functools.partial(_network, s, "rtu", 384, "rtrl", rtu_nonlinear=True)

    def r2ac(trace_update: str):
        config = ra.R2ACConfig(
            network=elstm(), rollout_length=s.num_steps, learning_rate=6e-4
        )
        return _ours(s, config, trace_update)

    return {
        ANCHOR: (
            "PureJaxRL PPO (ppo_rnn.py re-written), GRU, BPTT over the rollout",
            lambda: make_purejaxrl_train(s),
        ),
        "ppo-gru-tbptt": (
            "our PPO, GRU, TBPTT over the rollout",
            lambda: _ours(s, _ppo(s, gru(), s.num_steps)),
        ),
        "ppo-elstm-seq": (
            "our PPO, eLSTM, RTRL, one sequence per rollout",
            lambda: _ours(s, _ppo(s, elstm(), s.num_steps)),
        ),
        "ppo-elstm-step": (
            "our PPO, eLSTM, RTRL, single-step samples (the RTU recipe)",
            lambda: _ours(s, _ppo(s, elstm(), 1)),
        ),
        "ppo-rtu-step": (
            "our PPO, non-linear RTU, RTRL, single-step samples",
            lambda: _ours(s, _ppo(s, rtu(), 1)),
        ),
        "r2ac-elstm": ("our R2AC, eLSTM, RTRL", lambda: r2ac("online")),
        "r2ac-elstm-chunked": (
            "our R2AC, eLSTM, RTRL, chunked actor traces",
            lambda: r2ac("chunked"),
        ),
    }


#: The systems, in the table's order.
SYSTEMS = (
    ANCHOR,
    "ppo-gru-tbptt",
    "ppo-elstm-seq",
    "ppo-elstm-step",
    "ppo-rtu-step",
    "r2ac-elstm",
    "r2ac-elstm-chunked",
)


def run_e2e(
    settings: E2ESettings = E2ESettings(),
    systems: Sequence[str] = SYSTEMS,
    progress: Callable[[str], None] | None = None,
) -> list[E2ERow]:
    """Compiles and times each system's whole ``train`` (module docstring).

    Raises:
        ValueError: an unknown system name.
        ImportError: gymnax is missing (``pip install 'rtrl-bench[envs]'``).
    """
    unknown = [name for name in systems if name not in SYSTEMS]
    if unknown:
        raise ValueError(
            f"unknown e2e system {unknown[0]!r}: expected some of {', '.join(SYSTEMS)}."
        )
    try:
        import gymnax  # noqa: F401
    except ImportError as e:
        raise ImportError(
            "rtrl-bench e2e needs gymnax: pip install 'rtrl-bench[envs]'."
        ) from e
    table = _systems(settings)
    compiled, info = {}, {}
    key0 = jax.random.key(settings.seed)
    for name in systems:
        t0 = time.perf_counter()
        train, recurrent = table[name][1]()
        fn = jax.jit(train).lower(key0).compile()
        mem = fn.memory_analysis()
        temp = getattr(mem, "temp_size_in_bytes", float("nan")) if mem else float("nan")
        out = (
            getattr(mem, "output_size_in_bytes", float("nan")) if mem else float("nan")
        )
        compiled[name] = fn
        info[name] = (recurrent, temp / 1e6, out / 1e6, time.perf_counter() - t0)
        jax.block_until_ready(fn(key0))  # warm-up
        if progress:
            progress(f"compiled {name} in {info[name][3]:.0f} s")
    times: dict[str, list[float]] = {name: [] for name in systems}
    for r in range(settings.runs):
        key = jax.random.key(settings.seed + 1 + r)
        for name in systems:
            t0 = time.perf_counter()
            jax.block_until_ready(compiled[name](key))
            times[name].append(time.perf_counter() - t0)
    steps = settings.updates * settings.num_envs * settings.num_steps
    rate = {name: steps / statistics.median(times[name]) for name in systems}
    anchor = rate.get(ANCHOR, float("nan"))
    return [
        E2ERow(
            system=name,
            description=table[name][0],
            recurrent_params=info[name][0],
            steps_per_s=rate[name],
            ratio=rate[name] / anchor,
            temp_mb=info[name][1],
            output_mb=info[name][2],
            compile_s=info[name][3],
            runs=settings.runs,
        )
        for name in systems
    ]


def format_e2e(rows: Sequence[E2ERow], settings: E2ESettings) -> str:
    """A markdown table of :func:`run_e2e`'s rows."""
    lines = [
        f"gymnax {ENV_ID}, {settings.num_envs} envs x {settings.num_steps} steps, "
        f"{settings.updates} updates per call, median of {settings.runs} "
        "interleaved calls",
        "",
        "| system | recurrent params | steps/s | x PureJaxRL | XLA temp / output "
        "| compile |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r.system}: {r.description} | {r.recurrent_params:,} | "
            f"{r.steps_per_s:,.0f} | {r.ratio:.2f} | {r.temp_mb:,.0f} MB / "
            f"{r.output_mb:,.0f} MB | {r.compile_s:.0f} s |"
        )
    return "\n".join(lines)
