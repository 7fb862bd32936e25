import sqlite3

import pytest

from server_stub.store.database import Database


class Boom(Exception):
    pass


@pytest.fixture
def db(tmp_path):
    d = Database(str(tmp_path / "db.sqlite3"))
    yield d
    d.close()


def names(db):
    return [r["name"] for r in db.all("SELECT name FROM storage_groups ORDER BY name")]


def test_a_failure_inside_a_transaction_undoes_every_write_in_it(db):
    with pytest.raises(Boom):
        with db.transaction():
            db.execute("INSERT INTO storage_groups(name, created) VALUES ('a', 0)")
            db.execute("INSERT INTO storage_groups(name, created) VALUES ('b', 0)")
            raise Boom()
    assert names(db) == []
    assert not db.conn.in_transaction


def test_writes_are_seen_by_another_connection_only_after_the_outermost_block(db, tmp_path):
    other = sqlite3.connect(str(tmp_path / "db.sqlite3"))
    with db.transaction():
        with db.transaction():
            db.execute("INSERT INTO storage_groups(name, created) VALUES ('a', 0)")
        assert other.execute("SELECT COUNT(*) FROM storage_groups").fetchone()[0] == 0, "inner block committed"
    assert other.execute("SELECT COUNT(*) FROM storage_groups").fetchone()[0] == 1
    other.close()


def test_a_failed_inner_block_is_undone_alone_when_its_caller_recovers(db):
    with db.transaction():
        db.execute("INSERT INTO storage_groups(name, created) VALUES ('outer', 0)")
        with pytest.raises(Boom):
            with db.transaction():
                db.execute("INSERT INTO storage_groups(name, created) VALUES ('inner', 0)")
                raise Boom()
        db.execute("INSERT INTO storage_groups(name, created) VALUES ('after', 0)")
    assert names(db) == ["after", "outer"]


def test_a_failed_inner_block_that_nobody_catches_undoes_the_outer_one_too(db):
    with pytest.raises(Boom):
        with db.transaction():
            db.execute("INSERT INTO storage_groups(name, created) VALUES ('outer', 0)")
            with db.transaction():
                raise Boom()
    assert names(db) == []
    # and the next transaction starts clean (no savepoint or depth left over)
    with db.transaction():
        db.execute("INSERT INTO storage_groups(name, created) VALUES ('next', 0)")
    assert names(db) == ["next"] and not db.conn.in_transaction
