"""The database's shape: the first release's schema, then every change since, in order.

A new database gets SCHEMA, then every migration; an older one the migrations past its
``PRAGMA user_version``. Append only: never edit a migration that shipped, databases in the field ran it.
"""
from __future__ import annotations

import sqlite3

SCHEMA = """
CREATE TABLE IF NOT EXISTS hosts (
    id INTEGER PRIMARY KEY, mac TEXT UNIQUE NOT NULL, name TEXT UNIQUE NOT NULL, created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS storage_nodes (
    id INTEGER PRIMARY KEY, name TEXT UNIQUE NOT NULL, export TEXT NOT NULL,
    options TEXT NOT NULL DEFAULT 'vers=4.1', max_clients INTEGER NOT NULL DEFAULT 10, created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS images (
    id INTEGER PRIMARY KEY, name TEXT UNIQUE NOT NULL, storage_id INTEGER NOT NULL REFERENCES storage_nodes(id),
    type TEXT NOT NULL DEFAULT 'resizable', description TEXT NOT NULL DEFAULT '', created REAL NOT NULL,
    captured REAL, stored_bytes INTEGER);
CREATE TABLE IF NOT EXISTS tasks (
    id INTEGER PRIMARY KEY, host_id INTEGER NOT NULL REFERENCES hosts(id), type TEXT NOT NULL,
    image_id INTEGER REFERENCES images(id), disk TEXT, partition INTEGER, after TEXT NOT NULL DEFAULT 'reboot',
    state TEXT NOT NULL, token TEXT NOT NULL, created REAL NOT NULL, started REAL, finished REAL,
    progress TEXT, error TEXT, log TEXT, result TEXT);
-- A host runs one task at a time.
CREATE UNIQUE INDEX IF NOT EXISTS one_active_task_per_host ON tasks(host_id) WHERE state IN ('queued', 'running');
CREATE TABLE IF NOT EXISTS boot_log (
    id INTEGER PRIMARY KEY, time REAL NOT NULL, mac TEXT NOT NULL, decision TEXT NOT NULL, task_id INTEGER);
"""

