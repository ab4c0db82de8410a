"""Connection URLs as they may be shown: in messages, logs and ``repr``, never a password."""

from __future__ import annotations

import re
import urllib.parse
from typing import Final

from psycopg.conninfo import conninfo_to_dict

__all__ = ["is_postgres_url", "redact", "scrub"]

_SCHEMES: Final = ("postgresql://", "postgres://")
_KEYWORD_PASSWORD: Final = re.compile(r"password\s*=\s*('(?:[^'\\]|\\.)*'|\S+)")


def is_postgres_url(target: object) -> bool:
    """Whether ``target`` is a PostgreSQL URL (anything else is a journal file's path)."""
    return isinstance(target, str) and target.lower().startswith(_SCHEMES)


def redact(url: str) -> str:
    """``url`` without its password (a connection string: without its ``password=``)."""
    if not is_postgres_url(url):
        return _KEYWORD_PASSWORD.sub("password=***", url)
    parts = urllib.parse.urlsplit(url)
    netloc = parts.netloc.rpartition("@")
    if netloc[1]:
        user = netloc[0].partition(":")[0]
        host = netloc[2]
        netloc_text = f"{user}@{host}" if user else host
    else:
        netloc_text = parts.netloc
    query = [
        (key, value)
        for key, value in urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
        if key != "password"
    ]
    return urllib.parse.urlunsplit(
        (parts.scheme, netloc_text, parts.path, urllib.parse.urlencode(query), parts.fragment)
    )


def scrub(text: str, url: str) -> str:
    """``text`` (a driver's message) on one line, with the password of ``url`` masked."""
    text = " ".join(text.split())
    try:
        password = conninfo_to_dict(url).get("password")
    except Exception:  # noqa: BLE001 - an unparsable URL: nothing more to mask
        password = None
    if isinstance(password, str) and password:
        text = text.replace(password, "***")
    return text
