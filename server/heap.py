"""Keeping the loaded artifacts out of the garbage collector's way.

CPython's cyclic collector walks every container object it tracks on each full collection. A loaded server
holds hundreds of thousands of them (the taxonomy, the vocabulary, code tables, profile and experiment
state) that live until the next reload; under load a full collection then stops the event loop for tens of
milliseconds (measured here: one full collection in the middle of a load run took 0.2 s of the loop's
time), which every call in flight waits out: the latency's tail. Freezing moves what exists into a
permanent generation the collector skips; requests' short-lived objects are collected as before.
"""

from __future__ import annotations

import gc


def settle(collect: bool) -> None:
    """Freeze every object alive now. With `collect`, first collect what is already garbage: a full
    collection over everything, frozen before or not, once, before the server takes calls. A reload swaps
    without it, so as not to stall calls in flight; what the old version leaves is freed by reference
    counting (arrays and FAISS indexes hold no cycles), and a cycle frozen with it stays: a few objects
    per reload."""
    if collect:
        # The first load's swap froze already (without collecting): a collection skips frozen objects.
        gc.unfreeze()
        gc.collect()
    gc.freeze()
