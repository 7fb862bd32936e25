"""A console session on a real `serve --tls-cert` server (certificate made by openssl, loopback only): the
cookie is Secure and opens pages over HTTPS."""
import requests

from tests.server_stub.test_tls import certs, https, no_pins_left, server_args  # noqa: F401  (fixtures)


def test_sign_in_over_https_sets_a_secure_httponly_strict_cookie(server, https, certs):  # noqa: F811
    token = (server["data"] / "admin.token").read_text().strip()
    browser, trust = requests.Session(), str(certs["good"]["cert"])  # verify per call: env would override
    signed_in = browser.post(f"{https}/signin", data={"name": "admin", "password": token}, allow_redirects=False,
                             verify=trust, timeout=30)
    assert signed_in.status_code == 303
    cookie = next(c for c in browser.cookies if c.name == "imager_session")
    assert cookie.secure and cookie.has_nonstandard_attr("HttpOnly")
    assert "SameSite=Strict" in signed_in.headers["Set-Cookie"]
    page = browser.get(f"{https}/settings", allow_redirects=False, verify=trust, timeout=30)
    assert page.status_code == 200 and 'id="user-add-form"' in page.text
