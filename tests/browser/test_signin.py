"""In a real browser: signing in and out, a technician kept out of admin pages, a forged POST refused."""
from __future__ import annotations

from selenium.webdriver.common.by import By

from tests.browser.conftest import csrf_of, sign_in, sign_in_technician, wait_for

# A POST as a page's script (or another page's forged form) would send it: the browser's cookie, our fields.
FORGED_POST = """
const [path, fields, done] = arguments;
fetch(path, {method: "POST", body: new URLSearchParams(fields), redirect: "manual", credentials: "same-origin"})
  .then(r => r.text().then(t => done([r.status, t]))).catch(e => done([0, String(e)]));
"""


def test_sign_in_and_out(server, browser):
    browser.delete_all_cookies()
    browser.get(server.url + "/")
    assert "/signin" in browser.current_url, "a page without a session sends the browser to sign in"
    # A wrong password: the form again, with the message, the name kept.
    browser.find_element(By.ID, "name").send_keys("admin")
    browser.find_element(By.ID, "password").send_keys("not-the-token")
    browser.find_element(By.CSS_SELECTOR, "form[action='/signin'] button[type=submit]").click()
    error = wait_for(browser, lambda d: d.find_elements(By.ID, "signin-error"))[0]
    assert error.text and browser.find_element(By.ID, "name").get_attribute("value") == "admin"

    sign_in(browser, server)
    assert browser.current_url == server.url + "/"
    assert "admin" in browser.find_element(By.CSS_SELECTOR, "header .who").text
    session = browser.get_cookie("imager_session")
    assert session and session["httpOnly"], "the session is an HttpOnly cookie"
    browser.find_element(By.CSS_SELECTOR, "form.signout button[type=submit]").click()
    wait_for(browser, lambda d: "/signin" in d.current_url)
    browser.get(server.url + "/")
    assert "/signin" in browser.current_url, "signed out: no page without signing in again"
    # The session ended on the server: a copy of the old cookie opens nothing either.
    browser.add_cookie({k: session[k] for k in ("name", "value", "path")})
    browser.get(server.url + "/")
    assert "/signin" in browser.current_url, "the old session cookie still opened a page"


def test_a_technician_is_refused_an_admin_page(server, browser):
    sign_in_technician(browser, server)
    assert "technician" in browser.find_element(By.CSS_SELECTOR, "header .who").text
    browser.get(server.url + "/settings")
    heading = browser.find_element(By.TAG_NAME, "h1").text
    assert heading == "Not allowed", heading
    assert "admin role" in browser.find_element(By.CSS_SELECTOR, "main .error").text
    # The technician may still see what runs.
    browser.get(server.url + "/")
    assert browser.find_element(By.TAG_NAME, "h1").text.startswith("Dashboard")
    # An admin's form posted by a technician, with a valid token: refused, nothing added.
    status, page = browser.execute_async_script(FORGED_POST, "/hosts", {"mac": "52:54:00:0f:0f:0e",
                                                                       "name": "by-tech", "csrf": csrf_of(browser)})
    assert status == 403 and "admin role" in page, (status, page[:300])
    assert all(h["name"] != "by-tech" for h in server.api("GET", "/api/hosts", expect=200))



def test_a_forged_post_without_the_token_is_refused(server, browser):
    sign_in(browser, server)
    token = csrf_of(browser)
    before = server.api("GET", "/api/hosts", expect=200)
    fields = {"mac": "52:54:00:0f:0f:0f", "name": "forged"}
    for sent in (fields, {**fields, "csrf": "x" * len(token)}):
        status, page = browser.execute_async_script(FORGED_POST, "/hosts", sent)
        assert status == 403 and "Form expired" in page, (status, page[:300])
    # A sign-out form without the token does not sign the browser out either.
    status, page = browser.execute_async_script(FORGED_POST, "/signout", {})
    assert status == 403
    assert server.api("GET", "/api/hosts", expect=200) == before, "the store is unchanged"
    browser.get(server.url + "/")
    assert browser.find_element(By.TAG_NAME, "h1").text.startswith("Dashboard"), "still signed in"
    # The real token is accepted by the same route (the refusal was the token, not the route).
    status, _ = browser.execute_async_script(FORGED_POST, "/hosts", {**fields, "csrf": token})
    assert status in (303, 0), status  # 0: fetch reports a manual redirect as an opaque response
    assert any(h["name"] == "forged" for h in server.api("GET", "/api/hosts", expect=200))
