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


# Every executable XLA compiles keeps memory maps of its code, and Linux caps a
# process at vm.max_map_count of them (65,530 by default). A test process that
# compiles thousands of programs crosses it, and XLA's compiler then crashes
# with a segmentation fault inside `backend_compile_and_load` (seen in the
# rtrl-cells and rtrl-agents suites). Past a margin, drop the compiled programs.
_MAP_MARGIN = 20_000


def _memory_maps() -> int:
    try:
        with open("/proc/self/maps", "rb") as f:
            return sum(1 for _ in f)
    except OSError:  # not Linux: no such cap to guard
        return 0


@pytest.fixture(autouse=True)
def _release_compiled_programs():
    yield
    if _memory_maps() > _MAP_MARGIN:
        import gc

        import jax

        jax.clear_caches()
        gc.collect()
