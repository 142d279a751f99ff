"""Trace memory is what the layout promises.

(That the carried traces are the true sensitivities ``d s_T / d theta``, against
``jax.jacfwd``, is ``check_cell``'s, run on every example cell.)
"""

import equinox as eqx
import jax

import rtrl_cells as rc


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
