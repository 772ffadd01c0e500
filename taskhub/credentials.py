"""Which header values are credentials, and how they may be shown. Pure.

A credential header (``Authorization``, ``Cookie``, API-key headers, and the names in
``TASKHUB_SECRET_HEADERS``) is stored sealed, never in the plain ``headers`` column, and
is only ever shown masked: the API, the CLI and logs see ``Bearer ****wxyz`` at most.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Final

__all__ = ["BUILTIN_SECRET_HEADERS", "MASK", "is_secret", "mask", "masked", "split"]

BUILTIN_SECRET_HEADERS: Final = frozenset(
    {"authorization", "cookie", "x-api-key", "api-key", "x-auth-token"}
)
MASK: Final = "****"
#: Values shorter than this are masked entirely; longer ones keep their last 4 characters.
MIN_CHARS_FOR_TAIL: Final = 16
_TAIL_CHARS: Final = 4


def is_secret(name: str, extra: Iterable[str] = ()) -> bool:
    lowered = name.lower()
    return lowered in BUILTIN_SECRET_HEADERS or lowered in {e.lower() for e in extra}


def split(
    headers: Mapping[str, str], extra: Iterable[str] = ()
) -> tuple[dict[str, str], dict[str, str]]:
    """(plain headers, credential headers), names kept as given."""
    extra = frozenset(e.lower() for e in extra)
    plain: dict[str, str] = {}
    secret: dict[str, str] = {}
    for name, value in headers.items():
        (secret if is_secret(name, extra) else plain)[name] = value
    return plain, secret


def mask(value: str) -> str:
    """``"Bearer ****wxyz"``: a leading scheme word (``Bearer``, ``Basic``) is kept, and
    the last 4 characters only when the value has at least 16; otherwise all is masked."""
    scheme, space, rest = value.partition(" ")
    if space and scheme.isalpha() and len(scheme) <= 16 and rest:
        prefix, secret = f"{scheme} ", rest
    else:
        prefix, secret = "", value
    if len(value) >= MIN_CHARS_FOR_TAIL and len(secret) > 2 * _TAIL_CHARS:
        return f"{prefix}{MASK}{secret[-_TAIL_CHARS:]}"
    return f"{prefix}{MASK}" if prefix else MASK


def masked(headers: Mapping[str, str]) -> dict[str, str]:
    return {name: mask(value) for name, value in headers.items()}
