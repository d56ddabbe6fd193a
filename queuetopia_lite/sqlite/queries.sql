-- Statements of the SQLite backend. The job columns are always selected in the
-- order of JOB_COLUMNS in backend.py.

-- name: insert_job_row
INSERT INTO qt_jobs (scope, queue, action, params, scheduled_at, timeout, max_backoff,
                     max_attempts, status, created_at, unique_key)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?);

-- name: insert_unique_job_row
-- Changes no row (stores nothing) when a waiting job of the scope holds the key
-- (qt_jobs_unique).
INSERT INTO qt_jobs (scope, queue, action, params, scheduled_at, timeout, max_backoff,
                     max_attempts, status, created_at, unique_key)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT DO NOTHING;

-- name: waiting_with_key
SELECT {job_columns} FROM qt_jobs
WHERE scope = :scope AND unique_key = :key AND status = 'pending';

-- name: offer_head
-- A new pending job becomes its queue's head if the queue has none or it sorts
-- first; a locked queue is left alone (its head is recomputed at release). A queue
-- starts waiting when its head is due and it was offered (never earlier: fairness).
INSERT INTO qt_queues (scope, queue, head_id, head_scheduled_at, head_due_at, ready_at)
VALUES (:scope, :queue, :id, :scheduled_at, :scheduled_at, max(:scheduled_at, :now))
ON CONFLICT (scope, queue) DO UPDATE SET
    head_id = excluded.head_id,
    head_scheduled_at = excluded.head_scheduled_at,
    head_due_at = excluded.head_due_at,
    ready_at = max(excluded.ready_at, coalesce(hold_until, 0)),
    blocked_since = NULL
WHERE lock_token IS NULL
  AND (head_id IS NULL OR excluded.head_scheduled_at < head_scheduled_at);

-- name: get_job
SELECT {job_columns} FROM qt_jobs WHERE scope = :scope AND id = :id;

-- name: ready_queues
SELECT queue, head_id FROM qt_queues
WHERE scope = :scope AND ready_at <= :now
ORDER BY ready_at LIMIT :limit;

-- name: claim_job
UPDATE qt_jobs
SET status = 'running', attempts = attempts + 1, attempted_at = :now,
    attempted_by = :owner, lock_token = :token
WHERE id = :id AND status = 'pending'
RETURNING {job_columns};

-- name: lock_queue
UPDATE qt_queues
SET lock_token = :token, locked_by = :owner, locked_at = :now, locked_until = :until,
    lease_clock = :host_key, lease_clock_until = :host_until, ready_at = NULL
WHERE scope = :scope AND queue = :queue AND lock_token IS NULL;

-- name: job_succeeded
UPDATE qt_jobs
SET status = 'done', done_at = :now, error = NULL, next_attempt_at = NULL, lock_token = NULL
WHERE id = :id AND lock_token = :token AND status = 'running';

-- name: job_failed
-- A failed attempt: retried, or failed when its attempts are spent or it gave up
-- (:give_up, no retry time, so no hold). The attempt joins errors (the last 20, each
-- bounded). A job waiting again gives up its unique key if another waiting job took it.
UPDATE qt_jobs
SET status = CASE WHEN :give_up OR attempts >= max_attempts THEN 'failed' ELSE 'pending' END,
    error = :error,
    next_attempt_at = CASE WHEN :give_up THEN NULL ELSE :next_attempt_at END,
    lock_token = NULL,
    errors = json_insert(
        CASE WHEN json_array_length(coalesce(errors, '[]')) >= 20 THEN json_remove(errors, '$[0]')
             ELSE coalesce(errors, '[]') END,
        '$[#]', json_object('attempt', attempts, 'at', :now, 'error', substr(:error, 1, 4000),
                            'by', attempted_by)),
    unique_key = CASE WHEN unique_key IS NULL OR :give_up OR attempts >= max_attempts
                          THEN unique_key
                      WHEN EXISTS (SELECT 1 FROM qt_jobs o
                                   WHERE o.scope = qt_jobs.scope AND o.unique_key = qt_jobs.unique_key
                                     AND o.status = 'pending') THEN NULL
                      ELSE unique_key END
