"""Net2Net function-preserving transforms (Chen, Goodfellow & Shlens 2016, arXiv 1511.05641).

`wider` (Net2WiderNet) gives a hidden layer more units: each new unit copies the incoming
weights and bias of a randomly chosen existing unit, and the next layer's outgoing weights of
every copied unit are divided by its number of copies (the original included), so the next
layer's input is unchanged. Batch norm on the widened layer is copied per unit as well. Optional
noise breaks the symmetry between copies as the Keras Net2Net example does (examples/mnist_net2net.py,
`wider2net_fc`): Gaussian noise of std `noise` times the (population) std of the new units'
outgoing weights, after the division, added to those outgoing weights only (the new units'
incoming weights stay exact copies; the originals' outgoing weights get no noise). The example
uses 0.05, a convention, not a number from the paper. The noise is drawn whenever units are
added, even with `noise` = 0, so a twin grown with the noise off from an equal generator draws
the same units (and leaves the generator in the same state).

`deeper` (Net2DeeperNet) inserts an identity-initialized hidden block (weight layer -> the same
norm kind -> activation) after a hidden block. This preserves the function only for an
activation f with f(f(x)) = f(x) (relu, or the identity); sigmoid, tanh and softsign are refused,
as in the paper. A convolution block gets a 3x3 kernel with 1 at the centre tap of the same
channel and padding 1. An inserted batch norm undoes itself: weight sqrt(var + eps) and bias mean,
with running statistics (mean, var) taken from a batch when one is given (the biased variance,
which is what batch norm divides by in training mode), else (0, 1). In eval mode the block is then
the identity exactly; in training mode, on the batch it was set from, up to rounding.

Both work on the nn.Sequential models of `oplab.models` (mlp and convnet, after `oplab.norms.apply`
with none or batch norm): every hidden block is `weight layer -> norm -> activation`, and between
a block and the next weight layer only pooling, flattening, dropout or identities may sit. A
convnet's last block may feed the read-out Linear through AdaptiveAvgPool2d + Flatten (one input
feature per channel) or through Flatten alone (a contiguous run of features per channel).
Weight-normalized layers are refused. Each transform returns a new model; its input is untouched.
The result's layers are in the order `oplab.models.build` gives the grown MLP, so
`same_structure` holds and a built target can `load_state_dict` the grown model's state.
"""

from __future__ import annotations

import copy
from typing import NamedTuple

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.utils import parametrize

from oplab.models import ACTIVATIONS, NormSlot, probing

_PASS_THROUGH = (nn.MaxPool1d, nn.MaxPool2d, nn.AvgPool1d, nn.AvgPool2d, nn.AdaptiveAvgPool1d,
                 nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d, nn.Flatten, nn.Dropout, nn.Dropout2d)
_WEIGHT = (nn.Linear, nn.Conv2d)
_IDEMPOTENT = ("relu", "linear")  # f(f(x)) = f(x)


class Block(NamedTuple):
    """Positions, among a Sequential's children, of one hidden block's three modules."""

    weight: int
    norm: int
    act: int


def activation_name(module: nn.Module) -> str | None:
    """The `oplab.models.ACTIVATIONS` name of an activation module (None if it is not one)."""
    for name in ACTIVATIONS.names():
        if type(module) is ACTIVATIONS[name]:  # exact: NormSlot subclasses nn.Identity
            return name
    return None


def _is_norm(module: nn.Module) -> bool:
    from oplab.norms import MeanOnlyBatchNorm

    return isinstance(module, NormSlot | _BatchNorm | MeanOnlyBatchNorm)


def hidden_blocks(model: nn.Module) -> list[Block]:
    """The hidden blocks of an mlp/convnet Sequential, in forward order: every Linear/Conv2d
    child except the last (the read-out), with the norm and activation that follow it."""
    if not isinstance(model, nn.Sequential):
        raise ValueError(f"expected the nn.Sequential of oplab.models.mlp or convnet, got {type(model).__name__}")
    children = list(model.children())
    weights = [i for i, m in enumerate(children) if isinstance(m, _WEIGHT)]
    if not weights:
        raise ValueError("the model has no Linear or Conv2d layer")
    blocks = []
    for i in weights[:-1]:
        if i + 2 >= len(children) or not _is_norm(children[i + 1]) or activation_name(children[i + 2]) is None:
            found = ", ".join(type(m).__name__ for m in children[i:i + 3])
            raise ValueError(f"hidden layer at position {i} is not 'weight layer -> norm -> activation' "
                             f"(found {found})")
        blocks.append(Block(i, i + 1, i + 2))
    return blocks


