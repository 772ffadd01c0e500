"""The operator's named URLs: the Celery brokers a task may send to
(``TASKHUB_CELERY_BROKERS``) and the result backends a tracked one is read from
(``TASKHUB_CELERY_RESULT_BACKENDS``), each ``name=url``, comma-separated.

Tenants see only the names; the URLs may hold passwords, so they are never shown: a
:class:`NamedURLs` prints them masked, and a refusal of the setting names the entry by
its position and name, never its URL. Pure: nothing of Celery or kombu.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Final

from taskhub.core import limits
from taskhub.core.credentials import REDACTED

_NAME: Final = re.compile(limits.CELERY_BROKER_NAME_PATTERN)
#: ``user:password@`` (the user may be empty: ``redis://:password@host``), after ``://``.
_PASSWORD: Final = re.compile(r"(?<=://)([^/\s:@]*):[^/\s@]+@")


def masked_url(url: str) -> str:
    """``url`` with the password of its ``user:password@`` masked."""
    return _PASSWORD.sub(rf"\1:{REDACTED}@", url)


class NamedURLs(Mapping[str, str]):
    """Name to URL, in the order given; read-only, and printed with passwords masked."""

    __slots__ = ("_urls",)

    def __init__(self, urls: Mapping[str, str] | None = None) -> None:
        self._urls = dict(urls or {})

    def __getitem__(self, name: str) -> str:
        return self._urls[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._urls)

    def __len__(self) -> int:
        return len(self._urls)

    def __hash__(self) -> int:
        return hash(tuple(self._urls.items()))

    def __repr__(self) -> str:
        shown = ", ".join(f"{name!r}: {masked_url(url)!r}" for name, url in self._urls.items())
        return f"NamedURLs({{{shown}}})"


def parse_named_urls(text: str) -> NamedURLs:
    """``name=url, ...``; a :class:`ValueError` names the entry by position and name."""
    urls: dict[str, str] = {}
    for position, entry in enumerate((e for e in text.split(",") if e.strip()), start=1):
        name, sep, url = (part.strip() for part in entry.partition("="))
        if not sep or not _NAME.fullmatch(name):
            raise ValueError(
                f"entry {position} is not NAME=URL with a name of 1 to "
                f"{limits.MAX_CELERY_BROKER_NAME_CHARS} lower-case letters, digits, '_' or '-' "
                "(first a letter or digit)"
            )
        if "://" not in url:
            raise ValueError(f"entry {position} ({name}) has no URL (scheme://...)")
        if name in urls:
            raise ValueError(f"{name} is named twice")
        urls[name] = url
    return NamedURLs(urls)
