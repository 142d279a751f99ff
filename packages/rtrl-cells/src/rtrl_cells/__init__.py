"""rtrl-cells: recurrent cells with exact real-time recurrent learning in JAX."""

from . import testing as testing
from ._cell import AbstractCell as AbstractCell
from ._cell import AbstractElementwiseCell as AbstractElementwiseCell
from ._cell import RTRLCarry as RTRLCarry
from ._cell import recurrent as recurrent
from ._cell import recurrent_fields as recurrent_fields
from ._cell import trace_size as trace_size
from ._check import CellContractError as CellContractError
from ._check import check_cell as check_cell
from ._dense import GRU as GRU
from ._dense import LSTM as LSTM
from ._elstm import ELSTM as ELSTM
from ._gradcheck import gradient_error as gradient_error
from ._gradcheck import gradient_errors as gradient_errors
from ._gradcheck import gradient_errors_by_method as gradient_errors_by_method
from ._lru import LRU as LRU
from ._lru import AbstractLRU as AbstractLRU
from ._lru import OnlineLRU as OnlineLRU
from ._methods import BPTT as BPTT
from ._methods import CHUNKED as CHUNKED
from ._methods import METHODS as METHODS
from ._methods import ONLINE as ONLINE
from ._methods import GradientMethod as GradientMethod
from ._methods import method as method
from ._methods import method_names as method_names
from ._registry import CELLS as CELLS
from ._registry import CellExample as CellExample
from ._registry import CellKind as CellKind
from ._registry import cell_examples as cell_examples
from ._registry import cell_kind as cell_kind
from ._registry import cell_kind_of as cell_kind_of
from ._registry import example_cells as example_cells
from ._registry import register_cell as register_cell
from ._registry import unregister_cell as unregister_cell
from ._rtu import RTU as RTU
from ._stack import AbstractStack as AbstractStack
from ._stack import LayerLocalApproxStack as LayerLocalApproxStack
from ._stack import Stack as Stack
from ._workarounds import Workarounds as Workarounds
from ._workarounds import use_workarounds as use_workarounds
from ._workarounds import workarounds as workarounds

__all__ = [
    "BPTT",
    "CELLS",
    "CHUNKED",
    "ELSTM",
    "GRU",
    "LRU",
    "LSTM",
    "METHODS",
    "ONLINE",
    "RTU",
    "AbstractCell",
    "AbstractElementwiseCell",
    "AbstractLRU",
    "AbstractStack",
    "CellContractError",
    "CellExample",
    "CellKind",
    "GradientMethod",
    "LayerLocalApproxStack",
    "OnlineLRU",
    "RTRLCarry",
    "Stack",
    "Workarounds",
    "cell_examples",
    "cell_kind",
    "cell_kind_of",
    "check_cell",
    "example_cells",
    "gradient_error",
    "gradient_errors",
    "gradient_errors_by_method",
    "method",
    "method_names",
    "recurrent",
    "recurrent_fields",
    "register_cell",
    "testing",
    "trace_size",
    "unregister_cell",
    "use_workarounds",
    "workarounds",
]

__version__ = "0.5.0"