def _check_index(blocks: list[Block], layer: int) -> None:
    if not isinstance(layer, int) or not 0 <= layer < len(blocks):
        raise ValueError(f"hidden layer {layer!r} is out of range; valid: 0 to {len(blocks) - 1} "
                         f"(the model has {len(blocks)} hidden layers)")


def _weight_normed(module: nn.Module) -> bool:
    return parametrize.is_parametrized(module, "weight")


def _refuse_weight_norm(model: nn.Module, what: str) -> None:
    from oplab.norms import MeanOnlyBatchNorm

    if any(_weight_normed(m) for m in model.modules()) or any(isinstance(m, MeanOnlyBatchNorm)
                                                              for m in model.modules()):
        raise ValueError(f"{what} does not support weight-normalized models (norm 'weight' or 'weight_meanbn'); "
                         "valid norms: none, batch")


def _out_units(m: nn.Module) -> int:
    return m.out_features if isinstance(m, nn.Linear) else m.out_channels


def _like(module: nn.Module, ref: torch.Tensor) -> nn.Module:
    return module.to(device=ref.device, dtype=ref.dtype)


def _new_weight_layer(old: nn.Module, n_in: int, n_out: int) -> nn.Module:
    if isinstance(old, nn.Linear):
        return _like(nn.Linear(n_in, n_out, bias=old.bias is not None), old.weight)
    if old.groups != 1:
        raise ValueError(f"Net2Net does not support grouped convolutions (groups={old.groups})")
    return _like(nn.Conv2d(n_in, n_out, old.kernel_size, stride=old.stride, padding=old.padding,
                           dilation=old.dilation, bias=old.bias is not None, padding_mode=old.padding_mode),
                 old.weight)


def _new_batchnorm(old: _BatchNorm, features: int) -> _BatchNorm:
    new = type(old)(features, eps=old.eps, momentum=old.momentum, affine=old.affine,
                    track_running_stats=old.track_running_stats)
    ref = old.weight if old.affine else old.running_mean
    return _like(new, ref) if ref is not None else new


