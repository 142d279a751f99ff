"""The README's code runs: every ```python block, in order, in one namespace.

The README's own cell (an IndRNN written from its "Writing your own cell"
section) then runs the whole property suite, as the built-in cells do.
"""

import re
import textwrap
from pathlib import Path

import jax
import pytest

import rtrl_cells as rc

README = Path(__file__).resolve().parents[1] / "README.md"


def _blocks() -> list[str]:
    # Indented blocks (inside a list item) count too, dedented.
    return [
        textwrap.dedent(body)
        for _, body in re.findall(
            r"^( *)```python\n(.*?)^\1```", README.read_text(), re.M | re.S
        )
    ]


@pytest.fixture(scope="module")
def readme() -> dict:
    namespace: dict = {"__name__": "readme"}
    for block in _blocks():
        exec(compile(block, str(README), "exec"), namespace)
    return namespace


def test_readme_has_the_extension_example():
    text = README.read_text()
    assert len(_blocks()) >= 3
    assert "class IndRNN(rc.AbstractElementwiseCell)" in text
    assert "rc.check_cell(cell)" in text


def test_readme_blocks_run(readme):
    assert isinstance(readme["cell"], readme["IndRNN"])
    assert readme["cell"]._has_fast_path


def test_readme_cell_registers_and_joins_the_examples(readme):
    rc.register_cell("indrnn", readme["IndRNN"])
    try:
        assert rc.cell_kind("indrnn").cls is readme["IndRNN"]
        examples = rc.example_cells(jax.random.PRNGKey(0))
        assert isinstance(examples["IndRNN"](), readme["IndRNN"])
    finally:
        rc.unregister_cell("indrnn")
    assert "indrnn" not in rc.CELLS


class TestReadmeIndRNN(rc.testing.CellTests):
    @pytest.fixture
    def cell(self, readme):
        return readme["IndRNN"](input_size=3, hidden_size=4, key=jax.random.PRNGKey(1))
