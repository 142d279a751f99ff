"""Every example cell (the registry's, and the stacks) runs the property suite.

The suite is ``rtrl_cells.testing.CellTests``, the one a user's cell runs: its
first test is ``check_cell`` (traces against ``jax.jacfwd``, no cross-unit
Jacobian, a hand-written fast path against the engine, online and chunked RTRL
against full BPTT in float64 to 1e-10). The ``cell`` fixture comes from
``conftest.py``, parametrised over ``rtrl_cells.example_cells``.
"""

import rtrl_cells as rc


class TestExampleCells(rc.testing.CellTests):
    pass
