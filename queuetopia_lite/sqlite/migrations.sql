-- Schema steps, numbered like the Postgres ones. Step N upgrades user_version N-1 to N.

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
-- A placeholder: another branch's migration takes this number.
SELECT 1;

-- name: step_3
-- A placeholder: another branch's migration takes this number.
SELECT 1;

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
    created_at      REAL    NOT NULL
);
INSERT INTO qt_jobs_new (id, scope, queue, action, params, scheduled_at, timeout, max_backoff,
                         max_attempts, attempts, attempted_at, attempted_by, next_attempt_at,
                         done_at, error, status, lock_token, created_at)
SELECT id, scope, queue, action, params, scheduled_at, timeout, max_backoff,
       max_attempts, attempts, attempted_at, attempted_by, next_attempt_at,
       done_at, error, status, lock_token, created_at
FROM qt_jobs ORDER BY id;
DROP TABLE qt_jobs;
ALTER TABLE qt_jobs_new RENAME TO qt_jobs;
-- The old table kept its newest job for this very purpose: its id is the highest
-- ever given, and the sequence starts there.
DELETE FROM sqlite_sequence WHERE name IN ('qt_jobs', 'qt_jobs_new');
INSERT INTO sqlite_sequence (name, seq) SELECT 'qt_jobs', coalesce(max(id), 0) FROM qt_jobs;
CREATE INDEX qt_jobs_head ON qt_jobs (scope, queue, scheduled_at, id) WHERE status = 'pending';
CREATE INDEX qt_jobs_done ON qt_jobs (scope, done_at) WHERE status = 'done';
