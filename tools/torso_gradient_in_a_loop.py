#!/usr/bin/env python3
"""The IMPALA torso's gradient one call of frames at a time, against as shipped.

The Atari learner's temporaries are the torso's gradient over all its frames
(``tools/profile_atari_learner.py``). A loop over calls of frames, each
recomputed on the way back (``jax.lax.map`` of a ``jax.checkpoint``), holds
one call at a time by construction. This times, in one process, on random
``uint8`` frames of the learner's shape:

- ``calls``: the gradient of ``ImpalaTorso.frames`` as shipped (calls written
  out, ``TorsoConfig.cpu_steps_per_call`` steps each);
- ``loop``: the same calls in ``jax.lax.map``, each under ``jax.checkpoint``;
- ``forward-calls`` / ``forward-loop``: the forward alone, written out and in
  ``jax.lax.map``, the torso as shipped (NCHW) and written in NHWC
  (``forward-loop-nhwc``), to show where a loop costs on XLA's CPU backend
  (jax-ml/jax#12868).

It prints each variant's XLA temporaries and its times (seconds per call).

    python tools/torso_gradient_in_a_loop.py --streams 32 --steps 51
"""

from __future__ import annotations

import argparse
import time

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

import rtrl_agents as ra


def _conv_nhwc(conv: eqx.nn.Conv2d, x):
    w = jnp.transpose(conv.weight, (2, 3, 1, 0))  # OIHW -> HWIO
    y = jax.lax.conv_general_dilated(
        x, w, (1, 1), ((1, 1), (1, 1)), dimension_numbers=("NHWC", "HWIO", "NHWC")
    )
    assert conv.bias is not None
    return y + conv.bias.reshape(1, 1, 1, -1)


def torso_nhwc(torso: ra.ImpalaTorso, obs):
    """``jax.vmap(torso)(obs)`` for channels-first frames, computed in NHWC."""
    x = jnp.transpose(obs, (0, 2, 3, 1)).astype(jnp.float32) / 255.0
    for stage in torso.stages:
        x = jax.lax.reduce_window(
            _conv_nhwc(stage.conv, x),
            -jnp.inf,
            jax.lax.max,
            (1, 3, 3, 1),
            (1, 2, 2, 1),
            ((0, 0), (1, 1), (1, 1), (0, 0)),
        )
        for block in stage.blocks:
            h = _conv_nhwc(block.conv0, jax.nn.relu(x))
            x = x + _conv_nhwc(block.conv1, jax.nn.relu(h))
    x = jnp.transpose(jax.nn.relu(x), (0, 3, 1, 2)).reshape(x.shape[0], -1)
    return jax.nn.relu(jax.vmap(torso.fc)(x))


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--streams", type=int, default=32)
    parser.add_argument("--steps", type=int, default=51, help="frames per stream")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--variants",
        nargs="+",
        default=["calls", "loop", "forward-calls", "forward-loop", "forward-loop-nhwc"],
    )
    args = parser.parse_args()

    config = ra.TorsoConfig(kind="impala")
    torso = ra.ImpalaTorso((4, 84, 84), config, key=jax.random.PRNGKey(0))
    params, static = eqx.partition(torso, eqx.is_array)
    k, b = config.cpu_steps_per_call, args.streams
    n = -(-args.steps // k)  # calls; the last one padded
    rng = np.random.default_rng(0)
    obs = jnp.asarray(rng.integers(0, 256, (b, args.steps, 4, 84, 84), np.uint8))
    weights = jax.random.normal(jax.random.PRNGKey(1), (b, args.steps, 256))
    # (calls, streams x steps per call, ...): call i holds steps [i k, i k + k).
    padded = jnp.pad(obs, ((0, 0), (0, n * k - args.steps), (0, 0), (0, 0), (0, 0)))
    by_call = jnp.moveaxis(padded.reshape(b, n, k, 4, 84, 84), 1, 0)
    by_call = by_call.reshape(n, b * k, 4, 84, 84)

    def unstack(feats):  # (calls, b k, F) -> (b, steps, F)
        feats = jnp.moveaxis(feats.reshape(n, b, k, -1), 0, 1)
        return feats.reshape(b, n * k, -1)[:, : args.steps]

    def calls(p):
        t = eqx.combine(p, static)
        return jnp.sum(jax.vmap(t.frames)(obs) * weights)

    def loop(p):
        t = eqx.combine(p, static)
        feats = jax.lax.map(jax.checkpoint(jax.vmap(t)), by_call)
        return jnp.sum(unstack(feats) * weights)

    variants = {
        "calls": jax.grad(calls),
        "loop": jax.grad(loop),
        "forward-calls": lambda p: jnp.stack(
            [jax.vmap(eqx.combine(p, static))(o) for o in by_call]
        ),
        "forward-loop": lambda p: jax.lax.map(
            jax.vmap(eqx.combine(p, static)), by_call
        ),
        "forward-loop-nhwc": lambda p: jax.lax.map(
            lambda o: torso_nhwc(eqx.combine(p, static), o), by_call
        ),
    }
    g_calls = jax.jit(variants["calls"])(params)
    g_loop = jax.jit(variants["loop"])(params)
    # The same gradient (in float64 at 3 streams x 9 frames the two agree to
    # 4e-15); here float32 sums over every frame in another order, so the check
    # is the relative error of the whole gradient.
    diff = sum(
        float(jnp.sum((a - c) ** 2))
        for a, c in zip(jax.tree.leaves(g_calls), jax.tree.leaves(g_loop), strict=True)
    )
    error = (diff / sum(float(jnp.sum(a**2)) for a in jax.tree.leaves(g_calls))) ** 0.5
    assert error < 1e-3, f"the loop's gradient differs: relative error {error}"
    print(f"the loop's gradient against the shipped one: relative error {error:.1e}")
    ref = jax.jit(variants["forward-loop"])(params)
    nhwc = jax.jit(variants["forward-loop-nhwc"])(params)
    np.testing.assert_allclose(ref, nhwc, rtol=1e-5, atol=1e-5)
    print(f"{b} streams x {args.steps} frames, {n} calls of {k} steps")
    for name in args.variants:
        compiled = jax.jit(variants[name]).lower(params).compile()
        memory = compiled.memory_analysis()
        assert memory is not None  # XLA's CPU backend reports it
        temp = memory.temp_size_in_bytes / 1e9
        jax.block_until_ready(compiled(params))
        times = []
        for _ in range(args.runs):
            t0 = time.perf_counter()
            jax.block_until_ready(compiled(params))
            times.append(time.perf_counter() - t0)
        secs = ", ".join(f"{t:.2f}" for t in times)
        print(f"{name:18s} temporaries {temp:6.2f} GB  seconds per call: {secs}")


if __name__ == "__main__":
    main()
