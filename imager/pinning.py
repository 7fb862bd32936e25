"""Which https server the client trusts: the certificate named on the kernel command line.

The boot image carries no CA of the site, so ``imager.server_fp=sha256:…`` (cmdline.py) names the
server's certificate and every API call (api.py) checks that exact certificate; docs/tls.md.
"""
from __future__ import annotations

from typing import Any

import requests
import requests.adapters

from imager.errors import ServerIdentityError

_PINS: dict[str, str] = {}  # server URL → "sha256:<hex>" of its certificate (kernel parameter imager.server_fp)


def pin_server(server: str, fingerprint: str | None) -> None:
    """Trust, for ``server`` (https), exactly the certificate with this SHA-256, not the CA store.
    The boot image carries no CA of the site; the kernel command line names the certificate instead."""
    if fingerprint:
        _PINS[server.rstrip("/")] = fingerprint
    else:
        _PINS.pop(server.rstrip("/"), None)


class _PinnedAdapter(requests.adapters.HTTPAdapter):
    def __init__(self, sha256_hex: str, **pool: Any) -> None:
        self.sha256_hex = sha256_hex  # before super().__init__, which builds the pool manager
        super().__init__(**pool)

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        kwargs["assert_fingerprint"] = self.sha256_hex  # urllib3 compares it after the handshake
        super().init_poolmanager(*args, **kwargs)

    def cert_verify(self, conn: Any, url: str, verify: Any, cert: Any) -> None:
        # No CA check: the pin is the whole trust (whatever REQUESTS_CA_BUNDLE or the session say).
        super().cert_verify(conn, url, False, cert)


def session_for(server: str) -> requests.Session:
    session = requests.Session()
    pin = _PINS.get(server.rstrip("/"))
    if pin:
        session.mount("https://", _PinnedAdapter(pin.removeprefix("sha256:")))
    return session


def pooled_adapter(session: requests.Session, url: str, pool_maxsize: int) -> requests.adapters.HTTPAdapter:
    """An adapter of its own for ``url`` (a pool of ``pool_maxsize`` connections) that trusts what ``session``
    trusts there: the imager server's pinned certificate stays the whole trust for its chunk routes."""
    current = session.get_adapter(url)
    if isinstance(current, _PinnedAdapter):
        return _PinnedAdapter(current.sha256_hex, pool_connections=4, pool_maxsize=pool_maxsize)
    return requests.adapters.HTTPAdapter(pool_connections=4, pool_maxsize=pool_maxsize)


def identity_error(server: str, exc: Exception) -> ServerIdentityError:
    pin = _PINS.get(server.rstrip("/"))
    return ServerIdentityError(f"the server at {server} failed the TLS check"
                               + (f" (its certificate is not {pin})" if pin else "") + f": {exc}")
