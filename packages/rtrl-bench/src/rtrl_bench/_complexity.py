"""``rtrl-bench complexity``: time and trace memory of RTRL against width and depth.

Irie et al. (ICLR 2024, section 5) note that exact RTRL stops being cheap when
element-wise layers are stacked: layer ``l`` reads all of layer ``l-1``'s output,
so ``d s_l / d theta_m`` (``m < l``) is dense, ``N_l x |theta_m|``, and ``L``
layers carry ``L(L+1)/2`` sensitivity blocks. This study measures that cost.

For stacks of ``L`` layers of width ``N`` (input width ``D`` fixed; ELSTM layers by
default, any registered element-wise cell with ``ComplexityConfig.cell``) it times
the gradient of a batch-summed loss over one rollout of ``T`` steps (vmapped batch
of ``B`` streams, jitted, float32; the function also returns the new carry, so
the trace update of ``"chunked"`` cannot be dropped as dead code) and divides the
median by ``T``. Methods:

- ``exact-step``: :class:`rtrl_cells.Stack`, exact RTRL as a streaming learner
  does it: a scan of ``cell.step`` with one gradient per step, accumulated (the
  per-step trace recursion; memory constant in ``T``);
- ``exact-online`` / ``exact-chunked``: the same stack, ``unroll`` with
  ``"online"`` / ``"chunked"`` (both exact; within one call ``"online"`` uses
  the segment schedule, BPTT in the segment plus ``lambda_0 . E_0``);
- ``local``: :class:`rtrl_cells.LayerLocalApproxStack` (``"chunked"``), the
  layer-local APPROXIMATION (own-layer traces only);
- ``bptt``: truncated BPTT over the rollout (no traces);
- ``dense-step`` / ``dense-chunked``: one dense cell (:class:`rtrl_cells.GRU` by
  default, ``ComplexityConfig.dense_cell``), exact dense RTRL (``L = 1`` only),
  per step or per segment.

The arms are built from rtrl-cells' gradient methods (:data:`ARMS`): an exact
method ``m`` gives ``exact-m``, a method that advances no traces is timed on its
own (``bptt``). The theory's exponents are stated for the default cells.

Trace memory per stream is counted from the layout (``rtrl_cells.trace_size``,
4 bytes an entry), checked against the arrays of a real carry, and set beside the
compiler's own account (``memory_analysis()`` temporaries). Before anything is
compiled its working set is estimated; a configuration over the budget is not run
and the table says how much it would need. Growth exponents in ``N`` are fitted
per (method, L) by log-log least squares and printed beside the theory.

The study is split by concern: its configuration and result types
(``_complexity_config``), the theory and the fits against it
(``_complexity_theory``), the measurement (``_complexity_measure``) and the
report (``_complexity_report``); this module is the study's public face.
"""

from __future__ import annotations

from ._complexity_config import ARMS as ARMS
from ._complexity_config import DEFAULT_ENTRIES as DEFAULT_ENTRIES
from ._complexity_config import FULL_ENTRIES as FULL_ENTRIES
from ._complexity_config import LAYERS as LAYERS
from ._complexity_config import METHODS as METHODS
from ._complexity_config import STEP as STEP
from ._complexity_config import WIDTHS as WIDTHS
from ._complexity_config import Arm as Arm
from ._complexity_config import ComplexityConfig as ComplexityConfig
from ._complexity_config import ComplexityResult as ComplexityResult
from ._complexity_config import ComplexityRow as ComplexityRow
from ._complexity_config import Entry as Entry
from ._complexity_config import Fit as Fit
from ._complexity_config import LengthRow as LengthRow
from ._complexity_config import fmt_bytes as fmt_bytes
from ._complexity_measure import make_cell as make_cell
from ._complexity_measure import run_complexity as run_complexity
from ._complexity_measure import unroll_method as unroll_method
from ._complexity_report import format_fits as format_fits
from ._complexity_report import format_formula_check as format_formula_check
from ._complexity_report import format_lengths as format_lengths
from ._complexity_report import format_report as format_report
from ._complexity_report import format_table as format_table
from ._complexity_report import write_plots as write_plots
from ._complexity_report import write_report as write_report
from ._complexity_theory import THEORY as THEORY
from ._complexity_theory import THEORY_CELLS as THEORY_CELLS
from ._complexity_theory import estimate_bytes as estimate_bytes
from ._complexity_theory import fit_all as fit_all
from ._complexity_theory import fit_exponent as fit_exponent
from ._complexity_theory import layer_counts as layer_counts
from ._complexity_theory import theory as theory
from ._complexity_theory import trace_formula as trace_formula
