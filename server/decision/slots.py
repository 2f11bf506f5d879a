"""What an impression takes, read off its OpenRTB objects for the creative fitting kernel (creatives.py).

A banner takes its own w x h and every size of its format[] (a flexible format, given as a ratio, takes
any size); video and audio their MIME types, durations and protocols; blocked creative attributes of every
medium apply to every creative; `secure = 1` asks for https creatives.
"""

from __future__ import annotations

from personabid.decision.creatives import MediaSlot, SlotNeeds, slot_needs
from personabid.index.campaigns import CampaignTable
from personabid.openrtb.request import Audio, Imp, Video


def needs_of(table: CampaignTable, imp: Imp) -> SlotNeeds:
    banner = imp.banner
    sizes: list[tuple[int, int]] | None = None
    if banner is not None:
        sizes = [(banner.w, banner.h), *((f.w, f.h) for f in banner.format)]
        if any(f.wratio for f in banner.format):
            sizes = []  # a flexible format takes any size
    battr = [
        *(banner.battr if banner is not None else ()),
        *(imp.video.battr if imp.video is not None else ()),
        *(imp.audio.battr if imp.audio is not None else ()),
        *(imp.native.battr if imp.native is not None else ()),
    ]
    return slot_needs(
        table,
        banner_sizes=sizes,
        video=_media(imp.video),
        audio=_media(imp.audio),
        native=imp.native is not None,
        battr=battr,
        secure=imp.secure == 1,
    )


def _media(media: Video | Audio | None) -> MediaSlot | None:
    if media is None:
        return None
    return MediaSlot(
        mimes=media.mimes,
        minduration=media.minduration,
        maxduration=media.maxduration or 0,
        rqddurs=media.rqddurs,
        protocols=media.protocols,
    )


def slot_size(imp: Imp) -> tuple[int, int]:
    """The slot's size for the CTR model's features: the banner's, its first format's, or the player's."""
    if imp.banner is not None:
        if imp.banner.w and imp.banner.h:
            return imp.banner.w, imp.banner.h
        if imp.banner.format:
            return imp.banner.format[0].w, imp.banner.format[0].h
    if imp.video is not None:
        return imp.video.w, imp.video.h
    return 0, 0
