"""Frozen, typed configuration of one trial, and its stable hash.

A trial is a function of its config and seed. Every field has a type that is
checked on construction; an unknown or mistyped field is an error, never
ignored. Builder-specific options (a dataset's sequence length, an
initializer's gain) go in `options`, which the builder checks against its own
signature.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import typing
from dataclasses import dataclass, field
from typing import Any

Options = tuple  # sorted ((key, value), ...) pairs; built from a dict


def _freeze(value: Any) -> Any:
    if isinstance(value, dict):
        return tuple(sorted((str(k), _freeze(v)) for k, v in value.items()))
    if isinstance(value, list | tuple):
        return tuple(_freeze(v) for v in value)
    if value is None or isinstance(value, bool | int | float | str):
        return value
    raise TypeError(f"option value {value!r} is not a JSON scalar, list or dict")


@functools.cache
def _field_types(cls: type) -> tuple[tuple[str, Any], ...]:
    """(name, resolved type) of each field of a config class, resolved once per class."""
    hints = typing.get_type_hints(cls)
    return tuple((f.name, hints[f.name]) for f in dataclasses.fields(cls))


class _Checked:
    """Type-checks fields after construction; freezes `options` dicts."""

    def __post_init__(self) -> None:
        for name, want in _field_types(type(self)):
            value = getattr(self, name)
            if name == "options":
                if isinstance(value, dict):
                    object.__setattr__(self, "options", _freeze(value))
                elif not isinstance(value, tuple):
                    raise TypeError(f"{type(self).__name__}.options must be a dict, got {value!r}")
                continue
            if want is float and isinstance(value, int) and not isinstance(value, bool):
                object.__setattr__(self, name, float(value))
                continue
            if typing.get_origin(want) is tuple:
                if isinstance(value, list):
                    value = tuple(value)
                    object.__setattr__(self, name, value)
                if not isinstance(value, tuple) or not all(isinstance(v, str) for v in value):
                    raise TypeError(f"{type(self).__name__}.{name} must be a tuple of str, got {value!r}")
                continue
            ok = isinstance(value, want) and not (want is int and isinstance(value, bool))
            if not ok:
                raise TypeError(
                    f"{type(self).__name__}.{name} must be {getattr(want, '__name__', want)}, got {value!r}"
                )

    @property
    def opts(self) -> dict[str, Any]:
        """`options` as a plain dict of keyword arguments."""
        return {k: _thaw(v) for k, v in getattr(self, "options", ())}


def _thaw(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_thaw(v) for v in value]
    return value


@dataclass(frozen=True)
class DataConfig(_Checked):
    name: str = "mnist5k"
    n_train: int = 0  # examples kept from the train split; 0 = all
    n_test: int = 0  # examples kept from the test split; 0 = all
    options: Options = field(default_factory=tuple)

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("n_train", "n_test"):
            if getattr(self, name) < 0:
                raise ValueError(f"DataConfig.{name} must be >= 0 (0 = all), got {getattr(self, name)}")


@dataclass(frozen=True)
class ModelConfig(_Checked):
    name: str = "mlp"
    depth: int = 3  # hidden layers (MLP) or conv blocks (convnet) or stacked RNN layers
    width: int = 100  # units per hidden layer, base channels, or RNN hidden size
    activation: str = "relu"
    options: Options = field(default_factory=tuple)


@dataclass(frozen=True)
class InitConfig(_Checked):
    name: str = "default"  # see oplab.init.INITS
    options: Options = field(default_factory=tuple)


@dataclass(frozen=True)
class NormConfig(_Checked):
    name: str = "none"  # none | batch | weight | weight_meanbn
    data_init: bool = True  # weight norm: Salimans & Kingma's data-dependent init of g and b


@dataclass(frozen=True)
class OptimConfig(_Checked):
    name: str = "sgd"  # see oplab.optim.OPTIMIZERS
    lr: float = 0.01  # per step; losses are means over the minibatch
    momentum: float = 0.0
    weight_decay: float = 0.0
    schedule: str = "constant"  # see oplab.optim.SCHEDULES
    clip: str = "none"  # none | norm | value
    clip_threshold: float = 1.0  # max gradient norm (norm) or max |component| (value)
    ema_decay: float = 0.0  # Polyak/EMA average of the iterates; 0 = off
    options: Options = field(default_factory=tuple)


DISTILL_METHODS = ("none", "kd", "hints")
LAMBDA_SCHEDULES = ("linear", "constant")


@dataclass(frozen=True)
class DistillConfig(_Checked):
    """Learning from the trial's `teacher` as FitNets does (Romero et al. 2015; oplab.distill).

    kd: the loss is CE(y, P_S) + lambda CE(P_T^tau, P_S^tau), no tau^2 factor, lambda going
    from lam_start at the first update to lam_end at the last (linear) or fixed at lam_start
    (constant). hints: first `hint_steps` updates of stage 1 (the student up to its middle block
    regresses the teacher's middle block through a learned regressor; other blocks by
    guided_block and hint_block), then kd as above."""

    name: str = "none"  # none | kd | hints
    tau: float = 3.0
    lam_start: float = 4.0
    lam_end: float = 1.0
    lam_schedule: str = "linear"  # linear | constant
    hint_steps: int = 0  # stage-1 updates (hints only)
    hint_lr: float = 0.0  # stage-1 learning rate; 0 = the trial's optim.lr
    guided_block: int = -1  # the student's hidden block that is guided (0-based); -1 = the middle one
    hint_block: int = -1  # the teacher's hidden block that gives the hint; -1 = the middle one

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.name not in DISTILL_METHODS:
            raise ValueError(f"distill method {self.name!r} is not valid; valid: {', '.join(DISTILL_METHODS)}")
        if self.lam_schedule not in LAMBDA_SCHEDULES:
            raise ValueError(f"distill lam_schedule {self.lam_schedule!r} is not valid; "
                             f"valid: {', '.join(LAMBDA_SCHEDULES)}")
        if self.tau <= 0:
            raise ValueError(f"distill tau must be > 0, got {self.tau}")
        if self.name == "hints" and self.hint_steps < 1:
            raise ValueError("distill method 'hints' needs hint_steps >= 1")
        if self.name != "hints" and self.hint_steps:
            raise ValueError(f"hint_steps is for distill method 'hints', not {self.name!r}")


@dataclass(frozen=True)
class CriticalConfig(_Checked):
    """Critical points around a run (oplab.critical): the full-split objective and its gradient norm at
    each evaluation, and after the last update a search for a critical point from the trained weights."""

    name: str = "none"  # a search in oplab.critical.SEARCHES; none = off
    eigenvalues: bool = True  # the Hessian's extreme eigenvalues at the point found (Lanczos)
    options: Options = field(default_factory=tuple)  # the search's own (e.g. iters, history, tol)


@dataclass(frozen=True)
class Trial(_Checked):
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    init: InitConfig = field(default_factory=InitConfig)
    norm: NormConfig = field(default_factory=NormConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    epochs: int = 10  # passes over the train split (ignored when steps > 0)
    steps: int = 0  # parameter updates; > 0 overrides epochs
    batch_size: int = 100  # examples per update
    eval_every: int = 0  # updates between evaluations; 0 = once an epoch
    log_every: int = 1  # updates between logged gradient norms / batch losses
    monitors: tuple[str, ...] = ()  # names in oplab.monitors.MONITORS
    monitor_every: int = 0  # updates between monitor calls; 0 = at each evaluation
    monitor_start_only: bool = False  # run the monitors once, before the first update (e.g. statistics at init)
    distill: DistillConfig = field(default_factory=DistillConfig)
    # a trial whose stored weights this one uses (the distillation teacher, or the net a Net2Net
    # init grows); trained once per seed, on the same data, before every trial that names it
    teacher: Trial | None = None
    # batch growth (Smith et al. 2017): the batch size is multiplied by `batch_growth` after every
    # `batch_every` fraction of the trial's training examples (epochs x n_train), capped at n_train;
    # the budget is then in epochs (steps = 0) and evaluation happens once an epoch
    batch_growth: float = 1.0
    batch_every: float = 0.0  # 0 = the batch size never changes
    critical: CriticalConfig = field(default_factory=CriticalConfig)  # oplab.critical; off by default
    # scarce labels (oplab.labels): the loop trains on a class-stratified subset of `labeled` examples of
    # the train split, drawn per seed, less `val_labeled` of them held out as a validation split; a
    # training initializer (greedy pre-training) still sees the whole split, its other labels hidden
    labeled: int = 0  # 0 = every example is labeled (no subset, no validation split)
    val_labeled: int = 0

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.batch_growth < 1.0:
            raise ValueError(f"Trial.batch_growth must be >= 1, got {self.batch_growth}")
        if not 0.0 <= self.batch_every <= 1.0:
            raise ValueError(f"Trial.batch_every must be in [0, 1] (a fraction of training), got {self.batch_every}")
        if self.grows_batch and self.steps:
            raise ValueError("a Trial whose batch grows (batch_every > 0, batch_growth > 1) counts its budget "
                             "in epochs: set steps = 0")
        if self.labeled < 0 or not 0 <= self.val_labeled < max(1, self.labeled):
            raise ValueError(f"Trial needs labeled >= 0 and 0 <= val_labeled < labeled (val_labeled = 0 when "
                             f"labeled = 0), got labeled={self.labeled}, val_labeled={self.val_labeled}")
        if self.labeled and self.batch_size > self.labeled - self.val_labeled:
            raise ValueError(f"batch size {self.batch_size} is larger than the {self.labeled - self.val_labeled} "
                             "labeled training examples (Trial.labeled less val_labeled)")
        if self.distill.name != "none" and self.teacher is None:
            raise ValueError(f"distill method {self.distill.name!r} needs a teacher trial (Trial.teacher)")
        if self.teacher is not None and self.teacher.data != self.data:
            raise ValueError("a teacher trial must train on the same data as its student (Trial.teacher.data)")
        for name in ("batch_size", "log_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"Trial.{name} must be >= 1, got {getattr(self, name)}")
        for name in ("epochs", "steps", "eval_every", "monitor_every"):
            if getattr(self, name) < 0:
                raise ValueError(f"Trial.{name} must be >= 0, got {getattr(self, name)}")
        if self.epochs < 1 and self.steps < 1:
            raise ValueError("a Trial needs epochs >= 1 or steps >= 1")

    @property
    def grows_batch(self) -> bool:
        return self.batch_every > 0 and self.batch_growth > 1


def to_dict(cfg: Any) -> dict[str, Any]:
    """A JSON-ready dict of a config (options as plain dicts)."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        if dataclasses.is_dataclass(value):
            out[f.name] = to_dict(value)
        elif f.name == "options":
            out[f.name] = cfg.opts
        elif isinstance(value, tuple):
            out[f.name] = list(value)
        else:
            out[f.name] = value
    return out


