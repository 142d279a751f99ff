"""rtrl-cells tests run in float64: exactness is checked to 1e-10."""

import jax
import pytest

jax.config.update("jax_enable_x64", True)

import rtrl_cells as rc  # noqa: E402

CELLS = rc.example_cells(jax.random.PRNGKey(0))
EXACT = [*CELLS]
METHODS = ["online", "chunked"]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "cell_name" in metafunc.fixturenames:
        metafunc.parametrize("cell_name", EXACT)
    if "rtrl_method" in metafunc.fixturenames:
        metafunc.parametrize("rtrl_method", METHODS)


@pytest.fixture
def cell(cell_name):
    return CELLS[cell_name]()
