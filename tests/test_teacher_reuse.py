"""Trials that learn from another trial's stored weights (distillation, hints, Net2Net): the
runner trains each teacher once per seed, before its students, stores its weights beside its
record, and every student's record names the teacher it learned from."""

import io
import warnings

import pytest
import torch

from oplab import config, distill, runner
from oplab import plan as planning
from oplab.config import DistillConfig, InitConfig, ModelConfig, Trial, override
from oplab.store import Store
from oplab.train import Runtime, train, train_model
from tests.conftest import tiny_trial
from tests.fresh import run_in_fresh_process

TEACHER = override(tiny_trial(), {"model.depth": 1, "model.width": 24, "init.name": "he"})


def student(method="kd", **changes):
    dist = {"kd": DistillConfig("kd"), "hints": DistillConfig("hints", hint_steps=6)}[method]
    base = override(tiny_trial(), {"model.depth": 4, "model.width": 6, "init.name": "he"})
    return override(base, {"distill": dist, "teacher": TEACHER, **changes})


def grown(op="deeper"):
    ops = [["deeper", 0]] if op == "deeper" else [["wider", 0, 48]]
    model = ModelConfig("mlp", 2, 24) if op == "deeper" else ModelConfig("mlp", 1, 48)
    return override(TEACHER, {"model": model, "init": InitConfig("net2net", {"ops": ops, "noise": 0.0}),
                              "teacher": TEACHER})


def specs(seeds=(0, 1)):
    arms = {"kd": student("kd"), "hints": student("hints"), "deeper": grown("deeper"), "wider": grown("wider")}
    return [planning.TrialSpec("teststudy", a, s, "smoke", 1, t) for s in seeds for a, t in arms.items()]


def counting(monkeypatch):
    calls = []
    real = runner.run_spec
    monkeypatch.setattr(runner, "run_spec", lambda s, *a: calls.append(s) or real(s, *a))
    return calls


def test_each_teacher_trains_once_per_seed_before_its_students(tmp_path, monkeypatch):
    calls = counting(monkeypatch)
    recs = runner.run(specs(), tmp_path, Runtime(), jobs=1, progress=False)
    trained = [c.trial for c in calls]
    assert trained.count(TEACHER) == 2, "one teacher per seed, however many students"
    assert len(calls) == 2 + 8
    for seed in (0, 1):  # the teacher of a seed runs before every trial that learns from it
        order = [c for c in calls if c.seed == seed]
        assert order[0].trial == TEACHER
    store = Store(tmp_path, "teststudy")
    for s in specs():
        rec = recs[s.key]
        t = planning.teacher_spec(s)
        assert rec.status == "ok" and rec.extra["teacher"]["key"] == t.key
        assert rec.extra["teacher"]["weights_sha256"] == recs[t.key].extra["weights_sha256"]
        assert store.weights_path(t.key).exists()
    assert len(list(store.weights_dir.glob("*.pt"))) == 2  # students keep no weights

    calls.clear()  # everything stored: a second run trains nothing
    again = runner.run(specs(), tmp_path, Runtime(), jobs=1, progress=False)
    assert calls == [] and again.keys() == recs.keys()


def test_a_teacher_with_lost_weights_is_trained_again_before_a_new_student(tmp_path, monkeypatch):
    runner.run(specs(seeds=(0,)), tmp_path, Runtime(), jobs=1, progress=False)
    store = Store(tmp_path, "teststudy")
    t = planning.teacher_spec(specs(seeds=(0,))[0])
    store.weights_path(t.key).unlink()
    calls = counting(monkeypatch)
    new = planning.TrialSpec("teststudy", "kd2", 0, "smoke", 1, student("kd", distill=DistillConfig("kd", tau=2.0)))
    with pytest.warns(UserWarning, match="not stored; training it again"):
        recs = runner.run([new], tmp_path, Runtime(), jobs=1, progress=False)
    assert [c.trial for c in calls] == [TEACHER, new.trial]
    assert recs[new.key].extra["teacher"]["key"] == t.key and store.weights_path(t.key).exists()


def test_jobs_do_not_change_students(tmp_path):
    one = run_in_fresh_process(specs(seeds=(0,)), tmp_path / "one", Runtime())  # as `--jobs 1` runs
    two = runner.run(specs(seeds=(0,)), tmp_path / "two", Runtime(), jobs=2, progress=False)
    assert one.keys() == two.keys()
    for k in one:
        assert one[k].curves == two[k].curves and one[k].final == two[k].final


def test_dask_orders_teachers_too(tmp_path):
    pytest.importorskip("dask.distributed")
    # Dask's local cluster runs its workers as threads of this process, so the local side runs here too
    local = runner.run(specs(seeds=(0,)), tmp_path / "local", Runtime(), jobs=1, progress=False)
    remote = runner.run(specs(seeds=(0,)), tmp_path / "dask", Runtime(), executor="dask", progress=False)
    assert local.keys() == remote.keys()
    for k in local:
        assert local[k].final == remote[k].final


def test_a_diverged_teacher_fails_its_students_without_a_crash(tmp_path):
    bad_teacher = override(TEACHER, {"optim.lr": 1e12})
    s = planning.TrialSpec("teststudy", "kd", 0, "smoke", 1, student("kd", teacher=bad_teacher))
    recs = runner.run([s], tmp_path, Runtime(), jobs=1, progress=False)
    t = planning.teacher_spec(s)
    assert recs[t.key].status == "diverged"
    assert recs[s.key].status == "diverged" and recs[s.key].extra["teacher"] == {"key": t.key, "status": "diverged"}


