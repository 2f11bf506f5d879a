"""Creative fitting against a plain-Python reference, then one test per rule.

The reference judges each campaign's creatives as the catalog states them (types, sizes, mime strings,
attribute lists) against the impression as the request states it (size pairs, mime strings), so
`slot_needs`, the table's code tables and the kernel are checked together.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from personabid.decision.creatives import MediaNeeds, MediaSlot, SlotNeeds, fit, slot_needs
from personabid.index.campaigns import CampaignSpec, CampaignTable, Creative, build_table

HTML = '<img src="https://cdn.example/a.png">'
VAST = '<VAST version="3.0"><Ad><![CDATA[https://cdn.example/v.mp4]]></Ad></VAST>'
MIMES = ("video/mp4", "video/webm", "audio/mp4", "audio/mpeg")


def campaign(number: int, creatives: Sequence[Creative]) -> CampaignSpec:
    return CampaignSpec(
        id=f"cmp-{number}",
        advertiser="acme",
        adomain="acme.example",
        category="IAB1",
        base_bid=1.0,
        max_bid=2.0,
        personas=np.eye(4, dtype=np.float32)[:1],
        creatives=tuple(creatives),
    )


def table_of(*creative_lists: Sequence[Creative]) -> CampaignTable:
    table, _, _ = build_table([campaign(i, c) for i, c in enumerate(creative_lists)])
    return table


def banner(creative_id: str, w: int = 300, h: int = 250, **fields: object) -> Creative:
    return Creative(creative_id, w, h, **{"markup": HTML, **fields})  # type: ignore[arg-type]


def video(creative_id: str, kind: str = "video", **fields: object) -> Creative:
    given = {"mime": f"{kind}/mp4", "duration": 30, "protocol": 3, "markup": VAST, **fields}
    return Creative(creative_id, type=kind, **given)  # type: ignore[arg-type]


def audio(creative_id: str, **fields: object) -> Creative:
    return video(creative_id, "audio", **fields)


def native(creative_id: str, **fields: object) -> Creative:
    return Creative(creative_id, type="native", markup='{"assets":[{}]}', **fields)  # type: ignore[arg-type]


def fitted_ids(table: CampaignTable, needs: SlotNeeds) -> list[str | None]:
    """The creative id fit picks for each campaign of the table, None where none fits."""
    found = fit(table, np.arange(len(table), dtype=np.int32), needs)
    return [None if i < 0 else str(table.creative_id[i]) for i in found]


# -- the reference -----------------------------------------------------------------------------------------


def plays(creative: Creative, slot: MediaSlot | None) -> bool:
    if slot is None:
        return False
    if slot.mimes and creative.mime not in {m.lower() for m in slot.mimes}:
        return False
    if slot.rqddurs:
        if creative.duration not in slot.rqddurs:
            return False
    elif creative.duration < slot.minduration or (slot.maxduration and creative.duration > slot.maxduration):
        return False
    return not slot.protocols or creative.protocol in slot.protocols


def reference_fits(
    creative: Creative,
    banner_sizes: list[tuple[int, int]] | None,
    video_slot: MediaSlot | None,
    audio_slot: MediaSlot | None,
    native_offered: bool,
    battr: list[int],
    secure: bool,
) -> bool:
    if set(creative.attr) & set(battr) or (secure and not creative.secure):
        return False
    if creative.type == "banner":
        sizes = [(w, h) for w, h in banner_sizes or () if w > 0 and h > 0]
        return banner_sizes is not None and (not sizes or (creative.w, creative.h) in sizes)
    if creative.type == "video":
        return plays(creative, video_slot)
    if creative.type == "audio":
        return plays(creative, audio_slot)
    return native_offered


SIZES = ((300, 250), (300, 600), (728, 90), (320, 50))
DURATIONS = (5, 15, 30, 60)
PROTOCOLS = (2, 3, 7)


@st.composite
def creatives(draw: st.DrawFn, number: int) -> Creative:
    kind = draw(st.sampled_from(("banner", "video", "audio", "native")))
    scheme = draw(st.sampled_from(("https://", "http://", "//")))
    attr = tuple(sorted(draw(st.sets(st.integers(1, 17), max_size=2))))
    common = {"attr": attr, "iurl": f"{scheme}cdn.example/{number}.png"}
    if kind == "banner":
        w, h = draw(st.sampled_from(SIZES))
        return Creative(f"cr-{number}", w, h, markup=HTML, **common)  # type: ignore[arg-type]
    if kind == "native":
        return Creative(f"cr-{number}", type="native", markup="{}", **common)  # type: ignore[arg-type]
    return Creative(
        f"cr-{number}",
        type=kind,
        mime=draw(st.sampled_from(MIMES)),
        duration=draw(st.sampled_from(DURATIONS)),
        protocol=draw(st.sampled_from(PROTOCOLS)),
        markup=VAST,
        **common,  # type: ignore[arg-type]
    )


@st.composite
def campaign_creatives(draw: st.DrawFn) -> list[list[Creative]]:
    counts = draw(st.lists(st.integers(0, 4), min_size=1, max_size=6))
    numbers = iter(range(100))
    return [[draw(creatives(next(numbers))) for _ in range(count)] for count in counts]


media_slots = st.builds(
    MediaSlot,
    mimes=st.lists(st.sampled_from((*MIMES, "VIDEO/MP4", "video/ogg")), max_size=3).map(tuple),
    minduration=st.sampled_from((0, 10, 30)),
    maxduration=st.sampled_from((0, 15, 30, 45)),
    rqddurs=st.lists(st.sampled_from(DURATIONS), max_size=2).map(tuple),
    protocols=st.lists(st.sampled_from((*PROTOCOLS, 8)), max_size=2).map(tuple),
)


@settings(max_examples=300, deadline=None)
@given(
    lists=campaign_creatives(),
    banner_sizes=st.none() | st.lists(st.sampled_from((*SIZES, (160, 600), (728, 250), (0, 0))), max_size=3),
    video_slot=st.none() | media_slots,
    audio_slot=st.none() | media_slots,
    native_offered=st.booleans(),
    battr=st.lists(st.integers(0, 40), max_size=3),
    secure=st.booleans(),
    picks=st.lists(st.integers(0, 5), max_size=8),
)
def test_fit_picks_what_the_reference_picks(
    lists: list[list[Creative]],
    banner_sizes: list[tuple[int, int]] | None,
    video_slot: MediaSlot | None,
    audio_slot: MediaSlot | None,
    native_offered: bool,
    battr: list[int],
    secure: bool,
    picks: list[int],
) -> None:
    table = table_of(*lists)
    rows = np.array([p % len(lists) for p in picks], dtype=np.int32)
    needs = slot_needs(
        table,
        banner_sizes=banner_sizes,
        video=video_slot,
        audio=audio_slot,
        native=native_offered,
        battr=battr,
        secure=secure,
    )
    expected = []
    for row in rows.tolist():
        first = int(table.creative_offsets[row])
        fits = [
            first + k
            for k, c in enumerate(lists[row])
            if reference_fits(c, banner_sizes, video_slot, audio_slot, native_offered, battr, secure)
        ]
        expected.append(fits[0] if fits else -1)
    found = fit(table, rows, needs)
    assert found.dtype == np.int64 and found.tolist() == expected


# -- one rule at a time ------------------------------------------------------------------------------------


def test_banner_fits_its_own_size_or_one_of_the_formats() -> None:
    table = table_of([banner("a", 300, 250), banner("b", 728, 90)])
    assert fitted_ids(table, slot_needs(table, banner_sizes=[(728, 90)])) == ["b"]
    assert fitted_ids(table, slot_needs(table, banner_sizes=[(320, 50), (300, 250)])) == ["a"]
    assert fitted_ids(table, slot_needs(table, banner_sizes=[(320, 50)])) == [None]


def test_banner_without_sizes_takes_any_size() -> None:
    table = table_of([banner("a", 728, 90)])
    assert fitted_ids(table, slot_needs(table, banner_sizes=[])) == ["a"]
    assert fitted_ids(table, slot_needs(table, banner_sizes=[(0, 0)])) == ["a"]


def test_a_medium_the_impression_does_not_offer_never_fits() -> None:
    table = table_of([banner("b")], [video("v")], [audio("a")], [native("n")])
    assert fitted_ids(table, slot_needs(table, banner_sizes=[])) == ["b", None, None, None]
    assert fitted_ids(table, slot_needs(table, video=MediaSlot())) == [None, "v", None, None]
    assert fitted_ids(table, slot_needs(table, audio=MediaSlot())) == [None, None, "a", None]
    assert fitted_ids(table, slot_needs(table)) == [None, None, None, None]


def test_the_first_fitting_creative_in_catalog_order_wins() -> None:
    table = table_of([native("n"), banner("b"), video("v")])
    needs = slot_needs(table, banner_sizes=[], video=MediaSlot(), native=True)
    assert fitted_ids(table, needs) == ["n"]


def test_video_mime_must_be_one_the_player_plays() -> None:
    table = table_of([video("mp4")], [video("webm", mime="video/webm")])
    assert fitted_ids(table, slot_needs(table, video=MediaSlot(mimes=("Video/WebM",)))) == [None, "webm"]


def test_unknown_mimes_fit_nothing_and_no_mimes_fit_any() -> None:
    table = table_of([video("v")])
    assert fitted_ids(table, slot_needs(table, video=MediaSlot(mimes=("video/ogg",)))) == [None]
    assert fitted_ids(table, slot_needs(table, video=MediaSlot(mimes=()))) == ["v"]


@pytest.mark.parametrize(
    ("minduration", "maxduration", "fits"),
    [(0, 0, True), (30, 0, True), (31, 0, False), (0, 30, True), (0, 29, False), (15, 45, True)],
)
def test_video_duration_within_the_bounds(minduration: int, maxduration: int, fits: bool) -> None:
    table = table_of([video("v", duration=30)])
    needs = slot_needs(table, video=MediaSlot(minduration=minduration, maxduration=maxduration))
    assert fitted_ids(table, needs) == ["v" if fits else None]


def test_required_durations_override_the_bounds() -> None:
    table = table_of([video("v15", duration=15)], [video("v20", duration=20)])
    needs = slot_needs(table, video=MediaSlot(minduration=16, maxduration=30, rqddurs=(15, 30)))
    assert fitted_ids(table, needs) == ["v15", None]


def test_protocol_must_be_accepted_when_the_slot_lists_any() -> None:
    table = table_of([video("vast3", protocol=3)], [video("vast4", protocol=7)])
    assert fitted_ids(table, slot_needs(table, video=MediaSlot(protocols=(7, 8)))) == [None, "vast4"]
    assert fitted_ids(table, slot_needs(table, video=MediaSlot(protocols=()))) == ["vast3", "vast4"]


def test_audio_has_its_own_constraints() -> None:
    table = table_of([audio("a", duration=15)])
    assert fitted_ids(table, slot_needs(table, audio=MediaSlot(maxduration=10))) == [None]
    assert fitted_ids(table, slot_needs(table, audio=MediaSlot(mimes=("audio/mp4",)))) == ["a"]


def test_native_fits_where_native_is_offered() -> None:
    table = table_of([banner("b", 728, 90), native("n")])
    assert fitted_ids(table, slot_needs(table, banner_sizes=[(300, 250)], native=True)) == ["n"]


def test_a_blocked_attribute_excludes_the_creative() -> None:
    table = table_of([banner("autoplay", attr=(6,)), banner("plain")])
    assert fitted_ids(table, slot_needs(table, banner_sizes=[], battr=[6])) == ["plain"]
    assert fitted_ids(table, slot_needs(table, banner_sizes=[], battr=[1, 7])) == ["autoplay"]


def test_secure_impression_takes_only_secure_creatives() -> None:
    table = table_of([banner("plain", markup='<img src="http://cdn.example/a.png">'), banner("tls")])
    assert fitted_ids(table, slot_needs(table, banner_sizes=[], secure=True)) == ["tls"]
    assert fitted_ids(table, slot_needs(table, banner_sizes=[], secure=False)) == ["plain"]


def test_a_campaign_without_creatives_fits_nothing() -> None:
    table = table_of([], [banner("b")])
    assert fitted_ids(table, slot_needs(table, banner_sizes=[])) == [None, "b"]


def test_no_candidates_give_an_empty_result() -> None:
    table = table_of([banner("b")])
    found = fit(table, np.zeros(0, dtype=np.int32), slot_needs(table, banner_sizes=[]))
    assert found.dtype == np.int64 and found.shape == (0,)


# -- the wrapper's checks ----------------------------------------------------------------------------------


def test_fit_refuses_rows_of_the_wrong_dtype() -> None:
    table = table_of([banner("b")])
    with pytest.raises(ValueError, match=r"rows: expected a C-contiguous int32 array"):
        fit(table, np.zeros(1, dtype=np.int64), slot_needs(table, banner_sizes=[]))


def test_fit_refuses_a_row_outside_the_table() -> None:
    table = table_of([banner("b")])
    with pytest.raises(IndexError, match="rows: a campaign row outside the table"):
        fit(table, np.array([1], dtype=np.int32), slot_needs(table, banner_sizes=[]))


def test_fit_refuses_banner_sizes_that_are_not_pairs() -> None:
    table = table_of([banner("b")])
    needs = SlotNeeds(banner=True, banner_sizes=np.array([300, 250], dtype=np.int32))
    with pytest.raises(ValueError, match=r"banner_sizes: expected a C-contiguous int32 array of shape"):
        fit(table, np.zeros(1, dtype=np.int32), needs)


def test_fit_refuses_mime_codes_of_the_wrong_dtype() -> None:
    table = table_of([video("v")])
    needs = SlotNeeds(video=MediaNeeds(mimes=np.array([1], dtype=np.int64)))
    with pytest.raises(ValueError, match=r"video.mimes: expected a C-contiguous int32 array"):
        fit(table, np.zeros(1, dtype=np.int32), needs)


def test_fit_refuses_a_blocked_attribute_mask_wider_than_uint32() -> None:
    table = table_of([banner("b")])
    with pytest.raises(ValueError, match="battr: expected a uint32 bitmask"):
        fit(table, np.zeros(1, dtype=np.int32), SlotNeeds(banner=True, battr=1 << 32))
