"""The history's CSV: a header row, RFC 4180 quoting, formula injection defused, times in ISO 8601."""
import csv
import datetime
import io

import pytest

from server_stub.reports_csv import COLUMNS, history_csv, safe_cell


def test_the_header_row_then_one_quoted_line_a_task():
    text = history_csv([{"id": 7, "host": "pc,1", "error": 'said "no"\nthen stopped', "bytes": 10,
                         "created": datetime.datetime(2026, 3, 10, 8, 30, tzinfo=datetime.timezone.utc).timestamp()}])
    lines = text.split("\r\n")
    assert lines[0] == ",".join(COLUMNS) and text.endswith("\r\n")
    row = next(csv.DictReader(io.StringIO(text, newline="")))
    assert (row["id"], row["host"], row["error"], row["bytes"], row["image"]) == \
        ("7", "pc,1", 'said "no"\nthen stopped', "10", "")
    assert datetime.datetime.fromisoformat(row["created"]) == \
        datetime.datetime(2026, 3, 10, 8, 30, tzinfo=datetime.timezone.utc)
    assert '"pc,1"' in text and '"said ""no""' in text


@pytest.mark.parametrize("evil", ["=HYPERLINK(\"http://x\")", "+1+1", "-2+3", "@SUM(A1)", "\tx", "\rx"])
def test_a_cell_a_spreadsheet_would_run_gets_a_leading_quote(evil):
    assert safe_cell(evil) == "'" + evil
    header, data = csv.reader(io.StringIO(history_csv([{"host": evil, "queued_by": evil}]), newline=""))
    assert header[0] == "id"
    assert data[COLUMNS.index("host")] == "'" + evil and data[COLUMNS.index("queued_by")] == "'" + evil


def test_plain_text_and_numbers_stay_as_they_are():
    assert [safe_cell(v) for v in ("pc-1", "a=b", 5, 2.5, None, True)] == ["pc-1", "a=b", "5", "2.5", "", "yes"]
