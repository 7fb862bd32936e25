"""In a real browser: the hosts list with 20,000 hosts, paged and searched (the page holds one page only)."""
from __future__ import annotations

import time

from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

from tests.browser.conftest import sign_in, wait_for

HOSTS = 20_000


def host_name(n: int) -> str:
    return f"lab-{n:05d}"


def prepare_store(store) -> None:
    """20,000 hosts in one transaction, straight into the store, before the server starts."""
    now = time.time()
    with store.db.transaction():
        store.db.conn.executemany(
            "INSERT INTO hosts(mac, name, created) VALUES (?, ?, ?)",
            ((f"52:54:01:{n >> 16 & 255:02x}:{n >> 8 & 255:02x}:{n & 255:02x}", host_name(n), now)
             for n in range(HOSTS)))


def row_names(browser) -> list[str]:
    rows = browser.find_elements(By.CSS_SELECTOR, "#hosts-table tbody tr")
    return [r.find_elements(By.TAG_NAME, "td")[1].text for r in rows]


def test_twenty_thousand_hosts_page_and_search(server, browser):
    sign_in(browser, server, path="/hosts")
    total = browser.find_element(By.ID, "hosts-total").text
    assert f"{HOSTS} hosts" in total.replace(",", ""), total
    first = row_names(browser)
    assert first and first[0] == host_name(0) and len(first) < 500, "one page, sorted by name"
    browser.find_element(By.ID, "hosts-next").click()
    wait_for(browser, lambda d: "page=2" in d.current_url)
    second = row_names(browser)
    assert second[0] == host_name(len(first)), "page 2 starts where page 1 ended"
    assert "page 2 of" in browser.find_element(By.ID, "hosts-total").text

    search = browser.find_element(By.ID, "hosts-q")
    search.clear()
    search.send_keys("lab-1234", Keys.ENTER)
    wait_for(browser, lambda d: "q=lab-1234" in d.current_url)
    found = row_names(browser)
    assert found[0] == "lab-12340" and all(n.startswith("lab-1234") for n in found)
    assert "10 hosts matching" in browser.find_element(By.ID, "hosts-total").text  # lab-12340 … lab-12349
