-- 0002_audit: the hash-chained audit log (lib/audit/audit.h describes the chain).
--
-- Rows are appended only through latch_audit_append, which domain functions call inside the
-- transaction whose change they record (so the event commits or rolls back with it) and
-- latchd reaches through the statement "audit.append". Appenders are serialised by a
-- transaction-scoped advisory lock, so any number of latchd instances write one chain:
--
--     hash = sha256(prev_hash || canonical(row)),  prev_hash = hash of the row before (by id)
--
-- The first row's prev_hash is 32 zero bytes. canonical() is latch_audit_canonical below, and
-- lt_audit_canonical in C builds the same bytes from the row's text columns, which is how
-- `latchctl audit verify` recomputes every hash.
--
-- Ids come from a sequence, drawn after the lock is taken, so id order is commit order. A
-- transaction that rolls back leaves a gap in the ids, which is harmless: the chain links
-- rows, not numbers.
--
-- latch_runtime may INSERT and SELECT, nothing else: an UPDATE, DELETE or TRUNCATE needs the
-- owner, and whatever the owner (or a direct INSERT around the function) changes shows up in
-- verification as the first row whose hash or link no longer holds.

CREATE SEQUENCE audit_log_id_seq AS bigint;

-- tenant_id has no foreign key: the record of what happened in a tenant outlives the tenant.
CREATE TABLE audit_log (
    id bigint PRIMARY KEY,
    at timestamptz NOT NULL,
    tenant_id uuid,
    actor text,
    -- "<noun>.<verb>", e.g. login.failed; lower case so names group and index predictably.
    event text NOT NULL CHECK (event ~ '^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$' AND length(event) <= 100),
    target text,
    ip text,
    request_id text,
    outcome text NOT NULL CHECK (outcome IN ('success', 'failure', 'denied')),
    details jsonb CHECK (details IS NULL OR jsonb_typeof(details) = 'object'),
    prev_hash bytea NOT NULL CHECK (length(prev_hash) = 32),
    hash bytea NOT NULL UNIQUE CHECK (length(hash) = 32)
);
ALTER SEQUENCE audit_log_id_seq OWNED BY audit_log.id;

CREATE INDEX audit_log_tenant ON audit_log (tenant_id, id);
CREATE INDEX audit_log_event ON audit_log (event);

-- One canonical field: "<byte length>:<bytes>," or "-," for NULL. The bytes are always
-- UTF-8 whatever the database encoding, as C sees them with client_encoding UTF8.
CREATE FUNCTION latch_audit_field(v text) RETURNS bytea
    LANGUAGE sql STABLE PARALLEL SAFE
    SET search_path = pg_catalog
AS $$
    SELECT CASE WHEN v IS NULL THEN convert_to('-,', 'UTF8')
                ELSE convert_to(octet_length(convert_to(v, 'UTF8'))::text || ':', 'UTF8')
                     || convert_to(v, 'UTF8') || convert_to(',', 'UTF8')
           END
$$;

-- The canonical form of one row, fields in the order of audit.h. Every value is the text
-- PostgreSQL prints for it (bigint, uuid, jsonb output functions), which is exactly what a
-- reader selecting id, the microsecond integer, tenant_id, ..., details::text receives.
CREATE FUNCTION latch_audit_canonical(p_id bigint, p_at_us bigint, p_tenant_id uuid, p_actor text, p_event text,
                                      p_target text, p_ip text, p_request_id text, p_outcome text,
                                      p_details jsonb) RETURNS bytea
    LANGUAGE sql STABLE PARALLEL SAFE
    SET search_path = pg_catalog, public
AS $$
    SELECT latch_audit_field(p_id::text) || latch_audit_field(p_at_us::text)
        || latch_audit_field(p_tenant_id::text) || latch_audit_field(p_actor)
        || latch_audit_field(p_event) || latch_audit_field(p_target) || latch_audit_field(p_ip)
        || latch_audit_field(p_request_id) || latch_audit_field(p_outcome)
        || latch_audit_field(p_details::text)
$$;

-- Appends one event and returns its id.
--
-- Callers must run in READ COMMITTED (PostgreSQL's default), and the function refuses any
-- other level: the chain is only linear because each statement below takes a fresh snapshot,
-- so the read of the last row, which runs after the lock is granted, sees the row the
-- previous lock holder committed. Under REPEATABLE READ or SERIALIZABLE the snapshot is the
-- one from the transaction's first statement, two appenders would read the same last row,
-- and the chain would fork.
--
-- The lock is transaction-scoped: it is held until the caller's transaction ends, so keep
-- audited transactions short. It is released after the commit is visible, so the next
-- holder always sees this row.
--
-- `at` is now(), the transaction's start time, like the created_at of the rows the same
-- transaction writes; it is kept in a variable so the hashed value is the stored one
-- (timestamptz has microsecond resolution and extract() returns numeric, so the
-- microsecond integer is exact).
CREATE FUNCTION latch_audit_append(p_tenant_id uuid, p_actor text, p_event text, p_target text, p_ip text,
                                   p_request_id text, p_outcome text, p_details jsonb) RETURNS bigint
    LANGUAGE plpgsql VOLATILE
    SET search_path = pg_catalog, public, pg_temp
AS $$
DECLARE
    v_id bigint;
    v_at timestamptz := now();
    v_prev bytea;
    v_hash bytea;
BEGIN
    IF current_setting('transaction_isolation') <> 'read committed' THEN
        RAISE EXCEPTION 'latch_audit_append needs READ COMMITTED, not %', current_setting('transaction_isolation')
            USING ERRCODE = 'invalid_transaction_state';
    END IF;

    -- The fixed key is the bytes of "latchaud" (0x6c61746368617564); nothing else may use it.
    -- Its own statement, first: everything below runs with the lock held.
    PERFORM pg_advisory_xact_lock(7809651199138952548);

    SELECT hash INTO v_prev FROM audit_log ORDER BY id DESC LIMIT 1;
    IF NOT FOUND THEN
        v_prev := decode(repeat('00', 32), 'hex');
    END IF;

    v_id := nextval('audit_log_id_seq');
    v_hash := sha256(v_prev || latch_audit_canonical(v_id, (extract(epoch FROM v_at) * 1000000)::bigint, p_tenant_id,
                                                     p_actor, p_event, p_target, p_ip, p_request_id, p_outcome,
                                                     p_details));

    INSERT INTO audit_log (id, at, tenant_id, actor, event, target, ip, request_id, outcome, details, prev_hash, hash)
    VALUES (v_id, v_at, p_tenant_id, p_actor, p_event, p_target, p_ip, p_request_id, p_outcome, p_details, v_prev,
            v_hash);
    RETURN v_id;
END
$$;

-- SECURITY INVOKER (the default): the function runs with the caller's INSERT and SELECT.
GRANT SELECT, INSERT ON TABLE audit_log TO latch_runtime;
GRANT USAGE ON SEQUENCE audit_log_id_seq TO latch_runtime;
GRANT EXECUTE ON FUNCTION latch_audit_field(text) TO latch_runtime;
GRANT EXECUTE ON FUNCTION latch_audit_canonical(bigint, bigint, uuid, text, text, text, text, text, text, jsonb)
    TO latch_runtime;
GRANT EXECUTE ON FUNCTION latch_audit_append(uuid, text, text, text, text, text, text, jsonb) TO latch_runtime;
