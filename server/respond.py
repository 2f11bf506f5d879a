"""The answer to an auction: the OpenRTB BidResponse of a Decision, with ads an exchange can serve.

Each bid carries its creative's markup (adm), what the exchange checks before it serves it (adomain,
bundle, cat, attr, w and h, mtype, language), the deal it bids through, its signed win, billing and
loss notice URLs (notices.py), and its signed click URL (ext.clickurl; an image banner's link goes through
it). Both doors send what this builds: the HTTP door as JSON, gRPC through
wire.to_response.
"""

from __future__ import annotations

import html
import secrets
from dataclasses import dataclass

from personabid.decision.pipeline import Bid as Decided
from personabid.decision.pipeline import Decision
from personabid.index.campaigns import IURL, LANDING, MARKUP, CampaignTable
from personabid.notices import notice_urls
from personabid.openrtb.response import Bid, BidExt, BidResponse, ResponseExt, SeatBid

BANNER, VIDEO, AUDIO, NATIVE = 1, 2, 3, 4  # OpenRTB 2.6 mtype


@dataclass(frozen=True)
class Responder:
    seat: str
    notice_base_url: str  # where exchanges reach the HTTP door, e.g. "http://127.0.0.1:8080"
    notice_key: bytes

    def respond(self, decision: Decision) -> BidResponse:
        if not decision.bids:
            return BidResponse(
                id=decision.request_id,
                cur=decision.currency,
                nbr=int(decision.nbr or 0),
                ext=ResponseExt(
                    detail=decision.detail, sources=decision.sources, restriction=decision.restriction
                ),
            )
        table = decision.table
        assert table is not None  # a decision with bids knows its campaigns
        return BidResponse(
            id=decision.request_id,
            bidid=secrets.token_hex(8),
            cur=decision.currency,
            ext=ResponseExt(sources=decision.sources, restriction=decision.restriction),
            seatbid=(
                SeatBid(seat=self.seat, bid=tuple(self._bid(decision, b, table) for b in decision.bids)),
            ),
        )

    def _bid(self, decision: Decision, bid: Decided, table: CampaignTable) -> Bid:
        row, creative = bid.campaign_row, bid.creative
        urls = notice_urls(
            self.notice_base_url, self.notice_key, decision.request_id, bid.imp_id, bid.id, bid.campaign_id
        )
        mtype = int(table.creative_mtype[creative])
        w, h = int(table.creative_w[creative]), int(table.creative_h[creative])
        attr_bits = int(table.creative_attr_bits[creative])
        return Bid(
            id=bid.id,
            impid=bid.imp_id,
            price=bid.price,  # unrounded: a rounded price could fall under a floor
            adid=bid.creative_id,
            nurl=urls.nurl,
            burl=urls.burl,
            lurl=urls.lurl,
            adm=markup(table, creative, mtype, w, h, urls.click),
            adomain=(bid.adomain,),
            bundle=str(table.bundle[row]),
            iurl=table.creative_text(creative, IURL),
            cid=bid.campaign_id,
            crid=bid.creative_id,
            cat=(str(table.category[row]),),
            attr=tuple(a for a in range(1, 32) if attr_bits >> a & 1) if attr_bits else (),
            w=w,
            h=h,
            dealid=bid.deal_id,
            mtype=mtype,
            exp=bid.exp,
            language=str(table.languages[table.language_code[row]]),
            ext=BidExt(pctr=bid.pctr, match_score=bid.match_score, clickurl=urls.click),
        )


def markup(table: CampaignTable, creative: int, mtype: int, w: int, h: int, click_url: str = "") -> str:
    """The ad markup (adm): HTML for a banner (an image becomes a <img> linked through `click_url`, else
    to the creative's landing page), the VAST document for video and audio, the Native Ad Response for
    native."""
    stored = table.creative_text(creative, MARKUP)
    if mtype == NATIVE:
        return '{"native":' + stored + "}"
    if mtype == BANNER and table.creative_image[creative]:
        landing = html.escape(click_url or table.creative_text(creative, LANDING), quote=True)
        image = html.escape(stored, quote=True)
        return (
            f'<a href="{landing}" target="_blank" rel="noopener">'
            f'<img src="{image}" width="{w}" height="{h}" alt="" style="border:0"></a>'
        )
    return stored
