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
-- The rows are locked in name order first, as qt_step locks them: two transactions
-- never wait for each other in a cycle.
UPDATE {schema}.qt_queues q
SET locked_until = %(until)s
FROM (SELECT k.queue FROM {schema}.qt_queues k
      JOIN unnest(%(queues)s::text[], %(tokens)s::text[]) AS c(queue, token)
        ON k.queue = c.queue AND k.lock_token = c.token
      WHERE k.scope = %(scope)s
      ORDER BY k.queue FOR UPDATE OF k) AS l
WHERE q.scope = %(scope)s AND q.queue = l.queue
RETURNING q.lock_token;

-- name: running_tokens
-- Claims whose job still runs under them: a runaway's release must wait for its
-- timeout failure (a claim never runs its job again once it stopped).
SELECT lock_token FROM {schema}.qt_jobs
WHERE lock_token = ANY(%(tokens)s::text[]) AND status = 'running';

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
-- A job waiting again gives up its unique key if another waiting job holds it.
UPDATE {schema}.qt_jobs j
SET status = 'pending', next_attempt_at = NULL,
    max_attempts = greatest(j.max_attempts, j.attempts + 1),
    unique_key = CASE WHEN j.status <> 'pending' AND j.unique_key IS NOT NULL AND EXISTS (
                          SELECT 1 FROM {schema}.qt_jobs o
                          WHERE o.scope = j.scope AND o.unique_key = j.unique_key
                            AND o.status = 'pending') THEN NULL
                      ELSE j.unique_key END
WHERE j.scope = %(scope)s AND j.id = %(id)s;

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
                         %(backoffs)s::float8[], %(attempts)s::integer[], %(keys)s::text[])
         WITH ORDINALITY AS n(queue, action, params, scheduled_at, timeout, max_backoff,
                              max_attempts, unique_key, ord)
), ins AS (
    -- Many jobs in one statement; ids are drawn in the order given.
    INSERT INTO {schema}.qt_jobs (scope, queue, action, params, scheduled_at, timeout,
                                  max_backoff, max_attempts, status, created_at, unique_key)
    SELECT %(scope)s, n.queue, n.action, n.params::jsonb, n.scheduled_at, n.timeout,
           n.max_backoff, n.max_attempts,
           CASE WHEN n.max_attempts > 0 THEN 'pending' ELSE 'failed' END,  -- 0: never run
           %(now)s, n.unique_key
    FROM n ORDER BY n.ord
    -- A key a waiting job holds (maybe an earlier row of this batch): not stored.
    ON CONFLICT (scope, unique_key) WHERE unique_key IS NOT NULL AND status = 'pending'
    DO NOTHING
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

-- Dashboard reads (queue_page, pending_jobs, job_activity): reads only, each bounded by
-- a page or a time window, so a 100,000-queue scope stays cheap to look at.

-- name: queue_page_counts
-- How many queues match the search; of them, how many are failing (unlocked, head
-- failed: blocked or about to retry) and how many are running (locked).
SELECT count(*), count(*) FILTER (WHERE lock_token IS NULL AND blocked_since IS NOT NULL),
       count(*) FILTER (WHERE lock_token IS NOT NULL)
FROM {schema}.qt_queues
WHERE scope = %(scope)s
  AND (%(search)s::text IS NULL OR strpos(lower(queue), lower(%(search)s::text)) > 0);

-- name: queue_page
-- One page of queues, failing first, then running, then those with work, then idle ones,
-- each group by name; the pending count is read for the page's rows only.
SELECT q.queue, q.ready_at, q.blocked_since, q.hold_until, q.lock_token,
       q.locked_by, q.locked_until,
       (SELECT count(*) FROM {schema}.qt_jobs j
        WHERE j.scope = q.scope AND j.queue = q.queue AND j.status = 'pending') AS pending,
       {head_job_columns}
FROM (SELECT *, CASE WHEN lock_token IS NULL AND blocked_since IS NOT NULL THEN 0
                     WHEN lock_token IS NOT NULL THEN 1
                     WHEN head_id IS NOT NULL THEN 2 ELSE 3 END AS rank
      FROM {schema}.qt_queues
      WHERE scope = %(scope)s
        AND (%(search)s::text IS NULL OR strpos(lower(queue), lower(%(search)s::text)) > 0)
     ) q
LEFT JOIN {schema}.qt_jobs h ON h.scope = q.scope AND h.id = q.head_id
WHERE %(rank)s::integer IS NULL OR q.rank = %(rank)s::integer
ORDER BY q.rank, q.queue COLLATE "C"
LIMIT %(limit)s OFFSET %(offset)s;

-- name: pending_jobs
-- A queue's pending jobs in the order they will run (the head index).
SELECT {job_columns} FROM {schema}.qt_jobs
WHERE scope = %(scope)s AND queue = %(queue)s AND status = 'pending'
ORDER BY scheduled_at, id
LIMIT %(limit)s OFFSET %(offset)s;

-- name: done_per_bucket
SELECT floor((done_at - %(since)s) / %(bucket)s)::integer AS bucket, count(*)
FROM {schema}.qt_jobs
WHERE scope = %(scope)s AND status = 'done' AND done_at >= %(since)s
GROUP BY bucket;

-- name: failed_per_bucket
-- Jobs whose last attempt failed, by the time that attempt started (a job that failed
-- several times in the window counts once, at its last attempt).
SELECT floor((attempted_at - %(since)s) / %(bucket)s)::integer AS bucket, count(*)
FROM {schema}.qt_jobs
WHERE scope = %(scope)s AND status IN ('pending', 'failed') AND error IS NOT NULL
  AND attempted_at >= %(since)s
GROUP BY bucket;
-- name: waiting_with_keys
SELECT {job_columns} FROM {schema}.qt_jobs
WHERE scope = %(scope)s AND unique_key = ANY(%(keys)s::text[]) AND status = 'pending';

-- name: advance_periodic
-- The compare-and-set that makes one job per tick: a concurrent one waits for the row
-- and then finds last_tick already there (the job goes in the same transaction).
UPDATE {schema}.qt_periodic SET last_tick = %(tick)s
WHERE scope = %(scope)s AND name = %(name)s AND last_tick < %(tick)s
RETURNING last_tick;

-- name: add_periodic
INSERT INTO {schema}.qt_periodic (scope, name, last_tick) VALUES (%(scope)s, %(name)s, %(tick)s)
ON CONFLICT DO NOTHING;

-- Dead holders on this host (SPEC 13.2).

-- name: lock_tokens
-- The tokens of this scope's locked queues that start with %(prefix)s (this host's
-- holders): the lease index reads locked queues only, however many queues there are.
SELECT lock_token FROM {schema}.qt_queues
WHERE scope = %(scope)s AND locked_until IS NOT NULL
  AND left(lock_token, length(%(prefix)s)) = %(prefix)s;

-- name: expire_claims
-- Leases whose holder is gone end now: the next step recovers them (a worker lost)
-- as if they had run out. Fenced by the token: a queue relocked since is left alone.
-- The rows are locked in name order, as qt_step locks them.
UPDATE {schema}.qt_queues q
SET locked_until = %(now)s
FROM (SELECT k.queue FROM {schema}.qt_queues k
      WHERE k.scope = %(scope)s AND k.lock_token = ANY(%(tokens)s::text[])
        AND k.locked_until > %(now)s
      ORDER BY k.queue FOR UPDATE OF k) AS l
WHERE q.scope = %(scope)s AND q.queue = l.queue
RETURNING q.queue;
