"""The cells as the RTU paper (Elelimy et al. 2024) ran them: its LRU baseline's
readout, and the RTU's input scale near |lambda| = 1."""

import jax
import jax.numpy as jnp
import numpy as np

import rtrl_cells as rc

KEY = jax.random.PRNGKey(3)


def test_online_lru_reads_out_re_c_h_with_a_square_c_and_no_skip():
    N, D, T = 4, 3, 6
    cell = rc.OnlineLRU(input_size=D, hidden_size=N, key=KEY)
    assert cell.output_size == N and cell.C_re.shape == (N, N)
    assert not hasattr(cell, "D")
    xs = jax.random.normal(jax.random.PRNGKey(1), (T, D))
    resets = jnp.zeros(T, bool).at[0].set(True)
    ys, _ = cell.unroll(cell.init_carry(), xs, resets, method="bptt")
    # The same, in complex numbers.
    lam = np.exp(-np.exp(cell.nu_log) + 1j * np.exp(cell.theta_log))
    gamma = np.exp(cell.gamma_log)
    B = np.asarray(cell.B_re) + 1j * np.asarray(cell.B_im)
    C = np.asarray(cell.C_re) + 1j * np.asarray(cell.C_im)
    h = np.zeros(N, complex)
    for t in range(T):
        h = lam * h + gamma * (B @ np.asarray(xs[t]))
        np.testing.assert_allclose(ys[t], (C @ h).real, rtol=1e-12, atol=1e-12)
    # Orvieto's LRU reads out D features and adds D * x: another function.
    orvieto = rc.LRU(input_size=D, hidden_size=N, key=KEY)
    assert orvieto.output_size == D


def test_rtu_input_scale_stays_finite_as_r_goes_to_one():
    # nu_log = -40: r = exp(-exp(-40)) rounds to 1 (even in float64), where
    # sqrt(1 - r**2) is 0 and its derivative infinite.
    cell = rc.RTU(input_size=3, hidden_size=4, key=KEY)
    nu_log = cell.nu_log.at[0].set(-40.0)
    cell = eqx_set(cell, "nu_log", nu_log)
    r = jnp.exp(-jnp.exp(nu_log))
    naive = jax.grad(lambda v: jnp.sqrt(1 - jnp.exp(-jnp.exp(v)) ** 2))(nu_log[0])
    assert float(r[0]) == 1.0 and not np.isfinite(float(naive))
    xs = jax.random.normal(jax.random.PRNGKey(2), (5, 3))
    resets = jnp.zeros(5, bool).at[0].set(True)

    def loss(c, method):
        return jnp.sum(c.unroll(c.init_carry(), xs, resets, method=method)[0] ** 2)

    for method in ("bptt", "chunked", "online"):
        grads = jax.grad(loss)(cell, method)
        assert all(bool(jnp.all(jnp.isfinite(g))) for g in jax.tree.leaves(grads)), (
            method
        )
    # gamma = sqrt(1 - r^2 + 1e-8): 1e-4 at r = 1, as the released code's 1e-8.
    gamma = cell._coefficients()[-1]
    np.testing.assert_allclose(gamma[0], 1e-4, rtol=1e-3)


def eqx_set(module, name, value):
    import equinox as eqx

    return eqx.tree_at(lambda m: getattr(m, name), module, value)
