"""Secrets never leave memory: storage URLs and command lines are masked before they are printed,
logged or written, and every message that may quote a storage's password is scrubbed of it.

    safe_url(url)      a storage URL as SQLAlchemy renders it with the password hidden, and every
                       query value whose (decoded) key names a secret masked; a URL that does not
                       parse is never echoed
    passwords(url)     the literal secrets a URL holds (userinfo, secret query values, decoded and
                       as typed), to scrub from any text
    scrub(text, *urls) text with each of those secrets masked, URL or not
    mask_url(text)     free text (a command line, an error) with URL-like passwords masked
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from urllib.parse import quote, unquote

MASK = "***"
NOT_SHOWN = "<a storage URL that does not parse (not shown)>"
SECRET_KEY = re.compile(r"pass|pwd|secret|token|key|auth|cred", re.IGNORECASE)
# scheme:[/]*user:PASSWORD@host: the password runs to the last '@' before the host part
_USERINFO = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.\-]*:/*[^:/?#@\s]*:)(?P<pw>[^@]*)(?=@[^@]*$)")
_QUERY = re.compile(r"(?P<head>[?&;](?P<key>[^=&;#\s]+)=)(?P<pw>[^&;#\s]*)")


def _parse(url: str):
    try:
        from sqlalchemy.engine import make_url

        return make_url(url)
    except Exception:
        return None


def is_url(text: str) -> bool:
    return bool(re.match(r"[A-Za-z][A-Za-z0-9+.\-]*:", text)) and ("@" in text or "?" in text
                                                                   or "://" in text)


def safe_url(url: str) -> str:
    """The storage URL for messages and files: SQLAlchemy's rendering with the password hidden,
    secret query values masked; a journal or SQLite path as it is; a URL that does not parse,
    not at all (it may hold a password where no parser looks)."""
    if url.startswith(("journal:", "sqlite:")) and "@" not in url and "?" not in url:
        return url
    u = _parse(url)
    if u is None:
        return NOT_SHOWN
    query = {k: (MASK if SECRET_KEY.search(k) else v) for k, v in u.query.items()}
    return u.set(query=query).render_as_string(hide_password=True).replace(quote(MASK, safe=""), MASK)


def passwords(url: str) -> list[str]:
    """The literal secrets in a URL, decoded and as typed, longest first (so a scrub never leaves
    the tail of a longer one)."""
    found: set[str] = set()
    u = _parse(url)
    if u is not None:
        if u.password:
            found.add(str(u.password))
        for k, v in u.query.items():
            if SECRET_KEY.search(k):
                found.update([v] if isinstance(v, str) else list(v))
    for m in _USERINFO.finditer(url):
        found.add(m["pw"])
    for m in _QUERY.finditer(url):
        if SECRET_KEY.search(unquote(m["key"])):
            found.add(m["pw"])
    found |= {unquote(p) for p in found} | {quote(p, safe="") for p in found}
    return sorted((p for p in found if p), key=len, reverse=True)


def scrub(text: str, *urls: str) -> str:
    """`text` with every secret of `urls` masked wherever it appears, and URL-like passwords."""
    text = mask_url(text)
    for url in urls:
        for secret in passwords(url):
            text = text.replace(secret, MASK)
    return text


def mask_url(text: str) -> str:
    """Free text with every URL-like password masked (userinfo, or a query value whose key names
    a secret), whether or not the URL parses."""
    text = _USERINFO.sub(lambda m: m["head"] + MASK, text) if "@" in text else text
    return _QUERY.sub(lambda m: m["head"] + (MASK if SECRET_KEY.search(unquote(m["key"]))
                                             else m["pw"]), text)


def redact_argv(argv: Iterable[str]) -> list[str]:
    """A command line for files and messages: a URL-looking argument as safe_url renders it,
    every other masked as free text, and the known secrets of this process scrubbed."""
    out = []
    for a in argv:
        out.append(safe_url(a) if is_url(a) and not a.startswith("-") else mask_url(a))
    return [scrub(a, *process_secrets()) for a in out]


def process_secrets() -> list[str]:
    """The storage URLs this process knows from its environment (SEARCH_STORAGE) and libpq's
    password, as URL-shaped text for scrub()."""
    urls = [os.environ.get("SEARCH_STORAGE", "")]
    pg = os.environ.get("PGPASSWORD")
    if pg:
        urls.append(f"x://u:{pg}@h")
    return [u for u in urls if u]
