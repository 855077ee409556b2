"""The statements of ``records``: each takes arrays, so a batch of records costs one round trip.

Lock order: lane rows first (in ``customer_id`` order), then the records of those lanes.
Every statement that locks several lanes locks them in that order, so two transactions
(the fast path of two instances during a rebalance, a settle and a fast path) never
deadlock on them. The retry scheduler locks due records first but takes their lanes with
SKIP LOCKED, so it never waits while holding anything.

Time is ``:now``, the connector's clock (``clock.py``), in every comparison that decides a
delivery (due, lease live, deadline) and every time written for one (next attempt, lease end,
deadline); ``updated_at`` / ``completed_at`` stay the database's ``now()`` (for people and
retention).
"""

from __future__ import annotations

from sqlalchemy import text

RECORD_COLUMNS = """
    r.id, r.event_id::text AS event_id, r.customer_id, r.system_code, r.sync_status AS status, r.profile_version,
    r.retry_count, r.max_retry_count, r.next_attempt_at, r.deliver_by,
    COALESCE(r.next_attempt_at <= CAST(:now AS timestamptz), true) AS due, r.sync_data::text AS sync_data,
    r.event_headers
"""
LANE_COLUMNS = """
    s.customer_id, s.applied_version, s.inflight_record_id, s.inflight_until,
    COALESCE(s.inflight_until > CAST(:now AS timestamptz), false) AS inflight_live
"""

