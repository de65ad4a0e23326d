"""local_minima_spread's verdict on synthetic records with known answers: raw final losses whose spread
across seeds falls with width ("yes"), rises ("no"), or stays the same ("unclear"); the verdict forms
its blocks of 4 seeds from them (tests/test_local_minima_spread_unit.py checks the blocks' numbers)."""

from studies import local_minima_spread as study  # noqa: F401 (tests/test_verdicts.py reads it)

PARTS = ["(a) spread of the final test loss falls with width", "(b) spread of the final training loss falls with width"]
PLANTED_SEEDS = range(40)  # 10 blocks of 4 seeds


def planted(effect: str):
    """Final losses around 0.3 nats with a standard deviation over seeds of 0.1 (w / 4)^k at width w:
    k = -1 ("yes"), +1 ("no"), 0 ("unclear": the spread the same at every width)."""
    k = {"yes": -1.0, "no": 1.0, "unclear": 0.0}[effect]

    def values(f, seed, rng):
        sd = 0.1 * (f["width"] / 4) ** k
        return {"test_loss": 0.3 + sd * rng.normal(), "train_loss_full": 0.25 + sd * rng.normal()}

    return values
