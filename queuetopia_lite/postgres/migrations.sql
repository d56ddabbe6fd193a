-- Schema steps, numbered like the SQLite ones. Step N upgrades version N-1 to N.
-- {schema} is the quoted schema name. Times are float8 epoch seconds, as on
-- SQLite, so every instant round-trips exactly.

-- name: version_table
CREATE SCHEMA IF NOT EXISTS {schema};
CREATE TABLE IF NOT EXISTS {schema}.qt_version (
    one     boolean PRIMARY KEY DEFAULT true CHECK (one),  -- a single row
    version integer NOT NULL
);

-- name: lock
-- Serialises migrations of this schema across processes (released at commit).
SELECT pg_advisory_xact_lock(1364478001, hashtext(%(schema)s));

-- name: version
SELECT version FROM {schema}.qt_version;

-- name: foreign_tables
SELECT count(*) FROM pg_tables
WHERE schemaname = %(schema)s AND tablename <> 'qt_version';

-- name: set_version
INSERT INTO {schema}.qt_version (version) VALUES (%(version)s)
ON CONFLICT (one) DO UPDATE SET version = excluded.version;

-- name: step_1
CREATE TABLE {schema}.qt_jobs (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,  -- the sequence
    scope           text    NOT NULL,
    queue           text    NOT NULL,
    action          text    NOT NULL,
    params          jsonb   NOT NULL,                   -- a JSON object
    scheduled_at    float8  NOT NULL,                   -- epoch seconds, UTC
    timeout         float8,                             -- seconds; NULL: no limit
    max_backoff     float8  NOT NULL,
    max_attempts    integer NOT NULL,
    attempts        integer NOT NULL DEFAULT 0,
    attempted_at    float8,
    attempted_by    text,
    next_attempt_at float8,
    done_at         float8,
    error           text,
    status          text    NOT NULL,                   -- pending running done failed cancelled
    lock_token      text,                               -- the claim that runs it (fencing)
    created_at      float8  NOT NULL
);
-- The head of a queue: its first pending job by (scheduled_at, id).
CREATE INDEX qt_jobs_head ON {schema}.qt_jobs (scope, queue, scheduled_at, id)
    WHERE status = 'pending';
-- Listing a queue's jobs and finding empty queues.
CREATE INDEX qt_jobs_queue ON {schema}.qt_jobs (scope, queue, id);
-- Listing a scope's jobs newest first.
CREATE INDEX qt_jobs_scope ON {schema}.qt_jobs (scope, id);
-- The cleaner.
CREATE INDEX qt_jobs_done ON {schema}.qt_jobs (scope, done_at) WHERE status = 'done';

-- One row a queue: its head, when it becomes runnable, and its lock. Claims
-- lock these rows (FOR UPDATE SKIP LOCKED), so two workers never take one queue.
CREATE TABLE {schema}.qt_queues (
    scope             text NOT NULL,
    queue             text NOT NULL,
    head_id           bigint,   -- NULL: no unfinished job
    head_scheduled_at float8,
    head_due_at       float8,   -- max(scheduled_at, next_attempt_at) of the head
    hold_until        float8,   -- the last backoff of a job that exhausted its attempts
    ready_at          float8,   -- when it became runnable; NULL while locked or idle
    blocked_since     float8,   -- first failure of the head that blocks it
    lock_token        text,
    locked_by         text,
    locked_at         float8,
    locked_until      float8,   -- on the database's clock
    PRIMARY KEY (scope, queue)
);
-- Finding runnable queues reads only runnable (or soon runnable) ones, oldest first.
CREATE INDEX qt_queues_ready ON {schema}.qt_queues (scope, ready_at)
    WHERE ready_at IS NOT NULL;
-- Finding expired leases reads only locked queues.
CREATE INDEX qt_queues_lease ON {schema}.qt_queues (scope, locked_until)
    WHERE locked_until IS NOT NULL;
