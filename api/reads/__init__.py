"""The read path: how lookups read the prediction store (``api.prediction_store``).

``Reader`` (``reader``) composes, in the order a lookup meets them:

- ``cache.ReadCache``: documents, and rendered single-lookup answers, until the next sync;
- ``known_ids.KnownIdsFilter``: ids surely not in the last sync are answered without a read;
- ``coalescing.ReadCoalescer``: single lookups arriving while a read is out share one ``$in``;
- ``budget.StoreBudget``: every store call is bounded (``api.store_timeout_ms``); a failure
  marks the store down for ``api.store_retry_after_s``, so that later requests answer
  degraded at once instead of each waiting for the timeout;
- ``watermark.WatermarkPoller``: reads the sync's watermark every ``api.watermark_poll_s``
  (also the store's health probe: it brings the store back) and, when it moved, has the
  reader clear the cache and rebuild the filter.
"""

from api.reads.budget import StoreUnavailableError
from api.reads.cache import Rendered
from api.reads.reader import Reader

__all__ = ["Reader", "Rendered", "StoreUnavailableError"]
