"""Models: an MLP and a small convnet, with marked slots where a normalizer goes; a deep
linear network (Saxe et al. 2013, `deep_linear`); and the recurrent models of Pascanu,
Mikolov & Bengio (2013), the Elman RNN also with an LSTM cell (`rnn`, cell="lstm").

Every hidden layer is `weight layer -> NormSlot -> activation`. A NormSlot is
an identity until `oplab.norms.apply` swaps in batch norm or mean-only batch
norm, so one model definition serves every normalization arm.

The single recurrent unit of the paper's Fig. 6, `x_t = w sigmoid(x_{t-1}) + b`,
x_0 = 0.5, T = 50, error E = (sigmoid(x_T) - 0.7)^2, is both a trainable model
(`single_unit`, `SingleUnit`) and a closed-form surface: `single_unit_grid`
evaluates E and its exact gradient (forward-mode recurrences for dx_t/dw and
dx_t/db, float64) over a (w, b) grid in one vectorized pass; `wall_ratio` and
`single_unit_wall_b` locate the wall of huge gradients. The loss surface drawn in
a study's figure and the "wall exists" check are this deterministic function, not
trained records. Its target dataset is oplab.tasks' `single_unit_target`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import numpy as np
import torch
from torch import nn

from oplab.config import ModelConfig
from oplab.registry import Registry

MODELS = Registry("model")
ACTIVATIONS = Registry("activation")

ACTIVATIONS.register("relu")(nn.ReLU)
ACTIVATIONS.register("tanh")(nn.Tanh)
ACTIVATIONS.register("sigmoid")(nn.Sigmoid)
ACTIVATIONS.register("softsign")(nn.Softsign)
ACTIVATIONS.register("linear")(nn.Identity)


class NormSlot(nn.Identity):
    """Where a normalizer of `features` channels goes (spatial: 2-D feature maps)."""

    def __init__(self, features: int, spatial: bool = False):
        super().__init__()
        self.features = features
        self.spatial = spatial

    def extra_repr(self) -> str:
        return f"features={self.features}, spatial={self.spatial}"


def build(cfg: ModelConfig, input_shape: tuple[int, ...], out_dim: int) -> nn.Module:
    """The model of a trial config for inputs of `input_shape` and `out_dim` outputs."""
    if cfg.activation not in ACTIVATIONS:
        ACTIVATIONS[cfg.activation]  # raises, listing the valid names
    return MODELS.build(
        cfg.name, input_shape=input_shape, out_dim=out_dim, depth=cfg.depth, width=cfg.width,
        activation=cfg.activation, **cfg.opts,
    )


def weight_layers(model: nn.Module) -> list[nn.Module]:
    """Linear and convolution layers in forward (registration) order."""
    return [m for m in model.modules() if isinstance(m, nn.Linear | nn.Conv1d | nn.Conv2d)]


@MODELS.register("mlp")
def mlp(*, input_shape, out_dim, depth, width, activation) -> nn.Module:
    """`depth` hidden layers of `width` units, then a linear read-out."""
    n_in = 1
    for s in input_shape:
        n_in *= s
    layers: list[nn.Module] = [nn.Flatten()]
    for _ in range(depth):
        layers += [nn.Linear(n_in, width), NormSlot(width), ACTIVATIONS.build(activation)]
        n_in = width
    layers.append(nn.Linear(n_in, out_dim))
    return nn.Sequential(*layers)


@MODELS.register("convnet")
def convnet(*, input_shape, out_dim, depth, width, activation, pools: list[int] | None = None) -> nn.Module:
    """`depth` 3x3 conv blocks; 2x2 max-pool and doubled channels after every second block
    (or after the blocks listed in `pools`, 0-based); global average pooling and a linear
    read-out. For 28x28 digits, depth 4 and width 16 give 16-16-32-32 channels (about 24k
    parameters). A pool is skipped once the maps are smaller than 4x4."""
    if len(input_shape) != 3:
        raise ValueError(f"convnet needs (channels, height, width) inputs, got shape {input_shape}")
    if pools is not None and not all(isinstance(p, int) and 0 <= p < depth for p in pools):
        raise ValueError(f"convnet pools must be block indices in 0..{depth - 1}, got {pools}")
    pool_after = set(range(1, depth, 2)) if pools is None else set(pools)
    c_in, size = input_shape[0], min(input_shape[1:])
    c_out = width
    layers: list[nn.Module] = []
    for i in range(depth):
        layers += [nn.Conv2d(c_in, c_out, 3, padding=1), NormSlot(c_out, spatial=True),
                   ACTIVATIONS.build(activation)]
        c_in = c_out
        if i in pool_after and size >= 4:
            layers.append(nn.MaxPool2d(2))
            size //= 2
            c_out *= 2
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c_in, out_dim)]
    return nn.Sequential(*layers)


@MODELS.register("deep_linear")
def deep_linear(*, input_shape, out_dim, depth, width, activation, bias: bool = False) -> nn.Module:
    """A deep linear network (Saxe, McClelland & Ganguli 2013): `depth` weight layers and no
    nonlinearity, input -> width -> ... -> width -> out_dim, so the net computes the product of
    its `depth` matrices (depth 1: a linear read-out of the input). Biases off by default, as in
    Saxe et al.'s analysis. `activation` is ignored (there is none); there is no normalizer slot."""
    if depth < 1:
        raise ValueError(f"deep_linear needs depth >= 1 weight layers, got {depth}")
    n_in = 1
    for s in input_shape:
        n_in *= s
    sizes = [n_in] + [width] * (depth - 1) + [out_dim]
    layers: list[nn.Module] = [nn.Flatten()]
    layers += [nn.Linear(a, b, bias=bias) for a, b in zip(sizes[:-1], sizes[1:])]
    return nn.Sequential(*layers)


