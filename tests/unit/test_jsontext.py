"""``jsontext.dumps`` writes the text of ``json.dumps(obj, indent=2, sort_keys=True)`` (padded
after each line break with ``pad``, when given):
for any JSON value, for the values json.dumps treats specially (tuples, non-string keys,
NaN and infinities, non-ASCII text), and it fails where json.dumps fails, with its error."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from compose_rollback.jsontext import dumps


def reference(obj: Any) -> str:
    return json.dumps(obj, indent=2, sort_keys=True)


scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text()
values = st.recursive(
    scalars,
    lambda inner: (st.lists(inner, max_size=5) | st.lists(inner, max_size=4).map(tuple)
                   | st.dictionaries(st.text(), inner, max_size=5)),
    max_leaves=20,
)


@settings(max_examples=60, deadline=None)
@given(values)
def test_any_json_value_is_written_as_json_dumps_writes_it(obj: Any) -> None:
    assert dumps(obj) == reference(obj)
    # As a value nested in a larger document: every line after the first padded.
    assert dumps(obj, pad="    ") == reference(obj).replace("\n", "\n    ")


@pytest.mark.parametrize("obj", [
    {}, [], (), "", 0, -1, 2**80, 1.5, -0.0, math.inf, -math.inf, math.nan, True, False, None,
    {"b": [1, {"z": [], "a": {}}], "a": "é\u2028\x00\"\\/", "c": ()},
    {1: "int key", 2: "another"}, {True: 1, False: 2}, {1.5: 3, -2.5: 4},  # keys turned to text
    [{"nested": [[[]]]}], {"k": (1, (2, [3]))},
])
def test_the_values_json_dumps_treats_specially(obj: Any) -> None:
    assert dumps(obj) == reference(obj)
    assert dumps(obj, pad="  ") == reference(obj).replace("\n", "\n  ")


def test_a_revision_history_of_the_stores_shape() -> None:
    pin = {"image": "127.0.0.1:5000/app:live", "digest": "sha256:" + "b" * 64}
    history = {"format": 1, "revisions": [
        {"number": n, "status": "deployed", "restores": None, "services": ["app"],
         "pins": {"app": pin}, "message": f"release ü {n}"} for n in range(50)]}
    assert dumps(history) == reference(history)


@pytest.mark.parametrize("obj", [
    {"a": 1, 2: "keys that cannot be sorted together"},
    {"set": {1, 2}},
    [object()],
])
def test_what_json_dumps_refuses_is_refused_with_its_error(obj: Any) -> None:
    with pytest.raises(TypeError) as expected:
        reference(obj)
    with pytest.raises(TypeError) as ours:
        dumps(obj)
    assert str(ours.value) == str(expected.value)


def test_a_cycle_is_refused_as_json_dumps_refuses_it() -> None:
    loop: list[Any] = []
    loop.append(loop)
    with pytest.raises(ValueError, match="Circular reference"):
        dumps(loop)
