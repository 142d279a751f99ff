"""Check a cell's RTRL gradients against full backpropagation through time."""

from __future__ import annotations

from collections.abc import Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import PRNGKeyArray

from ._cell import AbstractCell
from ._methods import BPTT, GradientMethod
from ._methods import method as resolve_method


def param_labels(cell: AbstractCell) -> list[str]:
    """The path of every parameter array, in flattening order (``"layers[1].F"``)."""
    dyn = eqx.filter(cell, eqx.is_inexact_array)
    paths = jax.tree_util.tree_flatten_with_path(dyn)[0]
    return [jax.tree_util.keystr(path).lstrip(".") for path, _ in paths]


def relative_error(a, b) -> float:
    """``max|a - b| / max|b|`` (0 when they are equal)."""
    return _ratio(float(jnp.max(jnp.abs(a - b))), float(jnp.max(jnp.abs(b))))


def _ratio(diff: float, scale: float) -> float:
    return 0.0 if diff == 0.0 else diff / max(scale, 1e-300)


def leaf_errors(a, b):
    """Per leaf ``(max|a - b|, max|b|)``, as arrays (for use under ``jit``)."""
    return [
        (jnp.max(jnp.abs(x - y)), jnp.max(jnp.abs(y)))
        for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True)
    ]


def gradient_errors_by_method(
    cell: AbstractCell,
    methods: Sequence[str | GradientMethod],
    key: PRNGKeyArray,
    segments: int = 3,
    length: int = 6,
) -> dict[str, dict[str, float]]:
    """:func:`gradient_errors` of several methods, one BPTT reference for all.

    Returns:
        ``{method name: {parameter path: relative error}}``.
    """
    ms = [resolve_method(m) for m in methods]
    kx, kr = jax.random.split(key)
    dtype = jax.tree.leaves(eqx.filter(cell, eqx.is_inexact_array))[0].dtype
    xs = jax.random.normal(kx, (segments, length, cell.input_size), dtype)
    # In the first half of the segment: steps after the reset carry the history
    # into the last segment (a reset at the very end would leave next to none).
    reset_step = int(jax.random.randint(kr, (), 1, 1 + max(1, (length - 1) // 2)))
    resets = jnp.zeros((segments, length), bool)
    if segments > 1:
        resets = resets.at[1, reset_step].set(True)

    def loss_of(ys):
        return jnp.sum(jnp.sin(ys) + ys**2)

    def grad_rtrl(c, m):
        def loss(c):
            carry = c.init_carry()
            for k in range(segments - 1):
                _, carry = c.unroll(carry, xs[k], resets[k], method=m)
            ys, _ = c.unroll(carry, xs[-1], resets[-1], method=m)
            return loss_of(ys)

        return eqx.filter_grad(loss)(c)

    def grad_bptt(c):
        def loss(c):
            ys, _ = c.unroll(
                c.init_carry(),
                xs.reshape(-1, c.input_size),
                resets.reshape(-1),
                method=BPTT,
            )
            return loss_of(ys[-length:])

        return eqx.filter_grad(loss)(c)

    @eqx.filter_jit
    def errors(c):
        ref = grad_bptt(c)
        return [leaf_errors(grad_rtrl(c, m), ref) for m in ms]

    labels = param_labels(cell)
    return {
        m.name: {
            label: _ratio(float(d), float(s))
            for label, (d, s) in zip(labels, errs, strict=True)
        }
        for m, errs in zip(ms, errors(cell), strict=True)
    }


def gradient_errors(
    cell: AbstractCell,
    method: str | GradientMethod,
    key: PRNGKeyArray,
    segments: int = 3,
    length: int = 6,
) -> dict[str, float]:
    """Relative error of ``method``'s gradient against full BPTT, per parameter.

    The loss is a nonlinear function of the outputs of the last of ``segments``
    segments, each started from the carry the previous one returned; a reset sits
    in the first half of the second segment. The reference differentiates one
    ``"bptt"`` unroll over the whole history from ``init_carry()``.

    Returns:
        ``{parameter path: max|g - g_ref| / max|g_ref|}``.
    """
    m = resolve_method(method)
    return gradient_errors_by_method(cell, (m,), key, segments, length)[m.name]


def gradient_error(
    cell: AbstractCell,
    method: str | GradientMethod,
    key: PRNGKeyArray,
    segments: int = 3,
    length: int = 6,
) -> float:
    """Max relative error of ``method``'s gradient against full BPTT.

    See :func:`gradient_errors` (this is its largest value).

    Returns:
        ``max_leaf max|g - g_ref| / max|g_ref|`` over the cell's parameter leaves.
    """
    return max(gradient_errors(cell, method, key, segments, length).values())
