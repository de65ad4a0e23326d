"""The store: one JSON file a trial under <results>/<study>/trials/<key>.json, written atomically,
and the trained weights of a trial that others learn from (a teacher) under
<results>/<study>/weights/<key>.pt. What a record holds is declared in oplab.schema.
"""

from __future__ import annotations

from pathlib import Path

from oplab import records
from oplab.records import Record


class Store:
    """One JSON file a trial under results/<study>/trials/; the trained weights of a trial that
    others learn from (a teacher) beside it, under results/<study>/weights/<key>.pt."""

    def __init__(self, results_dir: Path, study: str):
        self.dir = Path(results_dir) / study / "trials"
        self.weights_dir = Path(results_dir) / study / "weights"

    def path(self, key: str) -> Path:
        return self.dir / f"{key}.json"

    def weights_path(self, key: str) -> Path:
        return self.weights_dir / f"{key}.pt"

    def load(self, key: str) -> Record | None:
        return records.load(self.path(key), key)

    def save(self, record: Record) -> None:
        records.save(record, self.path(record.key))

    def save_weights(self, key: str, weights: bytes) -> None:
        records.atomic_write(self.weights_path(key), weights)

    def load_weights(self, key: str) -> bytes | None:
        path = self.weights_path(key)
        return path.read_bytes() if path.exists() else None