def from_dict(cls: type, data: dict[str, Any]) -> Any:
    """Build a config from a dict, refusing unknown keys."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ValueError(
            f"{cls.__name__} has no field {', '.join(map(repr, unknown))}; valid: {', '.join(fields)}"
        )
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for key, value in data.items():
        sub = hints[key]
        subs = [t for t in typing.get_args(sub) if dataclasses.is_dataclass(t)] or [sub]  # X | None -> X
        if dataclasses.is_dataclass(subs[0]) and isinstance(value, dict):
            value = from_dict(subs[0], value)
        kwargs[key] = value
    return cls(**kwargs)


def override(cfg: Any, changes: dict[str, Any]) -> Any:
    """A copy of `cfg` with dotted-key changes, e.g. {"optim.lr": 0.1, "model.depth": 5}."""
    nested: dict[str, dict[str, Any]] = {}
    direct: dict[str, Any] = {}
    for key, value in changes.items():
        head, _, rest = key.partition(".")
        if rest:
            nested.setdefault(head, {})[rest] = value
        else:
            direct[key] = value
    names = {f.name for f in dataclasses.fields(cfg)}
    for key in list(direct) + list(nested):
        if key not in names:
            raise ValueError(f"{type(cfg).__name__} has no field {key!r}; valid: {', '.join(sorted(names))}")
    for head, sub in nested.items():
        direct[head] = override(getattr(cfg, head), sub)
    if "options" in direct and isinstance(direct["options"], dict):
        direct["options"] = {**cfg.opts, **direct["options"]}
    return dataclasses.replace(cfg, **direct)


def stable_hash(obj: Any, n: int = 16) -> str:
    """A hex digest of a JSON-serializable object that does not depend on key order."""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:n]


# Trial fields added after records were first stored: at their default they are left out of
# the key, so that every record stored before they existed keeps its key
_LATER_FIELDS = {"distill": DistillConfig(), "teacher": None, "batch_growth": 1.0, "batch_every": 0.0,
                 "critical": CriticalConfig(), "labeled": 0, "val_labeled": 0}


def key_dict(trial: Trial) -> dict[str, Any]:
    """The trial's dict as its key sees it (later fields at their default left out)."""
    d = to_dict(trial)
    for name, default in _LATER_FIELDS.items():
        if getattr(trial, name) == default:
            d.pop(name)
    if trial.teacher is not None:
        d["teacher"] = key_dict(trial.teacher)
    return d


def trial_key(trial: Trial, seed: int, budget: str, study: str, version: int) -> str:
    """The store key of a trial: its full config, seed, budget and the study's VERSION."""
    return stable_hash(
        {"trial": key_dict(trial), "seed": seed, "budget": budget, "study": study, "version": version}
    )
