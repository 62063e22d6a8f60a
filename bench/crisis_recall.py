"""Recall per family and language, false alarms, and speed of messages.crisis on a labelled set.

Run from the repository root:

    python bench/crisis_recall.py [PATH] [--rules-only] [--repeat N]

PATH is a tab-separated file of FAMILY, LANGUAGE, MESSAGE rows (blank lines and lines starting
with "#" are skipped); it defaults to the held-out set, tests/messages/crisis_heldout.tsv.
Families suicidal_direct, suicidal_indirect, hopelessness, farewell, means, self_harm, overdose,
other_in_danger, harm_others and threatened are crises; lookalike and everyday are not.
``--rules-only`` runs the first layer (the rules) alone, for the "before" number.

Only aggregate numbers are printed, never a message: the held-out set must stay unseen by
whoever tunes the detector.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Import from this checkout even when the package is not installed.
sys.path.insert(0, str(ROOT))

from messages.crisis import detect_crisis  # noqa: E402

DEFAULT = ROOT / "tests" / "messages" / "crisis_heldout.tsv"
CRISIS_FAMILIES = (
    "suicidal_direct",
    "suicidal_indirect",
    "hopelessness",
    "farewell",
    "means",
    "self_harm",
    "overdose",
    "other_in_danger",
    "harm_others",
    "threatened",
)
CALM_FAMILIES = ("lookalike", "everyday")
# The reply each crisis family should get (messages.crisis_model.KINDS).
FAMILY_KIND = {
    "overdose": "overdose",
    "other_in_danger": "other_in_danger",
    "harm_others": "violence",
    "threatened": "violence",
}


@dataclass(frozen=True)
class Row:
    family: str
    language: str
    message: str


def load_rows(path: Path) -> list[Row]:
    rows = []
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not raw.strip() or raw.startswith("#"):
            continue
        parts = raw.split("\t")
        if len(parts) != 3 or parts[0] not in CRISIS_FAMILIES + CALM_FAMILIES:
            # The line number only: the text itself is not printed.
            raise SystemExit(f"{path.name}: line {number} is not FAMILY<TAB>LANGUAGE<TAB>MESSAGE")
        rows.append(Row(parts[0], parts[1], parts[2]))
    return rows


def _rate(hits: int, total: int) -> str:
    return f"{hits / total:6.1%} ({hits}/{total})" if total else "     - (0/0)"


def report(rows: Sequence[Row], verdicts: Sequence[tuple[bool, str | None]]) -> dict[str, float]:
    """Print recall per family and language, false alarms on the calm families, and how often a
    caught crisis got the reply its family needs. Returns the headline rates."""
    found: Counter[str] = Counter()
    total: Counter[str] = Counter()
    kind_right = kind_total = 0
    for row, (alarm, kind) in zip(rows, verdicts, strict=True):
        keys = [row.family]
        if row.family in CRISIS_FAMILIES:
            keys += [f"lang:{row.language}", "all"]
            if alarm:
                kind_total += 1
                kind_right += kind == FAMILY_KIND.get(row.family, "self")
        else:
            keys += [f"calm:{row.language}"]
        for key in keys:
            total[key] += 1
            found[key] += alarm
    print("recall by family:")
    for family in CRISIS_FAMILIES:
        print(f"  {family:<18} {_rate(found[family], total[family])}")
    print("recall by language:")
    for key in sorted(k for k in total if k.startswith("lang:")):
        print(f"  {key[5:]:<18} {_rate(found[key], total[key])}")
    print(f"overall recall       {_rate(found['all'], total['all'])}")
    print("false alarms:")
    for family in CALM_FAMILIES:
        print(f"  {family:<18} {_rate(found[family], total[family])}")
    for key in sorted(k for k in total if k.startswith("calm:")):
        print(f"  calm, {key[5:]:<12} {_rate(found[key], total[key])}")
    print(f"reply kind right on caught crises: {_rate(kind_right, kind_total)}")
    return {
        "recall": found["all"] / max(1, total["all"]),
        "lookalike_fp": found["lookalike"] / max(1, total["lookalike"]),
        "everyday_fp": found["everyday"] / max(1, total["everyday"]),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", nargs="?", type=Path, default=DEFAULT)
    parser.add_argument("--rules-only", action="store_true", help="layer one (the rules) alone")
    parser.add_argument("--repeat", type=int, default=5, help="passes over the set for timing")
    args = parser.parse_args(argv)

    rows = load_rows(args.path)
    learned = not args.rules_only
    verdicts = []
    for row in rows:
        result = detect_crisis(row.message, learned=learned)
        verdicts.append((result.is_crisis, result.kind))
    print(
        f"set: {args.path.name}, {len(rows)} rows; detector: {'rules only' if args.rules_only else 'rules + learned layer'}"
    )
    report(rows, verdicts)

    start = time.perf_counter()
    for _ in range(args.repeat):
        for row in rows:
            detect_crisis(row.message, learned=learned)
    elapsed = time.perf_counter() - start
    classified = args.repeat * len(rows)
    print(
        f"throughput: {classified / elapsed:,.0f} classifications/s "
        f"({classified} in {elapsed:.2f} s, {elapsed / classified * 1e6:.0f} µs each)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
