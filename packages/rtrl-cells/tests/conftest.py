"""rtrl-cells tests run in float64: exactness is checked to 1e-10."""

import jax
import pytest

jax.config.update("jax_enable_x64", True)

import rtrl_cells as rc  # noqa: E402

# Every registered cell (each example option set) and a few stacks: a cell
# joins every test that takes ``cell`` by joining the registry.
CELLS = rc.example_cells(jax.random.PRNGKey(0))


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "cell_name" in metafunc.fixturenames:
        metafunc.parametrize("cell_name", list(CELLS))


@pytest.fixture
def cell(cell_name):
    return CELLS[cell_name]()
