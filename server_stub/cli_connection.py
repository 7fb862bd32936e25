"""How ``imager-server`` admin commands reach the server: its URL, whom to trust for https, and the admin
token, found where the server keeps it (its data directory), never beside the installed code.

Where the token is looked for, first found wins (options before the environment, docs/security.md):
``--token-file FILE``; ``--data-dir DIR`` (the server's) → DIR/admin.token; ``$IMAGER_ADMIN_TOKEN`` (the token
itself); ``$IMAGER_DATA_DIR`` or ``$IMAGER_DATA`` (what ``serve`` reads) → …/admin.token; then the usual places:
/var/lib/imager/admin.token (the packaged data directory), ./admin.token, ./var/server/admin.token (``serve``
started in a checkout, as the README does). A place the user named that has no token is an error at once;
the usual places are tried in turn, and when none holds one the message names every place looked at.
"""
from __future__ import annotations

import json
import os
import ssl
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Protocol

TOKEN_NAME = "admin.token"
PACKAGED_DATA_DIR = Path("/var/lib/imager")
USUAL_TOKEN_FILES = (PACKAGED_DATA_DIR / TOKEN_NAME, Path(TOKEN_NAME), Path("var/server") / TOKEN_NAME)
DATA_DIR_VARIABLES = ("IMAGER_DATA_DIR", "IMAGER_DATA")


class Call(Protocol):
    """An admin API call: ``call(method, path, body)`` → the decoded answer (``ApiClient``, or a test's)."""
    def __call__(self, method: str, path: str, body: dict | None = None) -> Any: ...


class AdminCallFailed(Exception):
    """A refusal, an unreachable server, or no credential: one line for the user."""


def _read_token(path: Path, named_by: str) -> str:
    try:
        token = path.read_text().strip()
    except FileNotFoundError:
        raise AdminCallFailed(f"no admin token at {path} (named by {named_by}); the server writes "
                              f"<data-dir>/{TOKEN_NAME} at its first start") from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise AdminCallFailed(f"cannot read the admin token {path} (named by {named_by}): {reason}"
                              + (" (run as root, or as the server's user)" if isinstance(exc, PermissionError)
                                 else "")) from None
    if not token:
        raise AdminCallFailed(f"the admin token {path} (named by {named_by}) is empty: restart the server, "
                              "which writes a new one")
    return token


def find_admin_token(token_file: str | None, data_dir: str | None,
                     environ: Mapping[str, str] = os.environ) -> str:
    """The admin token, from the first place that names one (the module's docstring gives the order)."""
    if token_file:
        return _read_token(Path(token_file), "--token-file")
    if data_dir:
        return _read_token(Path(data_dir) / TOKEN_NAME, "--data-dir")
    if environ.get("IMAGER_ADMIN_TOKEN", "").strip():
        return environ["IMAGER_ADMIN_TOKEN"].strip()
    for variable in DATA_DIR_VARIABLES:
        if environ.get(variable):
            return _read_token(Path(environ[variable]) / TOKEN_NAME, f"${variable}")
    for path in USUAL_TOKEN_FILES:
        if path.is_file():
            return _read_token(path, "the usual places")
    looked = ", ".join(str(p) for p in USUAL_TOKEN_FILES)
    raise AdminCallFailed(f"no admin token found: looked for --token-file, --data-dir, $IMAGER_ADMIN_TOKEN, "
                          f"${', $'.join(DATA_DIR_VARIABLES)}, then {looked}; give the server's data directory "
                          f"(--data-dir DIR, as 'serve --data-dir') or --token-file FILE")


def _refusal(exc: urllib.error.HTTPError) -> str:
    """The server's message in its error shape {"error": message, "code": code}."""
    try:
        answer = json.load(exc)
    except ValueError:
        return str(exc.reason)
    if not isinstance(answer, dict) or not isinstance(answer.get("error"), str):
        return str(exc.reason)
    return answer["error"] + (" (a server bug: see the server's log)" if answer.get("code") == "internal" else "")


@dataclass
class ApiClient:
    """Calls to the admin API with the admin token; ``client(method, path, body)`` → the decoded answer."""
    server: str
    token: str
    ssl_context: ssl.SSLContext | None = None
    timeout: float = 30

    def __call__(self, method: str, path: str, body: dict | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(f"{self.server.rstrip('/')}{path}", data=data, method=method,
                                         headers={"Content-Type": "application/json",
                                                  "Authorization": f"Bearer {self.token}"})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout, context=self.ssl_context) as response:
                return json.load(response)
        except urllib.error.HTTPError as exc:
            raise AdminCallFailed(f"HTTP {exc.code}: {_refusal(exc)}") from exc
        except urllib.error.URLError as exc:
            if isinstance(exc.reason, ssl.SSLError):
                raise AdminCallFailed(f"the server at {self.server} is not trusted: {exc.reason} "
                                      "(give --cacert FILE)") from exc
            raise AdminCallFailed(f"cannot reach the server at {self.server}: {exc.reason}") from exc
        except (OSError, ValueError) as exc:  # a reset or timeout mid-answer, an answer that is not JSON
            raise AdminCallFailed(f"no usable answer from the server at {self.server}: {exc}") from exc


PAGE = 1000  # rows asked per call when a whole paged list is wanted


def segment(text: str) -> str:
    """A name as one path segment of a URL."""
    return urllib.parse.quote(text, safe="")


def all_rows(call: Call, path: str, query: dict[str, Any]) -> list[dict]:
    """Every row of a paged list (``{"rows", "total"}``), a page at a time; None values are left out."""
    rows: list[dict] = []
    while True:
        params = urllib.parse.urlencode({k: v for k, v in {**query, "offset": len(rows), "limit": PAGE}.items()
                                         if v is not None})
        page = call("GET", f"{path}?{params}")
        rows += page["rows"]
        if not page["rows"] or len(rows) >= page["total"]:
            return rows


def trust(cacert: str | None) -> ssl.SSLContext | None:
    """The TLS context for an https --server: --cacert's certificates, else the system's (None)."""
    if not cacert:
        return None
    try:
        return ssl.create_default_context(cafile=cacert)
    except (OSError, ssl.SSLError) as exc:
        raise AdminCallFailed(f"cannot use --cacert {cacert}: {exc}") from None
