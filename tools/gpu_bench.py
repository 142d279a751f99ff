#!/usr/bin/env python3
"""The GPU run of the speed work, in one script (about 5-8 minutes on a GPU).

1. ``rtrl-bench speed`` for the four element-wise cells (ELSTM, LRU, linear and
   non-linear RTU) at both sizes, (256, 257, 50, 32) and (512, 257, 100, 32):
   every gradient method's median time and its ratio to BPTT, interleaved.
2. The Atari learner: R2AC with the IMPALA torso and eLSTM(256), 32 streams,
   M = 50 (the ``atari-*`` experiments' agent), RTRL against TBPTT, as whole
   jitted training loops (``rtrl_agents.make_train``) on synthetic Atari-shaped
   frames (4 x 84 x 84 uint8, 6 actions): the emulator is left out on purpose,
   since it runs on the CPU and would hide what the accelerator does, so the
   figure is the agent's steps per second (acting and learning), interleaved,
   medians.

Writes ``OUT/gpu_bench.json`` (both parts, the devices, the versions) and prints
the tables. Needs only jax (with its GPU plugin where there is a GPU) and the
four packages; envpool is not used. Without a GPU it refuses in one line unless
``--allow-cpu`` (for a dry run; ``--quick`` shrinks everything for that).

    python tools/gpu_bench.py --out results/gpu
    python tools/gpu_bench.py --allow-cpu --quick --out /tmp/gpu-dry-run
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

CELLS = ("ELSTM", "LRU", "RTU(linear)", "RTU(relu)")
CONFIGS = ("256,257,50,32", "512,257,100,32")


class SyntheticAtari:
    """Random Atari-shaped frames and rewards, never ending: a pure JAX stand-in
    for the emulator, so that only the agent is timed (not an environment to
    learn from)."""

    def __init__(self, num_envs: int, frame: int = 84, actions: int = 6):
        from rtrl_envs import Discrete, EnvSpec

        self._spec = EnvSpec(
            "synthetic/atari",
            (4, frame, frame),
            np.dtype(np.uint8),
            Discrete(actions),
            num_envs,
            True,
        )

    @property
    def spec(self):
        return self._spec

    def _timestep(self, key, first: bool):
        from rtrl_envs import TimeStep

        n, shape = self._spec.num_envs, self._spec.observation_shape
        k_obs, k_r = jax.random.split(key)
        obs = jax.random.randint(k_obs, (n, *shape), 0, 256, jnp.int32)
        reward = jax.random.bernoulli(k_r, 0.05, (n,)).astype(jnp.float32)
        false = jnp.zeros((n,), bool)
        return TimeStep(obs.astype(jnp.uint8), reward, false, false, false | first)

    def reset(self, key):
        key, k = jax.random.split(key)
        return key, self._timestep(k, True)

    def step(self, state, action):
        key, k = jax.random.split(state)
        return key, self._timestep(k, False)


def atari_learner(runs: int, updates: int, quick: bool) -> list[dict]:
    import rtrl_agents as ra

    num_envs, m, hidden = (4, 5, 16) if quick else (32, 50, 256)
    env = SyntheticAtari(num_envs, frame=36 if quick else 84)
    compiled, rows = {}, []
    key = jax.random.key(0)
    for method in ("rtrl", "tbptt"):
        cfg = ra.R2ACConfig(network=ra.impala_network(hidden, method), rollout_length=m)
        agent = ra.r2ac(cfg, env.spec)
        t0 = time.perf_counter()
        fn = jax.jit(ra.make_train(agent, env, updates)).lower(key).compile()
        compile_s = time.perf_counter() - t0
        jax.block_until_ready(fn(key))
        mem = fn.memory_analysis()
        compiled[method] = fn
        rows.append(
            {
                "method": method,
                "compile_s": compile_s,
                "temp_mb": getattr(mem, "temp_size_in_bytes", float("nan")) / 1e6,
            }
        )
        print(f"compiled the Atari learner ({method}) in {compile_s:.0f} s", flush=True)
    times = {method: [] for method in compiled}
    for r in range(runs):
        for method, fn in compiled.items():
            t0 = time.perf_counter()
            jax.block_until_ready(fn(jax.random.key(r + 1)))
            times[method].append(time.perf_counter() - t0)
    steps = updates * num_envs * m
    for row in rows:
        row["steps_per_s"] = steps / statistics.median(times[row["method"]])
        row.update(num_envs=num_envs, rollout_length=m, hidden=hidden, runs=runs)
    tbptt = next(r["steps_per_s"] for r in rows if r["method"] == "tbptt")
    for row in rows:
        row["ratio_to_tbptt"] = row["steps_per_s"] / tbptt
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="The GPU run of the speed work.")
    p.add_argument("--out", default="gpu-bench", help="folder of gpu_bench.json")
    p.add_argument("--runs", type=int, default=7, help="timed runs per method")
    p.add_argument("--updates", type=int, default=5, help="updates per Atari call")
    p.add_argument("--allow-cpu", action="store_true", help="run without a GPU")
    p.add_argument("--quick", action="store_true", help="tiny sizes (a dry run)")
    args = p.parse_args(argv)
    backend = jax.default_backend()
    if backend == "cpu" and not args.allow_cpu:
        print(
            "gpu_bench: jax sees no GPU (backend cpu): install jax with its CUDA "
            "plugin, or pass --allow-cpu for a dry run.",
            file=sys.stderr,
        )
        return 2
    from rtrl_bench import main as bench
    from rtrl_bench._provenance import provenance

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    speed_json = out / "speed.json"
    configs = ("16,9,6,2",) if args.quick else CONFIGS
    runs = 2 if args.quick else args.runs
    t0 = time.perf_counter()
    rc = bench(
        [
            "speed",
            "--cells",
            *CELLS,
            "--config",
            *configs,
            "--runs",
            str(runs),
            "--memory-lengths",
            "--json",
            str(speed_json),
        ]
    )
    if rc:
        return rc
    speed_s = time.perf_counter() - t0
    atari = atari_learner(runs, 1 if args.quick else args.updates, args.quick)
    print("\nAtari learner (R2AC, IMPALA + eLSTM, synthetic frames):")
    for row in atari:
        print(
            f"  {row['method']:6s} {row['steps_per_s']:10,.0f} steps/s "
            f"({row['ratio_to_tbptt']:.2f}x TBPTT), compile {row['compile_s']:.0f} s, "
            f"XLA temp {row['temp_mb']:,.0f} MB"
        )
    payload = {
        "backend": backend,
        "devices": [str(d) for d in jax.devices()],
        "speed": json.loads(speed_json.read_text())["speed"],
        "speed_seconds": speed_s,
        "atari_learner": atari,
        "quick": args.quick,
        "provenance": provenance(),
    }
    (out / "gpu_bench.json").write_text(json.dumps(payload, indent=2))
    print(f"wrote {out / 'gpu_bench.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