# A no-op update on conflict, so RETURNING also yields (and locks) the records seen before (redeliveries).
# Each open record comes with its blocker: the oldest other open record of its lane, ahead of it. The
# blocker query sees the rows as they were before this statement: rows it inserts are of other lanes
# (one record per lane per call).
OPEN = text(f"""
    WITH opened AS (
        INSERT INTO sync.external_sync_records AS r
            (event_id, customer_id, application_id, system_code, system_name, sync_data, max_retry_count,
             profile_version, event_headers, deliver_by)
        SELECT v.event_id, v.customer_id, v.application_id, :system_code, :system_name, CAST(v.sync_data AS jsonb),
               CAST(:max_retry_count AS integer), v.profile_version, CAST(v.event_headers AS jsonb),
               CAST(:now AS timestamptz) + make_interval(secs => :deadline_s)
        FROM unnest(CAST(:event_ids AS uuid[]), CAST(:customer_ids AS text[]), CAST(:application_ids AS text[]),
                    CAST(:sync_data AS text[]), CAST(:versions AS int[]), CAST(:event_headers AS text[]))
             AS v(event_id, customer_id, application_id, sync_data, profile_version, event_headers)
        ORDER BY v.customer_id, v.profile_version
        ON CONFLICT (event_id, system_code) DO UPDATE SET event_id = EXCLUDED.event_id
        RETURNING {RECORD_COLUMNS}
    )
    SELECT o.*, b.id AS blocker_id, b.profile_version AS blocker_version, b.next_attempt_at AS blocker_next_attempt_at
    FROM opened o LEFT JOIN LATERAL (
        SELECT r.id, r.profile_version, r.next_attempt_at FROM sync.external_sync_records r
        WHERE r.system_code = o.system_code AND r.customer_id = o.customer_id
          AND r.sync_status IN ('pending', 'retrying') AND (r.profile_version, r.id) < (o.profile_version, o.id)
        ORDER BY r.profile_version, r.id
        LIMIT 1
    ) AS b ON o.status IN ('pending', 'retrying')
""")  # noqa: S608 - fixed column lists, values are bound parameters
DUE = text(f"""
    SELECT {RECORD_COLUMNS} FROM sync.external_sync_records r
    WHERE r.system_code = :system_code AND r.sync_status IN ('pending', 'retrying')
      AND r.next_attempt_at <= CAST(:now AS timestamptz)
    ORDER BY r.next_attempt_at, r.id
    LIMIT :limit
    FOR UPDATE SKIP LOCKED
""")  # noqa: S608 - fixed column lists, values are bound parameters
LOCK_LANES = text(f"""
    INSERT INTO sync.customer_sync_state AS s (system_code, customer_id)
    SELECT :system_code, c FROM unnest(CAST(:customer_ids AS text[])) AS c ORDER BY c
    ON CONFLICT (system_code, customer_id) DO UPDATE SET updated_at = now()
    RETURNING {LANE_COLUMNS}
""")  # noqa: S608 - fixed column lists, values are bound parameters
ENSURE_LANE = text("""
    INSERT INTO sync.customer_sync_state (system_code, customer_id) VALUES (:system_code, :customer_id)
    ON CONFLICT (system_code, customer_id) DO NOTHING
""")
TRY_LOCK_LANE = text(f"""
    SELECT {LANE_COLUMNS} FROM sync.customer_sync_state s
    WHERE s.system_code = :system_code AND s.customer_id = :customer_id
    FOR UPDATE SKIP LOCKED
""")  # noqa: S608 - fixed column lists, values are bound parameters
LOCK_LANES_OF = text("""
    SELECT 1 FROM sync.customer_sync_state
    WHERE system_code = :system_code AND customer_id = ANY(CAST(:customer_ids AS text[]))
    ORDER BY customer_id
    FOR UPDATE
""")
# The oldest other open record of each record's lane, ahead of it.
BLOCKERS = text("""
    SELECT v.id AS record_id, b.id, b.profile_version, b.next_attempt_at
    FROM unnest(CAST(:ids AS bigint[]), CAST(:customer_ids AS text[]), CAST(:versions AS int[]))
         AS v(id, customer_id, profile_version)
    CROSS JOIN LATERAL (
        SELECT r.id, r.profile_version, r.next_attempt_at FROM sync.external_sync_records r
        WHERE r.system_code = :system_code AND r.customer_id = v.customer_id
          AND r.sync_status IN ('pending', 'retrying') AND (r.profile_version, r.id) < (v.profile_version, v.id)
        ORDER BY r.profile_version, r.id
        LIMIT 1
    ) AS b
""")
CLAIM = text("""
    WITH claimed AS (
        UPDATE sync.external_sync_records r
        SET claim_token = v.token, next_attempt_at = CAST(:now AS timestamptz) + make_interval(secs => :lease_s),
            blocked_by_record_id = NULL, updated_at = now()
        FROM unnest(CAST(:ids AS bigint[]), CAST(:tokens AS uuid[])) AS v(id, token)
        WHERE r.id = v.id
        RETURNING r.id, r.system_code, r.customer_id, r.next_attempt_at
    )
    UPDATE sync.customer_sync_state s
    SET inflight_record_id = claimed.id, inflight_until = claimed.next_attempt_at
    FROM claimed WHERE s.system_code = claimed.system_code AND s.customer_id = claimed.customer_id
""")
DEFER = text("""
    UPDATE sync.external_sync_records
    SET sync_status = :status, blocked_by_record_id = :blocked_by, updated_at = now(),
        next_attempt_at = GREATEST(CAST(:not_before AS timestamptz),
                                   CAST(:now AS timestamptz) + make_interval(secs => :delay_s))
    WHERE id = :id
""")
# The results of calls, in one statement: only records whose claim still holds (the token matches)
# are settled and returned; each counted attempt gets an attempt row and a retry (a failed probe of
# a system known to be down gets neither: it only reschedules its record), its lane is freed (and,
# on success, moved to its version, never lowered) and the records waiting behind it are woken. At
# most one record per lane (a claim holds its lane). Lanes are locked before this (LOCK_LANES_OF),
# in order. ``deliver_by`` is written back: a record re-driven by an admin gets its deadline here.
SETTLE = text("""
    WITH v AS (
        SELECT * FROM unnest(CAST(:ids AS bigint[]), CAST(:tokens AS uuid[]), CAST(:statuses AS text[]),
                             CAST(:outcomes AS text[]), CAST(:http_statuses AS int[]), CAST(:errors AS text[]),
                             CAST(:delays_s AS float8[]), CAST(:durations_ms AS float8[]),
                             CAST(:counted AS boolean[]), CAST(:deliver_by AS timestamptz[]))
             AS v(id, token, status, outcome, http_status, error, delay_s, duration_ms, counted, deliver_by)
    ), settled AS (
        UPDATE sync.external_sync_records r
        SET claim_token = NULL, sync_status = v.status, updated_at = now(), error_message = v.error,
            retry_count = r.retry_count + CASE WHEN v.status = 'retrying' AND v.counted THEN 1 ELSE 0 END,
            last_http_status = CASE WHEN v.status = 'retrying' THEN v.http_status
                                    ELSE COALESCE(v.http_status, r.last_http_status) END,
            next_attempt_at = CASE WHEN v.status = 'retrying'
                                   THEN CAST(:now AS timestamptz) + make_interval(secs => v.delay_s) END,
            deliver_by = v.deliver_by,
            blocked_by_record_id = CASE WHEN v.status = 'retrying' THEN r.blocked_by_record_id END,
            completed_at = CASE WHEN v.status = 'retrying' THEN r.completed_at ELSE now() END
        FROM v WHERE r.id = v.id AND r.claim_token = v.token
        RETURNING r.id, r.customer_id, r.event_id, r.profile_version, v.status, v.outcome, v.http_status,
                  v.error, v.duration_ms, v.counted
    ), attempts AS (
        -- Numbered after the record's previous attempts, also across redeliveries and re-drives.
        INSERT INTO sync.external_sync_attempts
            (record_id, attempt_no, outcome, http_status, error_message, duration_ms)
        SELECT s.id,
               COALESCE((SELECT max(a.attempt_no) FROM sync.external_sync_attempts a WHERE a.record_id = s.id), 0)
               + 1,
               s.outcome, s.http_status, s.error, s.duration_ms
        FROM settled s WHERE s.counted
    ), lanes AS (
        UPDATE sync.customer_sync_state l
        SET inflight_record_id = CASE WHEN l.inflight_record_id = s.id THEN NULL ELSE l.inflight_record_id END,
            inflight_until = CASE WHEN l.inflight_record_id = s.id THEN NULL ELSE l.inflight_until END,
            applied_event_id = CASE WHEN s.status = 'success'
                                         AND (l.applied_version IS NULL OR s.profile_version > l.applied_version)
                                    THEN s.event_id ELSE l.applied_event_id END,
            applied_version = CASE WHEN s.status = 'success'
                                   THEN GREATEST(COALESCE(l.applied_version, s.profile_version), s.profile_version)
                                   ELSE l.applied_version END,
            updated_at = now()
        FROM settled s WHERE l.system_code = :system_code AND l.customer_id = s.customer_id
    ), woken AS (
        -- SKIP LOCKED: a waiter locked right now is being looked at by a retry scheduler anyway (it was
        -- due); waiting for it could deadlock two schedulers that each hold a lane.
        UPDATE sync.external_sync_records w SET next_attempt_at = CAST(:now AS timestamptz)
        WHERE w.id IN (
            SELECT r.id FROM sync.external_sync_records r JOIN settled s
              ON r.customer_id = s.customer_id AND r.blocked_by_record_id = s.id
            WHERE r.system_code = :system_code AND r.sync_status IN ('pending', 'retrying')
            FOR UPDATE OF r SKIP LOCKED
        )
    )
    SELECT id FROM settled
""")
FINISH = text("""
    UPDATE sync.external_sync_records r
    SET sync_status = v.status, last_http_status = COALESCE(v.http_status, r.last_http_status),
        error_message = v.error, next_attempt_at = NULL, claim_token = NULL, blocked_by_record_id = NULL,
        updated_at = now(), completed_at = now()
    FROM unnest(CAST(:ids AS bigint[]), CAST(:statuses AS text[]), CAST(:http_statuses AS int[]),
                CAST(:errors AS text[])) AS v(id, status, http_status, error)
    WHERE r.id = v.id
""")
RELEASE_LANES = text("""
    UPDATE sync.customer_sync_state s
    SET inflight_record_id = NULL, inflight_until = NULL, updated_at = now()
    FROM unnest(CAST(:customer_ids AS text[]), CAST(:ids AS bigint[])) AS v(customer_id, id)
    WHERE s.system_code = :system_code AND s.customer_id = v.customer_id AND s.inflight_record_id = v.id
""")
# SKIP LOCKED: a waiter locked right now is being looked at by a retry scheduler anyway (it was due);
# waiting for it could deadlock two schedulers that each hold a lane.
WAKE_WAITING = text("""
    UPDATE sync.external_sync_records SET next_attempt_at = CAST(:now AS timestamptz)
    WHERE id IN (
        SELECT r.id FROM sync.external_sync_records r
        JOIN unnest(CAST(:customer_ids AS text[]), CAST(:ids AS bigint[])) AS v(customer_id, id)
          ON r.customer_id = v.customer_id AND r.blocked_by_record_id = v.id
        WHERE r.system_code = :system_code AND r.sync_status IN ('pending', 'retrying')
        FOR UPDATE OF r SKIP LOCKED
    )
""")
DEAD_LETTER = text("""
    INSERT INTO sync.dead_letters
        (record_id, event_id, system_code, customer_id, profile_version, reason, payload, headers,
         last_error, last_http_status, attempts)
    SELECT r.id, r.event_id, r.system_code, r.customer_id, r.profile_version, :reason, r.sync_data, r.event_headers,
           :error, :http_status, (SELECT count(*) FROM sync.external_sync_attempts a WHERE a.record_id = r.id)
    FROM sync.external_sync_records r WHERE r.id = :id
    RETURNING id
""")
# Open records whose deadline passed while nobody tried them (they waited behind an open breaker):
# failed, each with a dead letter of reason ``deadline``, and the records parked behind them woken.
# Records in flight (a live claim) are left to their call's result. Only records are locked (SKIP
# LOCKED): no lane is taken, so this never waits while holding anything.
EXPIRE = text("""
    WITH expired AS (
        UPDATE sync.external_sync_records r
        SET sync_status = 'failed', claim_token = NULL, next_attempt_at = NULL, blocked_by_record_id = NULL,
            error_message = :detail || COALESCE(' Last error: ' || r.error_message, ''),
            updated_at = now(), completed_at = now()
        WHERE r.id IN (
            SELECT o.id FROM sync.external_sync_records o
            WHERE o.system_code = :system_code AND o.sync_status IN ('pending', 'retrying')
              AND o.deliver_by <= CAST(:now AS timestamptz)
              AND (o.claim_token IS NULL OR o.next_attempt_at <= CAST(:now AS timestamptz))
            ORDER BY o.deliver_by, o.id
            LIMIT :limit
            FOR UPDATE SKIP LOCKED
        )
        RETURNING r.id, r.event_id, r.system_code, r.customer_id, r.profile_version, r.sync_data, r.event_headers,
                  r.error_message, r.last_http_status
    ), letters AS (
        INSERT INTO sync.dead_letters
            (record_id, event_id, system_code, customer_id, profile_version, reason, payload, headers,
             last_error, last_http_status, attempts)
        SELECT e.id, e.event_id, e.system_code, e.customer_id, e.profile_version, 'deadline', e.sync_data,
               e.event_headers, e.error_message, e.last_http_status,
               (SELECT count(*) FROM sync.external_sync_attempts a WHERE a.record_id = e.id)
        FROM expired e
    ), woken AS (
        UPDATE sync.external_sync_records w SET next_attempt_at = CAST(:now AS timestamptz)
        WHERE w.id IN (
            SELECT r.id FROM sync.external_sync_records r JOIN expired e
              ON r.customer_id = e.customer_id AND r.blocked_by_record_id = e.id
            WHERE r.system_code = :system_code AND r.sync_status IN ('pending', 'retrying')
              AND r.id NOT IN (SELECT id FROM expired)
            FOR UPDATE OF r SKIP LOCKED
        )
    )
    SELECT id, event_id::text AS event_id, customer_id, profile_version FROM expired
""")