@torch.no_grad()
def wider(model: nn.Module, layer: int, width: int, noise: float = 0.0,
          generator: torch.Generator | None = None) -> nn.Sequential:
    """Net2WiderNet: a new model whose hidden layer `layer` (0-based among the hidden Linear/Conv2d
    layers, the read-out excluded) has `width` units or channels.

    The new units copy the incoming weights and bias (and batch norm weight, bias, running mean
    and variance) of existing units drawn uniformly at random from `generator` (a CPU generator);
    the next weight layer's outgoing weights of every copied unit are divided by its copy count.
    With `noise` > 0 the new units' outgoing weights (the next layer's columns for them, after the
    division) get Gaussian noise of std `noise * std(those weights)` (the Keras example's rule),
    drawn from `generator` after the units; it is drawn with `noise` = 0 too (and multiplied by 0)."""
    blocks = hidden_blocks(model)
    _check_index(blocks, layer)
    new = copy.deepcopy(model)
    children = list(new.children())
    b = blocks[layer]
    w = children[b.weight]
    old = _out_units(w)
    if not isinstance(width, int) or width < old:
        raise ValueError(f"wider needs a width >= the layer's current width {old}; got {width!r}")
    if noise < 0:
        raise ValueError(f"noise must be >= 0; got {noise}")
    nxt_i = blocks[layer + 1].weight if layer + 1 < len(blocks) else \
        max(i for i, m in enumerate(children) if isinstance(m, _WEIGHT))
    nxt = children[nxt_i]
    if _weight_normed(w) or _weight_normed(nxt) or _weight_normed(children[b.norm]):
        raise ValueError("wider does not support weight-normalized layers (norm 'weight' or 'weight_meanbn'); "
                         "valid norms: none, batch")
    between = children[b.act + 1:nxt_i]
    odd = [type(m).__name__ for m in between if not isinstance(m, _PASS_THROUGH)
           and type(m) is not nn.Identity]
    if odd:
        raise ValueError(f"wider: between hidden layer {layer} and the next weight layer there is {odd[0]}; "
                         f"only pooling, Flatten, Dropout or Identity may sit there")

    src = torch.cat([torch.arange(old), torch.randint(old, (width - old,), generator=generator)])
    counts = torch.bincount(src, minlength=old)
    W = w.weight.detach()
    dev = W.device
    src_d = src.to(dev)

    # the widened layer: copies of the source units' incoming weights and biases
    grown = _new_weight_layer(w, W.shape[1], width)
    grown.weight.copy_(W[src_d])
    if w.bias is not None:
        grown.bias.copy_(w.bias.detach()[src_d])
    children[b.weight] = grown

    # its norm: a wider slot, or batch norm copied per unit
    norm = children[b.norm]
    if isinstance(norm, NormSlot):
        children[b.norm] = NormSlot(width, spatial=norm.spatial)
    elif isinstance(norm, _BatchNorm):
        bn = _new_batchnorm(norm, width)
        if norm.affine:
            bn.weight.copy_(norm.weight.detach()[src_d])
            bn.bias.copy_(norm.bias.detach()[src_d])
        if norm.track_running_stats:
            bn.running_mean.copy_(norm.running_mean[src_d])
            bn.running_var.copy_(norm.running_var[src_d])
            bn.num_batches_tracked.copy_(norm.num_batches_tracked)
        children[b.norm] = bn
    else:
        raise ValueError(f"wider does not support the norm {type(norm).__name__}; valid norms: none, batch")

    # the next weight layer: outgoing weights of each copy divided by its unit's copy count
    Wn = nxt.weight.detach()
    scale = (1.0 / counts.to(dtype=Wn.dtype, device=dev))[src_d]
    if isinstance(nxt, nn.Linear):
        if Wn.shape[1] % old:
            raise ValueError(f"wider: the next Linear has {Wn.shape[1]} inputs, not a multiple of the "
                             f"{old} units of hidden layer {layer}")
        k = Wn.shape[1] // old  # features per channel after Flatten (1 for units or global pooling)
        out_w = Wn.view(Wn.shape[0], old, k)[:, src_d, :] * scale.view(1, -1, 1)
        nxt_new = _new_weight_layer(nxt, width * k, Wn.shape[0])
    else:
        out_w = Wn[:, src_d] * scale.view(1, -1, 1, 1)
        nxt_new = _new_weight_layer(nxt, width, Wn.shape[0])
    if width > old:  # the Keras example's symmetry breaking: noise on the new units' outgoing weights
        added = out_w[:, old:]
        eps = torch.randn(added.shape, generator=generator, dtype=Wn.dtype).to(dev)
        if noise > 0:
            out_w[:, old:] = added + eps * (noise * added.std(unbiased=False))
    nxt_new.weight.copy_(out_w.reshape(nxt_new.weight.shape))
    if nxt.bias is not None:
        nxt_new.bias.copy_(nxt.bias.detach())
    children[nxt_i] = nxt_new

    out = nn.Sequential(*children)
    out.train(model.training)
    return out


