"""decay_vs_length(): the measured ratio beside its two predictions, medians over seeds."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bpttlab.experiments import DecayConfig, decay_vs_length
from bpttlab.store import Store

from .conftest import strict_json


def test_decay_vs_length(store: Store) -> None:
    config = DecayConfig(lengths=(5, 10, 20), seeds=(0, 1, 2), hidden_size=8, batch_size=4)
    doc = decay_vs_length(config, store=store).to_dict()
    assert strict_json(doc) == doc
    rows = {(r["radius"], r["length"]): r for r in doc["rows"]}
    assert set(rows) == {(r, n) for r in (0.95, 1.05) for n in (5, 10, 20)}
    ratios = [rows[0.95, n]["ratio"] for n in (5, 10, 20)]
    assert ratios[0] > ratios[1] > ratios[2] > 0  # decays with length
    for row in doc["rows"]:
        assert len(row["per_seed"]) == row["seeds"] == 3
        for key in ("ratio", "naive", "lyapunov"):
            values = [s[key] for s in row["per_seed"]]
            assert row[key] == pytest.approx(float(np.median(values)))
            assert row[f"{key}_min"] == min(values) and row[f"{key}_max"] == max(values)
        for s in row["per_seed"]:
            assert s["naive"] == pytest.approx(
                (row["radius"] * s["mean_derivative"]) ** row["length"]
            )
            assert s["lyapunov"] == pytest.approx(math.exp(s["lyapunov_rate"] * row["length"]))
            assert s["measured_rate"] < 0 and s["lyapunov_rate"] < 0 and s["naive_rate"] < 0
    for radius in (0.95, 1.05):  # past the transient, both predictions track the measured rate
        row = rows[radius, 20]
        assert row["measured_rate"] == pytest.approx(row["lyapunov_rate"], abs=0.05)
        assert row["measured_rate"] == pytest.approx(row["naive_rate"], abs=0.05)
    assert decay_vs_length(config, store=store).to_dict() == doc
    assert len(store.runs("decay-vs-length")) == 1


def test_one_seed_is_the_first_seed_of_many() -> None:
    one = decay_vs_length(DecayConfig(lengths=(8,), seeds=(0,), hidden_size=6, batch_size=3))
    many = decay_vs_length(DecayConfig(lengths=(8,), seeds=(0, 1), hidden_size=6, batch_size=3))
    assert one.rows[0]["per_seed"][0] == many.rows[0]["per_seed"][0]


@pytest.mark.parametrize(("kwargs", "field"), [({"radii": (0.0,)}, "radii"),
                                               ({"lengths": ()}, "lengths"),
                                               ({"noise": math.nan}, "noise")])  # fmt: skip
def test_bad_configs_name_the_field(kwargs, field) -> None:
    with pytest.raises(ValueError, match=f"^{field}="):
        DecayConfig(**kwargs)
