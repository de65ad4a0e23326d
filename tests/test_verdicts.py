"""Every study's verdict on synthetic records with planted effects. Each
tests/test_verdict_<study>.py declares its study, the parts (PARTS) and `planted(effect)`, the
per-trial values where each part's true effect is on the claimed side ("yes"), on the other side
("no"), or at the threshold with wide seed noise ("unclear"), and tests its own cases; here every
part must give the planted word, and nothing is decisive from fewer than 5 seeds."""

import importlib
from pathlib import Path

import pytest

from studies import all_studies
from tests.synthetic import PLANTED, check_planted, check_too_few_seeds

MODULES = {p.stem.removeprefix("test_verdict_"): importlib.import_module(f"tests.{p.stem}")
           for p in sorted(Path(__file__).parent.glob("test_verdict_*.py"))}
CASES = [(name, effect, word) for name, m in MODULES.items() for effect, word in PLANTED
         if effect in getattr(m, "EFFECTS", [e for e, _ in PLANTED])]


def test_every_study_has_its_planted_verdict_tests():
    assert set(MODULES) == {s.NAME for s in all_studies()}


@pytest.mark.parametrize("name,effect,word", CASES)
def test_each_part_gives_the_planted_word(name, effect, word):
    m = MODULES[name]
    check_planted(m.study, m.planted, m.PARTS, effect, word, seeds=getattr(m, "PLANTED_SEEDS", range(8)))


@pytest.mark.parametrize("name", MODULES)
def test_fewer_than_five_seeds_is_inconclusive(name):
    check_too_few_seeds(MODULES[name].study, MODULES[name].planted)
