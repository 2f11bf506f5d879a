"""Notice URLs: what personabid hands out with a bid reads back, once the exchange has filled in the
macros, as the bid's notice; anything altered in the bid's identity is refused as forged."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from personabid.errors import InvalidRequest
from personabid.notices import (
    ForgedNotice,
    NoticeUrls,
    notice_key,
    notice_urls,
    parse_query,
    read_notice,
)
from personabid.spend.control import Notification, SpendControl, validate_notification
from personabid.spend.store import MemoryStore

BASE = "http://127.0.0.1:8080"
KEY = notice_key(b"k" * 32)
OTHER_KEY = notice_key(b"o" * 32)
ARRIVED = 1_700_000_000.0
IDS = ("auction-1", "imp-1", "bid-1", "campaign-1")
PROPERTY = settings(max_examples=200, deadline=None, derandomize=True, database=None)

ids = st.text(max_size=40)  # any text: '&', '=', '%', '+', spaces, '${', unicode


def urls(*identity: str, key: bytes = KEY) -> NoticeUrls:
    return notice_urls(BASE, key, *identity)


def url_of(kind: str, notices: NoticeUrls) -> str:
    return {"win": notices.nurl, "bill": notices.burl, "loss": notices.lurl}[kind]


def fill(url: str, price: str = "1.25", cur: str = "USD", loss: str = "102", min_to_win: str = "3.5") -> str:
    """The URL as an exchange fetches it: the macros' text replaced by their values."""
    return (
        url.replace("${AUCTION_PRICE}", price)
        .replace("${AUCTION_CURRENCY}", cur)
        .replace("${AUCTION_LOSS}", loss)
        .replace("${AUCTION_MIN_TO_WIN}", min_to_win)
    )


def read(kind: str, url: str, key: bytes = KEY) -> Notification:
    parts = urlsplit(url)
    assert parts.path == f"/openrtb2/{kind}"
    return read_notice(kind, parse_query(parts.query), key, ARRIVED)


def query_of(url: str) -> dict[str, str]:
    return parse_query(urlsplit(url).query)


@PROPERTY
@given(ids, ids, ids, ids, st.sampled_from(["win", "bill", "loss"]))
def test_url_read_back_gives_the_bids_identity(
    auction: str, imp: str, bid: str, campaign: str, kind: str
) -> None:
    note = read(kind, fill(url_of(kind, urls(auction, imp, bid, campaign))))
    assert (note.auction_id, note.imp_id, note.bid_id, note.campaign_id) == (auction, imp, bid, campaign)


@pytest.mark.parametrize(
    "identity",
    [
        ("a&b=c", "1=2&3", "%41%", "c+d"),
        ("enchère aux 🎯", "imp 1", "", "кампания"),
        ("${AUCTION_PRICE}", "?#/", "a\x00b", " spaces  around "),
    ],
)
def test_ids_with_reserved_characters_round_trip(identity: tuple[str, str, str, str]) -> None:
    note = read("win", fill(urls(*identity).nurl))
    assert (note.auction_id, note.imp_id, note.bid_id, note.campaign_id) == identity


def test_urls_lie_under_the_base_url_at_their_paths() -> None:
    notices = notice_urls(BASE + "/", KEY, *IDS)
    assert notices.nurl.startswith(BASE + "/openrtb2/win?")
    assert notices.burl.startswith(BASE + "/openrtb2/bill?")
    assert notices.lurl.startswith(BASE + "/openrtb2/loss?")


def test_macros_appear_verbatim() -> None:
    notices = urls(*IDS)
    assert "price=${AUCTION_PRICE}" in notices.nurl
    assert "price=${AUCTION_PRICE}" in notices.burl
    assert "loss=${AUCTION_LOSS}" in notices.lurl
    assert "min_to_win=${AUCTION_MIN_TO_WIN}" in notices.lurl
    for url in (notices.nurl, notices.burl, notices.lurl):
        assert "cur=${AUCTION_CURRENCY}" in url
        assert "%24%7B" not in url


def test_ids_are_percent_encoded_so_they_cannot_inject_parameters() -> None:
    query = query_of(urls("a&price=9", "1", "b", "c").nurl)
    assert query["auction"] == "a&price=9"
    assert query["price"] == "${AUCTION_PRICE}"


def test_win_read_after_substitution_gives_the_clearing_price() -> None:
    note = read("win", fill(urls(*IDS).nurl, price="1.25"))
    assert note == Notification(
        type="win",
        auction_id="auction-1",
        imp_id="imp-1",
        bid_id="bid-1",
        campaign_id="campaign-1",
        price=1.25,
        cur="USD",
        arrived=ARRIVED,
    )
    validate_notification(note)


def test_billing_notice_is_a_billed_impression_at_its_price() -> None:
    note = read("bill", fill(urls(*IDS).burl, price="0.80"))
    assert (note.type, note.price) == ("impression", 0.80)


