"""gradient_noise's verdict on synthetic records with known answers."""

import pytest

from studies import gradient_noise as study
from tests.synthetic import words

PARTS = ["(a) noise slope in (-0.6, -0.4)", "(b) examples to the target loss, GD / SGD"]
EFFECTS = ["yes", "unclear"]  # the planted effects tests/test_verdicts.py checks ("no" is tested below)


def planted(effect: str):
    """yes: slope -0.5, GD needs 10x the examples; no: a slope outside the band, below it (-0.7) or
    above it (-0.3) in turn (see the tests); unclear: wide spread."""
    def values(f, seed, rng):
        gd = f["method"] == "GD"
        if effect == "unclear":
            slope, examples = -0.5 + 0.4 * (-1) ** seed, (10_000.0 * 4.0 ** ((-1) ** seed) if gd else 10_000.0)
        else:
            slope = -0.5 + rng.normal(0, 0.01)
            examples = (100_000.0 if effect == "yes" else 2_000.0) * (1 + rng.normal(0, 0.05)) if gd else 10_000.0
        return {"noise_slope": slope if gd else float("nan"), "examples_to_target": examples}

    return values


@pytest.mark.parametrize("slope", [-0.7, -0.3])
def test_a_slope_outside_the_band_is_not_reproduced(slope):
    def values(f, seed, rng):
        v = planted("no")(f, seed, rng)
        return {**v, "noise_slope": slope + rng.normal(0, 0.01) if f["method"] == "GD" else float("nan")}

    got = words(study, values, seeds=range(8))
    assert got["(a) noise slope in (-0.6, -0.4)"] == "not reproduced"
    assert got["(b) examples to the target loss, GD / SGD"] == "not reproduced"
