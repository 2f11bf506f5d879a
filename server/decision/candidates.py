"""The hashed CTR features of (impression, candidate campaign) pairs, which the model scores.

The demo world's log generator calls the same function, so the model is trained on exactly the
features the server computes.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from personabid.ctr.features import FeatureSpec, match_tokens
from personabid.index.campaigns import CampaignTable


def candidate_features(
    spec: FeatureSpec,
    table: CampaignTable,
    rows: np.ndarray,
    scores: np.ndarray,
    context: Mapping[str, int | np.ndarray],
    slot: int,
) -> np.ndarray:
    """int64 (len(rows), spec.width) feature indices.

    `rows` (int32) and `scores` (float32) are the candidates and their similarity; `context` comes from
    `request_tokens` (and `time_tokens`, and the user's tags as an array when the spec reads them), `slot`
    from `slot_token`.
    """
    sources = {
        **context,
        "campaign": table.campaign_token[rows],
        "advertiser": table.advertiser_token[rows],
        "category": table.category_token[rows],
        "slot": slot,
        "match": match_tokens(scores, spec.match_buckets),
    }
    return spec.indices(spec.token_matrix(sources, len(rows)))
