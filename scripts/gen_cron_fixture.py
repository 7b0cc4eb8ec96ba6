#!/usr/bin/env python3
"""Generates cron-runtime/tests/fixtures/croniter_utc.json: fire times from croniter, an
independent implementation, that cron-runtime/tests/integration/schedule_crosscheck.rs compares with ours.

Regenerate (from the repository root):

    python3 -m venv /tmp/croniter-venv
    /tmp/croniter-venv/bin/pip install croniter==7.0.0
    /tmp/croniter-venv/bin/python scripts/gen_cron_fixture.py

The RNG is seeded, so the same croniter version gives the same file.

The expressions are random 5-field expressions over `*`, numbers, lists, ranges, steps
(`*/n`, `a-b/n`, `a/n`) and names in mixed case. Left out on
purpose, because croniter's meaning differs from ours (SPEC §5) or is ambiguous:
- degenerate ranges such as `3-3` (croniter reads them as the whole range);
- a day field that lists every value without being `*` (`1-31`, `0-6`): croniter turns it
  into `*` depending on the other day field, while for us only `*` and `?` are unrestricted;
- croniter's extensions and `L`, `W`, `#`, `?`, which are tested in schedule_known_cases.rs.
"""

import json
import random
from datetime import datetime, timezone
from importlib.metadata import version
from pathlib import Path

from croniter import croniter

SEED = 20250101
COUNT = 600
FIRES = 20
START = datetime(2024, 2, 27, 13, 47, 30, tzinfo=timezone.utc)
OUT = Path(__file__).resolve().parent.parent / "cron-runtime/tests/fixtures/croniter_utc.json"

MONTHS = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"]
DAYS = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"]

rng = random.Random(SEED)


def mixed_case(name):
    return "".join(c.lower() if rng.random() < 0.5 else c for c in name)


def value(lo, hi, names=None, name_offset=0):
    n = rng.randint(lo, hi)
    if names and rng.random() < 0.4 and 0 <= n - name_offset < len(names):
        return n, mixed_case(names[n - name_offset])
    return n, str(n)


def item(lo, hi, names=None, name_offset=0, allow_start_step=True):
    """One list item and the set of values it covers."""
    kind = rng.choice(["num", "num", "range", "star_step", "range_step", "start_step"])
    if kind == "start_step" and not allow_start_step:
        kind = "range_step"
    if kind == "num":
        n, text = value(lo, hi, names, name_offset)
        return text, {n}
    if kind == "star_step":
        step = rng.randint(2, max(2, (hi - lo) // 2))
        return f"*/{step}", set(range(lo, hi + 1, step))
    if kind == "start_step":
        start = rng.randint(lo, hi - 1)
        step = rng.randint(2, max(2, (hi - lo) // 2))
        return f"{start}/{step}", set(range(start, hi + 1, step))
    a = rng.randint(lo, hi - 1)
    b = rng.randint(a + 1, hi)
    _, ta = value(a, a, names, name_offset)
    _, tb = value(b, b, names, name_offset)
    if kind == "range":
        return f"{ta}-{tb}", set(range(a, b + 1))
    step = rng.randint(2, max(2, (b - a)))
    return f"{ta}-{tb}/{step}", set(range(a, b + 1, step))


def field(lo, hi, star_weight, names=None, name_offset=0, allow_start_step=True):
    if rng.random() < star_weight:
        return "*", None
    parts, covered = [], set()
    for _ in range(rng.choice([1, 1, 1, 2, 3])):
        text, values = item(lo, hi, names, name_offset, allow_start_step)
        parts.append(text)
        covered |= values
    return ",".join(parts), covered


def expression():
    minute, _ = field(0, 59, 0.15)
    hour, _ = field(0, 23, 0.3)
    while True:
        dom, covered = field(1, 31, 0.5)
        if covered is None or len(covered) < 31:
            break
    month, _ = field(1, 12, 0.6, MONTHS, 1)
    while True:
        dow, covered = field(0, 7, 0.6, DAYS, 0)
        if covered is None or len({d % 7 for d in covered}) < 7:
            break
    return f"{minute} {hour} {dom} {month} {dow}"


def main():
    cases, seen = [], set()
    while len(cases) < COUNT:
        expr = expression()
        if expr in seen:
            continue
        seen.add(expr)
        try:
            it = croniter(expr, START, day_or=True)
            fires = [it.get_next(datetime) for _ in range(FIRES)]
        except Exception:  # e.g. `0 0 31 2 *` never fires
            continue
        cases.append(
            {
                "expression": expr,
                "fires": [f.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ") for f in fires],
            }
        )
    doc = {
        "generator": "scripts/gen_cron_fixture.py",
        "croniter_version": version("croniter"),
        "seed": SEED,
        "start": START.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "timezone": "UTC",
        "cases": cases,
    }
    OUT.write_text(json.dumps(doc, indent=1) + "\n")
    print(f"wrote {len(cases)} cases to {OUT}")


if __name__ == "__main__":
    main()
