"""rtrl-bench: experiments, studies and benchmarks of exact RTRL."""

from ._cli import main as main
from ._complexity import ComplexityConfig as ComplexityConfig
from ._complexity import ComplexityResult as ComplexityResult
from ._complexity import ComplexityRow as ComplexityRow
from ._complexity import run_complexity as run_complexity
from ._complexity import write_report as write_complexity_report
from ._gradcheck import GradcheckRow as GradcheckRow
from ._gradcheck import run_gradcheck as run_gradcheck
from ._provenance import provenance as provenance
from ._reference import CITATION as CITATION
from ._reference import ReferenceResult as ReferenceResult
from ._reference import load_reference as load_reference
from ._reference import reference_results as reference_results

__all__ = [
    "CITATION",
    "ComplexityConfig",
    "ComplexityResult",
    "ComplexityRow",
    "GradcheckRow",
    "ReferenceResult",
    "load_reference",
    "main",
    "provenance",
    "reference_results",
    "run_complexity",
    "run_gradcheck",
    "write_complexity_report",
]

__version__ = "0.1.0"
