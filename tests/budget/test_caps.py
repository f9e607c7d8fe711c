"""A cap's identity: one type for its label and its storage key, and both read back."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lyra.caps import Cap, CapScope

names = st.text(st.characters(whitelist_categories=("L", "N"), whitelist_characters="-_."), min_size=1, max_size=20)
scoped = st.builds(Cap, st.sampled_from([s for s in CapScope if s is not CapScope.GLOBAL]), names)
caps = st.one_of(st.just(Cap.daily()), scoped)


def test_the_labels_and_keys_people_and_stores_already_know() -> None:
    assert [c.label for c in (Cap.daily(), Cap.tier("fast"), Cap.key("xai"), Cap.key_tokens("xai"),
                              Cap.client("desk"))] == ["global", "tier:fast", "key:xai", "key_tokens:xai",
                                                       "client:desk"]
    assert Cap.daily().storage_key("20261201") == "d20261201:global"
    assert Cap.key_tokens("xai").storage_key("20261201") == "d20261201:ktok:xai"
    assert Cap.key_tokens("xai").unit == "tokens" and Cap.client("desk").unit == "usd"


@given(caps, st.dates().map(lambda d: d.strftime("%Y%m%d")))
def test_a_cap_reads_back_from_its_label_and_from_its_storage_key(cap: Cap, day: str) -> None:
    assert Cap.parse(cap.label) == cap
    assert Cap.from_storage_key(cap.storage_key(day)) == (day, cap)


@pytest.mark.parametrize("label", ["", "tier", "global:x", "keys:xai", "client:"])
def test_a_label_that_names_no_cap_is_refused_naming_it(label: str) -> None:
    with pytest.raises(ValueError, match="is not a cap"):
        Cap.parse(label)


def test_find_tells_a_cap_from_a_refusal_that_is_no_caps() -> None:
    assert Cap.find("key:xai") == Cap.key("xai")
    assert Cap.find("estimate") is None and Cap.find("") is None