WHERE id = :id AND lock_token = :token AND status = 'running'
RETURNING {job_columns};

-- name: job_running
SELECT 1 FROM qt_jobs WHERE id = :id AND lock_token = :token AND status = 'running';
-- name: job_snoozed
-- Snooze: waiting again until :until, the attempt uncounted, error and errors unchanged.
UPDATE qt_jobs
SET status = 'pending', attempts = attempts - 1, next_attempt_at = :until, lock_token = NULL,
    unique_key = CASE WHEN unique_key IS NOT NULL AND EXISTS (
                          SELECT 1 FROM qt_jobs o
                          WHERE o.scope = qt_jobs.scope AND o.unique_key = qt_jobs.unique_key
                            AND o.status = 'pending') THEN NULL
                      ELSE unique_key END
WHERE id = :id AND lock_token = :token AND status = 'running';

-- name: queue_row
SELECT lock_token, head_id, blocked_since, hold_until FROM qt_queues
WHERE scope = :scope AND queue = :queue;

-- name: next_head
SELECT id, scheduled_at, next_attempt_at, attempted_at FROM qt_jobs
WHERE scope = :scope AND queue = :queue AND status = 'pending'
ORDER BY scheduled_at, id LIMIT 1;

-- name: set_head
-- Unlocks the queue and records its head (NULL when it has no pending job).
UPDATE qt_queues
SET lock_token = NULL, locked_by = NULL, locked_at = NULL, locked_until = NULL,
    lease_clock = NULL, lease_clock_until = NULL, head_id = :head_id, head_scheduled_at = :head_scheduled_at, head_due_at = :head_due_at,
    ready_at = :ready_at, blocked_since = :blocked_since, hold_until = :hold_until
WHERE scope = :scope AND queue = :queue;

-- name: expired_leases
-- A lease taken with the caller's host clock (same key) ends by that clock, others by
-- the wall clock (hostclock.py). Only locked queues are read (the lease index).
SELECT queue, lock_token, head_id, locked_by FROM qt_queues INDEXED BY qt_queues_lease
WHERE scope = :scope AND locked_until IS NOT NULL
  AND CASE WHEN lease_clock = :host_key THEN lease_clock_until <= :host_at
           ELSE locked_until <= :now END;

-- name: hold_locked_queue
-- A timed-out job failed while its thread still runs: the queue stays locked, but
-- records that it is blocked (and held, after a last attempt) for when it is released.
UPDATE qt_queues
SET blocked_since = coalesce(blocked_since, :now),
    hold_until = max(coalesce(hold_until, 0), coalesce(:hold_until, 0))
WHERE scope = :scope AND queue = :queue AND lock_token = :token;

-- name: ensure_queue
INSERT INTO qt_queues (scope, queue) VALUES (:scope, :queue) ON CONFLICT DO NOTHING;

-- name: renew_lease
UPDATE qt_queues
SET locked_until = :until, lease_clock = :host_key, lease_clock_until = :host_until
WHERE scope = :scope AND queue = :queue AND lock_token = :token;

-- name: next_ready
SELECT min(ready_at) FROM qt_queues WHERE scope = :scope AND ready_at IS NOT NULL;

-- name: next_lease_end
-- On the wall clock: a lease judged by the caller's host clock ends when what is left
-- of it on that clock has passed.
SELECT min(CASE WHEN lease_clock = :host_key THEN :now + (lease_clock_until - :host_at)
                ELSE locked_until END)
FROM qt_queues INDEXED BY qt_queues_lease
WHERE scope = :scope AND locked_until IS NOT NULL;

