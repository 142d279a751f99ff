"""The carried traces are the true sensitivities d s_T / d theta, and nothing more."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import rtrl_cells as rc

CELLS = rc.example_cells(jax.random.PRNGKey(0))


def _final_state_jacobian(cell, xs, resets):
    system, params = cell._system()
    s0 = cell._init_state()

    def final_state(ps):
        return system.segment(ps, s0, xs, resets)[1]

    return jax.jacfwd(final_state)(params)  # [group][leaf]: (N, k, *shape)


@pytest.mark.parametrize("method", ["online", "chunked"])
def test_traces_equal_jacfwd_of_final_state(cell, method):
    xs = jax.random.normal(jax.random.PRNGKey(4), (6, cell.input_size))
    resets = jnp.zeros(6, bool)
    _, carry = eqx.filter_jit(lambda c: c.unroll(c.init_carry(), xs, resets, method))(
        cell
    )
    jac = _final_state_jacobian(cell, xs, resets)
    layout = cell._layout()
    checked = 0
    for g in range(layout.num_groups):
        n = layout.units[g]
        for j in range(len(layout.shapes)):
            J = np.asarray(jac[g][j])
            e = carry.traces[g][j]
            if isinstance(e, tuple):  # a few components per unit: one array each
                e = np.stack(e)
            kind = layout.kinds[g][j]
            if kind == "dense":
                np.testing.assert_allclose(e, J, rtol=1e-10, atol=1e-13)
            elif kind == "diag" and n == 1:
                assert e.shape == layout.trace_shape(g, j)
                np.testing.assert_allclose(
                    e, J[0].reshape(e.shape), rtol=1e-10, atol=1e-13
                )
            elif kind == "diag":
                # E[a, i, ...] = d s[i, a] / d P[i, ...], and every other entry
                # of the Jacobian (unit i's state vs unit j's slice) is zero;
                # one-component traces are stored without the a axis.
                diag = np.stack([J[i, :, i] for i in range(n)], axis=1)
                assert e.shape == (diag[0] if layout.blocks[g] == 1 else diag).shape
                np.testing.assert_allclose(
                    e, diag.reshape(e.shape), rtol=1e-10, atol=1e-13
                )
                off = J.copy()
                for i in range(n):
                    off[i, :, i] = 0
                assert np.max(np.abs(off)) == 0.0
            elif kind == "twin":
                # Not stored: d s[i, :] / d P[i] is a quarter turn of the source
                # leaf's trace, (-E_src[1], E_src[0]), checked against jacfwd.
                assert e is None
                src = np.stack(carry.traces[g][layout.twins[j]])
                diag = np.stack([J[i, :, i] for i in range(n)], axis=1)
                turned = np.stack([-np.asarray(src[1]), np.asarray(src[0])])
                np.testing.assert_allclose(turned, diag, rtol=1e-10, atol=1e-13)
                assert np.max(np.abs(diag)) > 0
                checked += 1
            else:
                # No trace: the state must not depend on this leaf at all, unless
                # the layout drops it on purpose (the approximation).
                assert e is None
                if cell._cross_layer:
                    assert np.max(np.abs(J)) == 0.0
            checked += e is not None
    assert checked > 0


def test_single_layer_trace_memory_is_order_of_parameters():
    N, D = 16, 9
    key = jax.random.PRNGKey(0)
    assert rc.trace_size(rc.ELSTM(input_size=D, hidden_size=N, key=key)) == (
        2 * N * D + 4 * N
    )
    # Complex-linear cells keep one complex trace for their input matrix pair:
    # 2 components x (N D + 3 N) for the LRU, not 2 x (2 N D + 3 N).
    assert rc.trace_size(rc.LRU(input_size=D, hidden_size=N, key=key)) == 2 * (
        N * D + 3 * N
    )
    assert rc.trace_size(
        rc.RTU(input_size=D, hidden_size=N, nonlinear=False, key=key)
    ) == 2 * (N * D + 2 * N)
    assert rc.trace_size(rc.RTU(input_size=D, hidden_size=N, key=key)) == 2 * (
        2 * N * D + 2 * N
    )
    # No N x N x D tensor anywhere in an element-wise cell's carry.
    for cell in (
        rc.ELSTM(input_size=D, hidden_size=N, key=key),
        rc.LRU(input_size=D, hidden_size=N, key=key),
        rc.RTU(input_size=D, hidden_size=N, key=key),
    ):
        sizes = [x.size for x in jax.tree.leaves(cell.init_carry())]
        assert max(sizes) <= 2 * N * D


def test_stack_trace_memory_has_dense_cross_blocks():
    N1, N2, D = 5, 4, 3
    key = jax.random.PRNGKey(0)
    l1 = rc.ELSTM(input_size=D, hidden_size=N1, key=key)
    l2 = rc.ELSTM(input_size=N1, hidden_size=N2, key=key)
    p1 = sum(x.size for x in jax.tree.leaves(eqx.filter(l1, eqx.is_array)))
    own = rc.trace_size(l1) + rc.trace_size(l2)
    assert rc.trace_size(rc.Stack([l1, l2])) == own + N2 * p1
    assert rc.trace_size(rc.LayerLocalApproxStack([l1, l2])) == own