@contextlib.contextmanager
def probing(model: nn.Module, train: bool = True) -> Iterator[nn.Module]:
    """Run a probe in train (batch statistics) or eval mode; afterwards the model's mode and
    every buffer (batch norm running statistics) are as they were."""
    saved = {n: b.detach().clone() for n, b in model.named_buffers()}
    was_training = model.training
    model.train(train)
    try:
        yield model
    finally:
        with torch.no_grad():
            for n, b in model.named_buffers():
                b.copy_(saved[n])
        model.train(was_training)


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def forward_inputs(model: nn.Module, x: torch.Tensor, layers: list[nn.Module]) -> list[torch.Tensor]:
    """The outputs of `layers` on a batch, collected with forward hooks that are then removed."""
    outs: dict[int, torch.Tensor] = {}
    hooks = [m.register_forward_hook(lambda mod, inp, out, i=i: outs.__setitem__(i, out.detach()))
             for i, m in enumerate(layers)]
    try:
        model(x)
    finally:
        for h in hooks:
            h.remove()
    return [outs[i] for i in range(len(layers))]


# --- recurrent models (Pascanu, Mikolov & Bengio 2013)


class SequenceRNN(nn.Module):
    """An Elman RNN (or, with cell="lstm", an LSTM) over (batch, time, features) inputs with a
    linear read-out of the last hidden state: class scores (temporal order) or a regression
    output (adding problem)."""

    def __init__(self, n_in: int, out_dim: int, depth: int, width: int, activation: str, cell: str = "rnn"):
        super().__init__()
        if cell == "lstm":
            self.rnn = nn.LSTM(n_in, width, num_layers=depth, batch_first=True)
        else:
            self.rnn = nn.RNN(n_in, width, num_layers=depth, nonlinearity=activation, batch_first=True)
        self.readout = nn.Linear(width, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, _ = self.rnn(x)
        return self.readout(h[:, -1])


@torch.no_grad()
def _rnn_init(model: SequenceRNN, scheme: str, rho: float, sparsity: int) -> None:
    """Pascanu et al.'s initializations (their RNN.py), drawn from torch's seeded generator.

    basic_tanh: every weight N(0, 0.1^2). smart_tanh: input and output weights N(0, 0.01^2);
    recurrent weights N(0, 0.01^2) with all but `sparsity` incoming connections per unit set
    to 0, then rescaled to spectral radius `rho` (0.95 in the paper). Biases are 0. `torch`
    keeps PyTorch's default U(-1/sqrt(width), 1/sqrt(width)). An LSTM takes torch or basic_tanh
    (smart_tanh's spectral radius is defined for the Elman RNN's square recurrent matrix)."""
    if scheme == "torch":
        return
    if scheme not in ("basic_tanh", "smart_tanh"):
        raise ValueError(f"rnn init {scheme!r} is not valid; valid: basic_tanh, smart_tanh, torch")
    if scheme == "smart_tanh" and isinstance(model.rnn, nn.LSTM):
        raise ValueError("rnn init 'smart_tanh' is for cell 'rnn'; an LSTM takes init 'torch' or 'basic_tanh'")
    std = 0.1 if scheme == "basic_tanh" else 0.01
    for name, p in model.rnn.named_parameters():
        if name.startswith("bias"):
            p.zero_()
        elif name.startswith("weight_hh") and scheme == "smart_tanh":
            w = torch.randn(p.shape) * std
            n = w.shape[1]
            for i in range(w.shape[0]):  # keep `sparsity` random incoming weights of unit i
                w[i, torch.randperm(n)[sparsity:]] = 0.0
            radius = torch.linalg.eigvals(w.double()).abs().max().item()
            p.copy_(w * (rho / radius))
        else:
            p.normal_(0.0, std)
    model.readout.weight.normal_(0.0, std)
    model.readout.bias.zero_()


@MODELS.register("rnn")
def rnn(*, input_shape, out_dim, depth, width, activation, init: str = "smart_tanh", rho: float = 0.95,
        sparsity: int = 15, cell: str = "rnn") -> nn.Module:
    """Elman RNN (`depth` layers of `width` units, `activation` tanh or relu) reading
    (time, features) sequences; read-out from the last step. `init` is the RNN's own
    initialization (see _rnn_init), applied here because oplab.init only sets Linear/Conv
    weights: use it with InitConfig("default"), which leaves it in place (oplab.init's
    `forget_bias` rule then sets an LSTM's forget-gate bias). `cell`: "rnn" (Elman) or "lstm"
    (torch's nn.LSTM, gates i, f, g, o; its cell is tanh, so `activation` must be tanh)."""
    if len(input_shape) != 2:
        raise ValueError(f"rnn needs (time, features) inputs, got shape {input_shape}")
    if cell not in ("rnn", "lstm"):
        raise ValueError(f"rnn cell {cell!r} is not valid; valid: lstm, rnn")
    if cell == "lstm" and activation != "tanh":
        raise ValueError(f"an LSTM's cell nonlinearity is tanh; set activation 'tanh', not {activation!r}")
    model = SequenceRNN(input_shape[1], out_dim, depth, width, activation, cell)
    _rnn_init(model, init, rho, sparsity)
    return model


# --- the single recurrent unit (Pascanu et al. 2013, Fig. 6)

SINGLE_UNIT_T = 50
SINGLE_UNIT_X0 = 0.5
SINGLE_UNIT_TARGET = 0.7


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))  # overflow-free logistic