def test_student_keys_depend_on_their_teacher_and_old_keys_stand():
    a = planning.TrialSpec("x", "kd", 0, "smoke", 1, student("kd"))
    b = planning.TrialSpec("x", "kd", 0, "smoke", 1, student("kd", teacher=override(TEACHER, {"optim.lr": 0.01})))
    assert a.key != b.key
    # a trial without a teacher, distillation, batch growth, critical-point search or label subset keeps
    # the key it had before those fields existed
    plain = tiny_trial()
    old = config.to_dict(plain)
    del old["distill"], old["teacher"], old["batch_growth"], old["batch_every"]
    del old["critical"], old["labeled"], old["val_labeled"]
    expect = config.stable_hash({"trial": old, "seed": 0, "budget": "smoke", "study": "x", "version": 1})
    assert config.trial_key(plain, 0, "smoke", "x", 1) == expect
    assert config.from_dict(Trial, config.to_dict(a.trial)) == a.trial


def test_distill_configs_refuse_nonsense():
    with pytest.raises(ValueError, match="needs a teacher"):
        override(tiny_trial(), {"distill": DistillConfig("kd")})
    with pytest.raises(ValueError, match="valid: none, kd, hints"):
        DistillConfig("fitnet")
    with pytest.raises(ValueError, match="hint_steps >= 1"):
        DistillConfig("hints")
    with pytest.raises(ValueError, match="same data"):
        student("kd", teacher=override(TEACHER, {"data.n_train": 60}))
    with pytest.raises(ValueError, match="no teacher weights"):
        train(student("kd"), 0)


def teacher_state(seed=0):
    rec, model = train_model(TEACHER, seed)
    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    return rec, torch.load(io.BytesIO(buf.getvalue()), weights_only=True)


def test_net2net_students_start_at_the_teachers_function():
    rec_t, state = teacher_state()
    for op in ("deeper", "wider"):
        rec = train(grown(op), 0, teacher_state=state)
        assert rec.extra["init"]["preservation_error_no_noise"] < 1e-5
        # the grown net's test loss before its first update is the teacher's own test loss at its end
        assert rec.curves["eval"]["test_loss"][0] == pytest.approx(rec_t.final["test_loss"], abs=1e-5)


def test_kd_with_lambda_zero_trains_exactly_like_plain_cross_entropy():
    _, state = teacher_state()
    plain = override(student("kd"), {"distill": DistillConfig("none"), "teacher": None})
    kd0 = override(student("kd"), {"distill": DistillConfig("kd", lam_start=0.0, lam_end=0.0)})
    a, b = train(plain, 0), train(kd0, 0, teacher_state=state)
    assert a.curves["eval"]["test_loss"] == b.curves["eval"]["test_loss"]


def test_hint_stage_trains_only_the_guided_half_and_lowers_the_hint_loss():
    _, state = teacher_state()
    s = student("hints", distill=DistillConfig("hints", hint_steps=40))
    from oplab import data as datalib
    from oplab import models, norms
    from oplab.datatask import load_teacher

    data = datalib.load(s.data)
    teacher = load_teacher(s.teacher, data, state, torch.device("cpu"))
    torch.manual_seed(0)
    model = models.build(s.model, data.input_shape, data.out_dim)
    norms.apply(model, s.norm)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        rep = distill.hint_stage(model, teacher, s, data.x_train, seed=0)
    assert rep["status"] == "ok" and rep["updates"] == 40
    assert (rep["guided_block"], rep["hint_block"]) == (2, 0)  # middle of 4 and of 1 hidden blocks
    assert rep["loss_last10"] < rep["loss_first10"]
    blocks = distill.hidden_blocks(model)
    last = blocks[rep["guided_block"]].act
    for i, m in enumerate(model.children()):
        for name, p in m.named_parameters():
            changed = not torch.equal(before[f"{i}.{name}"], p.detach())
            assert changed == (i <= last), (i, name)


def test_convnet_hints_and_net2net_run_through_the_runner(tmp_path):
    """The full budget's path in small: a convnet teacher and a thinner, deeper convnet student,
    a convolutional regressor between chosen blocks (kernel N_guided - N_hint + 1), and a convnet
    grown deeper with its pools kept where they were."""
    conv_teacher = override(TEACHER, {"model": ModelConfig("convnet", 3, 6), "epochs": 1})
    stud = override(tiny_trial(), {"model": ModelConfig("convnet", 4, 2), "init.name": "he", "epochs": 1,
                                   "teacher": conv_teacher,
                                   "distill": DistillConfig("hints", hint_steps=3, guided_block=1, hint_block=2)})
    deeper = override(conv_teacher, {"model": ModelConfig("convnet", 4, 6, options={"pools": [1]}),
                                     "init": InitConfig("net2net", {"ops": [["deeper", 2]]}),
                                     "teacher": conv_teacher})
    s = [planning.TrialSpec("teststudy", a, 0, "smoke", 1, t) for a, t in (("hints", stud), ("deeper", deeper))]
    recs = runner.run(s, tmp_path, Runtime(), jobs=1, progress=False)
    hints = recs[s[0].key].extra["hints"]
    assert hints["status"] == "ok" and hints["regressor"] == "Conv2d"
    assert (hints["guided_shape"], hints["hint_shape"]) == ([2, 28, 28], [12, 14, 14])
    assert recs[s[1].key].status == "ok" and recs[s[1].key].extra["init"]["preservation_error_no_noise"] < 1e-5
