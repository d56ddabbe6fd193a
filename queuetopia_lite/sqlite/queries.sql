-- Statements of the SQLite backend. The job columns are always selected in the
-- order of JOB_COLUMNS in backend.py.

-- name: insert_job_row
INSERT INTO qt_jobs (scope, queue, action, params, scheduled_at, timeout, max_backoff,
                     max_attempts, status, created_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?);

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
    ready_at = NULL
WHERE scope = :scope AND queue = :queue AND lock_token IS NULL;

-- name: job_succeeded
UPDATE qt_jobs
SET status = 'done', done_at = :now, error = NULL, next_attempt_at = NULL, lock_token = NULL
WHERE id = :id AND lock_token = :token AND status = 'running';

-- name: job_failed
UPDATE qt_jobs
SET status = CASE WHEN attempts >= max_attempts THEN 'failed' ELSE 'pending' END,
    error = :error, next_attempt_at = :next_attempt_at, lock_token = NULL
WHERE id = :id AND lock_token = :token AND status = 'running'
RETURNING {job_columns};

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
    head_id = :head_id, head_scheduled_at = :head_scheduled_at, head_due_at = :head_due_at,
    ready_at = :ready_at, blocked_since = :blocked_since, hold_until = :hold_until
WHERE scope = :scope AND queue = :queue;

-- name: expired_leases
SELECT queue, lock_token, head_id, locked_by FROM qt_queues
WHERE scope = :scope AND locked_until <= :now;

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
UPDATE qt_queues SET locked_until = :until
WHERE scope = :scope AND queue = :queue AND lock_token = :token;

-- name: next_ready
SELECT min(ready_at) FROM qt_queues WHERE scope = :scope AND ready_at IS NOT NULL;

-- name: next_lease_end
SELECT min(locked_until) FROM qt_queues WHERE scope = :scope AND locked_until IS NOT NULL;

-- name: has_runnable
SELECT EXISTS (SELECT 1 FROM qt_queues WHERE scope = :scope AND ready_at <= :now)
    OR EXISTS (SELECT 1 FROM qt_queues WHERE scope = :scope AND locked_until <= :now);

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
SELECT status,
       CASE WHEN status <> 'pending' THEN status
            WHEN next_attempt_at > :now THEN 'retrying'
            WHEN scheduled_at > :now THEN 'scheduled'
            ELSE 'available' END AS state,
       count(*)
FROM qt_jobs WHERE scope = :scope GROUP BY 1, 2;

-- name: retry_job
UPDATE qt_jobs
SET status = 'pending', next_attempt_at = NULL,
    max_attempts = max(max_attempts, attempts + 1)
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
