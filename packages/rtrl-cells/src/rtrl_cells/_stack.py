"""Stacks of element-wise cells: exact multi-layer RTRL, and an approximation."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar, final

import equinox as eqx
import jax

from ._cell import AbstractCell, AbstractElementwiseCell
from ._engine import LeafInfo


class AbstractStack(AbstractCell):
    """Layers applied in order: layer ``l`` reads layer ``l-1``'s output each step."""

    layers: tuple[AbstractElementwiseCell, ...]

    def __check_init__(self):
        if len(self.layers) == 0:
            raise ValueError("a stack needs at least one layer.")
        for i, layer in enumerate(self.layers):
            if not isinstance(layer, AbstractElementwiseCell):
                raise ValueError(
                    f"layer {i} is a {type(layer).__name__}; a stack takes "
                    "element-wise cells (ELSTM, LRU, RTU, GRU, LSTM), not stacks."
                )
        for i in range(1, len(self.layers)):
            below, above = self.layers[i - 1], self.layers[i]
            if below.output_size != above.input_size:
                raise ValueError(
                    f"layer widths do not chain: layer {i - 1} outputs "
                    f"{below.output_size} but layer {i} expects input_size "
                    f"{above.input_size}."
                )

    @property
    def input_size(self) -> int:
        return self.layers[0].input_size

    @property
    def output_size(self) -> int:
        return self.layers[-1].output_size

    def _groups(self):
        units = tuple(layer.num_units for layer in self.layers)
        blocks = tuple(layer.block_size for layer in self.layers)
        return units, blocks

    def _leaf_infos(self):
        infos, offset = [], 0  # a layer's twin indices count from its first leaf
        for i, layer in enumerate(self.layers):
            infos.append(
                jax.tree.map(
                    lambda info, i=i, offset=offset: LeafInfo(
                        i, info.rec, None if info.twin is None else info.twin + offset
                    ),
                    layer._leaf_infos(),
                    is_leaf=lambda x: isinstance(x, LeafInfo),
                )
            )
            offset += len(jax.tree.leaves(eqx.filter(layer, eqx.is_inexact_array)))
        return infos

    def _init_state(self):
        return tuple(layer._init_state()[0] for layer in self.layers)

    def _prepare(self, xs):
        # Only the first layer's input projection can leave the time loop.
        return xs, jax.vmap(self.layers[0].project)(xs)

    def _core(self, s_tm1, pre_t):
        x_t, u_t = pre_t
        states = []
        y = x_t
        for i, layer in enumerate(self.layers):
            u = u_t if i == 0 else layer.project(y)
            s = layer.core(s_tm1[i], u)
            states.append(s)
            if i + 1 < len(self.layers):
                y = layer.readout(s, y)
        return tuple(states)

    def _readout(self, s_t, x_t):
        y = x_t
        for layer, s in zip(self.layers, s_t, strict=True):
            y = layer.readout(s, y)
        return y


@final
class Stack(AbstractStack):
    r"""Several element-wise layers trained with exact RTRL.

    Layer ``l``'s state depends on every parameter of the layers below it (through
    its input matrix), so exact RTRL carries, besides each layer's own
    element-wise traces, a dense block ``d s_l / d theta_m`` for every ``m < l``
    (``L(L+1)/2`` blocks; Irie et al. 2024, section 5). The dense blocks are
    updated by

        E_lm <- (d s_l / d s_l^-) E_lm + (d s_l / d y_l-1) (d y_l-1 / d theta_m)

    per step ("online"), or, per segment ("chunked"), from one reverse pass per
    state entry of layer ``l``. This is exact and expensive: memory
    ``N_l k_l |theta_m|`` per block.

    Args:
        layers: the cells, bottom first; each layer's ``input_size`` must equal the
            previous layer's ``output_size``.
    """

    def __init__(self, layers: Sequence[AbstractElementwiseCell]):
        self.layers = tuple(layers)


@final
class LayerLocalApproxStack(AbstractStack):
    r"""An APPROXIMATION of RTRL for stacks: each layer keeps only its own traces.

    Each layer carries the element-wise traces of its own recurrent parameters,
    treating the layer below's output as an input; the cross-layer blocks of
    :class:`Stack` are dropped. Within one call (a segment) the gradient is BPTT
    through all layers; across calls, only ``lambda_l . E_{l,l}`` is added.

    Properties (tested): identical to exact RTRL for one layer; the traces it
    keeps equal exact RTRL's own-layer blocks; the top layer's parameter gradient
    is exact; lower layers' gradients across segment boundaries are not.
    Memory: the sum of the layers' own trace sizes.
    """

    _cross_layer: ClassVar[bool] = False

    def __init__(self, layers: Sequence[AbstractElementwiseCell]):
        self.layers = tuple(layers)
