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
# Written apart after model v1 was committed and first run on model v2 (crisis_model_v2.json),
# once, the day v2 was committed; nothing was changed after seeing its numbers.
HELDOUT_V2 = Path(__file__).with_name("crisis_heldout_v2.tsv")

NOT_MET_V1 = (
    "false alarms over target. Model v1 (9b65460), the run this set was written for: recall "
    "98.8 %, 26.9 % look-alike and 15.0 % everyday false alarms. Model v2 (built after v1's "
    "aggregate numbers here were known, never its messages): recall 99.4 % (every family "
    "97.0-100 %, en 99.5 %, es 99.2 %), 23.7 % look-alike and 8.0 % everyday false alarms"
)
NOT_MET_V2 = (
    "false alarms over target, measured once on model v2: recall 99.4 % (every family "
    "97.1-100 %, en 99.5 %, es 99.3 %) meets it, but 37.1 % of look-alikes (target < 20 %) and "
    "9.8 % of everyday texts (target < 2 %) raise an alarm. Model v1 on the same set: recall "
    "98.0 % (means and self-harm 94.1 %), 37.1 % and 17.8 %"
)


def _rates(heldout: Path) -> dict[str, float]:
    """Alarm rate per family and, over the crisis families, per language."""
    rows = load_rows(heldout)
    assert len(rows) >= 300
    hits: dict[str, list[bool]] = defaultdict(list)
    for row in rows:
        alarm = detect_crisis(row.message).is_crisis
        hits[row.family].append(alarm)
        if row.family in CRISIS_FAMILIES:
            hits[f"language {row.language}"].append(alarm)
    # Only rates are reported, never a message: the set must stay unseen.
    return {key: sum(values) / len(values) for key, values in hits.items()}


@pytest.mark.parametrize("heldout", [HELDOUT, HELDOUT_V2], ids=["v1", "v2"])
def test_the_held_out_sets_recall_is_at_least_95_percent_in_every_family_and_language(
    heldout: Path,
) -> None:
    rates = _rates(heldout)
    low = {
        key: f"{rate:.1%}"
        for key, rate in rates.items()
        if (key in CRISIS_FAMILIES or key.startswith("language")) and rate < 0.95
    }
    assert not low, f"recall under 95 %: {low}"
    assert len([key for key in rates if key in CRISIS_FAMILIES]) == len(CRISIS_FAMILIES)


@pytest.mark.parametrize(
    "heldout",
    [
        pytest.param(HELDOUT, marks=pytest.mark.xfail(strict=True, reason=NOT_MET_V1), id="v1"),
        pytest.param(HELDOUT_V2, marks=pytest.mark.xfail(strict=True, reason=NOT_MET_V2), id="v2"),
    ],
)
def test_the_held_out_sets_false_alarms_are_under_target(heldout: Path) -> None:
    rates = _rates(heldout)
    assert rates["lookalike"] < 0.20, f"look-alike false alarms {rates['lookalike']:.1%}"
    assert rates["everyday"] < 0.02, f"everyday false alarms {rates['everyday']:.1%}"
