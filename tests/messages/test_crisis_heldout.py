"""The crisis detector on the held-out set (issue 16.2): messages written apart from the project,
by someone who never saw the rules, the training corpus or the errors. Never used to train or
tune; `bench/crisis_recall.py` prints the same numbers (aggregates only, never a message).

Targets: recall at least 95 % in every crisis family and in each language; false alarms under
20 % on look-alikes and under 2 % on everyday texts.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import pytest

from bench.crisis_recall import CRISIS_FAMILIES, load_rows
from messages.crisis import detect_crisis

HELDOUT = Path(__file__).with_name("crisis_heldout.tsv")


@pytest.mark.xfail(
    strict=True,
    reason=(
        "measured once, on the model committed before the set was (9b65460): recall 98.8 % "
        "(every family 96.7-100 %, en 99.0 %, es 98.5 %) meets the target, but false alarms "
        "are 26.9 % on look-alikes (target < 20 %) and 15.0 % on everyday texts (target < 2 %); "
        "the model was not changed after seeing these numbers"
    ),
)
def test_the_held_out_set_meets_the_recall_and_false_alarm_targets() -> None:
    rows = load_rows(HELDOUT)
    assert len(rows) >= 300
    hits: dict[str, list[bool]] = defaultdict(list)
    for row in rows:
        alarm = detect_crisis(row.message).is_crisis
        hits[row.family].append(alarm)
        if row.family in CRISIS_FAMILIES:
            hits[f"language {row.language}"].append(alarm)
    rates = {key: sum(values) / len(values) for key, values in hits.items()}
    # Only rates are reported, never a message: the set must stay unseen.
    low = {
        key: f"{rate:.1%}"
        for key, rate in rates.items()
        if (key in CRISIS_FAMILIES or key.startswith("language")) and rate < 0.95
    }
    assert not low, f"recall under 95 %: {low}"
    assert rates["lookalike"] < 0.20, f"look-alike false alarms {rates['lookalike']:.1%}"
    assert rates["everyday"] < 0.02, f"everyday false alarms {rates['everyday']:.1%}"
