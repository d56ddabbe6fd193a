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

-- name: step_2
-- The scheduling step as server-side functions: one round trip a step instead
-- of about ten (see qt_step). They mirror steps.py line by line; keep them in step.

-- Unlock these (locked, row-locked) queues and point each at its first pending
-- job. Returns how many now have a head (some other worker may want them). Per
-- queue: p_head, p_blocked, p_row_hold: its row as it was locked; p_failed: its
-- job's failure was just recorded; p_hold: that failure's hold (a last attempt).
-- The same rules as steps.release. One statement per row, on the primary key,
-- here and in qt_step: with the statistics of a young (never analysed) table,
-- the cached generic plans of set-based joins scanned whole tables.
CREATE FUNCTION {schema}.qt_release(p_scope text, p_now float8, p_queues text[],
                                    p_head bigint[], p_blocked float8[], p_row_hold float8[],
                                    p_failed boolean[], p_hold float8[]) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    l_with_head integer := 0;
    l_id bigint;
    l_scheduled float8;
    l_next float8;
    l_attempted float8;
    l_hold float8;
    l_blocked float8;
    l_due float8;
    l_ready float8;
BEGIN
    FOR i IN 1 .. coalesce(array_length(p_queues, 1), 0) LOOP
        l_id := NULL; l_scheduled := NULL; l_next := NULL; l_attempted := NULL;
        l_due := NULL; l_ready := NULL; l_blocked := NULL;
        SELECT j.id, j.scheduled_at, j.next_attempt_at, j.attempted_at
        INTO l_id, l_scheduled, l_next, l_attempted
        FROM {schema}.qt_jobs j
        WHERE j.scope = p_scope AND j.queue = p_queues[i] AND j.status = 'pending'
        ORDER BY j.scheduled_at, j.id LIMIT 1;
        l_hold := greatest(p_row_hold[i], p_hold[i]);  -- greatest() skips NULLs
        IF p_failed[i] THEN  -- 0.0 counts as unset, as Python's `or` does in steps.release
            l_blocked := CASE WHEN p_blocked[i] IS NULL OR p_blocked[i] = 0 THEN p_now
                              ELSE p_blocked[i] END;
        END IF;
        IF l_id IS NOT NULL THEN
            l_with_head := l_with_head + 1;
            l_due := greatest(l_scheduled, coalesce(l_next, 0));
            -- A released queue goes to the back of the line (now): fairness between queues.
            l_ready := greatest(l_due, coalesce(l_hold, 0), p_now);
            IF NOT p_failed[i] AND l_id = p_head[i] THEN
                l_blocked := p_blocked[i];
            ELSIF NOT p_failed[i] AND l_next IS NOT NULL THEN  -- a failed job is head again
                l_blocked := l_attempted;
            END IF;
        END IF;
        UPDATE {schema}.qt_queues
        SET lock_token = NULL, locked_by = NULL, locked_at = NULL, locked_until = NULL,
            head_id = l_id, head_scheduled_at = l_scheduled, head_due_at = l_due,
            ready_at = l_ready, blocked_since = l_blocked, hold_until = l_hold
        WHERE scope = p_scope AND queue = p_queues[i];
    END LOOP;
    RETURN l_with_head;
END $$;