MIGRATIONS = [
    # 1: registration (how a host came to be, its assigned image and group) and the latest inventory.
    """
    ALTER TABLE hosts ADD COLUMN registered TEXT NOT NULL DEFAULT 'admin';
    ALTER TABLE hosts ADD COLUMN image_id INTEGER REFERENCES images(id);
    ALTER TABLE hosts ADD COLUMN group_name TEXT;
    CREATE TABLE host_inventory (
        host_id INTEGER PRIMARY KEY REFERENCES hosts(id), collected REAL NOT NULL, task_id INTEGER,
        data TEXT NOT NULL);
    """,
    # 2: storage groups (nodes, one master), the node each task uses, replication jobs. Every node that existed
    # becomes the master of its own group, named like it, and its images that group's, so each image stays on the
    # one node that holds it; running tasks keep their node.
    """
    CREATE TABLE storage_groups (id INTEGER PRIMARY KEY, name TEXT UNIQUE NOT NULL, created REAL NOT NULL);
    ALTER TABLE storage_nodes ADD COLUMN group_id INTEGER REFERENCES storage_groups(id);
    ALTER TABLE storage_nodes ADD COLUMN master INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE storage_nodes ADD COLUMN rsync_target TEXT;
    ALTER TABLE images ADD COLUMN group_id INTEGER REFERENCES storage_groups(id);
    ALTER TABLE tasks ADD COLUMN storage_id INTEGER REFERENCES storage_nodes(id);
    ALTER TABLE tasks ADD COLUMN waited REAL;
    INSERT INTO storage_groups(name, created) SELECT name, created FROM storage_nodes ORDER BY id;
    UPDATE storage_nodes SET master = 1,
        group_id = (SELECT g.id FROM storage_groups g WHERE g.name = storage_nodes.name);
    UPDATE images SET group_id = (SELECT s.group_id FROM storage_nodes s WHERE s.id = images.storage_id);
    UPDATE tasks SET storage_id = (SELECT i.storage_id FROM images i WHERE i.id = tasks.image_id)
        WHERE state = 'running';
    CREATE UNIQUE INDEX one_master_per_group ON storage_nodes(group_id) WHERE master = 1;
    CREATE INDEX tasks_by_node ON tasks(storage_id, state);
    CREATE TABLE replication_jobs (
        id INTEGER PRIMARY KEY, image_id INTEGER NOT NULL REFERENCES images(id),
        source_id INTEGER NOT NULL REFERENCES storage_nodes(id), node_id INTEGER NOT NULL REFERENCES storage_nodes(id),
        state TEXT NOT NULL, version TEXT, bytes INTEGER, error TEXT, created REAL NOT NULL, started REAL,
        finished REAL);
    CREATE INDEX replication_by_node ON replication_jobs(node_id, state);
""",
    # 3: multicast sessions and their clients (server_stub/store/multicast.py).
    """
    CREATE TABLE multicast_sessions (
        id INTEGER PRIMARY KEY, image_id INTEGER NOT NULL REFERENCES images(id), state TEXT NOT NULL,
        min_receivers INTEGER NOT NULL, max_wait INTEGER NOT NULL, rate INTEGER, interface TEXT,
        portbase INTEGER NOT NULL, image_dir TEXT NOT NULL, version TEXT NOT NULL, files TEXT NOT NULL,
        storage_id INTEGER REFERENCES storage_nodes(id), go INTEGER NOT NULL DEFAULT 0, created REAL NOT NULL,
        first_ready REAL, started REAL, finished REAL, current TEXT, sender_pid INTEGER, detail TEXT, error TEXT);
    CREATE TABLE multicast_clients (
        task_id INTEGER PRIMARY KEY REFERENCES tasks(id),
        session_id INTEGER NOT NULL REFERENCES multicast_sessions(id), state TEXT NOT NULL, address TEXT,
        reason TEXT, updated REAL NOT NULL);
    CREATE INDEX multicast_clients_by_session ON multicast_clients(session_id);
""",
    # 4: the technician's menu: task options (wipe mode) and origin, the technician password (store/menu.py).
    """
ALTER TABLE tasks ADD COLUMN options TEXT;
ALTER TABLE tasks ADD COLUMN origin TEXT NOT NULL DEFAULT 'admin';
CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
""",
    # 5: the web console's accounts, their sessions, and the audit log (store/accounts.py).
    """
    CREATE TABLE users (
        id INTEGER PRIMARY KEY, name TEXT UNIQUE NOT NULL, role TEXT NOT NULL, password_hash TEXT NOT NULL,
        created REAL NOT NULL, password_changed REAL NOT NULL);
    CREATE TABLE web_sessions (
        token_hash TEXT PRIMARY KEY, user_id INTEGER REFERENCES users(id) ON DELETE CASCADE,
        actor TEXT NOT NULL, role TEXT NOT NULL, csrf TEXT NOT NULL, address TEXT, created REAL NOT NULL,
        expires REAL NOT NULL);
    CREATE INDEX web_sessions_by_expiry ON web_sessions(expires);
    CREATE TABLE audit_log (
        id INTEGER PRIMARY KEY, time REAL NOT NULL, actor TEXT NOT NULL, role TEXT NOT NULL, via TEXT NOT NULL,
        action TEXT NOT NULL, target TEXT NOT NULL DEFAULT '', outcome TEXT NOT NULL, address TEXT);
    CREATE INDEX audit_by_time ON audit_log(time);
""",
    # 6: the console's lists: hosts and tasks sorted, filtered and paged in SQL (store/hosts.py hosts_page,
    # store/tasks.py tasks_page); a deleted image's name kept on the tasks that used it.
    """
    CREATE INDEX hosts_by_created ON hosts(created);
    CREATE INDEX hosts_by_group ON hosts(group_name);
    CREATE INDEX hosts_by_image ON hosts(image_id);
    CREATE INDEX hosts_by_registered ON hosts(registered);
    CREATE INDEX tasks_by_host ON tasks(host_id, id);
    CREATE INDEX tasks_by_state ON tasks(state, id);
    CREATE INDEX tasks_by_type ON tasks(type, id);
    CREATE INDEX tasks_by_image ON tasks(image_id, id);
    CREATE INDEX boot_log_by_mac ON boot_log(mac, id);
    ALTER TABLE tasks ADD COLUMN image_name TEXT;
""",
    # 7: task claims (docs/security.md#task-claims): when and from where the boot script's claim was exchanged for
    # the token, and the refused second claims. Running tasks' clients, and the menu's tasks, hold their token
    # already: claimed.
    """
    ALTER TABLE tasks ADD COLUMN claimed REAL;
    ALTER TABLE tasks ADD COLUMN claimed_from TEXT;
    ALTER TABLE tasks ADD COLUMN claims_refused INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE tasks ADD COLUMN claim_refused_at REAL;
    ALTER TABLE tasks ADD COLUMN claim_refused_from TEXT;
    UPDATE tasks SET claimed = started, claimed_from = 'before claims' WHERE state = 'running';
    UPDATE tasks SET claimed = created, claimed_from = 'menu' WHERE origin = 'menu' AND state = 'queued';
""",
    # 8: attempt limits that survive a restart: menu logins and registrations per MAC and address (store/limits.py).
    """
    CREATE TABLE limit_attempts (id INTEGER PRIMARY KEY, key TEXT NOT NULL, time REAL NOT NULL);
    CREATE INDEX limit_attempts_by_key ON limit_attempts(key, time);
    CREATE INDEX limit_attempts_by_time ON limit_attempts(time);
""",
    # 9: who queued each task (a console user, "admin" for the admin token, the technician's menu); older tasks
    # have none and read "unknown" (server_stub/store/reports.py).
    """
    ALTER TABLE tasks ADD COLUMN queued_by TEXT;
""",
    # 10: post-deploy scripts (store/scripts.py): the script's bytes and the SHA-256 the server computed; each
    # attachment to an image or to a host group (hosts.group_name) with its order, timeout and failure policy.
    """
    CREATE TABLE scripts (
        id INTEGER PRIMARY KEY, name TEXT UNIQUE NOT NULL, description TEXT NOT NULL DEFAULT '',
        content BLOB NOT NULL, sha256 TEXT NOT NULL, size INTEGER NOT NULL, created REAL NOT NULL,
        created_by TEXT NOT NULL DEFAULT '');
    CREATE TABLE script_attachments (
        id INTEGER PRIMARY KEY, script_id INTEGER NOT NULL REFERENCES scripts(id) ON DELETE CASCADE,
        image_id INTEGER REFERENCES images(id) ON DELETE CASCADE, host_group TEXT,
        position INTEGER NOT NULL, timeout INTEGER NOT NULL, policy TEXT NOT NULL CHECK (policy IN ('fail', 'warn')),
        CHECK ((image_id IS NULL) <> (host_group IS NULL)),
        UNIQUE (script_id, image_id), UNIQUE (script_id, host_group));
    CREATE INDEX script_attachments_by_image ON script_attachments(image_id);
    CREATE INDEX script_attachments_by_group ON script_attachments(host_group);
""",
    # 11: host groups (store/hostgroups.py): a host in any number of groups, as in FOG. A host's group_name (set by
    # a full registration or host set --group) is kept as a membership of the group of that name, created if
    # needed, by the triggers below, whoever writes it; the groups hosts named so far become groups. A group's
    # rename or removal carries over to the scripts attached to it. Wake-on-LAN targets (store/wake.py): one per
    # storage group, and the server's default (storage_group_id NULL).
    """
    CREATE TABLE host_groups (
        id INTEGER PRIMARY KEY, name TEXT UNIQUE NOT NULL, description TEXT NOT NULL DEFAULT '',
        created REAL NOT NULL);
    CREATE TABLE host_group_members (
        group_id INTEGER NOT NULL REFERENCES host_groups(id) ON DELETE CASCADE,
        host_id INTEGER NOT NULL REFERENCES hosts(id) ON DELETE CASCADE, added REAL NOT NULL,
        PRIMARY KEY (group_id, host_id));
    CREATE INDEX host_group_members_by_host ON host_group_members(host_id);
    INSERT INTO host_groups(name, created)
        SELECT group_name, MIN(created) FROM hosts WHERE group_name IS NOT NULL GROUP BY group_name;
    INSERT INTO host_group_members(group_id, host_id, added)
        SELECT g.id, h.id, h.created FROM hosts h JOIN host_groups g ON g.name = h.group_name;
    CREATE TRIGGER host_group_of_new_host AFTER INSERT ON hosts WHEN NEW.group_name IS NOT NULL BEGIN
        INSERT OR IGNORE INTO host_groups(name, created) VALUES (NEW.group_name, NEW.created);
        INSERT OR IGNORE INTO host_group_members(group_id, host_id, added)
            SELECT id, NEW.id, NEW.created FROM host_groups WHERE name = NEW.group_name;
    END;
    CREATE TRIGGER host_group_name_changed AFTER UPDATE OF group_name ON hosts
        WHEN NEW.group_name IS NOT OLD.group_name BEGIN
        DELETE FROM host_group_members WHERE host_id = NEW.id
            AND group_id = (SELECT id FROM host_groups WHERE name = OLD.group_name);
        INSERT OR IGNORE INTO host_groups(name, created)
            SELECT NEW.group_name, (julianday('now') - 2440587.5) * 86400.0 WHERE NEW.group_name IS NOT NULL;
        INSERT OR IGNORE INTO host_group_members(group_id, host_id, added)
            SELECT id, NEW.id, (julianday('now') - 2440587.5) * 86400.0 FROM host_groups WHERE name = NEW.group_name;
    END;
    CREATE TRIGGER host_group_renamed AFTER UPDATE OF name ON host_groups BEGIN
        UPDATE script_attachments SET host_group = NEW.name WHERE host_group = OLD.name;
    END;
    CREATE TRIGGER host_group_removed BEFORE DELETE ON host_groups BEGIN
        DELETE FROM script_attachments WHERE host_group = OLD.name;
    END;
    CREATE TABLE wake_targets (
        id INTEGER PRIMARY KEY, storage_group_id INTEGER UNIQUE REFERENCES storage_groups(id) ON DELETE CASCADE,
        broadcast TEXT, interface TEXT, updated REAL NOT NULL, CHECK (broadcast IS NOT NULL OR interface IS NOT NULL));
""",
    # 12: schedules (store/schedules.py): a task queued once at run_at or on a cron rule, for hosts (ids, JSON) or a
    # host group (its members at each run; a removed group leaves the schedule without targets, said at its run);
    # next_run is the instant the runner (server_stub/scheduler.py) acts next; every run's record.
    """
    CREATE TABLE schedules (
        id INTEGER PRIMARY KEY, name TEXT UNIQUE NOT NULL, rule TEXT, run_at REAL, task_type TEXT NOT NULL,
        image TEXT, disk TEXT, after TEXT NOT NULL, partition INTEGER, task_options TEXT, hosts TEXT NOT NULL,
        host_group_id INTEGER REFERENCES host_groups(id) ON DELETE SET NULL, group_removed TEXT,
        wake INTEGER NOT NULL, catch_up INTEGER NOT NULL, enabled INTEGER NOT NULL, next_run REAL, last_run REAL,
        created REAL NOT NULL, created_by TEXT NOT NULL);
    CREATE INDEX schedules_by_next_run ON schedules(enabled, next_run);
    CREATE TRIGGER schedule_group_removed BEFORE DELETE ON host_groups BEGIN
        UPDATE schedules SET group_removed = OLD.name WHERE host_group_id = OLD.id;
    END;
    CREATE TABLE schedule_runs (
        id INTEGER PRIMARY KEY, schedule_id INTEGER NOT NULL REFERENCES schedules(id) ON DELETE CASCADE,
        due REAL NOT NULL, time REAL NOT NULL, outcome TEXT NOT NULL, detail TEXT NOT NULL, task_ids TEXT NOT NULL);
    CREATE INDEX schedule_runs_by_schedule ON schedule_runs(schedule_id, id);
""",
    # 13: a storage node's HTTP transport (issue 17, docs/http-transport.md): NULL deploys over NFS; 'server' from this
    # server's read-only image route (the node's local --rsync-target); an http(s):// URL from an ordinary web server.
    """
    ALTER TABLE storage_nodes ADD COLUMN http_url TEXT;
""",
    # 14: an image's format (issue 17, docs/image-format.md): what its captures write; 'stream' (one compressed
    # partclone stream a partition) or 'chunked' (content-addressed chunks, incremental redeploys).
    """
    ALTER TABLE images ADD COLUMN format TEXT NOT NULL DEFAULT 'stream';
""",
]


def migrate(conn: sqlite3.Connection) -> None:
    """Create what is missing, then apply the migrations this database has not had, each with its version."""
    conn.executescript(SCHEMA)
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
        # executescript commits first; the script and its version bump then commit together.
        conn.executescript(f"BEGIN; {script}; PRAGMA user_version = {number}; COMMIT;")
