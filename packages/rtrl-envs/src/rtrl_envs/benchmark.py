"""Adapter vs raw backend steps per second.

Run it from the command line with ``rtrl-bench envs`` (package rtrl-bench); this
module holds the measurement itself.
"""

from ._benchmark import DEFAULT_NAMES as DEFAULT_NAMES
from ._benchmark import BenchmarkResult as BenchmarkResult
from ._benchmark import format_table as format_table
from ._benchmark import run_benchmark as run_benchmark

__all__ = ["DEFAULT_NAMES", "BenchmarkResult", "format_table", "run_benchmark"]
