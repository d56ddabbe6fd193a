-- Schema steps, numbered like the Postgres ones. Step N upgrades version N-1 to N.
-- The version lives in qt_schema (step 2); files made by version 1 kept it in
-- PRAGMA user_version, which belongs to the application whose file holds the jobs.

-- name: step_1
CREATE TABLE qt_jobs (
    id              INTEGER PRIMARY KEY,  -- the sequence (step_4 makes it AUTOINCREMENT)
    scope           TEXT    NOT NULL,
    queue           TEXT    NOT NULL,
    action          TEXT    NOT NULL,
    params          TEXT    NOT NULL,                   -- a JSON object
    scheduled_at    REAL    NOT NULL,                   -- epoch seconds, UTC
    timeout         REAL,                               -- seconds; NULL: no limit
    max_backoff     REAL    NOT NULL,
    max_attempts    INTEGER NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    attempted_at    REAL,
    attempted_by    TEXT,
    next_attempt_at REAL,
    done_at         REAL,
    error           TEXT,
    status          TEXT    NOT NULL,                   -- pending running done failed cancelled
    lock_token      TEXT,                               -- the claim that runs it (fencing)
    created_at      REAL    NOT NULL
);
-- The head of a queue: its first pending job by (scheduled_at, id).
CREATE INDEX qt_jobs_head ON qt_jobs (scope, queue, scheduled_at, id) WHERE status = 'pending';
-- The cleaner.
CREATE INDEX qt_jobs_done ON qt_jobs (scope, done_at) WHERE status = 'done';

-- One row a queue: its head, when it becomes runnable, and its lock.
CREATE TABLE qt_queues (
    scope             TEXT NOT NULL,
    queue             TEXT NOT NULL,
    head_id           INTEGER,  -- NULL: no unfinished job
    head_scheduled_at REAL,
    head_due_at       REAL,     -- max(scheduled_at, next_attempt_at) of the head
    hold_until        REAL,     -- the last backoff of a job that exhausted its attempts
    ready_at          REAL,     -- when it became runnable; NULL while locked or idle
    blocked_since     REAL,     -- first failure of the head that blocks it
    lock_token        TEXT,
    locked_by         TEXT,
    locked_at         REAL,
    locked_until      REAL,
    PRIMARY KEY (scope, queue)
) WITHOUT ROWID;
-- Finding runnable queues reads only runnable (or soon runnable) ones, oldest first.
CREATE INDEX qt_queues_ready ON qt_queues (scope, ready_at) WHERE ready_at IS NOT NULL;
-- Finding expired leases reads only locked queues.
CREATE INDEX qt_queues_lease ON qt_queues (scope, locked_until) WHERE locked_until IS NOT NULL;

-- name: step_2
-- Our schema version in a table of our own: PRAGMA user_version and application_id
-- are the application's (the jobs may live in its database file, beside its tables).
CREATE TABLE qt_schema (
    one     INTEGER PRIMARY KEY CHECK (one = 1),  -- a single row
    version INTEGER NOT NULL
);
INSERT INTO qt_schema (one, version) VALUES (1, 2);

-- name: version
SELECT version FROM qt_schema;

-- name: set_version
UPDATE qt_schema SET version = :version;

-- name: our_tables
-- Tables with our names (a file holding some but no qt_schema is not ours to touch).
SELECT name FROM sqlite_schema WHERE type = 'table' AND name IN ('qt_schema', 'qt_jobs', 'qt_queues')
ORDER BY name;

-- name: step_3
-- Job control (SPEC 12): each failed attempt, unique keys, periodic jobs.
-- A JSON array of failed attempts, oldest first: {"attempt", "at", "error", "by"}; NULL: none.
ALTER TABLE qt_jobs ADD COLUMN errors TEXT;
ALTER TABLE qt_jobs ADD COLUMN unique_key TEXT;
-- One waiting job (scheduled, available or retrying: status 'pending') per key and scope.
CREATE UNIQUE INDEX qt_jobs_unique ON qt_jobs (scope, unique_key)
    WHERE unique_key IS NOT NULL AND status = 'pending';
