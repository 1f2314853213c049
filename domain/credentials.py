"""Camera credentials: kept apart from the camera's URL, put into it only for the library that
dials the camera, and kept out of every text the system produces (errors, logs, gap records,
alerts, API answers, the disc).

Why a redactor and not only clean URLs: libavformat and PyAV put the URL they were given into
their error texts (``... 401 Unauthorized ...: 'rtsp://admin:pw@10.0.0.5/s1'``), sometimes with
the password percent-decoded or escaped, and those texts became gap details, alert messages and
log lines. :class:`Redactor` knows a camera's secrets in every spelling they can take on the way
(as written in the URL, percent-decoded, percent-encoded, JSON- and repr-escaped) and also masks
any URL's user information and ``password=``-style parameters it did not know of.

Pure data: no I/O. A password of one or two characters is masked wherever those characters
appear, which makes texts hard to read: such a password protects nothing anyway.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, quote, quote_plus, unquote, unquote_plus, urlsplit, urlunsplit

MASK = "***"
# Query parameters whose value is a credential (cameras that take their login in the query
# string, e.g. ``rtsp://host/stream?user=admin&password=...``): masked in every URL shown.
SECRET_QUERY_KEYS = frozenset(
    {"password", "passwd", "pwd", "pass", "pw", "token", "secret", "auth", "user", "username"}
)
# In free text only the password-like keys: "user=" also names harmless things.
_TEXT_SECRET_KEYS = "password|passwd|pwd|pass|pw|token|secret"
# greedy up to the authority's last "@", as URL parsers split it (a password may hold an "@")
_URL_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)[^\s/?#'\"<>]*@")
_TEXT_KEY_VALUE = re.compile(rf"(?i)(?<![A-Za-z0-9_])(?P<key>{_TEXT_SECRET_KEYS})=[^&\s'\"<>;,)]+")


@dataclass(frozen=True, slots=True)
class CameraLogin:
    """A camera's user and password (RTSP Basic/Digest and ONVIF UsernameToken)."""

    user: str
    password: str = field(repr=False)


def login_of(url: str) -> CameraLogin | None:
    """The login written into ``url``'s user information, percent-decoded, or None."""
    parts = urlsplit(url)
    if parts.username is None:
        return None
    return CameraLogin(unquote(parts.username), unquote(parts.password or ""))


def without_login(url: str) -> str:
    """``url`` without its user information (the query string is left as it is)."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))


def with_login(url: str, login: CameraLogin | None) -> str:
    """``url`` carrying ``login`` (percent-encoded), replacing any it had. Only for the library
    that dials the camera: nothing else should ever hold this string."""
    if login is None:
        return url
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    userinfo = quote(login.user, safe="") + (":" + quote(login.password, safe="") if login.password else "")
    return urlunsplit(parts._replace(netloc=f"{userinfo}@{host}"))


def redact_url(url: str) -> str:
    """``url`` as it may be shown or stored: user information and credential parameters of the
    query string masked (``rtsp://***@10.0.0.5/s1?channel=1&password=***``)."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        netloc = f"{MASK}@{netloc.rpartition('@')[2]}"
    query = parts.query
    if query:
        pieces = []
        for piece in query.split("&"):
            key, sep, _value = piece.partition("=")
            if sep and unquote_plus(key).lower() in SECRET_QUERY_KEYS:
                piece = f"{key}={MASK}"
            pieces.append(piece)
        query = "&".join(pieces)
    return urlunsplit(parts._replace(netloc=netloc, query=query))


def url_secrets(url: str, login: CameraLogin | None = None) -> set[str]:
    """The secrets in a camera's URL and login: the password (as written and decoded) and the
    values of credential parameters in the query string. The user name is not a secret."""
    found: set[str] = set()
    parts = urlsplit(url)
    if parts.password:
        found |= {parts.password, unquote(parts.password)}
    for piece in parts.query.split("&") if parts.query else ():
        key, sep, value = piece.partition("=")
        if sep and value and unquote_plus(key).lower() in SECRET_QUERY_KEYS - {"user", "username"}:
            found |= {value, unquote_plus(value)}
    for key, value in parse_qsl(parts.query, keep_blank_values=False):
        if key.lower() in SECRET_QUERY_KEYS - {"user", "username"}:
            found.add(value)
    if login is not None and login.password:
        found.add(login.password)
    found.discard("")
    return found


def spellings(secret: str) -> set[str]:
    """Every form ``secret`` may take in a text: as is, percent-encoded (upper- and lower-case
    hex, ``+`` for spaces), JSON-escaped (ASCII or not) and as Python's repr escapes it."""
    if not secret:
        return set()
    forms = {secret, quote(secret, safe=""), quote_plus(secret, safe=""), quote(secret)}
    forms |= {re.sub(r"%[0-9A-F]{2}", lambda m: m.group(0).lower(), f) for f in list(forms)}
    forms.add(json.dumps(secret, ensure_ascii=False)[1:-1])
    forms.add(json.dumps(secret, ensure_ascii=True)[1:-1])
    forms.add(repr(secret)[1:-1])
    forms.add(repr(secret.encode("utf-8"))[2:-1])
    forms.discard("")
    return forms


class Redactor:
    """Masks known secrets, in every spelling, and any URL's user information or
    ``password=``-style value in a text. Thread-safe; secrets can be added while in use."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._lock = threading.Lock()
        self._forms: tuple[str, ...] = ()
        self.add(*secrets)

    @classmethod
    def for_camera(cls, url: str, login: CameraLogin | None = None) -> Redactor:
        return cls(url_secrets(url, login))

    def add(self, *secrets: str) -> None:
        new: set[str] = set()
        for secret in secrets:
            new |= spellings(secret)
        with self._lock:
            # longest first: a password containing another one is masked whole
            self._forms = tuple(sorted(set(self._forms) | new, key=lambda s: (-len(s), s)))

    def __bool__(self) -> bool:
        return bool(self._forms)

    def text(self, text: str) -> str:
        """``text`` with every secret masked."""
        for form in self._forms:
            if form in text:
                text = text.replace(form, MASK)
        if "@" in text:
            text = _URL_USERINFO.sub(lambda m: m.group("scheme") + MASK + "@", text)
        if "=" in text:
            text = _TEXT_KEY_VALUE.sub(lambda m: m.group("key") + "=" + MASK, text)
        return text


def redact_text(text: str) -> str:
    """``text`` with any URL's user information and ``password=``-style values masked, for texts
    whose secrets are not known (the camera's own :class:`Redactor` knows more)."""
    return _GENERIC.text(text)


_GENERIC = Redactor()
