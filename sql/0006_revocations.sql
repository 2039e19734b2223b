-- 0006_revocations: the revocation log that every instance mirrors in memory, and session
-- ends that feed it.
--
-- Each row revokes a session id ('sid': every access token of that session) or one access
-- token ('jti') until expires_at, when the last token it affects has expired. seq is the
-- feed's sequence number (/v1/revocations?since=N). Writers take a transaction-scoped
-- advisory lock before drawing seq and hold it to commit, so seq order is commit order: a
-- reader that has seen N has seen every entry up to N. Lock order: this lock before the
-- audit chain's (latch_audit_append stays the last call of every function).

CREATE TABLE revocations (
    seq bigserial PRIMARY KEY,
    kind text NOT NULL CHECK (kind IN ('sid', 'jti')),
    value text NOT NULL CHECK (value ~ '^[A-Za-z0-9_.:-]{1,64}$'),
    tenant_id uuid,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL
);
CREATE INDEX revocations_expires ON revocations (expires_at);

-- When the last access token of a session expires: login and refresh move it forward,
-- so ending a session revokes exactly the tokens that could still be used.
ALTER TABLE sessions ADD COLUMN access_expires_at timestamptz;

GRANT SELECT, INSERT, DELETE ON revocations TO latch_runtime;
GRANT USAGE ON SEQUENCE revocations_seq_seq TO latch_runtime;

-- Records a revocation and tells every instance (NOTIFY latch_revocations, payload in the
-- wire form of lib/token/revset.h: "<seq> <kind> <value> <exp> <tenant|->"). Returns seq.
-- An entry already live for (kind, value) whose expiry covers the new one is not repeated.
CREATE FUNCTION latch_revoke(p_kind text, p_value text, p_tenant_id uuid, p_expires_at timestamptz) RETURNS bigint
    LANGUAGE plpgsql VOLATILE
    SET search_path = pg_catalog, public, pg_temp
AS $$
DECLARE
    v_seq bigint;
BEGIN
    IF current_setting('transaction_isolation') <> 'read committed' THEN
        RAISE EXCEPTION 'latch_revoke needs READ COMMITTED';
    END IF;
    IF p_expires_at <= now() THEN
        RETURN NULL;
    END IF;
    PERFORM pg_advisory_xact_lock(7809651199138952549);
    SELECT seq INTO v_seq FROM revocations
        WHERE kind = p_kind AND value = p_value AND expires_at >= p_expires_at;
    IF FOUND THEN
        RETURN v_seq;
    END IF;
    INSERT INTO revocations (kind, value, tenant_id, expires_at)
        VALUES (p_kind, p_value, p_tenant_id, p_expires_at)
        RETURNING seq INTO v_seq;
    PERFORM pg_notify('latch_revocations',
                      format('%s %s %s %s %s', v_seq, p_kind, p_value,
                             ceil(extract(epoch FROM p_expires_at))::bigint,
                             coalesce(p_tenant_id::text, '-')));
    RETURN v_seq;
END
$$;
CREATE INDEX revocations_kind_value ON revocations (kind, value);

-- Ends sessions (revoked_at, reason) and their refresh tokens, and revokes the access
-- tokens each still has out (30 s beyond their expiry: verifiers' clock leeway). Returns how
-- many sessions ended. Internal helper: the callers audit.
CREATE OR REPLACE FUNCTION latch_sessions_end(p_ids uuid[], p_reason text) RETURNS integer
    LANGUAGE plpgsql VOLATILE
    SET search_path = pg_catalog, public, pg_temp
AS $$
DECLARE
    v_n integer := 0;
    v_s record;
BEGIN
    FOR v_s IN
        UPDATE sessions SET revoked_at = now(), revoked_reason = p_reason
            WHERE id = ANY (p_ids) AND revoked_at IS NULL
            RETURNING id, tenant_id, access_expires_at
    LOOP
        v_n := v_n + 1;
        IF v_s.access_expires_at IS NOT NULL THEN
            PERFORM latch_revoke('sid', v_s.id::text, v_s.tenant_id, v_s.access_expires_at + interval '30 seconds');
        END IF;
    END LOOP;
    UPDATE refresh_tokens SET revoked_at = now()
        WHERE session_id = ANY (p_ids) AND revoked_at IS NULL AND used_at IS NULL;
    RETURN v_n;
END
$$;

-- Revokes one access token by jti until it expires (POST /oauth2/revoke). Audited here.
CREATE FUNCTION latch_access_token_revoke(p_jti text, p_tenant_id uuid, p_exp bigint, p_actor text, p_ip text,
                                          p_request_id text) RETURNS bigint
    LANGUAGE plpgsql VOLATILE
    SET search_path = pg_catalog, public, pg_temp
AS $$
DECLARE
    v_seq bigint;
BEGIN
    v_seq := latch_revoke('jti', p_jti, p_tenant_id, to_timestamp(p_exp) + interval '30 seconds');
    IF v_seq IS NOT NULL THEN
        PERFORM latch_audit_append(p_tenant_id, p_actor, 'token.revoked', p_jti, p_ip, p_request_id, 'success',
                                   jsonb_build_object('type', 'access_token'));
    END IF;
    RETURN v_seq;
END
$$;

-- The live entries after seq p_since in the wire form, for a (re)connected instance.
CREATE FUNCTION latch_revocations_since(p_since bigint, p_limit integer)
    RETURNS TABLE (o_seq bigint, o_line text)
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, public, pg_temp
AS $$
    SELECT seq, format('%s %s %s %s %s', seq, kind, value, ceil(extract(epoch FROM expires_at))::bigint,
                       coalesce(tenant_id::text, '-'))
        FROM revocations WHERE seq > p_since AND expires_at > now()
        ORDER BY seq LIMIT p_limit
$$;

-- Drops entries whose tokens have all expired. Returns how many went.
CREATE FUNCTION latch_revocations_prune() RETURNS integer
    LANGUAGE plpgsql VOLATILE
    SET search_path = pg_catalog, public, pg_temp
AS $$
DECLARE
    v_n integer;
BEGIN
    DELETE FROM revocations WHERE expires_at < now() - interval '1 minute';
    GET DIAGNOSTICS v_n = ROW_COUNT;
    RETURN v_n;
END
$$;

GRANT EXECUTE ON FUNCTION
    latch_revoke(text, text, uuid, timestamptz),
    latch_access_token_revoke(text, uuid, bigint, text, text, text),
    latch_revocations_since(bigint, integer),
    latch_revocations_prune()
TO latch_runtime;
