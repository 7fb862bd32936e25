"""Optional HTTPS for the API (imager-server serve --tls-cert FILE --tls-key FILE), see docs/tls.md.

Boot files and boot scripts stay on plain HTTP (iPXE as Debian builds it has no TLS); every /api/ call,
which carries a token or an inventory, goes to the HTTPS port, and plain HTTP refuses it. The imaging
environment cannot carry the site's CA, so the kernel command line names the certificate itself:
imager.server_fp=sha256:<hex of the DER certificate>, which the client pins.
"""
from __future__ import annotations

import hashlib
import re
import ssl
from pathlib import Path
from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from server_stub.errors import Forbidden

# Served on plain HTTP even with TLS on: they carry no secret.
PLAIN_API_PATHS = ("/api/openapi.yaml",)


class TlsSetupError(ValueError):
    pass


def server_context(cert: str, key: str) -> tuple[ssl.SSLContext, str]:
    """The server's SSL context and the SHA-256 fingerprint of its certificate ("sha256:<64 hex>")."""
    try:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(cert, key)
        pem = Path(cert).read_text()
    except (OSError, ssl.SSLError, ValueError) as exc:
        raise TlsSetupError(f"cannot use --tls-cert {cert} / --tls-key {key}: {exc}") from exc
    first = re.search(r"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", pem, re.S)
    if not first:
        raise TlsSetupError(f"--tls-cert {cert} holds no PEM certificate")
    # The leaf certificate comes first in a chain file; that is the one clients see and pin.
    return context, "sha256:" + hashlib.sha256(ssl.PEM_cert_to_DER_cert(first.group(0))).hexdigest()


def api_url(base_url: str, https_port: int) -> str:
    """The HTTPS URL of the API on the host of ``base_url``, e.g. http://10.0.0.1:8080 → https://10.0.0.1:8443.
    ``base_url`` may hold an iPXE variable such as ${next-server}: iPXE expands it on the kernel line."""
    match = re.fullmatch(r"https?://(\[[^\]]+\]|[^/:]+)(:\d+)?/?", base_url)
    if not match:
        raise TlsSetupError(f"cannot derive the https URL from {base_url!r}")
    return f"https://{match.group(1)}:{https_port}"


# Paths plain HTTP keeps serving under TLS: what firmware fetches (iPXE scripts, kernel, initrd).
BOOT_PATH_PREFIXES = ("/boot.ipxe", "/boot/", "/files/", "/grub/")  # loaders speak plain HTTP


def https_only_api(https_port: int) -> Middleware:
    """Middleware: an /api/ call over plain HTTP is refused, so tokens do not travel in clear by mistake; a
    console page over plain HTTP is sent to HTTPS (its Secure cookie would never come back over HTTP), and a
    console form posted over plain HTTP is refused (its password or token would have crossed in clear)."""
    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.secure or request.path in PLAIN_API_PATHS or request.path.startswith(BOOT_PATH_PREFIXES):
            return await handler(request)
        if request.path.startswith("/api/"):
            raise Forbidden(f"this server takes API calls over https only (port {https_port})")
        if request.method in ("GET", "HEAD"):
            raise web.HTTPFound(str(request.url.with_scheme("https").with_port(https_port)))
        raise Forbidden(f"the console takes forms over https only (port {https_port})")
    return middleware
