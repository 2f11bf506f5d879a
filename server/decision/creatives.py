"""Creative fitting: for each candidate campaign, the first of its creatives that the impression can serve.

An impression offers one or more media (banner, video, audio, native), each with its constraints, and
blocks some creative attributes and sometimes plain-http creatives. A creative fits when its media type is
offered and that medium's constraints hold:

    banner  its size is one the slot takes (the banner's own w x h or one of its format[]), or the slot
            takes any size
    video   its mime is one the player plays; its duration is one of rqddurs when the slot lists them,
    audio   else within [minduration, maxduration] (0: no bound); its protocol is accepted (none listed:
            any)
    native  native is offered

and it carries none of the blocked attributes and, when the impression requires it, is secure. The loop
is a Numba kernel over the table's creative columns; `slot_needs` turns what the request says (sizes,
mime strings...) into the codes the kernel compares.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import numba as nb
import numpy as np

from personabid.arrays import require
from personabid.index.campaigns import AUDIO, BANNER, NATIVE, VIDEO, CampaignTable

MAX_ATTRIBUTE = 31  # attributes are bits of a uint32; AdCOM defines 1 to 17


def _no_codes() -> np.ndarray:
    return np.zeros(0, dtype=np.int32)


def _no_sizes() -> np.ndarray:
    return np.zeros((0, 2), dtype=np.int32)


@dataclass(frozen=True, eq=False)
class MediaNeeds:
    """What a video or audio slot plays, in the campaign table's codes.

    mimes        int32 (k,) codes of table.mimes; a creative's mime must be one of them (slot_needs lists
                 every code when the request names no mime)
    minduration  seconds; 0: no lower bound
    maxduration  seconds; 0: no upper bound
    rqddurs      int32 (r,) seconds; when not empty, the duration must be one of them and the bounds do
                 not apply
    protocols    int32 (p,) AdCOM protocols accepted; empty: any
    """

    mimes: np.ndarray = field(default_factory=_no_codes)
    minduration: int = 0
    maxduration: int = 0
    rqddurs: np.ndarray = field(default_factory=_no_codes)
    protocols: np.ndarray = field(default_factory=_no_codes)


@dataclass(frozen=True, eq=False)
class SlotNeeds:
    """What one impression asks of a creative.

    banner        whether a banner is offered
    banner_sizes  int32 (s, 2) the (w, h) the banner takes; empty with a banner offered: any size
    video, audio  None when not offered
    native        whether a native ad is offered
    battr         uint32 bitmask, bit a set when AdCOM creative attribute a is blocked: the union of the
                  battr of every medium of the impression, applied to creatives of every medium
    secure        the impression requires secure (https) creatives
    """

    banner: bool = False
    banner_sizes: np.ndarray = field(default_factory=_no_sizes)
    video: MediaNeeds | None = None
    audio: MediaNeeds | None = None
    native: bool = False
    battr: int = 0
    secure: bool = False


@dataclass(frozen=True)
class MediaSlot:
    """A video or audio slot as the request states it (OpenRTB Video or Audio object), for `slot_needs`."""

    mimes: tuple[str, ...] = ()  # empty: the request names none, any mime plays
    minduration: int = 0
    maxduration: int = 0  # 0: no limit
    rqddurs: tuple[int, ...] = ()
    protocols: tuple[int, ...] = ()  # empty: any protocol


def slot_needs(
    table: CampaignTable,
    *,
    banner_sizes: Iterable[tuple[int, int]] | None = None,
    video: MediaSlot | None = None,
    audio: MediaSlot | None = None,
    native: bool = False,
    battr: Iterable[int] = (),
    secure: bool = False,
) -> SlotNeeds:
    """The SlotNeeds of an impression, from plain values.

    `banner_sizes`: None when the impression has no banner; otherwise the (w, h) it takes (banner.w/h and
    every banner.format[] entry), where pairs with a zero side are left out and no pair at all means any
    size. `video`, `audio`: None when not offered. Mimes are looked up in the table's `mimes` (case
    insensitive); a mime no creative has is dropped, so a slot whose mimes are all unknown fits no
    creative of that medium. `battr`: every blocked attribute of the impression (banner, video, audio
    and native battr together); values outside 1 to 31 are ignored. `secure`: imp.secure == 1.
    """
    sizes = _no_sizes()
    if banner_sizes is not None:
        pairs = [(int(w), int(h)) for w, h in banner_sizes if int(w) > 0 and int(h) > 0]
        sizes = np.array(pairs, dtype=np.int32).reshape(-1, 2)
    mask = 0
    for a in battr:
        if 1 <= int(a) <= MAX_ATTRIBUTE:
            mask |= 1 << int(a)
    return SlotNeeds(
        banner=banner_sizes is not None,
        banner_sizes=sizes,
        video=None if video is None else _media_needs(table, video),
        audio=None if audio is None else _media_needs(table, audio),
        native=native,
        battr=mask,
        secure=secure,
    )


def _media_needs(table: CampaignTable, slot: MediaSlot) -> MediaNeeds:
    if slot.mimes:
        codes = {table.code_of("mimes", m.strip().lower()) for m in slot.mimes} - {0}
        mimes = np.array(sorted(codes), dtype=np.int32)
    else:
        mimes = np.arange(len(table.mimes), dtype=np.int32)
    return MediaNeeds(
        mimes=mimes,
        minduration=int(slot.minduration),
        maxduration=int(slot.maxduration),
        rqddurs=np.array(slot.rqddurs, dtype=np.int32).reshape(-1),
        protocols=np.array(slot.protocols, dtype=np.int32).reshape(-1),
    )


@nb.njit(cache=True)
def _member(value: int, values: np.ndarray) -> bool:
    for v in values:  # noqa: SIM110 (Numba compiles no generator expression here)
        if v == value:
            return True
    return False


@nb.njit(cache=True)
def _listed(w: int, h: int, sizes: np.ndarray) -> bool:
    for s in range(sizes.shape[0]):  # noqa: SIM110 (Numba compiles no generator expression here)
        if sizes[s, 0] == w and sizes[s, 1] == h:
            return True
    return False


@nb.njit(cache=True)
def _plays(
    mime: int,
    duration: int,
    protocol: int,
    mimes: np.ndarray,
    minduration: int,
    maxduration: int,
    rqddurs: np.ndarray,
    protocols: np.ndarray,
) -> bool:
    if not _member(mime, mimes):
        return False
    if rqddurs.shape[0] > 0:
        if not _member(duration, rqddurs):
            return False
    elif duration < minduration or (maxduration > 0 and duration > maxduration):
        return False
    return protocols.shape[0] == 0 or _member(protocol, protocols)


@nb.njit(cache=True)
def _fit(
    offsets: np.ndarray,
    rows: np.ndarray,
    mtype: np.ndarray,
    w: np.ndarray,
    h: np.ndarray,
    mime: np.ndarray,
    duration: np.ndarray,
    protocol: np.ndarray,
    secure: np.ndarray,
    attr_bits: np.ndarray,
    banner: bool,
    sizes: np.ndarray,
    video: bool,
    video_mimes: np.ndarray,
    video_min: int,
    video_max: int,
    video_rqddurs: np.ndarray,
    video_protocols: np.ndarray,
    audio: bool,
    audio_mimes: np.ndarray,
    audio_min: int,
    audio_max: int,
    audio_rqddurs: np.ndarray,
    audio_protocols: np.ndarray,
    native: bool,
    battr: np.uint32,
    need_secure: bool,
) -> np.ndarray:
    out = np.full(rows.shape[0], -1, dtype=np.int64)
    for i in range(rows.shape[0]):
        row = rows[i]
        if row < 0 or row >= offsets.shape[0] - 1:
            raise IndexError("rows: a campaign row outside the table")
        for c in range(offsets[row], offsets[row + 1]):
            if (attr_bits[c] & battr) != 0 or (need_secure and not secure[c]):
                continue
            kind = mtype[c]
            if kind == BANNER:
                if not banner or (sizes.shape[0] > 0 and not _listed(w[c], h[c], sizes)):
                    continue
            elif kind == VIDEO:
                if not video or not _plays(
                    mime[c],
                    duration[c],
                    protocol[c],
                    video_mimes,
                    video_min,
                    video_max,
                    video_rqddurs,
                    video_protocols,
                ):
                    continue
            elif kind == AUDIO:
                if not audio or not _plays(
                    mime[c],
                    duration[c],
                    protocol[c],
                    audio_mimes,
                    audio_min,
                    audio_max,
                    audio_rqddurs,
                    audio_protocols,
                ):
                    continue
            elif kind != NATIVE or not native:
                continue
            out[i] = c
            break
    return out


# What the kernel gets for a medium the impression does not offer.
_ABSENT = (_no_codes(), 0, 0, _no_codes(), _no_codes())


def _media_arrays(name: str, media: MediaNeeds | None) -> tuple[np.ndarray, int, int, np.ndarray, np.ndarray]:
    if media is None:
        return _ABSENT
    return (
        require(f"{name}.mimes", media.mimes, np.int32, 1),
        int(media.minduration),
        int(media.maxduration),
        require(f"{name}.rqddurs", media.rqddurs, np.int32, 1),
        require(f"{name}.protocols", media.protocols, np.int32, 1),
    )


def fit(table: CampaignTable, rows: np.ndarray, needs: SlotNeeds) -> np.ndarray:
    """int64 (m,): for each candidate campaign row (int32 (m,)), the index into the creative columns of
    its first creative, in catalog order, that fits the impression; -1 where none fits. A row outside
    the table raises IndexError."""
    require("rows", rows, np.int32, 1)
    sizes = require("banner_sizes", needs.banner_sizes, np.int32, 2, width=2)
    if not 0 <= needs.battr < 2**32:
        raise ValueError(f"battr: expected a uint32 bitmask, got {needs.battr}")
    return _fit(
        table.creative_offsets,
        rows,
        table.creative_mtype,
        table.creative_w,
        table.creative_h,
        table.creative_mime,
        table.creative_duration,
        table.creative_protocol,
        table.creative_secure,
        table.creative_attr_bits,
        bool(needs.banner),
        sizes,
        needs.video is not None,
        *_media_arrays("video", needs.video),
        needs.audio is not None,
        *_media_arrays("audio", needs.audio),
        bool(needs.native),
        np.uint32(needs.battr),
        bool(needs.secure),
    )
