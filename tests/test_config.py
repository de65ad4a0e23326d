import pytest

from oplab.config import (
    DataConfig,
    InitConfig,
    OptimConfig,
    Trial,
    from_dict,
    override,
    stable_hash,
    to_dict,
    trial_key,
)
from oplab.registry import Registry, UnknownNameError


def test_unknown_field_is_an_error():
    with pytest.raises(TypeError):
        OptimConfig(learning_rate=0.1)
    with pytest.raises(ValueError, match="no field 'lrr'.*valid: .*lr"):
        override(Trial(), {"optim.lrr": 0.1})
    with pytest.raises(ValueError, match="Trial has no field 'epoch'"):
        from_dict(Trial, {"epoch": 3})


def test_mistyped_field_is_an_error():
    with pytest.raises(TypeError, match="OptimConfig.lr must be float"):
        OptimConfig(lr="0.1")
    with pytest.raises(TypeError, match="Trial.epochs must be int"):
        Trial(epochs=2.5)
    with pytest.raises(TypeError, match="must be int"):
        Trial(epochs=True)
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        Trial(batch_size=0)


def test_int_is_accepted_for_float_and_frozen():
    cfg = OptimConfig(lr=1)
    assert cfg.lr == 1.0 and isinstance(cfg.lr, float)
    with pytest.raises(AttributeError):
        cfg.lr = 2.0


def test_round_trip_and_override():
    t = Trial(data=DataConfig("mnist1d", n_train=10, options={"b": 2, "a": [1, 2]}))
    assert from_dict(Trial, to_dict(t)) == t
    t2 = override(t, {"optim.lr": 0.5, "epochs": 3, "init.options": {"gain": 2.0}})
    assert t2.optim.lr == 0.5 and t2.epochs == 3 and t2.init.opts == {"gain": 2.0}
    assert t.optim.lr == 0.01  # the original is untouched


def test_hash_is_stable_and_sensitive():
    a = Trial(data=DataConfig(options={"x": 1, "y": 2}))
    b = Trial(data=DataConfig(options={"y": 2, "x": 1}))
    assert a == b and stable_hash(to_dict(a)) == stable_hash(to_dict(b))
    assert stable_hash({"a": 1, "b": 2}) == stable_hash({"b": 2, "a": 1})
    k = trial_key(a, 0, "quick", "s", 1)
    assert k == trial_key(b, 0, "quick", "s", 1)
    assert len({k, trial_key(a, 1, "quick", "s", 1), trial_key(a, 0, "smoke", "s", 1),
                trial_key(a, 0, "quick", "s", 2), trial_key(override(a, {"optim.lr": 0.02}), 0, "quick", "s", 1)}) == 5


def test_registry_lists_valid_names_and_checks_options():
    reg = Registry("thing")

    @reg.register("alpha")
    def alpha(x, *, gain: float = 1.0):
        return x * gain

    assert reg.build("alpha", 2, gain=3.0) == 6.0
    with pytest.raises(UnknownNameError, match="unknown thing 'alpah'; valid: alpha"):
        reg["alpah"]
    with pytest.raises(ValueError, match="no option 'gian'; valid: x, gain"):
        reg.build("alpha", 2, gian=3.0)
    with pytest.raises(ValueError, match="already registered"):
        reg.register("alpha")(alpha)


def test_builder_options_are_checked_at_training(trial):
    from oplab.train import train

    bad = override(trial, {"init": InitConfig("glorot", {"gian": 2.0})})
    with pytest.raises(ValueError, match="initializer 'glorot' has no option 'gian'"):
        train(bad, 0)
