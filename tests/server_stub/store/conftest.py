import pytest

from server_stub.store import Store


@pytest.fixture
def store(tmp_path):
    s = Store(str(tmp_path / "store.sqlite3"))
    s.add_storage("main", "10.0.0.1:/images", rsync_target="/srv/images")
    s.add_host("52:54:00:aa:bb:01", "pc1")
    s.add_host("52:54:00:aa:bb:02", "pc2")
    s.add_image("win10", "main")
    yield s
    s.close()
