"""The Images page's "Adopt FOG / Clonezilla images" form: a group's master tree adopted, the result shown
once after the redirect, a refusal next to the form, admins only, anti-forgery token required, audited."""
from server_stub.console.images import adopted_notice
from tests.server_stub.store.test_adopt import files


def fog_tree(console, tmp_path):
    root = tmp_path / "images"
    files(root / "win10", d1_partitions=10, d1p1_img=100)
    files(root / "ubuntu", **{"clonezilla-img": 1, "sda__pt_sf": 1})
    files(root / "bad name", d1_partitions=10)
    files(root / "music", song_mp3=1)
    console.store.add_group("fog")
    console.store.add_storage("fogserver", "10.0.0.5:/images", group="fog", rsync_target=str(root))
    console.store.add_storage("plain", "10.0.0.6:/images")  # group default, no directory here
    return root


def test_adopt_form_adopts_and_says_what_was_skipped(console, tmp_path):
    fog_tree(console, tmp_path)
    form = console.get("/images").form("adopt-images-form")
    assert sorted(o.text for o in form.find_all("option")) == ["default", "fog"]
    done = console.post("/images/adopt", {"group": "fog"})
    assert done.status == 303 and done.location.startswith("/images?")
    assert done.notice == ("Group fog: adopted ubuntu, win10. Skipped: bad name (not a valid image name (1-100 "
                           "letters, digits, '.', '_' or '-', starting with a letter or digit): rename it).")
    page = console.get(done.location)
    assert page.doc.find("p", **{"class": "notice"}).text == done.notice
    assert [r[0].split()[0] for r in page.by_id("images-table").rows()] == ["ubuntu", "win10"]
    assert console.store.image("win10")["replicas"] == ["fogserver"]
    again = console.post("/images/adopt", {"group": "fog"})
    assert again.notice.startswith("Group fog: no new image to adopt. Skipped: bad name (")
    assert "ubuntu (an image of this name exists already (group fog))" in again.notice
    entry = console.store.accounts.audit_page()[0][0]
    assert (entry["action"], entry["target"], entry["outcome"]) == ("console: adopt images", "fog", "303")


def test_a_refusal_is_shown_next_to_the_form(console, tmp_path):
    fog_tree(console, tmp_path)
    refused = console.post("/images/adopt", {"group": "default"})
    assert refused.status == 409
    assert "node plain, has no directory on this server" in refused.by_id("adopt-images-error").text
    assert refused.form("adopt-images-form").find("option", selected="").text == "default"
    unknown = console.post("/images/adopt", {"group": "nowhere"})
    assert unknown.status == 404 and "no storage group 'nowhere'" in unknown.by_id("adopt-images-error").text
    assert console.store.images() == []


def test_only_admins_with_the_forms_token_adopt(console, technician, tmp_path):
    fog_tree(console, tmp_path)
    assert not technician.get("/images").doc.has_id("adopt-images-form")
    assert technician.post("/images/adopt", {"group": "fog"}).status == 403
    assert console.post("/images/adopt", {"group": "fog"}, csrf=False).status == 403
    assert console.store.images() == []


def test_a_long_result_is_cut_in_the_notice():
    done = {"adopted": [{"name": f"img{i:02}"} for i in range(13)], "skipped": []}
    assert adopted_notice("g", done) == ("Group g: adopted img00, img01, img02, img03, img04, img05, img06, img07, "
                                         "img08, img09 and 3 more.")
