"""Recall, false-positive rate and throughput of messages.crisis on the committed phrase suite.

Run from the repository root:  python bench/crisis_recall.py [--repeat N]

A crisis row counts as found only when detect_crisis fires *and* reports every category the row
expects. Exits 1 when recall is below 100 %, so CI can run it as a gate.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Import from this checkout even when the package is not installed.
sys.path.insert(0, str(ROOT))

from messages.crisis import CATEGORIES, detect_crisis  # noqa: E402

SUITE = ROOT / "tests" / "messages" / "crisis_phrases.tsv"


def load_suite(path: Path) -> list[tuple[bool, frozenset[str], str, str]]:
    """Rows of (is_crisis, expected categories, language, message); same format as the tests."""
    rows = []
    for raw in path.read_text(encoding="utf-8").splitlines():
        if not raw.strip() or raw.startswith("#"):
            continue
        label, categories, language, message = raw.split("\t")
        cats = frozenset() if categories == "-" else frozenset(categories.split(","))
        rows.append((label == "crisis", cats, language, message))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=200, help="passes over the suite for timing")
    args = parser.parse_args(argv)

    rows = load_suite(SUITE)
    crisis_rows = [r for r in rows if r[0]]
    ok_rows = [r for r in rows if not r[0]]

    misses: list[tuple[str, str, str]] = []
    found_by_category: Counter[str] = Counter()
    total_by_category: Counter[str] = Counter()
    total_by_language: Counter[str] = Counter()
    for _, expected, language, message in crisis_rows:
        result = detect_crisis(message)
        total_by_language[language] += 1
        for category in expected:
            total_by_category[category] += 1
            if category in result.categories:
                found_by_category[category] += 1
        if not (result.is_crisis and expected <= result.categories):
            got = ",".join(sorted(result.categories)) or "nothing"
            misses.append((message, ",".join(sorted(expected)), got))

    false_positives = []
    for _, _, _, message in ok_rows:
        result = detect_crisis(message)
        if result.is_crisis:
            false_positives.append((message, ",".join(result.matched)))

    messages = [r[3] for r in rows]
    start = time.perf_counter()
    for _ in range(args.repeat):
        for message in messages:
            detect_crisis(message)
    elapsed = time.perf_counter() - start
    classified = args.repeat * len(messages)

    recall = (len(crisis_rows) - len(misses)) / len(crisis_rows)
    fp_rate = len(false_positives) / len(ok_rows)
    print(f"suite: {SUITE.relative_to(ROOT)}")
    print(
        f"rows: {len(rows)} ({len(crisis_rows)} crisis, {len(ok_rows)} not crisis); "
        f"crisis by language: "
        + ", ".join(f"{lang} {n}" for lang, n in sorted(total_by_language.items()))
    )
    print(f"recall: {recall:.1%} ({len(crisis_rows) - len(misses)}/{len(crisis_rows)})")
    print(f"false-positive rate: {fp_rate:.1%} ({len(false_positives)}/{len(ok_rows)})")
    print("per category (found/expected):")
    for category in sorted(CATEGORIES):
        print(f"  {category:<10} {found_by_category[category]}/{total_by_category[category]}")
    print(f"misses ({len(misses)}):")
    for message, expected, got in misses:
        print(f"  expected {expected}, got {got}: {message!r}")
    print(f"false positives ({len(false_positives)}):")
    for message, matched in false_positives:
        print(f"  [{matched}] {message!r}")
    print(
        f"throughput: {classified / elapsed:,.0f} messages/s "
        f"({classified} classifications in {elapsed:.2f} s, "
        f"{elapsed / classified * 1e6:.1f} µs each)"
    )
    return 0 if not misses else 1


if __name__ == "__main__":
    sys.exit(main())
