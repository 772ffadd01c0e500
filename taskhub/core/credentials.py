"""Which header values are credentials, how they may be shown, and how a text is cleared
of them. Pure.

A credential header (``Authorization``, ``Cookie``, any name with a credential word in it
such as ``X-Access-Token`` or ``Private-Token``, and the names in
``TASKHUB_SECRET_HEADERS``) is stored sealed, never in the plain ``headers`` column, and
is only ever shown masked: the API, the CLI and logs see ``Bearer ****wxyz`` at most.
A response excerpt is cleared of the task's own credential values (:func:`strip_values`)
before it leaves the trigger worker.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterable, Mapping
from typing import Final
from urllib.parse import quote

__all__ = [
    "BUILTIN_SECRET_HEADERS",
    "MASK",
    "REDACTED",
    "SECRET_NAME_WORDS",
    "is_secret",
    "mask",
    "masked",
    "split",
    "strip_values",
]

BUILTIN_SECRET_HEADERS: Final = frozenset(
    {"authorization", "cookie", "x-api-key", "api-key", "x-auth-token"}
)
#: A name holding one of these (ignoring case) names a credential: a header, a JSON key,
#: a query or form parameter (``X-Access-Token``, ``Private-Token``, ``client_secret``,
#: ``refresh_token``, ``api_key``, ``X-Api-Key``, ``password``). The log redaction reads
#: names with the same words (``logs``).
SECRET_NAME_WORDS: Final = (
    "authorization",
    "cookie",
    "token",
    "secret",
    "password",
    "passwd",
    "api-key",
    "api_key",
    "apikey",
    "private-key",
    "private_key",
    "credential",
)
_SECRET_NAME: Final = re.compile("|".join(re.escape(w) for w in SECRET_NAME_WORDS))
MASK: Final = "****"
#: What replaces a credential in a log line or a response excerpt.
REDACTED: Final = "[redacted]"
#: Values shorter than this are masked entirely; longer ones keep their last 4 characters.
MIN_CHARS_FOR_TAIL: Final = 16
_TAIL_CHARS: Final = 4
#: Shorter values (and parts of values) are not searched for in an excerpt: too short to
#: be a credential, and found by chance in any text.
MIN_STRIPPED_CHARS: Final = 4
#: Values whose forms are kept: a trigger worker strips the same credentials from the
#: response of every occurrence of a task (~4 us a value to work out again).
FORMS_CACHE_SIZE: Final = 4096


def is_secret(name: str, extra: Iterable[str] = ()) -> bool:
    lowered = name.lower()
    return (
        lowered in BUILTIN_SECRET_HEADERS
        or _SECRET_NAME.search(lowered) is not None
        or lowered in {e.lower() for e in extra}
    )


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


@functools.lru_cache(maxsize=FORMS_CACHE_SIZE)
def _forms(value: str) -> frozenset[str]:
    """The ways ``value`` may come back in a response: as sent; its credential without
    the scheme word (``Bearer``, ``Token``, ``Basic``); each cookie's value; and each of
    those JSON-escaped (also with ``\\/``) and percent-encoded (an echo server quotes
    what it received)."""
    parts = {value.strip()}
    scheme, space, rest = value.strip().partition(" ")
    if space and scheme.isalpha():
        parts.add(rest.strip())
    for pair in value.split(";"):
        name, equals, cookie = pair.partition("=")
        if equals and name.strip():
            parts.add(cookie.strip())
    forms: set[str] = set()
    for part in parts:
        forms.add(part)
        if not _PLAIN_JSON.fullmatch(part):
            forms.add(json.dumps(part)[1:-1])
            forms.add(json.dumps(part, ensure_ascii=False)[1:-1])
            forms.add(json.dumps(part)[1:-1].replace("/", "\\/"))  # PHP's, "\/"
        if not _UNRESERVED.fullmatch(part):
            forms.add(quote(part, safe=""))
    return frozenset(form for form in forms if len(form) >= MIN_STRIPPED_CHARS)


#: Text JSON writes as it is, and text percent-encoding leaves as it is.
_PLAIN_JSON: Final = re.compile(r"[ !#-.0-\[\]-~]*")  # no \", \\ or /
_UNRESERVED: Final = re.compile(r"[A-Za-z0-9_.~-]*")


def strip_values(text: str, values: Iterable[str], cut: bool = False) -> str:
    """``text`` with every form of every value in ``values`` replaced by ``[redacted]``.

    ``cut``: ``text`` is the start of something longer, so a form may end cut short;
    a tail of ``text`` that is the start of a form (at least ``MIN_STRIPPED_CHARS``
    long) is replaced too.
    """
    if not text:
        return text
    forms: set[str] = set()
    for value in values:
        forms.update(_forms(value))
    present = sorted((f for f in forms if f in text), key=len, reverse=True)
    if present:  # a whole value before its parts
        text = re.sub("|".join(re.escape(form) for form in present), REDACTED, text)
    if cut:
        tail = max((_cut_tail(text, form) for form in forms), default=0)
        if tail:
            text = text[:-tail] + REDACTED
    return text


def _cut_tail(text: str, form: str) -> int:
    """The length of the longest start of ``form`` that ``text`` ends with (0: none)."""
    for size in range(min(len(form) - 1, len(text)), MIN_STRIPPED_CHARS - 1, -1):
        if text.endswith(form[:size]):
            return size
    return 0
