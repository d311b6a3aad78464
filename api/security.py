"""API keys (stored as sha256 digests) and optional per-key token-bucket rate limits."""

from __future__ import annotations

import hashlib
import hmac
import logging
import time

from fastapi import HTTPException, status
from schemas.settings import ApiSettings

log = logging.getLogger("lakescore.api.security")


def key_digest(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


class TokenBucket:
    __slots__ = ("burst", "rate", "stamp", "tokens")

    def __init__(self, *, rate: float, burst: int) -> None:
        self.rate, self.burst = rate, float(burst)
        self.tokens, self.stamp = float(burst), time.monotonic()

    def take(self) -> float:
        """0.0 when a token was taken, else the seconds until the next one."""
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        return (1.0 - self.tokens) / self.rate


class KeyGuard:
    """Checks the key header and the key's bucket; never logs or returns the key itself."""

    def __init__(self, cfg: ApiSettings) -> None:
        self.digests = frozenset(d.lower() for d in cfg.api_key_sha256)
        self.default_rate = cfg.rate_limit_per_s
        self.per_key = {d.lower(): r for d, r in cfg.rate_limit_per_key.items()}
        self.burst = cfg.rate_limit_burst
        self.buckets: dict[str, TokenBucket] = {}
        # Presented keys already found valid -> their digest: a hit skips the sha256 and the
        # comparisons. Only valid keys are remembered (at most one entry per configured key).
        self._accepted: dict[str, str] = {}
        if not self.digests:
            log.warning("no API keys configured: the lookup API is open (local development only)")

    def check(self, presented: str | None) -> str | None:
        """The caller's key digest; raises 401/429. ``None`` when auth is off."""
        if not self.digests:
            return None
        digest = self._accepted.get(presented) if presented else None
        if digest is None:
            digest = key_digest(presented) if presented else ""
            if not any(hmac.compare_digest(digest, known) for known in self.digests):
                raise HTTPException(
                    status.HTTP_401_UNAUTHORIZED,
                    "missing or invalid API key",
                    headers={"WWW-Authenticate": "ApiKey"},
                )
            if presented and len(self._accepted) < 4 * len(self.digests):
                self._accepted[presented] = digest
        rate = self.per_key.get(digest, self.default_rate)
        if rate > 0:
            bucket = self.buckets.get(digest)
            if bucket is None:
                bucket = self.buckets[digest] = TokenBucket(rate=rate, burst=self.burst)
            wait = bucket.take()
            if wait > 0:
                raise HTTPException(
                    status.HTTP_429_TOO_MANY_REQUESTS,
                    "rate limit exceeded",
                    headers={"Retry-After": str(max(1, round(wait + 0.5)))},
                )
        return digest
