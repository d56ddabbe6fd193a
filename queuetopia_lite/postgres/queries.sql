-- Statements of the Postgres backend. {schema} is the quoted schema name; the
-- job columns are always selected in the order of JOB_COLUMNS (rows.py).
-- Row locks are always taken queue row first, then job rows: no deadlocks.

-- name: notify
SELECT pg_notify(%(channel)s, %(scope)s);

-- name: get_job
SELECT {job_columns} FROM {schema}.qt_jobs WHERE scope = %(scope)s AND id = %(id)s;

-- name: lock_queue_rows
-- The rows of queues about to be released or repaired, locked in name order.
SELECT queue, lock_token, head_id, blocked_since, hold_until FROM {schema}.qt_queues
WHERE scope = %(scope)s AND queue = ANY(%(queues)s::text[])
ORDER BY queue
FOR UPDATE;

-- name: next_heads
-- Each queue's first pending job (or NULLs), read after the queue rows were locked.
SELECT r.queue, h.id, h.scheduled_at, h.next_attempt_at, h.attempted_at
FROM unnest(%(queues)s::text[]) AS r(queue)
LEFT JOIN LATERAL (
    SELECT id, scheduled_at, next_attempt_at, attempted_at FROM {schema}.qt_jobs j
    WHERE j.scope = %(scope)s AND j.queue = r.queue AND j.status = 'pending'
    ORDER BY scheduled_at, id LIMIT 1
) AS h ON true;

-- name: set_heads
-- Unlocks the queues and records their heads (NULL when no pending job).
UPDATE {schema}.qt_queues AS q
SET lock_token = NULL, locked_by = NULL, locked_at = NULL, locked_until = NULL,
    head_id = (%(heads)s::bigint[])[v.i], head_scheduled_at = (%(scheduled)s::float8[])[v.i],
    head_due_at = (%(due)s::float8[])[v.i], ready_at = (%(ready)s::float8[])[v.i],
    blocked_since = (%(blocked)s::float8[])[v.i], hold_until = (%(hold)s::float8[])[v.i]
FROM (SELECT q2.queue AS vqueue, array_position(%(queues)s::text[], q2.queue) AS i
      FROM {schema}.qt_queues q2
      WHERE q2.scope = %(scope)s AND q2.queue = ANY(%(queues)s::text[])) AS v
WHERE q.scope = %(scope)s AND q.queue = v.vqueue;

-- name: ensure_queue
INSERT INTO {schema}.qt_queues (scope, queue) VALUES (%(scope)s, %(queue)s)
ON CONFLICT DO NOTHING;

-- name: renew_leases
-- Queues and tokens are paired by position: two claims of one queue (a stale and a fresh
-- one) must each be checked against their own token.
UPDATE {schema}.qt_queues q
SET locked_until = %(until)s
FROM unnest(%(queues)s::text[], %(tokens)s::text[]) AS c(queue, token)
WHERE q.scope = %(scope)s AND q.queue = c.queue AND q.lock_token = c.token
RETURNING q.lock_token;

-- name: next_due
SELECT least((SELECT min(ready_at) FROM {schema}.qt_queues
              WHERE scope = %(scope)s AND ready_at IS NOT NULL),
             (SELECT min(locked_until) FROM {schema}.qt_queues
              WHERE scope = %(scope)s AND locked_until IS NOT NULL));

-- name: has_runnable
SELECT EXISTS (SELECT 1 FROM {schema}.qt_queues WHERE scope = %(scope)s AND ready_at <= %(now)s)
    OR EXISTS (SELECT 1 FROM {schema}.qt_queues
               WHERE scope = %(scope)s AND locked_until <= %(now)s);

-- name: queues
-- One statement, so one snapshot: a queue and its head job always agree.
SELECT q.queue, q.ready_at, q.blocked_since, q.hold_until, q.lock_token,
       q.locked_by, q.locked_until,
       (SELECT count(*) FROM {schema}.qt_jobs j
        WHERE j.scope = q.scope AND j.queue = q.queue AND j.status = 'pending') AS pending,
       {head_job_columns}
FROM {schema}.qt_queues q
LEFT JOIN {schema}.qt_jobs h ON h.scope = q.scope AND h.id = q.head_id
WHERE q.scope = %(scope)s AND (%(queue)s::text IS NULL OR q.queue = %(queue)s::text)
ORDER BY q.queue;

-- name: count_jobs
SELECT status,
       CASE WHEN status <> 'pending' THEN status
            WHEN next_attempt_at > %(now)s THEN 'retrying'
            WHEN scheduled_at > %(now)s THEN 'scheduled'
            ELSE 'available' END AS state,
       count(*)
FROM {schema}.qt_jobs WHERE scope = %(scope)s GROUP BY 1, 2;

-- name: lock_job
SELECT {job_columns} FROM {schema}.qt_jobs WHERE scope = %(scope)s AND id = %(id)s FOR UPDATE;

-- name: retry_job
UPDATE {schema}.qt_jobs
SET status = 'pending', next_attempt_at = NULL,
    max_attempts = greatest(max_attempts, attempts + 1)