def single_unit_grid(w, b, steps: int = SINGLE_UNIT_T, x0: float = SINGLE_UNIT_X0,
                     target: float = SINGLE_UNIT_TARGET) -> dict[str, np.ndarray]:
    """Error E = (sigmoid(x_T) - target)^2 and its gradient at every (w, b) (arrays broadcast
    together), by forward-mode differentiation of the recurrence in float64.

    Returns dict(loss, dw, db, grad_norm, x_T), each of the broadcast shape."""
    w, b = np.broadcast_arrays(np.asarray(w, dtype=np.float64), np.asarray(b, dtype=np.float64))
    x = np.full(w.shape, float(x0))
    dxdw = np.zeros(w.shape)
    dxdb = np.zeros(w.shape)
    for _ in range(steps):
        s = _sigmoid(x)
        ds = s * (1.0 - s)
        # x_t = w s(x_{t-1}) + b: differentiate before overwriting x
        dxdw, dxdb = s + w * ds * dxdw, 1.0 + w * ds * dxdb
        x = w * s + b
    s = _sigmoid(x)
    r = s - target
    dEdx = 2.0 * r * s * (1.0 - s)
    dw, db = dEdx * dxdw, dEdx * dxdb
    return {"loss": r**2, "dw": dw, "db": db, "grad_norm": np.hypot(dw, db), "x_T": x}


def wall_ratio(grid: dict[str, np.ndarray]) -> float:
    """max / median gradient norm on a grid: large when a thin wall of huge gradients crosses it."""
    g = grid["grad_norm"][np.isfinite(grid["grad_norm"])]
    return float(np.max(g) / np.median(g))


def single_unit_wall_b(w: float, steps: int = SINGLE_UNIT_T, x0: float = SINGLE_UNIT_X0,
                       target: float = SINGLE_UNIT_TARGET, half_width: float = 0.05, n: int = 20001) -> float:
    """The bias b at which the unit, for this w, sits on the wall: the largest gradient norm on a
    fine scan of b across the line b = x0 - w sigmoid(x0), where x_0 is a fixed point of the map
    (for w > 1 / sigmoid'(x0), about 4.25, that fixed point is unstable and x_T jumps between the
    two stable ones as b crosses the line)."""
    centre = x0 - w * float(_sigmoid(np.asarray(x0)))
    b = centre + np.linspace(-half_width, half_width, n)
    g = single_unit_grid(w, b, steps, x0, target)["grad_norm"]
    return float(b[int(np.nanargmax(g))])