-- One row a periodic definition: the last tick a job was created for (epoch seconds).
CREATE TABLE qt_periodic (
    scope     TEXT NOT NULL,
    name      TEXT NOT NULL,
    last_tick REAL NOT NULL,
    PRIMARY KEY (scope, name)
) WITHOUT ROWID;

-- name: step_4
-- Ids are never reused, even once every job of the table was pruned: AUTOINCREMENT
-- keeps the highest id ever handed out in sqlite_sequence. SQLite cannot add
-- AUTOINCREMENT to a table, so qt_jobs is rebuilt, rows and ids kept (this runs in
-- the migration's one write transaction; a reader sees the old table or the new).
-- Keep the column list in step with every earlier step that changes qt_jobs.
CREATE TABLE qt_jobs_new (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,  -- never reused (see prune_jobs)
    scope           TEXT    NOT NULL,
    queue           TEXT    NOT NULL,
    action          TEXT    NOT NULL,
    params          TEXT    NOT NULL,                   -- a JSON object
    scheduled_at    REAL    NOT NULL,                   -- epoch seconds, UTC
    timeout         REAL,                               -- seconds; NULL: no limit
    max_backoff     REAL    NOT NULL,
    max_attempts    INTEGER NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    attempted_at    REAL,
    attempted_by    TEXT,
    next_attempt_at REAL,
    done_at         REAL,
    error           TEXT,
    status          TEXT    NOT NULL,                   -- pending running done failed cancelled
    lock_token      TEXT,                               -- the claim that runs it (fencing)
    created_at      REAL    NOT NULL,
    errors          TEXT,                               -- failed attempts (JSON), step_3
    unique_key      TEXT                                -- step_3
);
INSERT INTO qt_jobs_new (id, scope, queue, action, params, scheduled_at, timeout, max_backoff,
                         max_attempts, attempts, attempted_at, attempted_by, next_attempt_at,
                         done_at, error, status, lock_token, created_at, errors, unique_key)
SELECT id, scope, queue, action, params, scheduled_at, timeout, max_backoff,
       max_attempts, attempts, attempted_at, attempted_by, next_attempt_at,
       done_at, error, status, lock_token, created_at, errors, unique_key
FROM qt_jobs ORDER BY id;
DROP TABLE qt_jobs;
ALTER TABLE qt_jobs_new RENAME TO qt_jobs;
-- The old table kept its newest job for this very purpose: its id is the highest
-- ever given, and the sequence starts there.
DELETE FROM sqlite_sequence WHERE name IN ('qt_jobs', 'qt_jobs_new');
INSERT INTO sqlite_sequence (name, seq) SELECT 'qt_jobs', coalesce(max(id), 0) FROM qt_jobs;
CREATE INDEX qt_jobs_head ON qt_jobs (scope, queue, scheduled_at, id) WHERE status = 'pending';
CREATE INDEX qt_jobs_done ON qt_jobs (scope, done_at) WHERE status = 'done';
CREATE UNIQUE INDEX qt_jobs_unique ON qt_jobs (scope, unique_key)
    WHERE unique_key IS NOT NULL AND status = 'pending';

-- name: step_5
-- Nothing to change on SQLite: step_5 makes the Postgres scheduling step set-based.
SELECT 1;

-- name: step_6
-- Leases on a clock that never jumps (hostclock.py): the host clock a lease was taken
-- with (its boot and time namespace) and its end on that clock. A process with the
-- same key judges the lease by that clock; any other by locked_until (the wall clock).
ALTER TABLE qt_queues ADD COLUMN lease_clock TEXT;
ALTER TABLE qt_queues ADD COLUMN lease_clock_until REAL;