WHERE scope = %(scope)s AND id = %(id)s;

-- name: release_hold
UPDATE {schema}.qt_queues SET hold_until = NULL WHERE scope = %(scope)s AND queue = %(queue)s;

-- name: cancel_job
UPDATE {schema}.qt_jobs SET status = 'cancelled', lock_token = NULL, next_attempt_at = NULL
WHERE scope = %(scope)s AND id = %(id)s;

-- name: prune_jobs
-- One batch of this scope's old done jobs (the caller repeats it, one short
-- transaction each, until a batch comes back short), whatever other scopes hold:
-- the identity column never reuses an id. `= ANY(ARRAY(...))` makes the batch's ids
-- one array probed through the primary key (`IN (SELECT ...)` was planned as a
-- hash join over a scan of the whole table, for every batch).
DELETE FROM {schema}.qt_jobs
WHERE id = ANY(ARRAY(SELECT id FROM {schema}.qt_jobs
                     WHERE scope = %(scope)s AND status = 'done' AND done_at < %(before)s
                     LIMIT %(batch)s));

-- name: prune_queues
-- One batch of idle queues (no unfinished job, no hold) to forget, so their rows
-- do not pile up. SKIP LOCKED: a queue a worker is claiming right now is left
-- for the next prune.
DELETE FROM {schema}.qt_queues q
WHERE q.scope = %(scope)s AND q.queue = ANY(ARRAY(
    SELECT queue FROM {schema}.qt_queues
    WHERE scope = %(scope)s AND head_id IS NULL AND lock_token IS NULL
      AND (hold_until IS NULL OR hold_until < %(before)s)
    LIMIT %(batch)s FOR UPDATE SKIP LOCKED));

-- name: clock
SELECT extract(epoch FROM clock_timestamp())::float8;

-- name: step
-- One scheduling step (migrations.sql step_2, qt_step), job columns unpacked
-- in the order of JOB_COLUMNS.
SELECT r_kind, r_n, r_queue, r_token, r_by, {step_job_columns}
FROM {schema}.qt_step(
    %(scope)s, %(now)s, %(channel)s,
    %(o_kind)s::text[], %(o_queue)s::text[], %(o_id)s::bigint[], %(o_token)s::text[],
    %(o_error)s::text[], %(o_next)s::float8[], %(o_keep)s::boolean[],
    %(v_queue)s::text[], %(v_token)s::text[], %(v_id)s::bigint[], %(v_next)s::float8[],
    %(v_error)s::text[],
    %(released)s, %(alive)s::text[], %(claim)s, %(owner)s, %(until)s, %(tokens)s::text[]);

-- name: insert_and_offer
-- insert_jobs, offer_heads and notify as one statement (one round trip). The
-- offer reads the new rows from the insert's RETURNING, never the table.
WITH n AS (
    SELECT * FROM unnest(%(queues)s::text[], %(actions)s::text[], %(params)s::text[],
                         %(scheduled)s::float8[], %(timeouts)s::float8[],
                         %(backoffs)s::float8[], %(attempts)s::integer[])
         WITH ORDINALITY AS n(queue, action, params, scheduled_at, timeout, max_backoff,
                              max_attempts, ord)
), ins AS (
    -- Many jobs in one statement; ids are drawn in the order given.
    INSERT INTO {schema}.qt_jobs (scope, queue, action, params, scheduled_at, timeout,
                                  max_backoff, max_attempts, status, created_at)
    SELECT %(scope)s, n.queue, n.action, n.params::jsonb, n.scheduled_at, n.timeout,
           n.max_backoff, n.max_attempts,
           CASE WHEN n.max_attempts > 0 THEN 'pending' ELSE 'failed' END,  -- 0: never run
           %(now)s
    FROM n ORDER BY n.ord
    RETURNING {job_columns}
), offer AS (
    -- As offer_heads: a new pending job becomes its queue's head if the queue has
    -- none or it sorts first by (scheduled_at, id); a locked queue is left alone.
    INSERT INTO {schema}.qt_queues AS q (scope, queue, head_id, head_scheduled_at,
                                         head_due_at, ready_at)
    SELECT DISTINCT ON (i.queue) %(scope)s, i.queue, i.id, i.scheduled_at, i.scheduled_at,
           greatest(i.scheduled_at, %(now)s)
    FROM ins AS i WHERE i.status = 'pending'
    ORDER BY i.queue, i.scheduled_at, i.id
    ON CONFLICT (scope, queue) DO UPDATE SET
        head_id = excluded.head_id,
        head_scheduled_at = excluded.head_scheduled_at,
        head_due_at = excluded.head_due_at,
        ready_at = greatest(excluded.ready_at, q.hold_until),
        blocked_since = NULL
    WHERE q.lock_token IS NULL
      AND (q.head_id IS NULL
           OR (excluded.head_scheduled_at, excluded.head_id) < (q.head_scheduled_at, q.head_id))
), announce AS MATERIALIZED (
    SELECT pg_notify(%(channel)s, %(scope)s)  -- delivered at commit, once a transaction
)
SELECT ins.* FROM ins, announce;
