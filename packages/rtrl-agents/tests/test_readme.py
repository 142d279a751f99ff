"""The README's Python blocks are complete programs: each runs as written."""

import re
import textwrap
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def python_blocks(path: Path) -> list[str]:
    """The ```python blocks of a markdown file, in order."""
    # Indented blocks (inside a list item) count too, dedented.
    return [
        textwrap.dedent(body)
        for _, body in re.findall(
            r"^( *)```python\n(.*?)^\1```", path.read_text(), re.M | re.S
        )
    ]


@pytest.mark.parametrize("index", range(len(python_blocks(README))))
def test_readme_block_runs(index, tmp_path, monkeypatch):
    # The examples make their environments with rtrl-envs (installed beside
    # this package in the repository's test session) and one starts Ray.
    pytest.importorskip("rtrl_envs", reason="the README's examples use rtrl-envs")
    if "train_distributed" in python_blocks(README)[index]:
        pytest.importorskip("ray", reason="needs the ray extra")
    monkeypatch.chdir(tmp_path)  # anything a block writes lands here
    code = python_blocks(README)[index]
    exec(
        compile(code, f"{README.name} block {index + 1}", "exec"),
        {"__name__": "__main__"},
    )
