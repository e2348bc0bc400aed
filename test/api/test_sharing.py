"""The bounded table of shared values the pod cache and the page readers use."""

from __future__ import annotations

import pytest

from infercost.api.sharing import SharingTable


def test_equal_values_come_back_as_the_first_copy() -> None:
    table = SharingTable(10)
    first = ("engine", "0"), ("model_name", "".join(["qw", "en"]))
    again = ("engine", "0"), ("model_name", "".join(["qwe", "n"]))
    assert first == again and first is not again
    assert table.one(first) is first
    assert table.one(again) is first
    assert len(table) == 1


def test_a_full_table_starts_over_and_values_already_handed_out_stay_valid() -> None:
    table = SharingTable(2)
    a, b = table.one("gpu-a"), table.one("gpu-b")
    c = "".join(["gpu-", "c"])
    assert table.one(c) is c and len(table) == 1, "past its limit the table starts over"
    assert (a, b) == ("gpu-a", "gpu-b")
    later_a = "".join(["gpu-", "a"])
    assert table.one(later_a) is later_a, "a value from before the restart is shared anew"


def test_a_table_needs_room_for_one_value() -> None:
    with pytest.raises(ValueError, match="at least one value"):
        SharingTable(0)
