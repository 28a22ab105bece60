"""Server base URLs split into what may be recorded and what must stay secret.

A base URL such as ``https://user:pw@Example.COM:443/v1/?api-version=2024&key=abc``
carries three kinds of information:

* the server's identity, recorded in run configs, logs, error messages and cache keys
  (:attr:`ServerURL.public`): scheme and host lowercased, the scheme's default port
  dropped (so ``:443`` on https and no port at all name the same server), the path
  without trailing slashes, and the query parameters that are not secrets, in their
  original order; e.g. ``https://example.com/v1?api-version=2024``;
* credentials: the userinfo (``user:pw@``, sent as HTTP Basic authentication) and
  every query parameter whose name looks like a secret (it contains ``key``, ``token``,
  ``secret``, ``password``, ``passwd``, ``pwd``, ``sig``, ``auth`` or ``credential``,
  ignoring case, ``-`` and ``_``); they are sent with each request but never appear in
  ``public`` nor in ``repr``;
* the fragment, which is never sent to a server and is dropped.
"""

from __future__ import annotations

import base64
import re
import urllib.parse
from dataclasses import dataclass, field

from msce.errors import ConfigError

__all__ = ["ServerURL", "parse_base_url", "public_url", "redact_urls"]

_DEFAULT_PORTS = {"http": 80, "https": 443}
_SECRET_WORDS = ("key", "token", "secret", "password", "passwd", "pwd", "sig", "auth", "credential")
_URL_IN_TEXT = re.compile(r"https?://[^\s\"'<>]+", re.IGNORECASE)


def _is_secret_param(name: str) -> bool:
    folded = name.lower().replace("-", "").replace("_", "")
    return any(word in folded for word in _SECRET_WORDS)


@dataclass(frozen=True)
class ServerURL:
    """A parsed base URL. ``public`` is safe to record; the rest is for requests only."""

    public: str
    root: str  # scheme://host[:port]/path of the requests, without userinfo or query
    query: str = field(default="", repr=False)  # the full query, secrets included
    username: str | None = field(default=None, repr=False)
    password: str | None = field(default=None, repr=False)

    def endpoint(self, path: str) -> str:
        """The request URL of ``path`` (e.g. ``"chat/completions"``), secrets included."""
        url = f"{self.root}/{path.lstrip('/')}"
        return f"{url}?{self.query}" if self.query else url

    def public_endpoint(self, path: str) -> str:
        """The recordable name of ``path``'s URL (no credentials, no secret parameters)."""
        base, sep, query = self.public.partition("?")
        return f"{base}/{path.lstrip('/')}" + (sep + query if sep else "")

    def basic_auth(self) -> str | None:
        """The ``Authorization`` value for the URL's userinfo, or None without one."""
        if self.username is None:
            return None
        pair = f"{self.username}:{self.password or ''}".encode("utf-8")
        return "Basic " + base64.b64encode(pair).decode("ascii")

    def secrets(self) -> list[str]:
        """Every secret string this URL carries (for redacting server error bodies)."""
        out = [self.password] if self.password else []
        if self.username and len(self.username) >= 4:  # a token is often sent as the user name
            out.append(self.username)
        for name, value in urllib.parse.parse_qsl(self.query, keep_blank_values=True):
            if _is_secret_param(name) and value:
                out.append(value)
        return out + [q for q in (urllib.parse.quote(v, safe="") for v in out) if q not in out]


def parse_base_url(url: str, what: str = "base_url") -> ServerURL:
    """Split ``url`` (http or https) into its public form and its secrets.

    Raises :class:`msce.errors.ConfigError` naming ``what`` when the URL has another
    scheme, no host, or a port that is not a number in 1..65535.
    """
    if not isinstance(url, str) or not url.strip():
        raise ConfigError(f"{what} is required (e.g. http://localhost:8000/v1)")
    try:
        parts = urllib.parse.urlsplit(url.strip())
    except ValueError as exc:
        raise ConfigError(f"{what} is not a valid URL ({exc})") from None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS:
        raise ConfigError(f"{what} must start with http:// or https://, got {_strip_secrets(url)!r}")
    host = parts.hostname
    if not host:
        raise ConfigError(f"{what} has no host name: {_strip_secrets(url)!r}")
    try:
        port = parts.port
    except ValueError:
        raise ConfigError(f"{what} has an invalid port (a number in 1..65535 is needed)") from None
    if port == 0:
        raise ConfigError(f"{what} has an invalid port (a number in 1..65535 is needed)")
    netloc = f"[{host}]" if ":" in host else host
    if port is not None and port != _DEFAULT_PORTS[scheme]:
        netloc += f":{port}"
    path = parts.path.rstrip("/")
    pairs = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
    kept = urllib.parse.urlencode([(k, v) for k, v in pairs if not _is_secret_param(k)])
    root = f"{scheme}://{netloc}{path}"
    username = None if parts.username is None else urllib.parse.unquote(parts.username)
    password = None if parts.password is None else urllib.parse.unquote(parts.password)
    return ServerURL(public=root + (f"?{kept}" if kept else ""), root=root, query=parts.query,
                     username=username, password=password)


def public_url(url: str) -> str:
    """``url`` without userinfo, secret query parameters or fragment (best effort for
    malformed input: the userinfo is cut whenever an ``@`` precedes the host)."""
    try:
        return parse_base_url(url).public
    except ConfigError:
        return _strip_secrets(url)


def _strip_secrets(url: str) -> str:
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:  # e.g. an unbalanced "[" in the host: show nothing of it
        return "<unparsable URL>"
    netloc = parts.netloc.rpartition("@")[2]
    pairs = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
    kept = urllib.parse.urlencode([(k, v) for k, v in pairs if not _is_secret_param(k)])
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, kept, ""))


def redact_urls(text: str) -> str:
    """``text`` with every http(s) URL in it replaced by its :func:`public_url` form
    (for recording command lines that may carry credentials)."""
    return _URL_IN_TEXT.sub(lambda m: public_url(m.group(0)), text)
