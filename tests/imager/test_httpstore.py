"""The HTTP transport's pure parts (issue 17): which URLs a task may name, the agent's check of the transport."""
from __future__ import annotations

from typing import Any, cast

import pytest
import requests

from contract.task import Task
from imager import httpstore
from imager.agent import validate_task
from contract.task import deploys_over_http
from imager.errors import InvalidTask


def deploy_task(**storage: Any) -> Task:
    return cast(Task, {"id": 7, "type": "deploy", "image": {"name": "img"}, "storage": storage})


def test_a_path_is_the_imager_servers_with_the_token_a_url_a_web_servers_without() -> None:
    own = httpstore.remote_for("/api/tasks/7/image/img@1-a/", "http://10.0.0.1:8080", "Bearer secret",
                               requests.Session())
    assert own.base == "http://10.0.0.1:8080/api/tasks/7/image/img@1-a/"
    assert own.session.headers["Authorization"] == "Bearer secret"
    web = httpstore.remote_for("http://10.0.0.5/images/img/", "http://10.0.0.1:8080", "Bearer secret")
    assert web.base == "http://10.0.0.5/images/img/" and "Authorization" not in web.session.headers


@pytest.mark.parametrize("url", ["/etc/passwd/", "ftp://10.0.0.5/images/img/", "//evil/api/tasks/7/",
                                 "http://10.0.0.5/images/img", "file:///images/img/"])
def test_other_urls_are_refused_naming_them(url: str) -> None:
    with pytest.raises(InvalidTask, match="image URL"):
        httpstore.remote_for(url, "http://10.0.0.1:8080", "Bearer secret")


def test_the_agent_mounts_nothing_for_http_and_refuses_an_unknown_transport() -> None:
    validate_task(deploy_task(export="", transport="http", url="/api/tasks/7/image/img/"), 7)
    assert deploys_over_http(deploy_task(export="", transport="http", url="/x/"))
    assert not deploys_over_http(cast(Task, {**deploy_task(transport="http"), "type": "capture"}))
    with pytest.raises(InvalidTask, match="no storage node"):
        validate_task(deploy_task(export="10.0.0.1:/images", transport="http"), 7)  # http without its url
    with pytest.raises(InvalidTask, match="transport 'ftp'"):
        validate_task(deploy_task(export="10.0.0.1:/images", transport="ftp"), 7)
    validate_task(deploy_task(export="10.0.0.1:/images"), 7)  # no transport: NFS, as before
