"""Steps per second of each adapter next to its raw backend, in one run.

Adapter and raw backend are timed in interleaved rounds (raw, adapter, raw,
adapter, ...) on the same machine with the same pre-drawn random actions, and
the medians are compared, so drift in machine load hits both alike.
"""

from __future__ import annotations

import dataclasses
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ._registry import make

DEFAULT_NAMES = (
    "atari/Breakout",
    "procgen/chaser",
    "mujoco-pomdp/Hopper-P",
    "gymnax/CartPole-v1",
    "popgym/RepeatFirstEasy",
    "memory/copy",
)


@dataclasses.dataclass(frozen=True)
class BenchmarkResult:
    """One environment's figures.

    Attributes:
        name: the environment name.
        num_envs: streams per call.
        steps: calls per timed round.
        rounds: timed rounds per side.
        adapter_sps: median environment steps per second (calls x num_envs) of
            the adapter.
        raw_sps: the raw backend's median, or None where there is no raw
            backend (the memory tasks are native).
        overhead: ``1 - adapter_sps / raw_sps`` (0.05 = adapter 5% slower), or None.
    """

    name: str
    num_envs: int
    steps: int
    rounds: int
    adapter_sps: float
    raw_sps: float | None
    overhead: float | None


def _time(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _runners(name: str, num_envs: int, steps: int, seed: int):
    """Returns (adapter_round, raw_round or None), each running ``steps`` calls."""
    env: Any = make(name, num_envs=num_envs, seed=seed)
    space = env.spec.action_space
    keys = jax.random.split(jax.random.key(seed), steps)
    actions = np.asarray(jax.vmap(lambda k: space.sample(k, num_envs))(keys))

    if env.spec.is_jax:
        # Both sides run as one jitted scan, the way a training loop uses them.
        acts = jnp.asarray(actions)

        @jax.jit
        def adapter_scan(key):
            state, _ = env.reset(key)

            def body(s, a):
                s, ts = env.step(s, a)
                return s, ts.reward

            return jax.lax.scan(body, state, acts)[1]

        def adapter_round() -> None:
            adapter_scan(jax.random.key(seed)).block_until_ready()

        raw_round: Callable[[], None] | None = None
        if name.startswith("gymnax/"):
            genv, params = env.core.env, env.core.params

            @jax.jit
            def raw_scan(key):
                ks = jax.random.split(key, num_envs)
                _, state = jax.vmap(genv.reset, (0, None))(ks, params)

                def body(carry, a):
                    s, k = carry
                    k, sk = jax.random.split(k)
                    sks = jax.random.split(sk, num_envs)
                    out = jax.vmap(genv.step, (0, 0, 0, None))(sks, s, a, params)
                    return (out[1], k), out[2]

                return jax.lax.scan(body, (state, key), acts)[1]

            def gymnax_round() -> None:
                raw_scan(jax.random.key(seed)).block_until_ready()

            raw_round = gymnax_round

        return adapter_round, raw_round

    state, _ = env.reset(None)

    def host_adapter_round() -> None:
        nonlocal state
        for a in actions:
            state, _ = env.step(state, a)

    raw_round: Callable[[], None] | None = None
    if hasattr(env, "pool"):
        raw_env: Any = make(name, num_envs=num_envs, seed=seed)
        raw = raw_env.pool
        raw.reset()
        raw_actions = actions.astype(env.spec.action_space.dtype)

        def pool_round() -> None:
            for a in raw_actions:
                raw.step(a)

        raw_round = pool_round

    elif name.startswith("popgym/"):
        import popgym.envs

        envs = [getattr(popgym.envs, name.split("/")[1])() for _ in range(num_envs)]
        done = [False] * num_envs
        for i, e in enumerate(envs):
            e.reset(seed=seed + i)

        def popgym_round() -> None:
            for a in actions:
                for i, e in enumerate(envs):
                    if done[i]:
                        e.reset()
                        done[i] = False
                    else:
                        _, _, te, tr, _ = e.step(int(a[i]))
                        done[i] = te or tr

        raw_round = popgym_round

    return host_adapter_round, raw_round


def run_benchmark(
    names: Sequence[str] = DEFAULT_NAMES,
    *,
    num_envs: int = 8,
    steps: int = 500,
    rounds: int = 7,
    seed: int = 0,
) -> list[BenchmarkResult]:
    """Measures steps per second of each adapter and of its raw backend.

    Args:
        names: environment names.
        num_envs: streams per call.
        steps: calls per timed round.
        rounds: timed rounds per side (the median is reported).
        seed: seed for the environments and the random actions.

    Returns:
        One ``BenchmarkResult`` per name.
    """
    results = []
    for name in names:
        adapter_round, raw_round = _runners(name, num_envs, steps, seed)
        adapter_round()  # warm-up (compilation, first frames)
        if raw_round is not None:
            raw_round()
        t_adapter, t_raw = [], []
        for _ in range(rounds):
            if raw_round is not None:
                t_raw.append(_time(raw_round))
            t_adapter.append(_time(adapter_round))
        work = steps * num_envs
        adapter_sps = work / statistics.median(t_adapter)
        raw_sps = work / statistics.median(t_raw) if t_raw else None
        overhead = None if raw_sps is None else 1.0 - adapter_sps / raw_sps
        results.append(
            BenchmarkResult(
                name, num_envs, steps, rounds, adapter_sps, raw_sps, overhead
            )
        )
    return results


def format_table(results: Sequence[BenchmarkResult]) -> str:
    """A markdown table of the results."""
    rows = [
        "| environment | num_envs | adapter steps/s | raw steps/s | overhead |",
        "|---|---|---|---|---|",
    ]
    for r in results:
        raw = "-" if r.raw_sps is None else f"{r.raw_sps:,.0f}"
        ovh = "-" if r.overhead is None else f"{100 * r.overhead:+.1f}%"
        rows.append(
            f"| {r.name} | {r.num_envs} | {r.adapter_sps:,.0f} | {raw} | {ovh} |"
        )
    return "\n".join(rows)
