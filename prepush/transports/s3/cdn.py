"""How a CloudFront distribution treats json/main.json, for 'prepush check'.

The public must see each corte when it is flipped. CloudFront honours the origin's
``Cache-Control: no-cache, no-store`` only when the behaviour's minimum TTL is 0; with a
minimum TTL above 0 it keeps json/main.json that long whatever the origin says. The behaviour
that serves json/main.json is the first whose path pattern matches it, else the default one;
its TTLs come from its cache policy or, in older distributions, from the behaviour itself.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

MAIN_JSON = "json/main.json"
# CloudFront's defaults for a legacy behaviour that does not say.
LEGACY_DEFAULT_TTL = 86400
LEGACY_MAX_TTL = 31536000

T = TypeVar("T")
Caller = Callable[[str, Callable[[], Awaitable[Any]]], Awaitable[Any]]


def behaviour_for(config: dict[str, Any], path: str) -> tuple[dict[str, Any], str]:
    """The cache behaviour CloudFront uses for ``path``, and how to name it."""
    for item in (config.get("CacheBehaviors") or {}).get("Items") or []:
        pattern = str(item.get("PathPattern", "")).lstrip("/")
        if fnmatch.fnmatchcase(path, pattern):
            return item, f"el comportamiento {item.get('PathPattern')!r}"
    return config.get("DefaultCacheBehavior") or {}, "el comportamiento por omisión"


def legacy_ttls(behaviour: dict[str, Any]) -> tuple[int, int, int]:
    return (
        int(behaviour.get("MinTTL", 0) or 0),
        int(behaviour.get("DefaultTTL", LEGACY_DEFAULT_TTL) or 0),
        int(behaviour.get("MaxTTL", LEGACY_MAX_TTL) or 0),
    )


def judge(ttls: tuple[int, int, int], named: str, source: str) -> tuple[str, str]:
    """(status, detail) for the TTLs that apply to json/main.json."""
    min_ttl, default_ttl, max_ttl = ttls
    where = f"{named} ({source}: MinTTL {min_ttl}, DefaultTTL {default_ttl}, MaxTTL {max_ttl})"
    if max_ttl == 0:
        return "pass", f"CloudFront no guarda {MAIN_JSON} en caché: {where}"
    if min_ttl > 0:
        return (
            "warn",
            f"CloudFront guarda {MAIN_JSON} al menos {min_ttl} s aunque el bucket diga"
            f" 'no-cache, no-store' ({where}): el público puede ver un corte anterior ese"
            " tiempo. Pida al difusor, para json/main.json e index.html, la política de caché"
            " administrada CachingDisabled o MinTTL 0 (docs/difusores.md).",
        )
    return (
        "pass",
        f"CloudFront respeta el Cache-Control del bucket para {MAIN_JSON}, que dice no"
        f" guardarlo: {where}",
    )


async def main_json_behaviour(
    cloudfront: Any, distribution: str, call: Caller
) -> list[tuple[str, str]]:
    answer = await call(
        "leer la configuración de la distribución de CloudFront",
        lambda: cloudfront.get_distribution_config(Id=distribution),
    )
    config: dict[str, Any] = answer["DistributionConfig"]
    behaviour, named = behaviour_for(config, MAIN_JSON)
    policy_id = str(behaviour.get("CachePolicyId") or "")
    if not policy_id:
        return [judge(legacy_ttls(behaviour), named, "configuración heredada")]
    policy = await call(
        "leer la política de caché de CloudFront",
        lambda: cloudfront.get_cache_policy(Id=policy_id),
    )
    settings = policy["CachePolicy"]["CachePolicyConfig"]
    ttls = (
        int(settings.get("MinTTL", 0)),
        int(settings.get("DefaultTTL", 0)),
        int(settings.get("MaxTTL", 0)),
    )
    return [judge(ttls, named, f"política de caché {settings.get('Name', policy_id)}")]
