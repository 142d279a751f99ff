"""rtrl-bench: experiments, studies and benchmarks of exact RTRL."""

from ._cli import main as main
from ._gradcheck import GradcheckRow as GradcheckRow
from ._gradcheck import run_gradcheck as run_gradcheck
from ._provenance import provenance as provenance

__all__ = ["GradcheckRow", "main", "provenance", "run_gradcheck"]

__version__ = "0.1.0"