-- One scheduling step inside the caller's transaction: save outcomes (fenced by
-- token), recover expired leases, claim up to p_claim heads, NOTIFY when queues
-- were released that this step does not take. The backoff of a recovered job is
-- the application's (Python) function, so recovery takes two calls: a call with
-- v_queue NULL that finds expired leases returns them as 'expired' rows (and a
-- 'released' row) and stops before claiming; the caller computes their retry
-- times and calls again with them in v_* (and p_released), outcomes empty.
-- Rows returned, in order: r_kind 'failed' (r_n: outcome index, 0 for a
-- recovery; r_job the saved job), 'rejected' (r_n: outcome index), 'expired'
-- (r_n: head id, r_queue, r_token, r_by: the lease; r_job: the head job),
-- 'released' (r_n: queues released with a head), 'claimed' (r_n: position,
-- r_token: the claim's token, r_job: the claimed job). Indexes are 1-based.
CREATE FUNCTION {schema}.qt_step(
    p_scope text, p_now float8, p_channel text,
    o_kind text[], o_queue text[], o_id bigint[], o_token text[], o_error text[],
    o_next float8[], o_keep boolean[],
    v_queue text[], v_token text[], v_id bigint[], v_next float8[], v_error text[],
    p_released integer, p_alive text[], p_claim integer, p_owner text, p_until float8,
    p_tokens text[])
RETURNS TABLE (r_kind text, r_n bigint, r_queue text, r_token text, r_by text,
               r_job {schema}.qt_jobs)
LANGUAGE plpgsql
-- Without statistics the planner read every runnable queue (bitmap scan) and
-- sorted them to take the oldest few; the ready index already yields them in order.
SET enable_bitmapscan = off
AS $$
DECLARE
    n integer := coalesce(array_length(o_kind, 1), 0);
    q_names text[];
    q_token text[];
    q_head bigint[];
    q_blocked float8[];
    q_hold float8[];
    -- Queues to release: their rows as locked, whether a failure was recorded, its hold.
    rel_queue text[] := ARRAY[]::text[];
    rel_head bigint[] := ARRAY[]::bigint[];
    rel_blocked float8[] := ARRAY[]::float8[];
    rel_row_hold float8[] := ARRAY[]::float8[];
    rel_failed boolean[] := ARRAY[]::boolean[];
    rel_hold float8[] := ARRAY[]::float8[];
    l_released integer := coalesce(p_released, 0);
    l_saved boolean;
    l_failed boolean;
    l_hold float8;
    l_job {schema}.qt_jobs;
    l_expired boolean := false;
    k integer;
    rec record;
    c_queue text[] := ARRAY[]::text[];
    c_token text[] := ARRAY[]::text[];
    c_head bigint[] := ARRAY[]::bigint[];
    c_blocked float8[] := ARRAY[]::float8[];
    c_hold float8[] := ARRAY[]::float8[];
    l_lock_queues text[] := ARRAY[]::text[];
    l_lock_tokens text[] := ARRAY[]::text[];
    l_claimed integer := 0;
BEGIN
    -- Outcomes. The rows of the queues they release are locked in name order and
    -- read once, before any change (as steps.save_outcomes does).
    q_names := ARRAY[]::text[]; q_token := ARRAY[]::text[]; q_head := ARRAY[]::bigint[];
    q_blocked := ARRAY[]::float8[]; q_hold := ARRAY[]::float8[];
    FOR rec IN SELECT DISTINCT o_queue[i] AS queue FROM generate_subscripts(o_kind, 1) AS i
               WHERE NOT (o_kind[i] = 'f' AND o_keep[i]) ORDER BY 1
    LOOP  -- one row at a time on the primary key: see qt_release
        SELECT q.queue, q.lock_token, q.head_id, q.blocked_since, q.hold_until INTO rec
        FROM {schema}.qt_queues q WHERE q.scope = p_scope AND q.queue = rec.queue FOR UPDATE;
        IF FOUND THEN
            q_names := q_names || rec.queue; q_token := q_token || rec.lock_token;
            q_head := q_head || rec.head_id; q_blocked := q_blocked || rec.blocked_since;
            q_hold := q_hold || rec.hold_until;
        END IF;
    END LOOP;
    FOR i IN 1 .. n LOOP
        l_failed := false;
        l_hold := NULL;
        IF o_kind[i] = 's' THEN
            UPDATE {schema}.qt_jobs j
            SET status = 'done', done_at = p_now, error = NULL, next_attempt_at = NULL,
                lock_token = NULL
            WHERE j.id = o_id[i] AND j.status = 'running' AND j.lock_token = o_token[i];
            l_saved := FOUND;
        ELSIF o_kind[i] = 'f' THEN
            UPDATE {schema}.qt_jobs j
            SET status = CASE WHEN j.attempts >= j.max_attempts THEN 'failed' ELSE 'pending' END,
                error = o_error[i], next_attempt_at = o_next[i], lock_token = NULL
            WHERE j.id = o_id[i] AND j.lock_token = o_token[i] AND j.status = 'running'
            RETURNING j.* INTO l_job;
            l_saved := FOUND;
            IF l_saved THEN
                l_failed := true;
                IF l_job.status = 'failed' THEN  -- the last attempt holds its queue
                    l_hold := l_job.next_attempt_at;
                END IF;
                r_kind := 'failed'; r_n := i; r_queue := NULL; r_token := NULL; r_by := NULL;
                r_job := l_job;
                RETURN NEXT;
            END IF;
            IF o_keep[i] THEN  -- a timed-out job still runs: its queue stays locked
                IF l_saved THEN
                    UPDATE {schema}.qt_queues q
                    SET blocked_since = coalesce(q.blocked_since, p_now),
                        hold_until = greatest(q.hold_until, l_hold)
                    WHERE q.scope = p_scope AND q.queue = o_queue[i]
                      AND q.lock_token = o_token[i];
                    -- A Release later in this step must see what was just written.
                    k := array_position(q_names, o_queue[i]);
                    IF k IS NOT NULL AND q_token[k] = o_token[i] THEN
                        q_blocked[k] := coalesce(q_blocked[k], p_now);
                        q_hold[k] := greatest(q_hold[k], l_hold);
                    END IF;
                ELSE
                    r_kind := 'rejected'; r_n := i; r_queue := NULL; r_token := NULL;
                    r_by := NULL; r_job := NULL;
                    RETURN NEXT;
                END IF;
                CONTINUE;
            END IF;
        ELSE  -- 'r': a runaway's thread ended
            l_saved := true;
        END IF;
        k := array_position(q_names, o_queue[i]);
        IF k IS NOT NULL AND q_token[k] = o_token[i] THEN
            rel_queue := rel_queue || q_names[k];
            rel_head := rel_head || q_head[k];
            rel_blocked := rel_blocked || q_blocked[k];
            rel_row_hold := rel_row_hold || q_hold[k];
            rel_failed := rel_failed || l_failed;
            rel_hold := rel_hold || l_hold;
            q_token[k] := NULL;  -- released once only
        ELSIF o_kind[i] = 'r' THEN
            l_saved := false;
        END IF;
        IF NOT l_saved THEN
            r_kind := 'rejected'; r_n := i; r_queue := NULL; r_token := NULL; r_by := NULL;
            r_job := NULL;
            RETURN NEXT;
        END IF;
    END LOOP;
    IF array_length(rel_queue, 1) > 0 THEN
        l_released := l_released + {schema}.qt_release(
            p_scope, p_now, rel_queue, rel_head, rel_blocked, rel_row_hold, rel_failed, rel_hold);
    END IF;

    IF v_queue IS NULL THEN
        -- Expired leases, except the caller's own running jobs (p_alive).
        FOR rec IN
            SELECT q.queue, q.lock_token, q.head_id, q.locked_by FROM {schema}.qt_queues q
            WHERE q.scope = p_scope AND q.locked_until <= p_now
              AND (q.lock_token IS NULL OR q.lock_token <> ALL(p_alive))
            ORDER BY q.queue
            FOR UPDATE SKIP LOCKED
        LOOP
            l_expired := true;
            r_kind := 'expired'; r_n := rec.head_id; r_queue := rec.queue;
            r_token := rec.lock_token; r_by := rec.locked_by;
            SELECT j.* INTO r_job FROM {schema}.qt_jobs j
            WHERE j.scope = p_scope AND j.id = rec.head_id;
            IF NOT FOUND THEN
                r_job := NULL;
            END IF;
            RETURN NEXT;
        END LOOP;
        IF l_expired THEN  -- the caller records them, then calls again to claim
            r_kind := 'released'; r_n := l_released; r_queue := NULL; r_token := NULL;
            r_by := NULL; r_job := NULL;
            RETURN NEXT;
            RETURN;
        END IF;
    ELSE
        -- Recoveries the caller prepared from our 'expired' rows (still row-locked).
        rel_head := ARRAY[]::bigint[];
        rel_blocked := ARRAY[]::float8[];
        rel_row_hold := ARRAY[]::float8[];
        rel_failed := ARRAY[]::boolean[];
        rel_hold := ARRAY[]::float8[];
        FOR i IN 1 .. coalesce(array_length(v_queue, 1), 0) LOOP
            SELECT q.head_id, q.blocked_since, q.hold_until INTO rec FROM {schema}.qt_queues q
            WHERE q.scope = p_scope AND q.queue = v_queue[i] FOR UPDATE;
            l_failed := false;
            l_hold := NULL;
            IF v_next[i] IS NOT NULL THEN
                UPDATE {schema}.qt_jobs j
                SET status = CASE WHEN j.attempts >= j.max_attempts THEN 'failed'
                                  ELSE 'pending' END,
                    error = v_error[i], next_attempt_at = v_next[i], lock_token = NULL
                WHERE j.id = v_id[i] AND j.lock_token = v_token[i] AND j.status = 'running'
                RETURNING j.* INTO l_job;
                IF FOUND THEN
                    l_failed := true;
                    IF l_job.status = 'failed' THEN
                        l_hold := l_job.next_attempt_at;
                    END IF;
                    r_kind := 'failed'; r_n := 0; r_queue := NULL; r_token := NULL;
                    r_by := NULL; r_job := l_job;
                    RETURN NEXT;
                END IF;
            END IF;
            rel_head := rel_head || rec.head_id;
            rel_blocked := rel_blocked || rec.blocked_since;
            rel_row_hold := rel_row_hold || rec.hold_until;
            rel_failed := rel_failed || l_failed;
            rel_hold := rel_hold || l_hold;
        END LOOP;
        IF array_length(v_queue, 1) > 0 THEN
            l_released := l_released + {schema}.qt_release(
                p_scope, p_now, v_queue, rel_head, rel_blocked, rel_row_hold, rel_failed,
                rel_hold);
        END IF;
    END IF;

    IF p_claim > 0 THEN
        -- Runnable queues, oldest-waiting first; rows another transaction holds are
        -- skipped, so concurrent workers never wait for (nor take) the same queue.
        FOR rec IN
            SELECT q.queue, q.lock_token, q.head_id, q.blocked_since, q.hold_until
            FROM {schema}.qt_queues q
            WHERE q.scope = p_scope AND q.ready_at <= p_now
            ORDER BY q.ready_at LIMIT p_claim
            FOR UPDATE SKIP LOCKED
        LOOP
            c_queue := c_queue || rec.queue;
            c_token := c_token || rec.lock_token;
            c_head := c_head || rec.head_id;
            c_blocked := c_blocked || rec.blocked_since;
            c_hold := c_hold || rec.hold_until;
        END LOOP;
        IF array_length(c_queue, 1) > 0 THEN
            rel_queue := ARRAY[]::text[];  -- now: the stale heads to repair
            rel_head := ARRAY[]::bigint[];
            rel_blocked := ARRAY[]::float8[];
            rel_row_hold := ARRAY[]::float8[];
            FOR i IN 1 .. array_length(c_queue, 1) LOOP
                UPDATE {schema}.qt_jobs j
                SET status = 'running', attempts = j.attempts + 1, attempted_at = p_now,
                    attempted_by = p_owner, lock_token = p_tokens[i]
                WHERE j.id = c_head[i] AND j.status = 'pending'
                RETURNING j.* INTO l_job;
                IF NOT FOUND THEN  -- the recorded head is stale: repair it, claim nothing
                    rel_queue := rel_queue || c_queue[i];
                    rel_head := rel_head || c_head[i];
                    rel_blocked := rel_blocked || c_blocked[i];
                    rel_row_hold := rel_row_hold || c_hold[i];
                ELSE
                    l_lock_queues := l_lock_queues || c_queue[i];
                    l_lock_tokens := l_lock_tokens || p_tokens[i];
                    l_claimed := l_claimed + 1;
                    r_kind := 'claimed'; r_n := i; r_queue := c_queue[i];
                    r_token := p_tokens[i]; r_by := NULL; r_job := l_job;
                    RETURN NEXT;
                END IF;
            END LOOP;
            IF array_length(rel_queue, 1) > 0 THEN
                PERFORM {schema}.qt_release(
                    p_scope, p_now, rel_queue, rel_head, rel_blocked, rel_row_hold,
                    array_fill(false, ARRAY[array_length(rel_queue, 1)]),
                    array_fill(NULL::float8, ARRAY[array_length(rel_queue, 1)]));
            END IF;
            FOR i IN 1 .. coalesce(array_length(l_lock_queues, 1), 0) LOOP  -- see qt_release
                UPDATE {schema}.qt_queues q
                SET lock_token = l_lock_tokens[i], locked_by = p_owner, locked_at = p_now,
                    locked_until = p_until, ready_at = NULL
                WHERE q.scope = p_scope AND q.queue = l_lock_queues[i] AND q.lock_token IS NULL;
            END LOOP;
        END IF;
    END IF;
    IF l_released > 0 AND l_claimed >= p_claim THEN
        PERFORM pg_notify(p_channel, p_scope);  -- queues we cannot take now: tell other workers
    END IF;
END $$;

-- name: step_3
-- Job control (SPEC 12): each failed attempt (errors), unique keys, periodic jobs;
-- qt_step learns GiveUp ('g') and Snooze ('z') outcomes and records failures through
-- qt_fail_job (the errors entry, and a unique key given up to a job that took it).
ALTER TABLE {schema}.qt_jobs
    ADD COLUMN errors jsonb,      -- failed attempts, oldest first (the last 20); NULL: none
    ADD COLUMN unique_key text;
-- One waiting job (scheduled, available or retrying: status 'pending') per key and scope.
CREATE UNIQUE INDEX qt_jobs_unique ON {schema}.qt_jobs (scope, unique_key)
    WHERE unique_key IS NOT NULL AND status = 'pending';
-- One row a periodic definition: the last tick a job was created for (epoch seconds).
CREATE TABLE {schema}.qt_periodic (
    scope     text   NOT NULL,
    name      text   NOT NULL,
    last_tick float8 NOT NULL,
    PRIMARY KEY (scope, name)
);

-- A job's errors with one more failed attempt: the last 20, each error bounded.
CREATE FUNCTION {schema}.qt_errors_add(p_errors jsonb, p_attempt integer, p_at float8,
                                       p_error text, p_by text) RETURNS jsonb
LANGUAGE sql IMMUTABLE AS $$
    SELECT (CASE WHEN jsonb_array_length(coalesce(p_errors, '[]')) >= 20 THEN p_errors - 0
                 ELSE coalesce(p_errors, '[]'::jsonb) END)
           || jsonb_build_array(jsonb_build_object('attempt', p_attempt, 'at', p_at,
                                                   'error', left(p_error, 4000), 'by', p_by))
$$;

-- Record a failed attempt of a running job (fenced by its token): retried at p_next,
-- or failed when its attempts are spent or it gave up (no retry time, so no hold).
-- Returns the saved row (all NULL when the claim was no longer valid). A job waiting
-- again gives up its unique key to a waiting job that took it meanwhile.
CREATE FUNCTION {schema}.qt_fail_job(p_id bigint, p_token text, p_error text, p_next float8,
                                     p_give_up boolean, p_now float8)
RETURNS {schema}.qt_jobs
LANGUAGE plpgsql AS $$
DECLARE
    l_job {schema}.qt_jobs;
BEGIN
    FOR attempt IN 1 .. 2 LOOP
        BEGIN
            UPDATE {schema}.qt_jobs j
            SET status = CASE WHEN p_give_up OR j.attempts >= j.max_attempts THEN 'failed'
                              ELSE 'pending' END,
                error = p_error,
                next_attempt_at = CASE WHEN p_give_up THEN NULL ELSE p_next END,
                lock_token = NULL,
                errors = {schema}.qt_errors_add(j.errors, j.attempts, p_now, p_error,
                                                j.attempted_by)
            WHERE j.id = p_id AND j.lock_token = p_token AND j.status = 'running'
            RETURNING j.* INTO l_job;
            RETURN l_job;
        EXCEPTION WHEN unique_violation THEN  -- its key was taken while it ran
            UPDATE {schema}.qt_jobs j SET unique_key = NULL
            WHERE j.id = p_id AND j.lock_token = p_token AND j.status = 'running';
        END;
    END LOOP;
    RETURN l_job;
END $$;

-- Snooze a running job (fenced): waiting again until p_until, the attempt uncounted,
-- error and errors unchanged. Whether it was saved.
CREATE FUNCTION {schema}.qt_snooze_job(p_id bigint, p_token text, p_until float8)
RETURNS boolean
LANGUAGE plpgsql AS $$
BEGIN
    FOR attempt IN 1 .. 2 LOOP
        BEGIN
            UPDATE {schema}.qt_jobs j
            SET status = 'pending', attempts = j.attempts - 1, next_attempt_at = p_until,
                lock_token = NULL
            WHERE j.id = p_id AND j.lock_token = p_token AND j.status = 'running';
            RETURN FOUND;
        EXCEPTION WHEN unique_violation THEN  -- its key was taken while it ran
            UPDATE {schema}.qt_jobs j SET unique_key = NULL
            WHERE j.id = p_id AND j.lock_token = p_token AND j.status = 'running';
        END;
    END LOOP;
    RETURN false;
END $$;

-- The step of step_2 with GiveUp ('g'), Snooze ('z') and qt_fail_job.
CREATE OR REPLACE FUNCTION {schema}.qt_step(
    p_scope text, p_now float8, p_channel text,
    o_kind text[], o_queue text[], o_id bigint[], o_token text[], o_error text[],
    o_next float8[], o_keep boolean[],
    v_queue text[], v_token text[], v_id bigint[], v_next float8[], v_error text[],
    p_released integer, p_alive text[], p_claim integer, p_owner text, p_until float8,
    p_tokens text[])
RETURNS TABLE (r_kind text, r_n bigint, r_queue text, r_token text, r_by text,
               r_job {schema}.qt_jobs)
LANGUAGE plpgsql
-- Without statistics the planner read every runnable queue (bitmap scan) and
-- sorted them to take the oldest few; the ready index already yields them in order.
SET enable_bitmapscan = off
AS $$
DECLARE
    n integer := coalesce(array_length(o_kind, 1), 0);
    q_names text[];
    q_token text[];
    q_head bigint[];
    q_blocked float8[];
    q_hold float8[];
    -- Queues to release: their rows as locked, whether a failure was recorded, its hold.
    rel_queue text[] := ARRAY[]::text[];
    rel_head bigint[] := ARRAY[]::bigint[];
    rel_blocked float8[] := ARRAY[]::float8[];
    rel_row_hold float8[] := ARRAY[]::float8[];
    rel_failed boolean[] := ARRAY[]::boolean[];
    rel_hold float8[] := ARRAY[]::float8[];
    l_released integer := coalesce(p_released, 0);
    l_saved boolean;
    l_failed boolean;
    l_snoozed boolean;
    l_hold float8;
    l_job {schema}.qt_jobs;
    l_expired boolean := false;
    k integer;
    rec record;
    c_queue text[] := ARRAY[]::text[];
    c_token text[] := ARRAY[]::text[];
    c_head bigint[] := ARRAY[]::bigint[];
    c_blocked float8[] := ARRAY[]::float8[];
    c_hold float8[] := ARRAY[]::float8[];
    l_lock_queues text[] := ARRAY[]::text[];
    l_lock_tokens text[] := ARRAY[]::text[];
    l_claimed integer := 0;
BEGIN
    -- Outcomes. The rows of the queues they release are locked in name order and
    -- read once, before any change (as steps.save_outcomes does).
    q_names := ARRAY[]::text[]; q_token := ARRAY[]::text[]; q_head := ARRAY[]::bigint[];
    q_blocked := ARRAY[]::float8[]; q_hold := ARRAY[]::float8[];
    FOR rec IN SELECT DISTINCT o_queue[i] AS queue FROM generate_subscripts(o_kind, 1) AS i
               WHERE NOT (o_kind[i] = 'f' AND o_keep[i]) ORDER BY 1
    LOOP  -- one row at a time on the primary key: see qt_release
        SELECT q.queue, q.lock_token, q.head_id, q.blocked_since, q.hold_until INTO rec
        FROM {schema}.qt_queues q WHERE q.scope = p_scope AND q.queue = rec.queue FOR UPDATE;
        IF FOUND THEN
            q_names := q_names || rec.queue; q_token := q_token || rec.lock_token;
            q_head := q_head || rec.head_id; q_blocked := q_blocked || rec.blocked_since;
            q_hold := q_hold || rec.hold_until;
        END IF;
    END LOOP;
    FOR i IN 1 .. n LOOP
        l_failed := false;
        l_snoozed := false;
        l_hold := NULL;
        IF o_kind[i] = 's' THEN
            UPDATE {schema}.qt_jobs j
            SET status = 'done', done_at = p_now, error = NULL, next_attempt_at = NULL,
                lock_token = NULL
            WHERE j.id = o_id[i] AND j.status = 'running' AND j.lock_token = o_token[i];
            l_saved := FOUND;
        ELSIF o_kind[i] = 'z' THEN  -- snoozed until o_next: not a failure, not blocked
            l_saved := {schema}.qt_snooze_job(o_id[i], o_token[i], o_next[i]);
            l_snoozed := l_saved;
        ELSIF o_kind[i] IN ('f', 'g') THEN  -- 'g': gave up (failed now, no hold, not blocked)
            l_job := {schema}.qt_fail_job(o_id[i], o_token[i], o_error[i], o_next[i],
                                          o_kind[i] = 'g', p_now);
            l_saved := l_job.id IS NOT NULL;
            IF l_saved THEN
                l_failed := o_kind[i] = 'f';
                IF l_job.status = 'failed' THEN  -- the last attempt holds its queue
                    l_hold := l_job.next_attempt_at;
                END IF;
                r_kind := 'failed'; r_n := i; r_queue := NULL; r_token := NULL; r_by := NULL;
                r_job := l_job;
                RETURN NEXT;
            END IF;
            IF o_keep[i] THEN  -- a timed-out job still runs: its queue stays locked
                IF l_saved THEN
                    UPDATE {schema}.qt_queues q
                    SET blocked_since = coalesce(q.blocked_since, p_now),
                        hold_until = greatest(q.hold_until, l_hold)
                    WHERE q.scope = p_scope AND q.queue = o_queue[i]
                      AND q.lock_token = o_token[i];
                    -- A Release later in this step must see what was just written.
                    k := array_position(q_names, o_queue[i]);
                    IF k IS NOT NULL AND q_token[k] = o_token[i] THEN
                        q_blocked[k] := coalesce(q_blocked[k], p_now);
                        q_hold[k] := greatest(q_hold[k], l_hold);
                    END IF;
                ELSE
                    r_kind := 'rejected'; r_n := i; r_queue := NULL; r_token := NULL;
                    r_by := NULL; r_job := NULL;
                    RETURN NEXT;
                END IF;
                CONTINUE;
            END IF;
        ELSE  -- 'r': a runaway's thread ended
            l_saved := true;
        END IF;
        k := array_position(q_names, o_queue[i]);
        IF k IS NOT NULL AND q_token[k] = o_token[i] THEN
            rel_queue := rel_queue || q_names[k];
            rel_head := rel_head || q_head[k];
            -- A snoozed head waits for a time, not for an error: not blocked.
            rel_blocked := rel_blocked || CASE WHEN l_snoozed THEN NULL ELSE q_blocked[k] END;
            rel_row_hold := rel_row_hold || q_hold[k];
            rel_failed := rel_failed || l_failed;
            rel_hold := rel_hold || l_hold;
            q_token[k] := NULL;  -- released once only
        ELSIF o_kind[i] = 'r' THEN
            l_saved := false;
        END IF;
        IF NOT l_saved THEN
            r_kind := 'rejected'; r_n := i; r_queue := NULL; r_token := NULL; r_by := NULL;
            r_job := NULL;
            RETURN NEXT;
        END IF;
    END LOOP;
    IF array_length(rel_queue, 1) > 0 THEN
        l_released := l_released + {schema}.qt_release(
            p_scope, p_now, rel_queue, rel_head, rel_blocked, rel_row_hold, rel_failed, rel_hold);
    END IF;

    IF v_queue IS NULL THEN
        -- Expired leases, except the caller's own running jobs (p_alive).
        FOR rec IN
            SELECT q.queue, q.lock_token, q.head_id, q.locked_by FROM {schema}.qt_queues q
            WHERE q.scope = p_scope AND q.locked_until <= p_now
              AND (q.lock_token IS NULL OR q.lock_token <> ALL(p_alive))
            ORDER BY q.queue
            FOR UPDATE SKIP LOCKED
        LOOP
            l_expired := true;
            r_kind := 'expired'; r_n := rec.head_id; r_queue := rec.queue;
            r_token := rec.lock_token; r_by := rec.locked_by;
            SELECT j.* INTO r_job FROM {schema}.qt_jobs j
            WHERE j.scope = p_scope AND j.id = rec.head_id;
            IF NOT FOUND THEN
                r_job := NULL;
            END IF;
            RETURN NEXT;
        END LOOP;
        IF l_expired THEN  -- the caller records them, then calls again to claim
            r_kind := 'released'; r_n := l_released; r_queue := NULL; r_token := NULL;
            r_by := NULL; r_job := NULL;
            RETURN NEXT;
            RETURN;
        END IF;
    ELSE
        -- Recoveries the caller prepared from our 'expired' rows (still row-locked).
        rel_head := ARRAY[]::bigint[];
        rel_blocked := ARRAY[]::float8[];
        rel_row_hold := ARRAY[]::float8[];
        rel_failed := ARRAY[]::boolean[];
        rel_hold := ARRAY[]::float8[];
        FOR i IN 1 .. coalesce(array_length(v_queue, 1), 0) LOOP
            SELECT q.head_id, q.blocked_since, q.hold_until INTO rec FROM {schema}.qt_queues q
            WHERE q.scope = p_scope AND q.queue = v_queue[i] FOR UPDATE;
            l_failed := false;
            l_hold := NULL;
            IF v_next[i] IS NOT NULL THEN
                l_job := {schema}.qt_fail_job(v_id[i], v_token[i], v_error[i], v_next[i],
                                              false, p_now);
                IF l_job.id IS NOT NULL THEN
                    l_failed := true;
                    IF l_job.status = 'failed' THEN
                        l_hold := l_job.next_attempt_at;
                    END IF;
                    r_kind := 'failed'; r_n := 0; r_queue := NULL; r_token := NULL;
                    r_by := NULL; r_job := l_job;
                    RETURN NEXT;
                END IF;
            END IF;
            rel_head := rel_head || rec.head_id;
            rel_blocked := rel_blocked || rec.blocked_since;
            rel_row_hold := rel_row_hold || rec.hold_until;
            rel_failed := rel_failed || l_failed;
            rel_hold := rel_hold || l_hold;
        END LOOP;
        IF array_length(v_queue, 1) > 0 THEN
            l_released := l_released + {schema}.qt_release(
                p_scope, p_now, v_queue, rel_head, rel_blocked, rel_row_hold, rel_failed,
                rel_hold);
        END IF;
    END IF;

    IF p_claim > 0 THEN
        -- Runnable queues, oldest-waiting first; rows another transaction holds are
        -- skipped, so concurrent workers never wait for (nor take) the same queue.
        FOR rec IN
            SELECT q.queue, q.lock_token, q.head_id, q.blocked_since, q.hold_until
            FROM {schema}.qt_queues q
            WHERE q.scope = p_scope AND q.ready_at <= p_now
            ORDER BY q.ready_at LIMIT p_claim
            FOR UPDATE SKIP LOCKED
        LOOP
            c_queue := c_queue || rec.queue;
            c_token := c_token || rec.lock_token;
            c_head := c_head || rec.head_id;
            c_blocked := c_blocked || rec.blocked_since;
            c_hold := c_hold || rec.hold_until;
        END LOOP;
        IF array_length(c_queue, 1) > 0 THEN
            rel_queue := ARRAY[]::text[];  -- now: the stale heads to repair
            rel_head := ARRAY[]::bigint[];
            rel_blocked := ARRAY[]::float8[];
            rel_row_hold := ARRAY[]::float8[];
            FOR i IN 1 .. array_length(c_queue, 1) LOOP
                UPDATE {schema}.qt_jobs j
                SET status = 'running', attempts = j.attempts + 1, attempted_at = p_now,
                    attempted_by = p_owner, lock_token = p_tokens[i]
                WHERE j.id = c_head[i] AND j.status = 'pending'
                RETURNING j.* INTO l_job;
                IF NOT FOUND THEN  -- the recorded head is stale: repair it, claim nothing
                    rel_queue := rel_queue || c_queue[i];
                    rel_head := rel_head || c_head[i];
                    rel_blocked := rel_blocked || c_blocked[i];
                    rel_row_hold := rel_row_hold || c_hold[i];
                ELSE
                    l_lock_queues := l_lock_queues || c_queue[i];
                    l_lock_tokens := l_lock_tokens || p_tokens[i];
                    l_claimed := l_claimed + 1;
                    r_kind := 'claimed'; r_n := i; r_queue := c_queue[i];
                    r_token := p_tokens[i]; r_by := NULL; r_job := l_job;
                    RETURN NEXT;
                END IF;
            END LOOP;
            IF array_length(rel_queue, 1) > 0 THEN
                PERFORM {schema}.qt_release(
                    p_scope, p_now, rel_queue, rel_head, rel_blocked, rel_row_hold,
                    array_fill(false, ARRAY[array_length(rel_queue, 1)]),
                    array_fill(NULL::float8, ARRAY[array_length(rel_queue, 1)]));
            END IF;
            FOR i IN 1 .. coalesce(array_length(l_lock_queues, 1), 0) LOOP  -- see qt_release
                UPDATE {schema}.qt_queues q
                SET lock_token = l_lock_tokens[i], locked_by = p_owner, locked_at = p_now,
                    locked_until = p_until, ready_at = NULL
                WHERE q.scope = p_scope AND q.queue = l_lock_queues[i] AND q.lock_token IS NULL;
            END LOOP;
        END IF;
    END IF;
    IF l_released > 0 AND l_claimed >= p_claim THEN
        PERFORM pg_notify(p_channel, p_scope);  -- queues we cannot take now: tell other workers
    END IF;
END $$;

-- name: step_4
-- Ids are never reused: qt_jobs.id is an identity column since step_1, and a
-- sequence never hands out a number twice, whatever prune deletes. Nothing to
-- change; the step exists so both dialects number their steps alike (SQLite
-- rebuilds its table here to get AUTOINCREMENT).
SELECT 1;

-- name: step_5
-- The scheduling step set-based (issue 9): one statement per kind of change for the
-- whole batch (queue rows locked, successes saved, queues released, heads claimed)
-- instead of one statement per row; failures, snoozes and releases of runaways (rare)
-- stay one row at a time. The rules are step_3's, unchanged. Recoveries of expired
-- leases are fenced (still expired under the same token): the caller now computes
-- their backoff between two transactions, not inside one that holds row locks.
-- The planner is told to use the indexes: with the statistics of a young (never
-- analysed) table, the cached generic plans of joins otherwise scanned whole tables.

-- qt_release of step_2 with one statement for the heads and one for the queue rows.
-- The new values are computed row by row as before, in arrays. Rows are found by
-- one probe each and updated by ctid: with a young table's statistics, "= ANY" and
-- joins of arrays were planned as scans of a whole index.
CREATE OR REPLACE FUNCTION {schema}.qt_release(p_scope text, p_now float8, p_queues text[],
                                               p_head bigint[], p_blocked float8[],
                                               p_row_hold float8[], p_failed boolean[],
                                               p_hold float8[]) RETURNS integer
LANGUAGE plpgsql
SET enable_seqscan = off SET enable_bitmapscan = off
AS $$
DECLARE
    l_with_head integer := 0;
    h_id bigint[];
    h_scheduled float8[];
    h_next float8[];
    h_attempted float8[];
    h_tid tid[];
    a_hold float8[] := ARRAY[]::float8[];
    a_blocked float8[] := ARRAY[]::float8[];
    a_due float8[] := ARRAY[]::float8[];
    a_ready float8[] := ARRAY[]::float8[];
    l_hold float8;
    l_blocked float8;
    l_due float8;
    l_ready float8;
BEGIN
    -- Each queue's first pending job (LIMIT 1 per queue: one index probe each).
    SELECT array_agg(nh.id ORDER BY r.x), array_agg(nh.scheduled_at ORDER BY r.x),
           array_agg(nh.next_attempt_at ORDER BY r.x), array_agg(nh.attempted_at ORDER BY r.x),
           array_agg(qq.ctid)
    INTO h_id, h_scheduled, h_next, h_attempted, h_tid
    FROM unnest(p_queues) WITH ORDINALITY AS r(queue, x)
    -- OFFSET 0 and LIMIT 1 keep each probe a probe (not a join the planner may reorder).
    CROSS JOIN LATERAL (SELECT q.ctid FROM {schema}.qt_queues q
                        WHERE q.scope = p_scope AND q.queue = r.queue OFFSET 0) qq
    LEFT JOIN LATERAL (
        SELECT j.id, j.scheduled_at, j.next_attempt_at, j.attempted_at
        FROM {schema}.qt_jobs j
        WHERE j.scope = p_scope AND j.queue = r.queue AND j.status = 'pending'
        ORDER BY j.scheduled_at, j.id LIMIT 1) nh ON true;
    FOR i IN 1 .. coalesce(array_length(p_queues, 1), 0) LOOP
        l_due := NULL; l_ready := NULL; l_blocked := NULL;
        l_hold := greatest(p_row_hold[i], p_hold[i]);  -- greatest() skips NULLs
        IF p_failed[i] THEN  -- 0.0 counts as unset, as Python's `or` does in steps.release
            l_blocked := CASE WHEN p_blocked[i] IS NULL OR p_blocked[i] = 0 THEN p_now
                              ELSE p_blocked[i] END;
        END IF;
        IF h_id[i] IS NOT NULL THEN
            l_with_head := l_with_head + 1;
            l_due := greatest(h_scheduled[i], coalesce(h_next[i], 0));
            -- A released queue goes to the back of the line (now): fairness between queues.
            l_ready := greatest(l_due, coalesce(l_hold, 0), p_now);
            IF NOT p_failed[i] AND h_id[i] = p_head[i] THEN
                l_blocked := p_blocked[i];
            ELSIF NOT p_failed[i] AND h_next[i] IS NOT NULL THEN  -- a failed job is head again
                l_blocked := h_attempted[i];
            END IF;
        END IF;
        a_hold := a_hold || l_hold;
        a_blocked := a_blocked || l_blocked;
        a_due := a_due || l_due;
        a_ready := a_ready || l_ready;
    END LOOP;
    UPDATE {schema}.qt_queues q
    SET lock_token = NULL, locked_by = NULL, locked_at = NULL, locked_until = NULL,
        head_id = h_id[array_position(p_queues, q.queue)],
        head_scheduled_at = h_scheduled[array_position(p_queues, q.queue)],
        head_due_at = a_due[array_position(p_queues, q.queue)],
        ready_at = a_ready[array_position(p_queues, q.queue)],
        blocked_since = a_blocked[array_position(p_queues, q.queue)],
        hold_until = a_hold[array_position(p_queues, q.queue)]
    WHERE q.ctid = ANY (h_tid);  -- rows this transaction holds: their ctids are stable
    RETURN l_with_head;
END $$;

CREATE OR REPLACE FUNCTION {schema}.qt_step(
    p_scope text, p_now float8, p_channel text,
    o_kind text[], o_queue text[], o_id bigint[], o_token text[], o_error text[],
    o_next float8[], o_keep boolean[],
    v_queue text[], v_token text[], v_id bigint[], v_next float8[], v_error text[],
    p_released integer, p_alive text[], p_claim integer, p_owner text, p_until float8,
    p_tokens text[])
RETURNS TABLE (r_kind text, r_n bigint, r_queue text, r_token text, r_by text,
               r_job {schema}.qt_jobs)
LANGUAGE plpgsql
SET enable_seqscan = off SET enable_bitmapscan = off
AS $$
DECLARE
    n integer := coalesce(array_length(o_kind, 1), 0);
    q_names text[] := ARRAY[]::text[];
    q_token text[];
    q_head bigint[];
    q_blocked float8[];
    q_hold float8[];
    s_ids bigint[];  -- the successes' jobs and tokens
    s_tokens text[];
    s_bulk boolean := false;  -- saved in one statement
    s_saved bigint[] := ARRAY[]::bigint[];  -- the jobs of the successes saved
    -- Queues to release: their rows as locked, whether a failure was recorded, its hold.
    rel_queue text[] := ARRAY[]::text[];
    rel_head bigint[] := ARRAY[]::bigint[];
    rel_blocked float8[] := ARRAY[]::float8[];
    rel_row_hold float8[] := ARRAY[]::float8[];
    rel_failed boolean[] := ARRAY[]::boolean[];
    rel_hold float8[] := ARRAY[]::float8[];
    l_released integer := coalesce(p_released, 0);
    l_saved boolean;
    l_failed boolean;
    l_snoozed boolean;
    l_hold float8;
    l_job {schema}.qt_jobs;
    l_expired boolean := false;
    k integer;
    rec record;
    c_queue text[];
    c_head bigint[];
    c_blocked float8[];
    c_hold float8[];
    c_tid tid[];
    c_job_tid tid[];
    c_got integer[] := ARRAY[]::integer[];  -- indexes (in c_*) of the heads claimed
    l_lock_queues text[] := ARRAY[]::text[];
    l_lock_tokens text[] := ARRAY[]::text[];
    l_lock_tids tid[] := ARRAY[]::tid[];
    l_claimed integer := 0;
BEGIN
    IF n > 0 THEN
        -- The rows of the queues the outcomes release, locked in name order and read
        -- once, before any change.
        SELECT coalesce(array_agg(l.queue ORDER BY l.queue), ARRAY[]::text[]),
               array_agg(l.lock_token ORDER BY l.queue), array_agg(l.head_id ORDER BY l.queue),
               array_agg(l.blocked_since ORDER BY l.queue),
               array_agg(l.hold_until ORDER BY l.queue)
        INTO q_names, q_token, q_head, q_blocked, q_hold
        FROM (SELECT DISTINCT o_queue[x] AS name FROM generate_subscripts(o_kind, 1) x
              WHERE NOT (o_kind[x] = 'f' AND o_keep[x]) ORDER BY 1) o
        -- One probe a queue, in name order (a subquery that locks is never flattened).
        CROSS JOIN LATERAL (SELECT q.queue, q.lock_token, q.head_id, q.blocked_since,
                                   q.hold_until
                            FROM {schema}.qt_queues q
                            WHERE q.scope = p_scope AND q.queue = o.name FOR UPDATE) l;
        -- Every success in one statement (fenced by token), when their jobs are distinct
        -- (always, but for a job claimed twice by this process); the loop reads the result.
        SELECT array_agg(o_id[x]), array_agg(o_token[x]),
               count(*) = count(DISTINCT o_id[x])
        INTO s_ids, s_tokens, s_bulk
        FROM generate_subscripts(o_kind, 1) x WHERE o_kind[x] = 's';
        IF s_bulk AND s_ids IS NOT NULL THEN
            WITH s AS (
                UPDATE {schema}.qt_jobs j
                SET status = 'done', done_at = p_now, error = NULL, next_attempt_at = NULL,
                    lock_token = NULL
                WHERE j.id = ANY (s_ids) AND j.status = 'running'
                  AND j.lock_token = s_tokens[array_position(s_ids, j.id)]
                RETURNING j.id
            )
            SELECT coalesce(array_agg(s.id), ARRAY[]::bigint[]) INTO s_saved FROM s;
        END IF;
    END IF;
    FOR i IN 1 .. n LOOP
        l_failed := false;
        l_snoozed := false;
        l_hold := NULL;
        IF o_kind[i] = 's' AND s_bulk THEN
            l_saved := o_id[i] = ANY (s_saved);
        ELSIF o_kind[i] = 's' THEN
            UPDATE {schema}.qt_jobs j
            SET status = 'done', done_at = p_now, error = NULL, next_attempt_at = NULL,
                lock_token = NULL
            WHERE j.id = o_id[i] AND j.status = 'running' AND j.lock_token = o_token[i];
            l_saved := FOUND;
        ELSIF o_kind[i] = 'z' THEN  -- snoozed until o_next: not a failure, not blocked
            l_saved := {schema}.qt_snooze_job(o_id[i], o_token[i], o_next[i]);
            l_snoozed := l_saved;
        ELSIF o_kind[i] IN ('f', 'g') THEN  -- 'g': gave up (failed now, no hold, not blocked)
            l_job := {schema}.qt_fail_job(o_id[i], o_token[i], o_error[i], o_next[i],
                                          o_kind[i] = 'g', p_now);
            l_saved := l_job.id IS NOT NULL;
            IF l_saved THEN
                l_failed := o_kind[i] = 'f';
                IF l_job.status = 'failed' THEN  -- the last attempt holds its queue
                    l_hold := l_job.next_attempt_at;
                END IF;
                r_kind := 'failed'; r_n := i; r_queue := NULL; r_token := NULL; r_by := NULL;
                r_job := l_job;
                RETURN NEXT;
            END IF;
            IF o_keep[i] THEN  -- a timed-out job still runs: its queue stays locked
                IF l_saved THEN
                    UPDATE {schema}.qt_queues q
                    SET blocked_since = coalesce(q.blocked_since, p_now),
                        hold_until = greatest(q.hold_until, l_hold)
                    WHERE q.scope = p_scope AND q.queue = o_queue[i]
                      AND q.lock_token = o_token[i];
                    -- A Release later in this step must see what was just written.
                    k := array_position(q_names, o_queue[i]);
                    IF k IS NOT NULL AND q_token[k] = o_token[i] THEN
                        q_blocked[k] := coalesce(q_blocked[k], p_now);
                        q_hold[k] := greatest(q_hold[k], l_hold);
                    END IF;
                ELSE
                    r_kind := 'rejected'; r_n := i; r_queue := NULL; r_token := NULL;
                    r_by := NULL; r_job := NULL;
                    RETURN NEXT;
                END IF;
                CONTINUE;
            END IF;
        ELSE  -- 'r': a runaway's thread ended
            l_saved := true;
        END IF;
        k := array_position(q_names, o_queue[i]);
        IF k IS NOT NULL AND q_token[k] = o_token[i] THEN
            rel_queue := rel_queue || q_names[k];
            rel_head := rel_head || q_head[k];
            -- A snoozed head waits for a time, not for an error: not blocked.
            rel_blocked := rel_blocked || CASE WHEN l_snoozed THEN NULL ELSE q_blocked[k] END;
            rel_row_hold := rel_row_hold || q_hold[k];
            rel_failed := rel_failed || l_failed;
            rel_hold := rel_hold || l_hold;
            q_token[k] := NULL;  -- released once only
        ELSIF o_kind[i] = 'r' THEN
            l_saved := false;
        END IF;
        IF NOT l_saved THEN
            r_kind := 'rejected'; r_n := i; r_queue := NULL; r_token := NULL; r_by := NULL;
            r_job := NULL;
            RETURN NEXT;
        END IF;
    END LOOP;
    IF array_length(rel_queue, 1) > 0 THEN
        l_released := l_released + {schema}.qt_release(
            p_scope, p_now, rel_queue, rel_head, rel_blocked, rel_row_hold, rel_failed, rel_hold);
    END IF;

    IF v_queue IS NULL THEN
        -- Expired leases, except the caller's own running jobs (p_alive).
        FOR rec IN
            SELECT q.queue, q.lock_token, q.head_id, q.locked_by FROM {schema}.qt_queues q
            WHERE q.scope = p_scope AND q.locked_until <= p_now
              AND (q.lock_token IS NULL OR q.lock_token <> ALL(p_alive))
            ORDER BY q.queue
            FOR UPDATE SKIP LOCKED
        LOOP
            l_expired := true;
            r_kind := 'expired'; r_n := rec.head_id; r_queue := rec.queue;
            r_token := rec.lock_token; r_by := rec.locked_by;
            SELECT j.* INTO r_job FROM {schema}.qt_jobs j
            WHERE j.scope = p_scope AND j.id = rec.head_id;
            IF NOT FOUND THEN
                r_job := NULL;
            END IF;
            RETURN NEXT;
        END LOOP;
        IF l_expired THEN  -- the caller computes their backoffs, then calls again
            r_kind := 'released'; r_n := l_released; r_queue := NULL; r_token := NULL;
            r_by := NULL; r_job := NULL;
            RETURN NEXT;
            RETURN;
        END IF;
    ELSE
        -- Recoveries the caller prepared from our 'expired' rows, in an earlier
        -- transaction: only a lease still expired under the same token is recovered
        -- (its owner may have renewed it, or another worker recovered it, meanwhile).
        rel_queue := ARRAY[]::text[];
        rel_head := ARRAY[]::bigint[];
        rel_blocked := ARRAY[]::float8[];
        rel_row_hold := ARRAY[]::float8[];
        rel_failed := ARRAY[]::boolean[];
        rel_hold := ARRAY[]::float8[];
        FOR i IN 1 .. coalesce(array_length(v_queue, 1), 0) LOOP
            SELECT q.head_id, q.blocked_since, q.hold_until INTO rec FROM {schema}.qt_queues q
            WHERE q.scope = p_scope AND q.queue = v_queue[i] AND q.locked_until <= p_now
              AND q.lock_token IS NOT DISTINCT FROM v_token[i]
              AND q.head_id IS NOT DISTINCT FROM v_id[i]
              AND (q.lock_token IS NULL OR q.lock_token <> ALL(p_alive))
            FOR UPDATE SKIP LOCKED;
            IF NOT FOUND THEN
                CONTINUE;
            END IF;
            l_failed := false;
            l_hold := NULL;
            IF v_next[i] IS NOT NULL THEN
                l_job := {schema}.qt_fail_job(v_id[i], v_token[i], v_error[i], v_next[i],
                                              false, p_now);
                IF l_job.id IS NOT NULL THEN
                    l_failed := true;
                    IF l_job.status = 'failed' THEN
                        l_hold := l_job.next_attempt_at;
                    END IF;
                    r_kind := 'failed'; r_n := 0; r_queue := NULL; r_token := NULL;
                    r_by := NULL; r_job := l_job;
                    RETURN NEXT;
                END IF;
            END IF;
            rel_queue := rel_queue || v_queue[i];
            rel_head := rel_head || rec.head_id;
            rel_blocked := rel_blocked || rec.blocked_since;
            rel_row_hold := rel_row_hold || rec.hold_until;
            rel_failed := rel_failed || l_failed;
            rel_hold := rel_hold || l_hold;
        END LOOP;
        IF array_length(rel_queue, 1) > 0 THEN
            l_released := l_released + {schema}.qt_release(
                p_scope, p_now, rel_queue, rel_head, rel_blocked, rel_row_hold, rel_failed,
                rel_hold);
        END IF;
    END IF;

    IF p_claim > 0 THEN
        -- Runnable queues, oldest-waiting first; rows another transaction holds are
        -- skipped, so concurrent workers never wait for (nor take) the same queue.
        SELECT array_agg(c.queue ORDER BY c.ready_at, c.queue),
               array_agg(c.head_id ORDER BY c.ready_at, c.queue),
               array_agg(c.blocked_since ORDER BY c.ready_at, c.queue),
               array_agg(c.hold_until ORDER BY c.ready_at, c.queue),
               array_agg(c.ctid ORDER BY c.ready_at, c.queue),
               array_agg(h.ctid ORDER BY c.ready_at, c.queue)
        INTO c_queue, c_head, c_blocked, c_hold, c_tid, c_job_tid
        FROM (SELECT q.queue, q.head_id, q.blocked_since, q.hold_until, q.ready_at, q.ctid
              FROM {schema}.qt_queues q
              WHERE q.scope = p_scope AND q.ready_at <= p_now
              ORDER BY q.ready_at LIMIT p_claim
              FOR UPDATE SKIP LOCKED) c
        -- The head job's row, one probe each (its queue's lock keeps its ctid stable).
        LEFT JOIN LATERAL (SELECT j.ctid FROM {schema}.qt_jobs j
                           WHERE j.id = c.head_id OFFSET 0) h ON true;
        IF array_length(c_queue, 1) > 0 THEN
            -- Each head starts (if it still is pending), then its queue takes the lock.
            FOR rec IN
                WITH started AS (
                    UPDATE {schema}.qt_jobs j
                    SET status = 'running', attempts = j.attempts + 1, attempted_at = p_now,
                        attempted_by = p_owner,
                        lock_token = p_tokens[array_position(c_head, j.id)]
                    -- IS NOT DISTINCT FROM: "status = 'pending'" would make the partial
                    -- head index eligible, and a young table's statistics chose a scan of it.
                    WHERE j.ctid = ANY (c_job_tid) AND j.id = ANY (c_head)
                      AND j.status IS NOT DISTINCT FROM 'pending'
                    RETURNING array_position(c_head, j.id) AS x, j AS job
                )
                SELECT s.x, s.job FROM started s ORDER BY s.x
            LOOP
                c_got := c_got || rec.x;
                l_lock_queues := l_lock_queues || c_queue[rec.x];
                l_lock_tids := l_lock_tids || c_tid[rec.x];
                l_lock_tokens := l_lock_tokens || p_tokens[rec.x];
                l_claimed := l_claimed + 1;
                r_kind := 'claimed'; r_n := rec.x; r_queue := c_queue[rec.x];
                r_token := p_tokens[rec.x]; r_by := NULL; r_job := rec.job;
                RETURN NEXT;
            END LOOP;
            IF l_claimed > 0 THEN
                UPDATE {schema}.qt_queues q
                SET lock_token = l_lock_tokens[array_position(l_lock_queues, q.queue)],
                    locked_by = p_owner, locked_at = p_now, locked_until = p_until,
                    ready_at = NULL
                WHERE q.ctid = ANY (l_lock_tids) AND q.lock_token IS NULL;
            END IF;
            IF l_claimed < array_length(c_queue, 1) THEN
                -- A recorded head that is stale: repair it, claim nothing.
                rel_queue := ARRAY[]::text[];
                rel_head := ARRAY[]::bigint[];
                rel_blocked := ARRAY[]::float8[];
                rel_row_hold := ARRAY[]::float8[];
                FOR i IN 1 .. array_length(c_queue, 1) LOOP
                    IF NOT i = ANY (c_got) THEN
                        rel_queue := rel_queue || c_queue[i];
                        rel_head := rel_head || c_head[i];
                        rel_blocked := rel_blocked || c_blocked[i];
                        rel_row_hold := rel_row_hold || c_hold[i];
                    END IF;
                END LOOP;
                PERFORM {schema}.qt_release(
                    p_scope, p_now, rel_queue, rel_head, rel_blocked, rel_row_hold,
                    array_fill(false, ARRAY[array_length(rel_queue, 1)]),
                    array_fill(NULL::float8, ARRAY[array_length(rel_queue, 1)]));
            END IF;
        END IF;
    END IF;
    IF l_released > 0 AND l_claimed >= p_claim THEN
        PERFORM pg_notify(p_channel, p_scope);  -- queues we cannot take now: tell other workers
    END IF;
END $$;

-- name: step_6
-- Nothing to change on Postgres: step_6 gives SQLite leases on a host clock that never
-- jumps. Postgres leases already follow one clock, the database server's (clock.py).
SELECT 1;