-- name: has_runnable
SELECT EXISTS (SELECT 1 FROM qt_queues WHERE scope = :scope AND ready_at <= :now)
    OR EXISTS (SELECT 1 FROM qt_queues INDEXED BY qt_queues_lease
               WHERE scope = :scope AND locked_until IS NOT NULL
                 AND CASE WHEN lease_clock = :host_key THEN lease_clock_until <= :host_at
                          ELSE locked_until <= :now END);

-- name: queues
-- One statement, so one snapshot: a queue and its head job always agree.
SELECT q.queue, q.ready_at, q.blocked_since, q.hold_until, q.lock_token,
       q.locked_by, q.locked_until,
       (SELECT count(*) FROM qt_jobs j
        WHERE j.scope = q.scope AND j.queue = q.queue AND j.status = 'pending') AS pending,
       {head_job_columns}
FROM qt_queues q
LEFT JOIN qt_jobs h ON h.scope = q.scope AND h.id = q.head_id
WHERE q.scope = :scope AND (:queue IS NULL OR q.queue = :queue)
ORDER BY q.queue;

-- name: count_jobs
-- Done and pending jobs are counted on their partial indexes (no table read); only the
-- rest (running, failed, cancelled, and pending jobs waiting for a retry) needs a pass
-- over the rows, without sorting them. Rows: (status, part, count); backend.py turns the
-- parts into states (a pending job waiting for a retry counts as retrying, whatever its
-- scheduled_at).
SELECT 'done', 'done', count(*) FROM qt_jobs WHERE scope = :scope AND status = 'done'
UNION ALL
SELECT 'pending', 'pending', count(*) FROM qt_jobs WHERE scope = :scope AND status = 'pending'
UNION ALL
SELECT 'pending', 'later', count(*) FROM qt_jobs
WHERE scope = :scope AND status = 'pending' AND scheduled_at > :now
UNION ALL
SELECT status, CASE WHEN status <> 'pending' THEN status
                    WHEN scheduled_at > :now THEN 'retrying-later'
                    ELSE 'retrying' END, count(*)
FROM qt_jobs
WHERE scope = :scope AND status <> 'done' AND (status <> 'pending' OR next_attempt_at > :now)
GROUP BY 1, 2;

-- name: retry_job
-- A job waiting again gives up its unique key if another waiting job holds it.
UPDATE qt_jobs
SET status = 'pending', next_attempt_at = NULL,
    max_attempts = max(max_attempts, attempts + 1),
    unique_key = CASE WHEN status <> 'pending' AND unique_key IS NOT NULL AND EXISTS (
                          SELECT 1 FROM qt_jobs o
                          WHERE o.scope = qt_jobs.scope AND o.unique_key = qt_jobs.unique_key
                            AND o.status = 'pending') THEN NULL
                      ELSE unique_key END
WHERE scope = :scope AND id = :id;

-- name: release_hold
UPDATE qt_queues SET hold_until = NULL WHERE scope = :scope AND queue = :queue;

-- name: cancel_job
UPDATE qt_jobs SET status = 'cancelled', lock_token = NULL, next_attempt_at = NULL
WHERE scope = :scope AND id = :id;

-- name: prune_jobs
-- One batch of this scope's old done jobs (the caller repeats it, one short write
-- transaction each, until a batch comes back short). Whatever other scopes hold:
-- AUTOINCREMENT (migrations step_4) keeps ids from being reused.
DELETE FROM qt_jobs
WHERE id IN (SELECT id FROM qt_jobs
             WHERE scope = :scope AND status = 'done' AND done_at < :before
             LIMIT :batch);

-- name: prune_queues
-- One batch of idle queues (no unfinished job, no hold) to forget, so their rows
-- do not pile up.
DELETE FROM qt_queues
WHERE scope = :scope AND queue IN (
    SELECT queue FROM qt_queues
    WHERE scope = :scope AND head_id IS NULL AND lock_token IS NULL
      AND (hold_until IS NULL OR hold_until < :before)
    LIMIT :batch);

-- Dashboard reads (queue_page, pending_jobs, job_activity): reads only, each bounded by
-- a page or a time window, so a 100,000-queue scope stays cheap to look at.

