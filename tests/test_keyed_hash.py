"""The keyed-once HMAC gives hmac's digests, for any key and message."""

from __future__ import annotations

import hmac

from hypothesis import given
from hypothesis import strategies as st

from personabid.keyed_hash import KeyedHash


@given(
    key=st.binary(min_size=0, max_size=200),
    messages=st.lists(st.binary(max_size=300), min_size=1, max_size=4),
)
def test_each_digest_is_hmac_sha256_of_the_key_and_the_message(key: bytes, messages: list[bytes]) -> None:
    keyed = KeyedHash(key)
    assert [keyed.digest(m) for m in messages] == [hmac.digest(key, m, "sha256") for m in messages]
