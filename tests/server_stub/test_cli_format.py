"""The one formatter every admin command prints through (pure logic: no server needed)."""
import time

import pytest

from server_stub.cli_format import Answer, cell, computed, human_size, local_time, output, record, table


@pytest.fixture
def india(monkeypatch):
    """The process's local time zone made UTC+05:30 (POSIX TZ form: no tz database needed)."""
    monkeypatch.setenv("TZ", "IST-5:30")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.mark.parametrize("size, shown", [(0, "0 B"), (1023, "1023 B"), (1024, "1.0 KiB"), (6005, "5.9 KiB"),
                                         (5 * 2**20 + 2**19, "5.5 MiB"), (2**30, "1.0 GiB"),
                                         (3 * 2**40, "3.0 TiB"), (None, "")])
def test_sizes_are_binary_units(size, shown):
    assert human_size(size) == shown


def test_times_are_local(india):
    assert local_time(0) == "1970-01-01 05:30:00"
    assert local_time(1764900000.75) == "2025-12-05 07:30:00"
    assert local_time("2025-12-05T02:00:00+00:00") == "2025-12-05 07:30:00"
    assert local_time("2025-12-05T02:00:00") == "2025-12-05 07:30:00"  # no zone: the server's UTC
    assert local_time(None) == "" and local_time("soon") == "soon"


def test_a_table_picks_the_view_of_each_field_by_its_name(india):
    rows = [{"id": 1, "name": "win10", "created": 0, "stored_bytes": 6005, "error": "line one\nline two"},
            {"id": 22, "name": "ubuntu", "created": None, "stored_bytes": None, "error": None}]
    shown = table(rows, ["id", "name", "created", "stored_bytes", computed("where", lambda r: r["name"][:3]),
                         "error"]).splitlines()
    assert shown == ["ID  NAME    CREATED              STORED_BYTES  WHERE  ERROR",
                     "1   win10   1970-01-01 05:30:00  5.9 KiB       win    line one line two",
                     "22  ubuntu                                     ubu"]


def test_json_is_the_answer_unchanged_text_is_the_view():
    data = {"name": "pc1", "created": 0, "memory_bytes": 2**33, "inventory": None}
    assert output(data, as_json=True) == '{\n  "name": "pc1",\n  "created": 0,\n  "memory_bytes": 8589934592,\n' \
                                         '  "inventory": null\n}'
    assert "memory_bytes: 8.0 GiB" in output(data, as_json=False).splitlines()
    assert record(data, ["name", "inventory"]) == "name:      pc1\ninventory: -"
    assert output(Answer([1], lambda: "one"), as_json=False) == "one"
    assert cell("replicas", ["a", "b"]) == "a, b" and cell("options", {"mode": "full"}) == '{"mode":"full"}'
    assert cell("master", True) == "yes" and cell("stored_bytes", 2**20) == "1.0 MiB"
    with pytest.raises(ValueError):  # strict JSON: what the API never sends is not printed either
        output({"x": float("nan")}, as_json=True)