-- name: queue_page_counts
-- How many queues match the search; of them, how many are failing (unlocked, head
-- failed: blocked or about to retry) and how many are running (locked).
SELECT count(*), coalesce(sum(lock_token IS NULL AND blocked_since IS NOT NULL), 0),
       coalesce(sum(lock_token IS NOT NULL), 0)
FROM qt_queues
WHERE scope = :scope AND (:search IS NULL OR instr(lower(queue), lower(:search)) > 0);

-- name: queue_page
-- One page of queues, failing first, then running, then those with work, then idle ones,
-- each group by name; the pending count is read for the page's rows only.
SELECT q.queue, q.ready_at, q.blocked_since, q.hold_until, q.lock_token,
       q.locked_by, q.locked_until,
       (SELECT count(*) FROM qt_jobs j
        WHERE j.scope = q.scope AND j.queue = q.queue AND j.status = 'pending') AS pending,
       {head_job_columns}
FROM (SELECT *, CASE WHEN lock_token IS NULL AND blocked_since IS NOT NULL THEN 0
                     WHEN lock_token IS NOT NULL THEN 1
                     WHEN head_id IS NOT NULL THEN 2 ELSE 3 END AS rank
      FROM qt_queues
      WHERE scope = :scope AND (:search IS NULL OR instr(lower(queue), lower(:search)) > 0)) q
LEFT JOIN qt_jobs h ON h.scope = q.scope AND h.id = q.head_id
WHERE :rank IS NULL OR q.rank = :rank
ORDER BY q.rank, q.queue
LIMIT :limit OFFSET :offset;

-- name: pending_jobs
-- A queue's pending jobs in the order they will run (the head index).
SELECT {job_columns} FROM qt_jobs
WHERE scope = :scope AND queue = :queue AND status = 'pending'
ORDER BY scheduled_at, id
LIMIT :limit OFFSET :offset;

-- name: done_per_bucket
SELECT CAST((done_at - :since) / :bucket AS INTEGER) AS bucket, count(*) FROM qt_jobs
WHERE scope = :scope AND status = 'done' AND done_at >= :since
GROUP BY bucket;

-- name: failed_per_bucket
-- Jobs whose last attempt failed, by the time that attempt started (a job that failed
-- several times in the window counts once, at its last attempt).
SELECT CAST((attempted_at - :since) / :bucket AS INTEGER) AS bucket, count(*) FROM qt_jobs
WHERE scope = :scope AND status IN ('pending', 'failed') AND error IS NOT NULL
  AND attempted_at >= :since
GROUP BY bucket;
-- name: advance_periodic
-- The compare-and-set that makes one job per tick (the job is inserted in the same
-- transaction only when this changed the row).
UPDATE qt_periodic SET last_tick = :tick
WHERE scope = :scope AND name = :name AND last_tick < :tick;

-- name: add_periodic
INSERT INTO qt_periodic (scope, name, last_tick) VALUES (:scope, :name, :tick)
ON CONFLICT DO NOTHING;

-- Dead holders on this host (SPEC 13.2).

-- name: lock_tokens
-- The tokens of this scope's locked queues that start with :prefix (this host's
-- holders): the lease index reads locked queues only, however many queues there are.
-- (INDEXED BY: the planner would otherwise walk the scope's every row by primary key.)
SELECT lock_token FROM qt_queues INDEXED BY qt_queues_lease
WHERE scope = :scope AND locked_until IS NOT NULL
  AND substr(lock_token, 1, length(:prefix)) = :prefix;

-- name: expire_claim
-- A lease whose holder is gone ends now: the next step recovers it (a worker lost)
-- as if it had run out. Fenced by the token: a queue relocked since is left alone.
-- From then on the wall clock judges it, whatever host clock it was taken with.
UPDATE qt_queues SET locked_until = :now, lease_clock = NULL, lease_clock_until = NULL
WHERE scope = :scope AND lock_token = :token
  AND (lease_clock IS NOT NULL OR locked_until > :now);
