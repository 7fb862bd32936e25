"""POST /api/images/adopt and ``imager-server image adopt`` against a real server process on loopback: a FOG
tree on the master adopted, skipped entries with their reason, refusals (bad bodies, a technician, an unknown
group, a master without a directory here) as 4xx, and the audit log."""
import requests

from tests.server_stub.cliproc import cli
from tests.server_stub.store.test_adopt import files
from tests.server_stub.test_api import admin

PASSWORD = "technician's long secret"


def fog_server(server, tmp_path):
    """Group fog, master node fogserver on a FOG /images tree here: win10, kiosk, an invalid name, a folder."""
    root = tmp_path / "images"
    files(root / "win10", d1_partitions=10, d1_mbr=512, d1p1_img=1000)
    files(root / "kiosk", kiosk_000=700)
    files(root / "not valid", d1_partitions=10)
    files(root / "dev", d1_partitions=10)  # an image of this name is defined below
    files(root / "postgres-backup", base_tar=10)
    (root / "shortcut").symlink_to("win10")
    assert admin(server, "POST", "/api/storage-groups", name="fog").status_code == 201
    assert admin(server, "POST", "/api/storage", name="fogserver", export="10.0.0.5:/images", group="fog",
                 rsync_target=str(root)).status_code == 201
    assert admin(server, "POST", "/api/images", name="dev", group="fog").status_code == 201
    return root


def technician_session(server):
    assert admin(server, "POST", "/api/users", name="tech", password=PASSWORD, role="technician").status_code == 201
    session = requests.Session()
    signed_in = session.post(f"{server['url']}/signin", data={"name": "tech", "password": PASSWORD},
                             allow_redirects=False, timeout=10)
    assert signed_in.status_code == 303
    return session


def test_adopt_over_the_api(server, tmp_path):
    fog_server(server, tmp_path)
    done = admin(server, "POST", "/api/images/adopt", group="fog")
    assert done.status_code == 200, done.text
    body = done.json()
    assert [(i["name"], i["type"], i["stored_bytes"]) for i in body["adopted"]] == [
        ("kiosk", "raw", 700), ("win10", "multipart", 1522)]
    assert [s["name"] for s in body["skipped"]] == ["dev", "not valid"]
    assert "exists already" in body["skipped"][0]["reason"] and "not a valid image name" in body["skipped"][1]["reason"]
    listed = {i["name"]: i for i in admin(server, "GET", "/api/images").json()}
    assert listed["win10"]["replicas"] == ["fogserver"] and listed["dev"]["replicas"] == []
    again = admin(server, "POST", "/api/images/adopt", group="fog").json()
    assert again["adopted"] == [] and [s["name"] for s in again["skipped"]] == ["dev", "kiosk", "not valid", "win10"]
    audit = admin(server, "GET", "/api/audit").json()["rows"]
    assert (audit[0]["action"], audit[0]["target"], audit[0]["outcome"]) == ("POST /api/images/adopt", "fog", "200")


def test_refusals_are_4xx_and_change_nothing(server, tmp_path):
    fog_server(server, tmp_path)
    url = server["url"] + "/api/images/adopt"
    for body, status in [({}, 400), ({"group": 5}, 400), ({"group": "fog", "dry": True}, 400),
                         ({"group": "nowhere"}, 404)]:
        refused = requests.post(url, json=body, headers=server["admin"], timeout=10)
        assert refused.status_code == status, (body, refused.text)
    for raw in (b"[1, 2]", b"{not json", b'"fog"'):
        refused = requests.post(url, data=raw, headers={**server["admin"], "Content-Type": "application/json"},
                                timeout=10)
        assert refused.status_code == 400, (raw, refused.text)
    assert requests.post(url, json={"group": "fog"}, timeout=10).status_code == 401
    forbidden = technician_session(server).post(url, json={"group": "fog"}, timeout=10)
    assert forbidden.status_code == 403 and "admin role" in forbidden.json()["error"]
    assert admin(server, "POST", "/api/storage-groups", name="remote").status_code == 201
    assert admin(server, "POST", "/api/storage", name="far", export="10.0.0.6:/images", group="remote",
                 rsync_target="backup@far:/images").status_code == 201
    conflict = admin(server, "POST", "/api/images/adopt", group="remote")
    assert conflict.status_code == 409 and "has no directory on this server" in conflict.json()["error"]
    assert [i["name"] for i in admin(server, "GET", "/api/images").json()] == ["dev"]


def test_adopt_with_the_cli(server, tmp_path):
    fog_server(server, tmp_path)
    done = cli(server, "image", "adopt", "--group", "fog")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "adopted 2 image(s):" and lines[1].split() == ["NAME", "TYPE", "SIZE", "CAPTURED", "DESCRIPTION"]
    assert lines[2].startswith("kiosk ") and lines[3].startswith("win10 ") and "1.5 KiB" in lines[3]
    assert lines[3].endswith(f"FOG image adopted from {tmp_path / 'images' / 'win10'}")
    assert lines[4:] == ["skipped dev: an image of this name exists already (group fog)",
                         "skipped not valid: not a valid image name (1-100 letters, digits, '.', '_' or '-', starting "
                         "with a letter or digit): rename it"]
    again = cli(server, "image", "adopt", "--group", "fog")
    assert again.returncode == 0 and again.stdout.startswith("adopted 0 image(s)\nskipped dev:")
    refused = cli(server, "image", "adopt", "--group", "nowhere")
    assert refused.returncode == 1 and "no storage group 'nowhere'" in refused.stderr
