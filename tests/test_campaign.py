"""docs/results/campaign.py, the long-budget campaign: it computes only what the store lacks,
summarises every cell from the store (complete cells only), and the README shows its tables."""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "docs"))
sys.path.insert(0, str(ROOT / "docs" / "results"))
import campaign  # noqa: E402  (docs/results/campaign.py)
import readme  # noqa: E402  (docs/readme.py)

from bpttlab.experiments import RUN_KIND  # noqa: E402
from bpttlab.stats import wilson  # noqa: E402
from bpttlab.store import Store  # noqa: E402


def test_a_partial_campaign_resumes_and_summarises_only_complete_cells(tmp_path):
    db, out = str(tmp_path / "c.db"), tmp_path / "c.json"
    doc = campaign.compute(("adding:100",), (0,), 3, db, out, workers=1)
    assert json.loads(out.read_text())["runs"] == doc["runs"] == len(campaign.ARCHS)
    with Store(db) as store:
        stored = {r.key for r in store.runs(RUN_KIND)}
    assert len(stored) == len(campaign.ARCHS)
    done = [r for r in doc["rows"] if r["done"]]
    assert {(r["task"], r["length"]) for r in done} == {("adding", 100)}
    for r in done:  # one seed: the success count and its Wilson interval, from the accuracy
        learned = r["accuracies"][0] >= r["chance"] + campaign.MARGIN * (1 - r["chance"])
        assert r["successes"] == int(learned)
        assert (r["success_low"], r["success_high"]) == wilson(int(learned), 1)
    text = campaign.tables(doc)
    assert text.count("not run yet") == 4 * len(campaign.ARCHS) + len(campaign.ARCHS)
    # the second call finds every run in the store and trains nothing
    again = campaign.compute(("adding:100",), (0,), 3, db, out, workers=1)
    assert again["rows"] == doc["rows"] and again["train_seconds"] == doc["train_seconds"]
    with Store(db) as store:
        assert {r.key for r in store.runs(RUN_KIND)} == stored


def test_readme_campaign_region_is_the_tables_of_the_json():
    text = readme.README.read_text(encoding="utf-8")
    region = {m[2]: m[3] for m in readme.REGION.finditer(text)}["campaign"]
    assert region.rstrip("\n") == campaign.tables()