def test_loss_read_after_substitution_gives_reason_and_minimum_to_win() -> None:
    note = read("loss", fill(urls(*IDS).lurl, loss="102", min_to_win="3.5"))
    assert (note.type, note.loss_reason, note.price) == ("loss", 102, 3.5)
    validate_notification(note)


def test_unsubstituted_currency_means_the_bids_currency() -> None:
    url = urls(*IDS).nurl.replace("${AUCTION_PRICE}", "2")
    assert read("win", url).cur == ""


def test_unsubstituted_minimum_to_win_reads_as_zero() -> None:
    url = urls(*IDS).lurl.replace("${AUCTION_LOSS}", "2")
    assert read("loss", url).price == 0.0


@PROPERTY
@given(ids, ids, ids, ids, st.sampled_from(["auction", "imp", "bid", "campaign"]), ids)
def test_any_altered_identity_parameter_is_forged(
    auction: str, imp: str, bid: str, campaign: str, name: str, altered: str
) -> None:
    query = query_of(fill(urls(auction, imp, bid, campaign).nurl))
    if query[name] == altered:
        altered += "x"
    query[name] = altered
    with pytest.raises(ForgedNotice):
        read_notice("win", query, KEY, ARRIVED)


def test_moving_characters_between_fields_is_forged() -> None:
    query = query_of(fill(urls("ab", "c", "d", "e").nurl))
    query["auction"], query["imp"] = "a", "bc"
    with pytest.raises(ForgedNotice):
        read_notice("win", query, KEY, ARRIVED)


def test_signature_from_another_key_is_forged() -> None:
    url = fill(urls(*IDS, key=OTHER_KEY).nurl)
    with pytest.raises(ForgedNotice):
        read("win", url)


def test_missing_signature_is_forged() -> None:
    query = query_of(fill(urls(*IDS).nurl))
    del query["sig"]
    with pytest.raises(ForgedNotice, match="signature missing"):
        read_notice("win", query, KEY, ARRIVED)


def test_non_ascii_signature_is_forged() -> None:
    query = query_of(fill(urls(*IDS).nurl))
    query["sig"] = "é" * 22
    with pytest.raises(ForgedNotice):
        read_notice("win", query, KEY, ARRIVED)


def test_loss_url_replayed_as_a_win_is_forged() -> None:
    query = query_of(fill(urls(*IDS).lurl))
    query["price"] = "9.0"
    with pytest.raises(ForgedNotice):
        read_notice("win", query, KEY, ARRIVED)


def test_unsubstituted_price_is_refused_naming_the_parameter() -> None:
    with pytest.raises(InvalidRequest) as refused:
        read("win", urls(*IDS).nurl)
    assert (refused.value.field, refused.value.value) == ("price", "${AUCTION_PRICE}")


@pytest.mark.parametrize("price", ["", "abc", "1,5", "0x10", "nan", "inf", "1e999", "-1", "1_000", " 1"])
def test_malformed_price_is_refused_naming_the_parameter(price: str) -> None:
    with pytest.raises(InvalidRequest) as refused:
        read("win", fill(urls(*IDS).nurl, price=price))
    assert refused.value.field == "price"


@pytest.mark.parametrize("loss", ["${AUCTION_LOSS}", "", "1.5", "-2", "two", "99999999999"])
def test_loss_reason_that_is_not_an_integer_is_refused(loss: str) -> None:
    url = urls(*IDS).lurl.replace("${AUCTION_LOSS}", loss)
    with pytest.raises(InvalidRequest) as refused:
        read("loss", url)
    assert refused.value.field == "loss"


@pytest.mark.parametrize("name", ["auction", "imp", "bid", "campaign"])
def test_missing_identity_parameter_is_refused_naming_it(name: str) -> None:
    query = query_of(fill(urls(*IDS).nurl))
    del query[name]
    with pytest.raises(InvalidRequest) as refused:
        read_notice("win", query, KEY, ARRIVED)
    assert refused.value.field == name


def test_parameter_given_twice_is_refused() -> None:
    url = fill(urls(*IDS).nurl) + "&price=99"
    with pytest.raises(InvalidRequest) as refused:
        parse_query(urlsplit(url).query)
    assert refused.value.field == "price"


def test_id_that_is_not_unicode_text_is_refused_when_building() -> None:
    with pytest.raises(InvalidRequest) as refused:
        notice_urls(BASE, KEY, "a", "\ud800", "b", "c")
    assert refused.value.field == "imp_id"


def test_notice_key_is_derived_not_the_secret_itself() -> None:
    secret = b"s" * 32
    assert notice_key(secret) != secret
    assert len(notice_key(secret)) == 32
    with pytest.raises(ValueError):
        notice_key(b"short")


def test_a_win_fetched_twice_is_applied_once() -> None:
    spend = SpendControl(MemoryStore(), clock=lambda: ARRIVED)
    url = fill(urls(*IDS).nurl, price="2.0")
    assert spend.apply(read("win", url))[0] == "applied"
    assert spend.apply(read("win", url))[0] == "duplicate"
