"""docs/openapi.yaml against the routes the server really has, so the description cannot silently rot."""
import re
from pathlib import Path

import pytest
import requests
import yaml
from aiohttp import web

from server_stub import webapp
from server_stub.config import ServerConfig
from server_stub.store import Store

SPEC_PATH = Path(__file__).resolve().parents[2] / "docs" / "openapi.yaml"
METHODS = {"get", "put", "post", "delete", "patch", "head", "options"}


@pytest.fixture(scope="module")
def spec() -> dict:
    return yaml.safe_load(SPEC_PATH.read_text())


def served_routes(tmp_path) -> set[tuple[str, str]]:
    store = Store(str(tmp_path / "routes.sqlite3"))
    try:
        app = webapp.make_app(store, ServerConfig(admin_token="x", boot_dir=str(tmp_path)))
        routes = set()
        for route in app.router.routes():
            if route.method in ("HEAD", "*"):  # aiohttp adds HEAD to every GET by itself
                continue
            # The console's pages and files are for browsers (docs/console.md), not part of the API.
            if isinstance(route.resource, web.StaticResource) or \
                    getattr(route.handler, "__module__", "").startswith("server_stub.console"):
                continue
            # "/api/tasks/{id:\d+}" → "/api/tasks/{id}", as OpenAPI writes it
            path = re.sub(r"\{(\w+):[^}]*\}", r"{\1}", route.resource.canonical)
            routes.add((route.method.lower(), path))
        return routes
    finally:
        store.close()


def described_routes(spec: dict) -> set[tuple[str, str]]:
    return {(method, path) for path, item in spec["paths"].items() for method in item if method in METHODS}


def test_every_route_is_described_and_every_description_is_served(spec, tmp_path):
    served, described = served_routes(tmp_path), described_routes(spec)
    assert len(served) > 20
    assert sorted(served - described) == [], "routes missing from docs/openapi.yaml"
    assert sorted(described - served) == [], "docs/openapi.yaml describes routes the server does not have"


def test_the_document_is_consistent(spec):
    assert spec["openapi"].startswith("3.0.")

    def resolve(ref: str):
        assert ref.startswith("#/"), ref
        node = spec
        for part in ref[2:].split("/"):
            assert part in node, f"dangling $ref {ref}"
            node = node[part]
        return node

    def walk(node):
        if isinstance(node, dict):
            if "$ref" in node:
                resolve(node["$ref"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(spec)
    schemes = set(spec["components"]["securitySchemes"])
    for path, item in spec["paths"].items():
        for method, op in ((m, o) for m, o in item.items() if m in METHODS):
            where = f"{method.upper()} {path}"
            assert op.get("summary") and op.get("responses"), where
            assert all(set(requirement) <= schemes for requirement in op.get("security", spec["security"])), where
            params = [resolve(p["$ref"]) if "$ref" in p else p for p in item.get("parameters", []) + op.get("parameters", [])]
            in_path = {p["name"] for p in params if p["in"] == "path"}
            assert in_path == set(re.findall(r"\{(\w+)\}", path)), f"{where}: path parameters"
            if path.startswith("/api/") and op.get("security", spec["security"]):
                assert "401" in op["responses"], f"{where}: an authenticated call can answer 401"


def test_admin_routes_need_the_admin_token_and_the_description_says_so(spec, server):
    """Each route the description marks admin-only really refuses a call without the token."""
    for path, item in spec["paths"].items():
        for method, op in ((m, o) for m, o in item.items() if m in METHODS):
            if {"admin"} not in [set(r) for r in op.get("security", spec["security"])]:
                continue
            concrete = re.sub(r"\{(\w+)\}", lambda m: "1" if m.group(1) == "id" else "x", path)
            answer = requests.request(method, server["url"] + concrete, json={}, timeout=10)
            assert answer.status_code == 401, f"{method.upper()} {path} without the admin token"


def test_the_server_serves_the_description(server):
    answer = requests.get(f"{server['url']}/api/openapi.yaml", timeout=10)
    assert answer.status_code == 200 and answer.headers["Content-Type"].startswith("application/yaml")
    assert answer.content == SPEC_PATH.read_bytes()
    assert yaml.safe_load(answer.text)["paths"]["/api/openapi.yaml"]["get"]["security"] == []
