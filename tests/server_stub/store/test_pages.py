"""The console's lists at 20,000 hosts: a page is searched, sorted and counted in SQL, on indexes."""
import time

import pytest

from server_stub.errors import Invalid

N = 20_000


@pytest.fixture
def big(store):
    with store.db.transaction():  # one transaction: 20,000 rows in well under a second
        store.db.conn.executemany(
            "INSERT INTO hosts(mac, name, created, group_name) VALUES (?, ?, ?, ?)",
            [(f"52:54:01:{i >> 16 & 255:02x}:{i >> 8 & 255:02x}:{i & 255:02x}", f"lab-{i:05d}", 1000.0 + i,
              f"room{i % 40}") for i in range(N)])
    return store


def test_a_search_returns_its_total_and_the_right_page(big):
    started = time.monotonic()
    rows, total = big.hosts_page("lab-123", sort="name", offset=5, limit=3)
    elapsed = time.monotonic() - started
    assert total == 100  # lab-12300 … lab-12399
    assert [r["name"] for r in rows] == ["lab-12305", "lab-12306", "lab-12307"]
    rows, total = big.hosts_page("52:54:01:00:04:D2")  # a MAC, any case: host 1234
    assert total == 1 and rows[0]["name"] == "lab-01234"
    assert elapsed < 1.0, f"a page took {elapsed:.2f} s"


def test_sorting_descending_by_creation_and_the_active_task(big):
    big.add_task("lab-19999", "inventory", None)
    rows, total = big.hosts_page(sort="created", descending=True, limit=2)
    assert total == N + 2  # the fixture's pc1 and pc2 too
    assert [r["name"] for r in rows] == ["pc2", "pc1"]  # added after the batch's fixed times
    rows, _ = big.hosts_page("lab-19999")
    assert (rows[0]["task_type"], rows[0]["task_state"]) == ("inventory", "queued")
    rows, total = big.hosts_page("ROOM39", sort="group", limit=1000)
    assert total == N // 40 and {r["group_name"] for r in rows} == {"room39"}


def test_like_wildcards_in_a_search_are_letters(big):
    assert big.hosts_page("lab_0")[1] == 0 and big.hosts_page("%")[1] == 0


@pytest.mark.parametrize("sort", ["name", "mac", "created", "group"])
def test_each_sort_of_the_whole_list_reads_an_index_not_a_temporary_sort(big, sort):
    """A page sorted without a search walks an index (no 'USE TEMP B-TREE FOR ORDER BY' over 20,000 rows)."""
    from server_stub.store.hosts import HOST_SORTS
    plan = big.db.all(f"EXPLAIN QUERY PLAN SELECT h.id FROM hosts h LEFT JOIN images i ON i.id = h.image_id "
                      f"ORDER BY {HOST_SORTS[sort]}, h.name LIMIT 50")
    details = " ".join(p["detail"] for p in plan)
    assert "USING INDEX" in details or "USING COVERING INDEX" in details, details


@pytest.mark.parametrize("kwargs, field", [({"sort": "mac; DROP TABLE hosts"}, "sort"), ({"limit": 0}, "limit"),
                                           ({"limit": 1001}, "limit"), ({"offset": -1}, "offset")])
def test_a_bad_page_request_names_its_field(big, kwargs, field):
    with pytest.raises(Invalid) as refused:
        big.hosts_page(**kwargs)
    assert refused.value.details == {"field": field}


def test_a_hosts_task_history_is_a_page_of_many_on_an_index(big):
    ids = big.db.all("SELECT id FROM hosts WHERE name LIKE 'lab-%' ORDER BY id")
    with big.db.transaction():  # 20,000 finished tasks, the last 30 of lab-00007
        big.db.conn.executemany(
            "INSERT INTO tasks(host_id, type, state, token, created) VALUES (?, 'inventory', 'done', 't', ?)",
            [(ids[7 if i >= N - 30 else i]["id"], float(i)) for i in range(N)])
    rows, total = big.tasks_page(host="lab-00007", state="done", limit=10)
    assert total == 31 and len(rows) == 10 and rows[0]["id"] > rows[-1]["id"]  # newest first
    plan = " ".join(p["detail"] for p in big.db.all(
        "EXPLAIN QUERY PLAN SELECT t.id FROM tasks t WHERE t.host_id = ? ORDER BY t.id DESC LIMIT 10", ids[7]["id"]))
    assert "tasks_by_host" in plan, plan
