#!/usr/bin/env python3
"""An independent check of ``rtrl-bench speed``, through the public contract only.

It shares no code with the benchmark: it builds a cell from ``rtrl_cells``'
registry (``--cell``: a label of ``rc.cell_examples()``), makes the carry of a
previous rollout with ``unroll``, and times ``jax.grad`` of a batch-summed loss
over ``jax.vmap(cell.unroll)`` for every method of ``rc.METHODS`` (bptt first) and
chunked-grad (chunked without the new traces) with :mod:`timeit`
(best of ``--repeat`` rounds of ``--number`` calls, methods interleaved round by
round). The timed function returns with the gradient what a learner carries on:
the new carry, for bptt the new state, for chunked-grad nothing.

    python tools/time_public_contract.py --cell ELSTM --config 512,257,100,32

Prints one line per method: milliseconds per call and the ratio to bptt.
"""

from __future__ import annotations

import argparse
import timeit

import equinox as eqx
import jax
import jax.numpy as jnp

import rtrl_cells as rc

# "chunked-grad": the chunked gradient alone, the new traces dropped (an R2AC
# learner, whose actors carry the traces).
GRAD_ONLY = f"{rc.CHUNKED.name}-grad"
METHODS = (
    rc.BPTT.name,
    *(m for m in rc.METHODS if m != rc.BPTT.name),
    GRAD_ONLY,
)


def build(cell_name: str, n: int, d: int, t: int, b: int):
    key_cell, key_x, key_prev = jax.random.split(jax.random.PRNGKey(1), 3)
    kinds = rc.cell_examples(dense=False)
    if cell_name not in kinds:
        raise SystemExit(f"unknown cell {cell_name!r}: expected one of {list(kinds)}")
    cell = kinds[cell_name].make(
        input_size=d, hidden_size=n, key=key_cell, dtype=jnp.float32
    )
    xs = jax.random.normal(key_x, (b, t, d), jnp.float32)
    resets = jnp.zeros((b, t), bool)
    carry = jax.vmap(lambda _: cell.init_carry())(jnp.arange(b))
    prev = jax.random.normal(key_prev, (b, t, d), jnp.float32)
    _, carry = jax.jit(jax.vmap(cell.unroll))(carry, prev, resets)
    return cell, xs, resets, carry


def grad_fn(method: str):
    unroll_method = rc.CHUNKED if method == GRAD_ONLY else rc.method(method)

    def loss(cell, carry, xs, resets):
        ys, carry_T = jax.vmap(lambda c, x, r: cell.unroll(c, x, r, unroll_method))(
            carry, xs, resets
        )
        # What a learner carries on: BPTT leaves the traces alone and needs only
        # the state (returning the traces too would time a copy of them).
        return jnp.sum(ys**2), carry_T.for_method(unroll_method)

    if method == GRAD_ONLY:
        return eqx.filter_jit(eqx.filter_grad(lambda *a: loss(*a)[0]))
    return eqx.filter_jit(eqx.filter_grad(loss, has_aux=True))


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument(
        "--cell",
        default="ELSTM",
        help=f"one of {', '.join(rc.cell_examples(dense=False))}",
    )
    ap.add_argument("--config", default="256,257,50,32", help="N,D,T,B")
    ap.add_argument("--number", type=int, default=3, help="calls per round")
    ap.add_argument("--repeat", type=int, default=7, help="rounds")
    args = ap.parse_args()
    n, d, t, b = (int(v) for v in args.config.split(","))
    cell, xs, resets, carry = build(args.cell, n, d, t, b)
    fns = {m: grad_fn(m) for m in METHODS}
    calls = {
        m: (lambda f=f: jax.block_until_ready(f(cell, carry, xs, resets)))
        for m, f in fns.items()
    }
    for call in calls.values():  # compile and warm up
        call()
        call()
    best = {m: float("inf") for m in METHODS}
    for _ in range(args.repeat):
        for m, call in calls.items():
            per_call = timeit.timeit(call, number=args.number) / args.number
            best[m] = min(best[m], per_call)
    print(f"{args.cell} N,D,T,B={args.config} (best of {args.repeat} x {args.number})")
    for m in METHODS:
        ratio = best[m] / best[rc.BPTT.name]
        print(f"{m:12s} {1e3 * best[m]:8.1f} ms  {ratio:.2f}x {rc.BPTT.name}")


if __name__ == "__main__":
    main()
