"""The validator's memory of records that matched their schema (KnownValid): records it
takes for one another match their schema alike."""

from __future__ import annotations

import math

from hypothesis import given, settings

from eventroll.validation import KnownValid, schema_problems
from tests.property.strategies import every_event

def numeric_paths(value, path=()):
    """The paths to every number (not a bool) in a record's maps and lists."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from numeric_paths(item, (*path, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from numeric_paths(item, (*path, i))
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        yield path


def replaced(value, path, new):
    if not path:
        return new
    head, *rest = path
    copy = dict(value) if isinstance(value, dict) else list(value)
    copy[head] = replaced(value[head], rest, new)
    return copy


NEAR_BOUNDS = [-4, -3, -2, -1, 0, 1, 2, 3, -3.5, -2.5, -1.5, -0.5, 0.5, 1.5, 2.5, -2.0, 0.0,
               1.0, 3.0, 2**40, -(2**40), 1e300, -1e300, math.inf, -math.inf]


@settings(max_examples=15, deadline=None)
@given(every_event)
def test_numbers_with_one_key_are_all_valid_or_all_not(event):
    """Each number of an event set in turn to each of many values near the schemas'
    bounds: the values that make the same key make records that all match their schema
    or all do not."""
    record = event.to_record()
    record["seq"] = 0
    known = KnownValid()
    for path in numeric_paths(record):
        verdicts: dict[object, set[bool]] = {}
        for value in NEAR_BOUNDS:
            candidate = replaced(record, path, value)
            verdicts.setdefault(known._key(candidate), set()).add(
                not schema_problems(event.KIND, candidate))
        assert all(len(found) == 1 for found in verdicts.values()), (path, verdicts)


def test_the_range_holds_every_bound_of_the_schemas():
    """The keys keep each number's side of every bound: -2 (a minimum), 0, 1 and the
    constants -1 and 1 of the schemas lie strictly inside the range."""
    known = KnownValid()
    assert known._low < -2 and known._high > 1
    assert len({known._key(x) for x in (-2.5, -1.5, 0.25, 1.5, -2, -1, 0, 1)}) == 8
    assert known._key(0.25) == known._key(0.75) and known._key(7) == known._key(2 ** 40)
    assert known._key(math.inf) != known._key(1.5)
