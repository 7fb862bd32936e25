import pytest

from server_stub.errors import Invalid
from server_stub.store.menu import password_matches


def test_the_technician_password_is_kept_as_a_hash_and_can_be_removed(store):
    assert store.technician_password() is None
    store.set_technician_password("correct horse")
    stored = store.technician_password()
    assert stored.startswith("pbkdf2_sha256$") and "correct horse" not in stored
    assert password_matches(stored, "correct horse") and not password_matches(stored, "wrong horse")
    store.set_technician_password(None)
    assert store.technician_password() is None


@pytest.mark.parametrize("password", ["short", "tab\tinside", 12345678])
def test_a_weak_or_unprintable_password_is_refused_and_the_old_one_stays(store, password):
    store.set_technician_password("correct horse")
    with pytest.raises(Invalid, match="at least 8 printable"):
        store.set_technician_password(password)
    assert password_matches(store.technician_password(), "correct horse")


def test_a_malformed_stored_hash_matches_nothing():
    assert not password_matches("garbage", "x") and not password_matches("md5$1$00$00", "x")
