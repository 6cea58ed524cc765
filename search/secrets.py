"""Secrets never leave memory: storage URLs and command lines are masked before they are printed,
logged or written. Works on text that is not a valid URL too (a port typo, a stray quote)."""

from __future__ import annotations

import re
from collections.abc import Iterable

MASK = "***"
# scheme://user:PASSWORD@host -- the password runs to the last '@' before the host part
_USERINFO = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.\-]*://[^:/?#@\s]*:)(?P<pw>[^\s]*)(?=@[^@\s]*$)")
_USERINFO_ANY = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.\-]*://[^:/?#@\s]*:)(?P<pw>[^@\s/]*)@")
_QUERY = re.compile(r"(?P<head>[?&;](?:password|passwd|pwd|pass|sslpassword|secret|token)=)"
                    r"(?P<pw>[^&;#\s]*)", re.IGNORECASE)


def mask_url(text: str) -> str:
    """`text` with every URL password (userinfo or a password-like query parameter) masked."""
    out = []
    for token in re.split(r"(\s+)", text):
        m = _USERINFO.search(token)
        token = (token[:m.start("pw")] + MASK + token[m.end("pw"):] if m
                 else _USERINFO_ANY.sub(lambda g: g["head"] + MASK + "@", token))
        out.append(_QUERY.sub(lambda g: g["head"] + MASK, token))
    return "".join(out)


def passwords(url: str) -> list[str]:
    """The literal secrets in a URL, to scrub from text that may quote them (driver errors)."""
    found = [m["pw"] for m in _USERINFO.finditer(url)] + [m["pw"] for m in _QUERY.finditer(url)]
    return [p for p in found if p]


def scrub(text: str, url: str) -> str:
    """`text` with the URL's secrets masked wherever they appear, URL or not."""
    text = mask_url(text)
    for secret in passwords(url):
        text = text.replace(secret, MASK)
    return text


def redact_argv(argv: Iterable[str]) -> list[str]:
    return [mask_url(a) for a in argv]
