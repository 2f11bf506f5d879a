"""Core requests built for a chosen campaign: its persona as the user, on a device and in a country it
targets, for an impression the test chooses. Shared by the decision tests and the door tests."""

from __future__ import annotations

import time
from typing import Any

import msgspec
import numpy as np

from personabid.decision.blend import Blender
from personabid.decision.match import match
from personabid.decision.pipeline import Decider
from personabid.decision.signals import context_keys, segment_keys, text_keys_of
from personabid.decision.snapshot import Snapshot
from personabid.index.campaigns import CampaignTable
from personabid.openrtb.request import Banner, BidRequest, Device, Geo, Imp, User
from personabid.profiles.taxonomy import standard

MTYPES = {"banner": 1, "video": 2, "audio": 3, "native": 4}


def creatives_of(table: CampaignTable, row: int) -> range:
    return range(int(table.creative_offsets[row]), int(table.creative_offsets[row + 1]))


def media_of(table: CampaignTable, row: int) -> set[int]:
    """The mtypes of campaign `row`'s creatives."""
    return {int(table.creative_mtype[c]) for c in creatives_of(table, row)}


def campaign_with(table: CampaignTable, mtype: str, start: int = 0) -> tuple[int, int]:
    """The first campaign row from `start` on with a creative of the medium, and that creative."""
    for row in range(start, len(table)):
        for creative in creatives_of(table, row):
            if int(table.creative_mtype[creative]) == MTYPES[mtype]:
                return row, creative
    raise LookupError(f"no campaign of the world has a {mtype} creative")


def banner_imp(table: CampaignTable, row: int) -> Imp:
    """A banner impression of the size of campaign `row`'s first banner creative."""
    for creative in creatives_of(table, row):
        if int(table.creative_mtype[creative]) == MTYPES["banner"]:
            w, h = int(table.creative_w[creative]), int(table.creative_h[creative])
            return Imp(id="1", banner=Banner(w=w, h=h), bidfloor=0.01)
    raise LookupError(f"campaign row {row} has no banner creative")


def persona_auction(snapshot: Snapshot, row: int, imp: Imp | None = None, **fields: Any) -> BidRequest:
    """A request whose user is campaign `row`'s own persona, on a device and in a country it targets."""
    bundle = snapshot.bundle
    table = bundle.campaigns
    vector = bundle.index.reconstruct(int(np.flatnonzero(bundle.persona_rows == row)[0]))
    devicetype = int(np.flatnonzero([(int(table.device_bits[row]) >> t) & 1 for t in range(9)])[-1])
    country = next(
        (
            str(c)
            for c in table.countries[1:]
            if table.country_bits[row, 0] >> np.uint64(table.code_of("countries", str(c))) & np.uint64(1)
        ),
        "",
    )
    request = BidRequest(
        id=f"r{row}",
        imp=(imp or banner_imp(table, row),),
        user=User(id=f"user-of-{row}", tag_vector=np.asarray(vector, dtype=np.float32)),
        device=Device(devicetype=devicetype, geo=Geo(country=country)),
        # No tmax: these tests are about what wins, and a slow machine must not turn them into time-outs.
        tmax=None,
    )
    return msgspec.structs.replace(request, **fields)


def nearest_campaign(decider: Decider, request: BidRequest) -> int:
    """The campaign row of the persona nearest to the user vector `decider` blends for `request` (the
    profile it carries, its segments and its context; no profile store, no privacy restriction): the one
    candidate of a decider with top_k=1. A persona auction's context may move it off the campaign's own."""
    bundle, settings = decider.snapshot.bundle, decider.settings
    taxonomy = standard()
    blender = Blender(
        bundle.vocab, taxonomy, (settings.profile_weight, settings.segments_weight, settings.context_weight)
    )
    text_keys = text_keys_of(taxonomy)
    user, _ = blender.blend(
        None,
        segment_keys(request.user, time.gmtime(decider.clock()).tm_year, text_keys),
        context_keys(request, text_keys),
        request.user.tags,
        request.user.tag_vector,
    )
    assert user is not None, "the request carries nothing the vocabulary knows"
    rows, _ = match(bundle.index, bundle.persona_rows, user, 1)
    return int(rows[0])
