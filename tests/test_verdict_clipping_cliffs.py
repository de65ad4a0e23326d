"""clipping_cliffs' verdict on synthetic records with known answers: each part must say
reproduced, not reproduced and inconclusive when the data say so."""

from studies import clipping_cliffs as study
from tests.synthetic import words

PARTS = ["cliff: error after the last update", "divergence (RNN)", "success (RNN)"]
PLANTED_SEEDS = range(6)  # seeds of the planted tables in tests/test_verdicts.py


def planted(effect: str):
    """Per-trial values. "yes": the unclipped cliff runs end at a higher error, every unclipped RNN
    run diverges and no clipped one does, and only clipped runs succeed; "no": the reverse; "unclear":
    equal cliff errors with wide seed noise, no RNN run diverges, and each arm succeeds on half of
    the (length, seed) pairs, the other arm on the other half."""

    def values(f, seed, rng):
        if f["task"] == "cliff":
            high = {"yes": "none", "no": "norm"}.get(effect)
            mean = 0.09 if f["clip"] == high else 1e-3 if high else 0.05
            return {"final_error": mean + rng.normal(0, 0.05 if effect == "unclear" else 1e-4)}
        if effect == "unclear":
            return {"diverged": 0.0, "success": float((seed + f["length"] + (f["clip"] == "norm")) % 2)}
        bad = {"yes": "none", "no": "norm"}[effect]  # the clipping that diverges and never succeeds
        if f["clip"] == bad:
            return {"status": "diverged", "diverged": 1.0, "success": float("nan")}
        return {"diverged": 0.0, "success": 1.0}

    return values


def test_a_failed_cliff_run_never_counts_for_the_claim():
    """Unclipped cliff runs that fail (non-finite error) would count as E = max(target, 1 - target)^2,
    above every clipped run's error, which is on the claim's side: a failed seed counts at the
    threshold instead, so failures alone never reproduce the part (the divergence part counts them)."""
    def values(f, seed, rng):
        v = planted("yes")(f, seed, rng)
        if f["task"] == "cliff" and f["clip"] == "none":
            v.update(status="diverged", final_error=float("nan"))
        return v

    got = words(study, values, seeds=range(6))
    assert got["cliff: error after the last update"] == "not reproduced"


def test_a_diverged_trial_is_a_divergence_event_and_a_failure():
    """The event comes from the status: a diverged trial counts as diverged and as unsuccessful
    whatever its other columns say."""
    def values(f, seed, rng):
        v = planted("yes")(f, seed, rng)
        if f["task"] == "rnn" and f["clip"] == "none":
            v.update(diverged=0.0, success=1.0)  # stale values: the status must win
        return v

    got = words(study, values, seeds=range(6))
    assert got["divergence (RNN)"] == "reproduced"
    assert got["success (RNN)"] == "reproduced"