class SingleUnit(nn.Module):
    """Pascanu et al.'s Fig. 6 unit: x_t = w sigmoid(x_{t-1}) + b, x_0 given, output sigmoid(x_T)
    for every example of the batch (the input is ignored). Float64, so trajectories along the
    cliff match single_unit_grid."""

    def __init__(self, w0: float, b0: float, steps: int, x0: float):
        super().__init__()
        self.w = nn.Parameter(torch.tensor(float(w0), dtype=torch.float64))
        self.b = nn.Parameter(torch.tensor(float(b0), dtype=torch.float64))
        self.steps, self.x0 = steps, x0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.full((), self.x0, dtype=torch.float64)
        for _ in range(self.steps):
            h = self.w * torch.sigmoid(h) + self.b
        return torch.sigmoid(h).expand(x.shape[0], 1)


@MODELS.register("single_unit")
def single_unit(*, input_shape, out_dim, depth, width, activation, w0: float = 5.0, b0: float | None = None,
                w0_spread: float = 0.0, steps: int = SINGLE_UNIT_T, x0: float = SINGLE_UNIT_X0,
                target: float = SINGLE_UNIT_TARGET) -> nn.Module:
    """The 2-parameter recurrent unit of Pascanu et al. (2013), Fig. 6, started at (w0, b0);
    depth, width and activation are ignored.

    w0_spread > 0 adds U(-w0_spread, w0_spread) to w0, drawn from torch's seeded generator (so
    the trial's seed picks the start); b0 = None puts the start on the wall for that w
    (single_unit_wall_b) of the error toward `target`, where the gradient norm is largest; pass the
    same target as the dataset's."""
    if out_dim != 1:
        raise ValueError(f"single_unit has one output, the dataset asks for {out_dim}")
    if w0_spread > 0:
        w0 = w0 + w0_spread * (2.0 * float(torch.rand((), dtype=torch.float64)) - 1.0)
    if b0 is None:
        b0 = single_unit_wall_b(w0, steps=steps, x0=x0, target=target)
    return SingleUnit(w0, b0, steps, x0)


# --- character-level sequence to sequence (Zaremba & Sutskever 2014, "Learning to Execute")


class CharLSTM(nn.Module):
    """Character embedding -> `depth` stacked LSTM layers of `width` units -> a linear read-out over
    the vocabulary. One network reads the prompt and then emits the answer, one character a step,
    as in Learning to Execute: in training it is fed the true previous character (teacher forcing);
    at evaluation `greedy` feeds back its own most likely character."""

    def __init__(self, vocab: int, embed: int, depth: int, width: int):
        super().__init__()
        self.embed = nn.Embedding(vocab, embed)
        self.lstm = nn.LSTM(embed, width, num_layers=depth, batch_first=True)
        self.readout = nn.Linear(width, vocab)

    def forward(self, tokens: torch.Tensor, state=None, return_state: bool = False):
        """Next-character logits (batch, time, vocab) for token ids (batch, time)."""
        h, state = self.lstm(self.embed(tokens), state)
        logits = self.readout(h)
        return (logits, state) if return_state else logits

    @torch.no_grad()
    def greedy(self, prompt: torch.Tensor, steps: int) -> torch.Tensor:
        """Read `prompt` (batch, time) and emit `steps` characters, each the argmax given the
        characters emitted before it: (batch, steps) token ids."""
        logits, state = self(prompt, return_state=True)
        out = []
        nxt = logits[:, -1].argmax(-1)
        for _ in range(steps):
            out.append(nxt)
            logits, state = self(nxt[:, None], state, return_state=True)
            nxt = logits[:, -1].argmax(-1)
        return torch.stack(out, dim=1)


@MODELS.register("char_lstm")
def char_lstm(*, input_shape, out_dim, depth, width, activation, embed: int = 0,
              init_scale: float = 0.08) -> nn.Module:
    """Character LSTM over a vocabulary of `out_dim` symbols (`input_shape` = (vocabulary size,)).
    `embed`: embedding size (0 = `width`, as the authors' 400-d embedding for 400 units).
    `init_scale`: every weight and bias uniform in [-s, s] (the authors' 0.08; 0 keeps torch's
    defaults). `activation` is unused (an LSTM's gates fix their own)."""
    if tuple(input_shape) != (out_dim,):
        raise ValueError(f"char_lstm reads and emits one vocabulary: input_shape must be ({out_dim},), "
                         f"got {tuple(input_shape)}")
    model = CharLSTM(out_dim, embed or width, depth, width)
    if init_scale > 0:
        with torch.no_grad():
            for p in model.parameters():
                p.uniform_(-init_scale, init_scale)
    return model


def finite_parameters(model: nn.Module) -> bool:
    """Whether every parameter and floating-point buffer (e.g. batch norm's running statistics) is finite."""
    tensors = [*model.parameters(), *(b for b in model.buffers() if b.is_floating_point())]
    return all(bool(torch.isfinite(t).all()) for t in tensors)
