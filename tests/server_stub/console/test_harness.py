"""The console test fixtures themselves: signing in works, roles differ, the form token is sent."""
from tests.server_stub.console.pagetools import parse


def test_admin_signs_in_and_sees_the_dashboard(console):
    page = console.get("/")
    assert page.status == 200 and console.csrf and page.csrf == console.csrf
    assert "admin" in page.by_id("main").text or "admin" in page.doc.text


def test_technician_and_anonymous_browsers_are_separate(technician, anonymous):
    assert technician.get("/").status == 200
    assert anonymous.get("/").status == 302


def test_pagetools_reads_tables_and_forms():
    doc = parse('<form id="f"><input name="a" value="1"><input type="checkbox" name="h" value="x" checked>'
                '<input type="checkbox" name="h" value="y" checked><input type="checkbox" name="h" value="z">'
                '<select name="s"><option value="1">one<option value="2" selected>two</select></form>'
                '<table><tbody><tr><td>a <b>b</b></td><td>c</td></tr></tbody></table>')
    assert doc.by_id("f").form_values() == {"a": "1", "h": ["x", "y"], "s": "2"}
    assert doc.find("table").rows() == [["a b", "c"]]
