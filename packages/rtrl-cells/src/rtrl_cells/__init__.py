"""rtrl-cells: recurrent cells with exact real-time recurrent learning in JAX."""

from ._cell import METHODS as METHODS
from ._cell import AbstractCell as AbstractCell
from ._cell import AbstractElementwiseCell as AbstractElementwiseCell
from ._cell import RTRLCarry as RTRLCarry
from ._cell import trace_size as trace_size
from ._dense import GRU as GRU
from ._dense import LSTM as LSTM
from ._elstm import ELSTM as ELSTM
from ._gradcheck import example_cells as example_cells
from ._gradcheck import gradient_error as gradient_error
from ._lru import LRU as LRU
from ._rtu import RTU as RTU
from ._stack import AbstractStack as AbstractStack
from ._stack import LayerLocalApproxStack as LayerLocalApproxStack
from ._stack import Stack as Stack

__all__ = [
    "ELSTM",
    "GRU",
    "LRU",
    "LSTM",
    "METHODS",
    "RTU",
    "AbstractCell",
    "AbstractElementwiseCell",
    "AbstractStack",
    "LayerLocalApproxStack",
    "RTRLCarry",
    "Stack",
    "example_cells",
    "gradient_error",
    "trace_size",
]

__version__ = "0.2.1"
