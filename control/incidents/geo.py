"""Country of an address (geoip2fast's bundled database) and an incident's geo origin."""

from __future__ import annotations

import functools
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from control.incidents.schemas import GeoShare, TopSource

UNKNOWN_COUNTRY = "unknown"


@functools.cache
def _geoip() -> Any:
    # Loaded on first use (about 0.1 s), not at import: most processes never need it.
    from geoip2fast import GeoIP2Fast

    return GeoIP2Fast(verbose=False)


def country_of(ip: str) -> str | None:
    """ISO 3166 alpha-2 code for a public address; None for private, reserved or unknown."""
    try:
        code = str(_geoip().lookup(ip).country_code)
    except Exception:  # geoip2fast raises on malformed input; an unknown country is the answer
        return None
    return code if len(code) == 2 and code.isalpha() else None


def with_countries(sources: Iterable[TopSource]) -> list[TopSource]:
    return [
        s if s.country else TopSource(ip=s.ip, pps=s.pps, bps=s.bps, country=country_of(s.ip))
        for s in sources
    ]


def geo_origin(sources: Iterable[TopSource]) -> list[GeoShare]:
    """Share of the top sources' packets per country, largest first (equal weights if no pps)."""
    sources = list(sources)
    weights: defaultdict[str, float] = defaultdict(float)
    use_pps = any(s.pps > 0 for s in sources)
    for s in sources:
        weights[s.country or UNKNOWN_COUNTRY] += s.pps if use_pps else 1.0
    total = sum(weights.values())
    if total <= 0:
        return []
    shares = [GeoShare(country=c, share=round(100.0 * w / total, 1)) for c, w in weights.items()]
    shares.sort(key=lambda g: (-g.share, g.country))
    return shares