@torch.no_grad()
def deeper(model: nn.Module, layer: int, batch: torch.Tensor | None = None) -> nn.Sequential:
    """Net2DeeperNet: a new model with an identity-initialized hidden block (weight layer -> the
    same norm kind -> the same activation) inserted right after hidden block `layer`'s activation.

    Linear: identity matrix, zero bias. Conv2d: 3x3 kernel, 1 at the centre of the same channel,
    padding 1, zero bias. Only for relu or linear (identity) activations. An inserted batch norm
    gets weight sqrt(var + eps), bias mean and running statistics (mean, var): the per-feature
    mean and biased variance of the inserted layer's input on `batch` (the model's input; the
    model run in training mode, its buffers left as they were), or (0, 1) without a batch."""
    blocks = hidden_blocks(model)
    _check_index(blocks, layer)
    _refuse_weight_norm(model, "deeper")
    b = blocks[layer]
    children = list(copy.deepcopy(model).children())
    act = children[b.act]
    name = activation_name(act)
    if name not in _IDEMPOTENT:
        raise ValueError(f"Net2DeeperNet needs an activation f with f(f(x)) = f(x) such as relu; got {name}")
    w = children[b.weight]
    n = _out_units(w)
    ref = w.weight.detach()
    if isinstance(w, nn.Linear):
        ins = _like(nn.Linear(n, n), ref)
        ins.weight.copy_(torch.eye(n, dtype=ref.dtype, device=ref.device))
    else:
        ins = _like(nn.Conv2d(n, n, 3, padding=1), ref)
        ins.weight.zero_()
        ins.weight[torch.arange(n), torch.arange(n), 1, 1] = 1.0
    ins.bias.zero_()

    norm = children[b.norm]
    if isinstance(norm, NormSlot):
        ins_norm = NormSlot(norm.features, spatial=norm.spatial)
    elif isinstance(norm, _BatchNorm):
        if not norm.affine:
            raise ValueError("deeper needs an affine batch norm (weight and bias) to make the inserted one "
                             "the identity")
        ins_norm = _new_batchnorm(norm, n)
        if batch is not None:
            with probing(model, train=True):
                h = nn.Sequential(*list(model.children())[:b.act + 1])(batch)
            dims = [0] + list(range(2, h.ndim))
            mean, var = h.mean(dim=dims), h.var(dim=dims, unbiased=False)
        else:
            mean = torch.zeros(n, dtype=ref.dtype, device=ref.device)
            var = torch.ones(n, dtype=ref.dtype, device=ref.device)
        if ins_norm.track_running_stats:
            ins_norm.running_mean.copy_(mean)
            ins_norm.running_var.copy_(var)
            ins_norm.num_batches_tracked.copy_(norm.num_batches_tracked)
        ins_norm.weight.copy_(torch.sqrt(var + ins_norm.eps))
        ins_norm.bias.copy_(mean)
    else:
        raise ValueError(f"deeper does not support the norm {type(norm).__name__}; valid norms: none, batch")

    out = nn.Sequential(*children[:b.act + 1], ins, ins_norm, copy.deepcopy(act), *children[b.act + 1:])
    out.train(model.training)
    return out


def structure_mismatch(a: nn.Module, b: nn.Module) -> str | None:
    """The first difference between two models' module types (in order) or state_dict keys and
    shapes, in words; None when they match."""
    ma = [(n, type(m).__name__) for n, m in a.named_modules()]
    mb = [(n, type(m).__name__) for n, m in b.named_modules()]
    for x, y in zip(ma, mb):
        if x != y:
            return f"module {x[0] or '(root)'!r} is {x[1]} in the first model, {y[0] or '(root)'!r} is {y[1]} " \
                   f"in the second"
    if len(ma) != len(mb):
        return f"the first model has {len(ma)} modules, the second {len(mb)}"
    sa = [(k, tuple(v.shape)) for k, v in a.state_dict().items()]
    sb = [(k, tuple(v.shape)) for k, v in b.state_dict().items()]
    for x, y in zip(sa, sb):
        if x != y:
            return f"state_dict entry {x[0]!r} {x[1]} in the first model, {y[0]!r} {y[1]} in the second"
    if len(sa) != len(sb):
        return f"the first model has {len(sa)} state_dict entries, the second {len(sb)}"
    return None


def same_structure(a: nn.Module, b: nn.Module, raise_error: bool = False) -> bool:
    """True when `a` and `b` have the same module types in the same order and the same state_dict
    keys and shapes (so `b.load_state_dict(a.state_dict())` works). With `raise_error`, a mismatch
    raises a ValueError naming the first difference instead of returning False."""
    diff = structure_mismatch(a, b)
    if diff is not None and raise_error:
        raise ValueError(f"models differ in structure: {diff}")
    return diff is None
