"""The addition stream task, the character LSTM and the sequence training loop: answers equal
Python's arithmetic, held-out examples never reach training, the model decodes, the loop records
its schedule, its advance rule and a divergence."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from oplab import models, streamtask, tasks
from oplab.config import DataConfig, ModelConfig, OptimConfig, Trial
from oplab.train import Runtime, train

TASK = tasks.STREAMS.build("addition")


def _parse(batch: tasks.SeqBatch) -> list[tuple[int, int, str]]:
    """(a, b, answer text) of each row, read back from the tokens alone."""
    rows = []
    for prompt, answer in zip(TASK.decode(batch.tokens[:, : batch.prompt_len]),
                              TASK.decode(batch.tokens[:, batch.prompt_len :])):
        a, b = prompt.rstrip("=").split("+")
        rows.append((int(a), int(b), answer))
    return rows


@pytest.mark.parametrize("difficulty", range(1, 11))
def test_every_answer_is_pythons_sum(difficulty):
    rng = np.random.default_rng(difficulty)
    batch = TASK.batch(np.full(2000, difficulty), rng)
    rows = _parse(batch)
    assert len(rows) == 2000
    for a, b, answer in rows:
        assert 1 <= a <= 10**difficulty and 1 <= b <= 10**difficulty
        assert answer == f"{a + b}."
    ops = np.array([r[:2] for r in rows])
    if difficulty >= 3:  # uniform in [1, 10^d]: both halves of the range are drawn about equally
        assert 0.45 < np.mean(ops > 10**difficulty / 2) < 0.55
    assert (batch.tokens[:, batch.prompt_len - 1] == tasks.GO).all()  # prompts are left-padded to end at "="
    assert (batch.mask.sum(1) == torch.tensor([len(r[2]) for r in rows])).all()  # answer digits + end scored


def test_mixed_difficulties_in_one_batch():
    d = np.array([1, 5, 10, 2, 7] * 40)
    batch = TASK.batch(d, np.random.default_rng(0))
    for (a, b, answer), di in zip(_parse(batch), d):
        assert a <= 10**di and b <= 10**di and answer == f"{a + b}."
    with pytest.raises(ValueError, match="difficulty"):
        TASK.batch(np.array([0, 2]), np.random.default_rng(0))


def test_splits_partition_the_example_space():
    rng = np.random.default_rng(1)
    a, b = rng.integers(1, 10**6, 200_000), rng.integers(1, 10**6, 200_000)
    member = np.stack([tasks.in_split(a, b, s) for s in tasks.SPLITS])
    assert (member.sum(0) == 1).all()  # every pair in exactly one split
    # 1/10 of the buckets each: Binomial(200k, 0.1) has sd 134, so +-1,000 is 7.5 sd
    assert abs(member[1].sum() - 20_000) < 1000 and abs(member[2].sum() - 20_000) < 1000
    table = tasks.in_table(*np.meshgrid(np.arange(1, 11), np.arange(1, 11)))
    assert table.all() and tasks.in_split(np.arange(1, 11), np.arange(1, 11), "train").all()


@pytest.mark.parametrize("target", [2, 3])
def test_no_test_or_validation_example_is_ever_trained_on(target):
    """At 2 digits the training stream covers nearly all of its ~8,000 pairs; none is held out."""
    test = {(a, b) for a, b, _ in _parse(TASK.heldout("test", target, 1000))}
    val = {(a, b) for a, b, _ in _parse(TASK.heldout("validation", target, 1000))}
    rng = np.random.default_rng(target)
    seen = set()
    for d in range(1, target + 1):  # every difficulty a curriculum can train on
        a, b = TASK.operands(np.full(100_000, d), rng)
        seen |= set(zip(a.tolist(), b.tolist()))
    assert not (test & seen) and not (val & seen) and not (test & val)
    assert len(test) > 100 and len(seen) > 7000


def test_heldout_sets_are_fixed_and_table_rules():
    a, b = TASK.heldout("test", 4, 50), TASK.heldout("test", 4, 50)
    assert torch.equal(a.tokens, b.tokens)
    other = tasks.STREAMS.build("addition", seed=99).heldout("test", 4, 50)
    assert not torch.equal(a.tokens, other.tokens)
    v1 = _parse(TASK.heldout("validation", 1, 100))  # the table: training facts, its own draw
    assert all(x <= 10 and y <= 10 for x, y, _ in v1)
    with pytest.raises(ValueError, match="table"):
        TASK.heldout("test", 1, 10)


# --- the model


def test_char_lstm_reads_and_decodes():
    torch.manual_seed(0)
    v = len(TASK.vocab)
    model = models.build(ModelConfig("char_lstm", 2, 24, options={"embed": 8}), (v,), v)
    batch = TASK.heldout("test", 3, 16)
    logits = model(batch.tokens)
    assert logits.shape == (16, batch.tokens.shape[1], v)
    out = model.greedy(batch.tokens[:, : batch.prompt_len], 5)
    assert out.shape == (16, 5) and out.dtype == torch.long and int(out.max()) < v
    # greedy decoding equals re-reading its own output: each emitted token is the argmax given the ones before
    full = torch.cat([batch.tokens[:, : batch.prompt_len], out], dim=1)
    again = model(full)[:, batch.prompt_len - 1 : -1].argmax(-1)
    assert torch.equal(again, out)
    assert all(abs(p).max() <= 0.08 for p in model.parameters())  # the authors' U(-0.08, 0.08)
    with pytest.raises(ValueError, match="vocabulary"):
        models.build(ModelConfig("char_lstm", 1, 8), (3, 4), v)


# --- the loop


def _trial(curriculum="naive", target=3, steps=30, lr=0.01, clip="norm", **options) -> Trial:
    opts = {"target": target, "curriculum": curriculum, "check_every": 5, "n_val": 40, **options}
    return Trial(data=DataConfig("addition", n_test=40, options=opts), model=ModelConfig("char_lstm", 1, 16),
                 optim=OptimConfig("adam" if lr < 1 else "sgd", lr=lr, clip=clip, clip_threshold=5.0), steps=steps,
                 batch_size=16, eval_every=10, log_every=1)


def test_the_loop_records_metrics_and_schedule_state():
    assert streamtask.handles(_trial()) and not streamtask.handles(Trial())
    rec = train(_trial("combined"), 0, Runtime())
    assert rec.status == "ok" and rec.final["steps"] == 30
    for k in ("char_acc", "seq_acc", "test_loss", "level"):
        assert k in rec.final
    assert 0 <= rec.final["char_acc"] <= 1 and 0 <= rec.final["seq_acc"] <= 1
    assert rec.curves["eval"]["step"] == [0, 10, 20, 30] and len(rec.curves["eval"]["level"]) == 4
    assert len(rec.curves["log"]["level"]) == 30 and rec.curves["check"]["step"] == [5, 10, 15, 20, 25, 30]
    again = train(_trial("combined"), 0, Runtime())
    assert again.final == rec.final  # a function of config and seed


def test_naive_advances_exactly_when_its_rule_says():
    """A low threshold makes the rule fire: after each check the level rises by one exactly when
    the validation accuracy at it was above the threshold and it was below the target (the
    stagnation rule off, patience 0, so only this rule can move the level)."""
    rec = train(_trial("naive", target=3, steps=60, threshold=0.2, patience=0), 0, Runtime())
    c = rec.curves["check"]
    for i, (level, acc, adv) in enumerate(zip(c["level"], c["val_acc"], c["advanced"])):
        assert adv == (acc > 0.2 and level < 3)
        if i + 1 < len(c["level"]):
            assert c["level"][i + 1] == level + adv
    assert rec.final["level"] == 1 + sum(c["advanced"])
    assert sum(c["advanced"]) >= 1  # the rule did fire
    log = rec.curves["log"]
    assert log["mean_difficulty"] == [float(v) for v in log["level"]]  # naive trains at its level


def test_a_diverging_trial_is_recorded_not_raised():
    rec = train(_trial("baseline", lr=1e38, clip="none"), 0, Runtime())
    assert rec.status == "diverged" and rec.diverged_step is not None
    assert rec.final["steps"] == rec.diverged_step - 1 and "char_acc" not in rec.final


def test_bad_options_are_refused():
    with pytest.raises(ValueError, match="target"):
        train(Trial(data=DataConfig("addition"), model=ModelConfig("char_lstm", 1, 8), steps=2), 0, Runtime())
    with pytest.raises(ValueError, match="steps"):
        train(Trial(data=DataConfig("addition", options={"target": 2}), model=ModelConfig("char_lstm", 1, 8)), 0,
              Runtime())
    with pytest.raises(ValueError, match="monitors"):
        train(Trial(data=_trial().data, model=ModelConfig("char_lstm", 1, 8), steps=2, monitors=("grad_norm",)), 0,
              Runtime())
    with pytest.raises(ValueError, match="no option"):
        train(_trial(colour="red"), 0, Runtime())
    with pytest.raises(KeyError, match="valid"):
        train(_trial("sideways"), 0, Runtime())
