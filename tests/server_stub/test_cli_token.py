"""Admin commands find the admin token where the server keeps it (its data directory), never beside the
installed code; a place the user names that holds none is said at once, and when no place holds one the
message names every place looked at."""
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from server_stub.cli_connection import USUAL_TOKEN_FILES, AdminCallFailed, find_admin_token
from tests.server_stub.cliproc import REPO, clean_env, cli


def listed(done):
    return done.returncode == 0 and done.stdout.startswith("ID")


def test_the_token_is_found_from_the_servers_data_dir(server, tmp_path):
    data = str(server["data"])
    empty = tmp_path / "elsewhere"
    empty.mkdir()
    assert listed(cli(server, "--data-dir", data, "host", "list", token=False, cwd=empty))
    for variable in ("IMAGER_DATA_DIR", "IMAGER_DATA"):  # the second is what `serve` reads for its default
        assert listed(cli(server, "host", "list", token=False, cwd=empty, env=clean_env(**{variable: data})))
    assert listed(cli(server, "host", "list", token=False, cwd=server["data"]))  # ./admin.token
    checkout = tmp_path / "checkout"
    (checkout / "var" / "server").mkdir(parents=True)  # `serve` started in a checkout, as the README does
    shutil.copy(server["data"] / "admin.token", checkout / "var" / "server" / "admin.token")
    assert listed(cli(server, "host", "list", token=False, cwd=checkout))


def test_options_come_before_the_environment(server, tmp_path):
    wrong = clean_env(IMAGER_ADMIN_TOKEN="not-the-token", IMAGER_DATA_DIR=str(tmp_path))
    assert listed(cli(server, "host", "list", env=wrong))  # --token-file wins
    assert listed(cli(server, "--data-dir", str(server["data"]), "host", "list", token=False, env=wrong))
    refused = cli(server, "host", "list", token=False, env=wrong)
    assert refused.returncode == 1 and "HTTP 401" in refused.stderr  # the variable's token was used, and is wrong
    token = (server["data"] / "admin.token").read_text().strip()
    assert listed(cli(server, "host", "list", token=False, env=clean_env(IMAGER_ADMIN_TOKEN=token)))


def test_no_token_anywhere_names_every_place_looked_at(server, tmp_path):
    if USUAL_TOKEN_FILES[0].exists():
        pytest.skip(f"{USUAL_TOKEN_FILES[0]} exists on this machine")
    done = cli(server, "host", "list", token=False, cwd=tmp_path)
    assert done.returncode == 1 and done.stdout == "" and "Traceback" not in done.stderr
    assert done.stderr.startswith("imager-server: no admin token found: looked for --token-file, --data-dir, "
                                  "$IMAGER_ADMIN_TOKEN, $IMAGER_DATA_DIR, $IMAGER_DATA, then "
                                  "/var/lib/imager/admin.token, admin.token, var/server/admin.token;")
    assert "--data-dir DIR" in done.stderr


def test_a_named_place_without_a_token_is_said_at_once(server, tmp_path):
    (tmp_path / "admin.token").write_text("")  # a first start that failed half-way
    for argv, env, named in ((("--data-dir", str(tmp_path / "nowhere")), None, "--data-dir"),
                             ((), clean_env(IMAGER_DATA_DIR=str(tmp_path / "nowhere")), "$IMAGER_DATA_DIR"),
                             (("--token-file", str(tmp_path / "missing")), None, "--token-file")):
        # ./admin.token would do (cwd), but the place the user named comes first and has none
        done = cli(server, *argv, "host", "list", token=False, cwd=server["data"], env=env)
        assert done.returncode == 1 and done.stderr.startswith("imager-server: no admin token at ")
        assert f"(named by {named})" in done.stderr
    empty = cli(server, "--data-dir", str(tmp_path), "host", "list", token=False)
    assert empty.returncode == 1 and "admin.token (named by --data-dir) is empty" in empty.stderr


def test_the_lookup_order_as_a_function(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for name in ("file", "dir", "env_dir"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "admin.token").write_text(f"from-{name}\n")
    file, data, env_dir = (str(tmp_path / n) for n in ("file", "dir", "env_dir"))
    env = {"IMAGER_ADMIN_TOKEN": "from-variable", "IMAGER_DATA_DIR": env_dir}
    assert find_admin_token(file + "/admin.token", data, env) == "from-file"
    assert find_admin_token(None, data, env) == "from-dir"
    assert find_admin_token(None, None, env) == "from-variable"
    assert find_admin_token(None, None, {"IMAGER_DATA_DIR": env_dir, "IMAGER_DATA": data}) == "from-env_dir"
    assert find_admin_token(None, None, {"IMAGER_DATA": data}) == "from-dir"
    Path("admin.token").write_text("from-cwd")
    if not USUAL_TOKEN_FILES[0].exists():
        assert find_admin_token(None, None, {}) == "from-cwd"
    (tmp_path / "blank").write_text(" \n")
    with pytest.raises(AdminCallFailed, match="is empty"):
        find_admin_token(str(tmp_path / "blank"), None, {})
    with pytest.raises(AdminCallFailed, match=r"no admin token at .*nothing/admin.token \(named by \$IMAGER_DATA_DIR\)"):
        find_admin_token(None, None, {"IMAGER_DATA_DIR": str(tmp_path / "nothing")})


def test_data_dir_before_serve_is_not_silently_ignored(tmp_path):
    done = subprocess.run([sys.executable, "-m", "server_stub", "--data-dir", str(tmp_path), "serve"],
                          capture_output=True, text=True, timeout=30, cwd=REPO, env=clean_env())
    assert done.returncode == 2 and "imager-server serve --data-dir DIR" in done.stderr
    assert list(tmp_path.iterdir()) == []  # no server started anywhere
