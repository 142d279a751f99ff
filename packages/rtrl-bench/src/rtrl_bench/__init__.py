"""rtrl-bench: experiments, studies and benchmarks of exact RTRL."""

from ._cli import main as main
from ._complexity import ComplexityConfig as ComplexityConfig
from ._complexity import ComplexityResult as ComplexityResult
from ._complexity import ComplexityRow as ComplexityRow
from ._complexity import run_complexity as run_complexity
from ._complexity import write_report as write_complexity_report
from ._experiments import EXPERIMENTS as EXPERIMENTS
from ._experiments import EnvConfig as EnvConfig
from ._experiments import Experiment as Experiment
from ._experiments import SequenceConfig as SequenceConfig
from ._experiments import UnknownExperimentError as UnknownExperimentError
from ._experiments import UnknownVariantError as UnknownVariantError
from ._experiments import Variant as Variant
from ._experiments import get_experiment as get_experiment
from ._experiments import list_experiments as list_experiments
from ._gradcheck import GradcheckRow as GradcheckRow
from ._gradcheck import run_gradcheck as run_gradcheck
from ._load import EvalResult as EvalResult
from ._load import LoadedRun as LoadedRun
from ._load import evaluate_run as evaluate_run
from ._load import load as load
from ._provenance import provenance as provenance
from ._reference import CITATION as CITATION
from ._reference import ReferenceResult as ReferenceResult
from ._reference import load_reference as load_reference
from ._reference import reference_results as reference_results
from ._report import VariantSummary as VariantSummary
from ._report import summarise_results as summarise_results
from ._report import write_report as write_report
from ._run import BackendMissingError as BackendMissingError
from ._run import CheckpointPolicy as CheckpointPolicy
from ._run import RunConfig as RunConfig
from ._run import RunResult as RunResult
from ._run import evaluate as evaluate
from ._run import evaluate_greedy as evaluate_greedy
from ._run import run_experiment as run_experiment

__all__ = [
    "CITATION",
    "EXPERIMENTS",
    "BackendMissingError",
    "CheckpointPolicy",
    "ComplexityConfig",
    "ComplexityResult",
    "ComplexityRow",
    "EnvConfig",
    "EvalResult",
    "Experiment",
    "GradcheckRow",
    "LoadedRun",
    "ReferenceResult",
    "RunConfig",
    "RunResult",
    "SequenceConfig",
    "UnknownExperimentError",
    "UnknownVariantError",
    "Variant",
    "VariantSummary",
    "evaluate",
    "evaluate_greedy",
    "evaluate_run",
    "get_experiment",
    "list_experiments",
    "load",
    "load_reference",
    "main",
    "provenance",
    "reference_results",
    "run_complexity",
    "run_experiment",
    "run_gradcheck",
    "summarise_results",
    "write_complexity_report",
    "write_report",
]

__version__ = "0.6.1"
