#!/usr/bin/env python3
"""Where the Atari learner's time and memory go, on this machine.

The agent of ``rtrl-bench run atari-*`` (R2AC, IMPALA torso + eLSTM(256), 32
streams, M = 50) on envpool's real Atari, driven as ``rtrl-bench run`` drives it
(``Actor`` on the host, ``eqx.filter_jit(agent.update)``). Each method runs in
its own process, so that its peak memory is its own. For each it reports:

- time to the first update, split into the agent's init, the first rollout
  (compiling the actor step, then 50 steps of 32 emulators) and the learner's
  compilation and first call;
- the learner's compiled memory (``memory_analysis``: temporaries, arguments,
  outputs) and the process's peak resident memory;
- steady state: seconds per rollout and per update (medians), agent steps/s;
- the torso's share: forward+backward of the IMPALA torso alone on the
  learner's ``32 x 51`` frames, its FLOPs (XLA's ``cost_analysis``) and rate,
  against the raw rate of this CPU's convolutions (the best of a few large
  3x3 convolutions, forward+backward, measured here: an upper bound).

With ``--dump DIR`` XLA writes the learner's HLO there (``--xla_dump_to``);
with ``--trace DIR`` a ``jax.profiler`` trace of three updates.

    python tools/profile_atari_learner.py --methods rtrl tbptt --json out.json

With ``--interleaved``, only the learners' updates, alternated in one process
(``ratio_to_first``: the first method's update time over each one's).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _flops(compiled) -> float:
    cost = compiled.cost_analysis()
    if isinstance(cost, list):
        cost = cost[0]
    return float(cost.get("flops", float("nan")))


def conv_rate(runs: int) -> dict:
    """The best forward+backward rate of a few large 3x3 convolutions (FLOP/s)."""
    import jax
    import jax.numpy as jnp

    best = {"gflops_per_s": 0.0}
    # Batches as the learner's calls (ImpalaTorso.frames: 4 steps x 32 streams)
    # and larger; the best of them is the bound.
    shapes = [
        (n, c, h, w, c)
        for n in (128, 512)
        for c, h, w in ((16, 42, 42), (32, 42, 42), (32, 21, 21))
    ]
    for n, c, h, w, o in shapes:
        k1, k2 = jax.random.split(jax.random.PRNGKey(0))
        x = jax.random.normal(k1, (n, h, w, c), jnp.float32)
        kernel = jax.random.normal(k2, (3, 3, c, o), jnp.float32) * 0.1

        def loss(kernel, x):
            y = jax.lax.conv_general_dilated(
                x, kernel, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")
            )
            return jnp.sum(y * y)

        fn = jax.jit(jax.grad(loss, argnums=(0, 1))).lower(kernel, x).compile()
        flops = _flops(fn)
        jax.block_until_ready(fn(kernel, x))
        ts = []
        for _ in range(runs):
            t0 = time.perf_counter()
            jax.block_until_ready(fn(kernel, x))
            ts.append(time.perf_counter() - t0)
        rate = flops / statistics.median(ts) / 1e9
        if rate > best["gflops_per_s"]:
            best = {"gflops_per_s": rate, "shape_nhwc_o": [n, h, w, c, o]}
    return best


def torso_rate(state, batch, runs: int) -> dict:
    """Forward+backward of the torso alone on the learner's frames."""
    import equinox as eqx
    import jax
    import jax.numpy as jnp

    torso = state.params.torso
    obs = batch.observation  # (B, T + 1, C, H, W) uint8

    def loss(torso):  # as the learner runs it (ImpalaTorso.frames per stream)
        return jnp.sum(jax.vmap(torso.frames)(obs) ** 2)

    fn = eqx.filter_jit(eqx.filter_grad(loss)).lower(torso).compile()
    flops = _flops(fn.compiled)  # equinox wraps jax's Compiled
    jax.block_until_ready(fn(torso))
    ts = []
    for _ in range(runs):
        t0 = time.perf_counter()
        jax.block_until_ready(fn(torso))
        ts.append(time.perf_counter() - t0)
    s = statistics.median(ts)
    return {"seconds": s, "gflop": flops / 1e9, "gflops_per_s": flops / s / 1e9}


