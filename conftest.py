"""Repository-wide pytest options: ``--runslow`` enables tests marked ``slow``."""

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--runslow", action="store_true", default=False, help="run tests marked slow"
    )


def pytest_collection_modifyitems(
    config: pytest.Config, items: list[pytest.Item]
) -> None:
    if config.getoption("--runslow"):
        return
    skip_slow = pytest.mark.skip(reason="slow: run with `nox -s tests -- --runslow`")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip_slow)