def one_method(method: str, runs: int, dump: str | None, trace: str | None) -> dict:
    if dump:
        os.environ["XLA_FLAGS"] = (
            os.environ.get("XLA_FLAGS", "") + f" --xla_dump_to={dump}/{method}"
        ).strip()
    t_start = time.perf_counter()
    import equinox as eqx
    import jax

    import rtrl_agents as ra
    import rtrl_envs as re

    out: dict = {"method": method}
    env = re.make("atari/Breakout", num_envs=32, seed=0)
    cfg = ra.R2ACConfig(network=ra.impala_network(256, method), rollout_length=50)
    agent = ra.r2ac(cfg, env.spec)
    t = time.perf_counter()
    state = agent.init(jax.random.key(0))
    jax.block_until_ready(state)
    out["init_s"] = time.perf_counter() - t
    actor = ra.Actor(agent, env, jax.random.key(1), jax.random.key(2), state)
    t = time.perf_counter()
    batch, _ = actor.rollout(state)
    jax.block_until_ready(batch)
    out["first_rollout_s"] = time.perf_counter() - t
    update = eqx.filter_jit(agent.update)
    t = time.perf_counter()
    # Called from here on: the first call does not compile a second time.
    learner = update.lower(state, batch).compile()
    out["learner_compile_s"] = time.perf_counter() - t
    compiled = learner.compiled  # equinox wraps jax's Compiled
    mem = compiled.memory_analysis()
    out["learner_temp_mb"] = mem.temp_size_in_bytes / 2**20
    out["learner_argument_mb"] = mem.argument_size_in_bytes / 2**20
    out["learner_output_mb"] = mem.output_size_in_bytes / 2**20
    out["learner_gflop"] = _flops(compiled) / 1e9
    t = time.perf_counter()
    new_state, _ = learner(state, batch)
    jax.block_until_ready(new_state)
    out["first_update_s"] = time.perf_counter() - t
    out["time_to_first_update_s"] = time.perf_counter() - t_start
    out["peak_rss_mb_first_update"] = _peak_mb()
    rollouts, updates = [], []
    for _ in range(runs):
        t = time.perf_counter()
        batch, _ = actor.rollout(new_state)
        jax.block_until_ready(batch)
        rollouts.append(time.perf_counter() - t)
        t = time.perf_counter()
        new_state, _ = learner(new_state, batch)
        jax.block_until_ready(new_state)
        updates.append(time.perf_counter() - t)
    out["rollout_s"] = statistics.median(rollouts)
    out["update_s"] = statistics.median(updates)
    steps = 32 * 50
    out["steps_per_s"] = steps / (out["rollout_s"] + out["update_s"])
    out["learner_gflops_per_s"] = out["learner_gflop"] / out["update_s"]
    if trace:
        with jax.profiler.trace(f"{trace}/{method}"):
            for _ in range(3):
                new_state, _ = learner(new_state, batch)
            jax.block_until_ready(new_state)
    out["torso"] = torso_rate(new_state, batch, runs)
    out["torso_share_of_update"] = out["torso"]["seconds"] / out["update_s"]
    out["peak_rss_mb"] = _peak_mb()
    return out


def interleaved(methods: list[str], runs: int) -> dict:
    """Each method's update, alternated in one process on one rollout each: the
    steps/s ratio of the learners without the machine's drift between processes
    (compiled memory is allocated per call, so the peak is one learner's)."""
    import equinox as eqx
    import jax

    import rtrl_agents as ra
    import rtrl_envs as re

    env = re.make("atari/Breakout", num_envs=32, seed=0)
    setups = {}
    for method in methods:
        cfg = ra.R2ACConfig(network=ra.impala_network(256, method), rollout_length=50)
        agent = ra.r2ac(cfg, env.spec)
        state = agent.init(jax.random.key(0))
        actor = ra.Actor(agent, env, jax.random.key(1), jax.random.key(2), state)
        batch, _ = actor.rollout(state)
        learner = eqx.filter_jit(agent.update).lower(state, batch).compile()
        jax.block_until_ready(learner(state, batch))
        setups[method] = (learner, state, batch)
    times: dict[str, list[float]] = {m: [] for m in methods}
    for _ in range(runs):
        for method, (learner, state, batch) in setups.items():
            t = time.perf_counter()
            jax.block_until_ready(learner(state, batch))
            times[method].append(time.perf_counter() - t)
    med = {m: statistics.median(ts) for m, ts in times.items()}
    return {
        "update_s": med,
        "update_s_all": times,
        "ratio_to_first": {m: med[methods[0]] / med[m] for m in methods},
    }


def _emit(out: dict, path: str | None) -> None:
    """Prints ``out`` and, given a path, writes it there as JSON."""
    print(json.dumps(out, indent=1))
    if path:
        with open(path, "w") as f:
            json.dump(out, f, indent=1)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description="Where the Atari learner's time and memory go."
    )
    p.add_argument("--methods", nargs="+", default=["rtrl", "tbptt"])
    p.add_argument("--runs", type=int, default=5, help="steady-state rounds")
    p.add_argument("--dump", default=None, help="XLA HLO dump folder")
    p.add_argument("--trace", default=None, help="jax.profiler trace folder")
    p.add_argument("--json", default=None, help="also write the results here")
    p.add_argument(
        "--interleaved",
        action="store_true",
        help="only time the methods' updates alternated in one process",
    )
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.interleaved:
        _emit(interleaved(args.methods, args.runs), args.json)
        return 0
    if args.child:
        res = one_method(args.child, args.runs, args.dump, args.trace)
        print("RESULT " + json.dumps(res), flush=True)
        return 0
    results = []
    for method in args.methods:
        cmd = [sys.executable, __file__, "--child", method, "--runs", str(args.runs)]
        for flag in ("dump", "trace"):
            if getattr(args, flag):
                cmd += [f"--{flag}", getattr(args, flag)]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
        if proc.returncode or not lines:
            print(proc.stderr[-3000:], file=sys.stderr)
            raise SystemExit(f"the {method} learner failed (exit {proc.returncode}).")
        results.append(json.loads(lines[-1][len("RESULT ") :]))
        print(json.dumps(results[-1], indent=1), flush=True)
    conv = conv_rate(args.runs)
    for r in results:
        r["torso"]["ratio_to_conv_rate"] = (
            r["torso"]["gflops_per_s"] / conv["gflops_per_s"]
        )
    _emit({"results": results, "conv_rate": conv}, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
