-- 0007_tokens: refresh rotation with reuse detection and a grace window (RFC 9700
-- §4.14.2), and the refresh-token side of introspection (RFC 7662) and revocation
-- (RFC 7009).
--
-- A session is one family of refresh tokens, a chain through parent_id. Every rotation
-- marks the presented token used and issues its successor. Presenting a used token again
-- is normally theft (reuse): the session ends, with every token of the family and the
-- access tokens it still has out. The one exception is a harmless race (two tabs, a
-- mobile client that lost the response): within p_grace seconds of the rotation, while the
-- successor is still unused, the repeat gets that same successor back. The successor's
-- plaintext is kept for exactly this, sealed in C under the master key
-- (successor_sealed, aad "refresh_successor:<parent hash hex>"), and dropped once the
-- window has passed (latch_refresh_clear_successors). So the family never forks and
-- detection is never off.
--
-- Lock order as in 0004: sessions -> refresh_tokens -> revocations' advisory lock -> the
-- audit lock (latch_audit_append is always the last call).

ALTER TABLE refresh_tokens
    ADD COLUMN successor_id uuid REFERENCES refresh_tokens (id) ON DELETE SET NULL,
    ADD COLUMN successor_sealed bytea;
-- Only the rows still holding a sealed successor, for the periodic clear.
CREATE INDEX refresh_tokens_sealed ON refresh_tokens (used_at) WHERE successor_sealed IS NOT NULL;

-- Step 2 of a successful login, as in 0004, plus: the first access token's expiry is
-- recorded (sessions.access_expires_at, so ending the session revokes it until then), and
-- the email is returned (the access token's `username`).
DROP FUNCTION latch_login_succeed(uuid, uuid, text, text, text, text, integer, integer, text, text, text, text);
CREATE FUNCTION latch_login_succeed(p_user_id uuid, p_tenant_id uuid, p_tenant text, p_email text, p_ip text,
                                    p_user_agent text, p_idle_ttl integer, p_max_ttl integer, p_access_ttl integer,
                                    p_rt_hash text, p_old_phc text, p_new_phc text, p_request_id text)
    RETURNS TABLE (o_session_id uuid, o_roles jsonb, o_auth_time bigint, o_email text)
    LANGUAGE plpgsql VOLATILE
    SET search_path = pg_catalog, public, pg_temp
AS $$
DECLARE
    v_now timestamptz := now();
    v_sid uuid;
    v_idle timestamptz;
    v_email text;
    v_rehashed boolean := false;
BEGIN
    SELECT email INTO v_email FROM users
        WHERE id = p_user_id AND tenant_id = p_tenant_id AND status = 'active' FOR SHARE;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    v_idle := least(v_now + make_interval(secs => p_idle_ttl), v_now + make_interval(secs => p_max_ttl));
    INSERT INTO sessions (tenant_id, user_id, created_at, last_seen_at, idle_expires_at, expires_at, ip, user_agent,
                          amr, auth_time, access_expires_at)
    VALUES (p_tenant_id, p_user_id, v_now, v_now, v_idle, v_now + make_interval(secs => p_max_ttl),
            nullif(p_ip, 'unknown')::inet, left(p_user_agent, 512), ARRAY['pwd'], v_now,
            v_now + make_interval(secs => p_access_ttl))
    RETURNING id INTO v_sid;
    INSERT INTO refresh_tokens (token_hash, session_id, tenant_id, issued_at, expires_at)
    VALUES (decode(p_rt_hash, 'hex'), v_sid, p_tenant_id, v_now, v_idle);
    IF p_new_phc IS NOT NULL THEN
        UPDATE credentials SET phc = p_new_phc WHERE user_id = p_user_id AND phc = p_old_phc;
        v_rehashed := FOUND;
    END IF;
    PERFORM latch_login_attempts_ok(lower(btrim(p_tenant)), lower(btrim(p_email)), p_ip);
    PERFORM latch_audit_append(p_tenant_id, p_user_id::text, 'login.succeeded', p_user_id::text, p_ip,
                               p_request_id, 'success',
                               jsonb_build_object('session_id', v_sid, 'amr', jsonb_build_array('pwd'),
                                                  'rehashed', v_rehashed));
    RETURN QUERY
        SELECT v_sid,
               coalesce((SELECT jsonb_agg(r.role ORDER BY r.role) FROM user_roles r WHERE r.user_id = p_user_id),
                        '[]'::jsonb),
               extract(epoch FROM v_now)::bigint, v_email;
END
$$;

-- POST /v1/auth/refresh and grant_type=refresh_token. Always one row; o_status:
--   'invalid'  unknown token, expired or revoked token, session not live, user not active,
--              or a session outside p_tenant_id (when given). Nothing changes, so a token
--              shown to the wrong tenant's client is not consumed.
--   'rotated'  the token was unused: it is now used and p_new_hash is its successor
--              (p_new_sealed, the successor's plaintext sealed by the caller, is kept on the
--              parent for the grace window). The session's idle expiry slides.
--   'repeat'   the token was rotated less than p_grace seconds ago and its successor is
--              still unused: o_successor_sealed is that successor, to answer with again.
--   'reuse'    any other presentation of a used token (after the window, an older
--              ancestor, grace 0): the session ends with all its tokens (reason
--              refresh_token_reuse) and refresh_token.reuse_detected is audited. Returned,
--              not raised, so that this commits.
-- The session fields are filled for rotated and repeat (o_session_id for reuse too).
--
-- Concurrency: presentations of one family serialise on the session row (FOR UPDATE).
-- The token row is found without a lock, the session locked, and the token read again in
-- a new statement: under READ COMMITTED that sees what the previous holder committed, so
-- of N simultaneous presentations one rotates and the others see 'repeat' (or 'reuse'),
-- never a serialization failure and never a second successor.
DROP FUNCTION latch_refresh(text, text, integer);
CREATE FUNCTION latch_refresh(p_rt_hash text, p_new_hash text, p_new_sealed bytea, p_idle_ttl integer,
                              p_access_ttl integer, p_grace integer, p_tenant_id uuid, p_ip text, p_request_id text)
    RETURNS TABLE (o_status text, o_session_id uuid, o_user_id uuid, o_tenant_id uuid, o_email text, o_roles jsonb,
                   o_amr jsonb, o_acr text, o_auth_time bigint, o_successor_sealed bytea)
    LANGUAGE plpgsql VOLATILE
    SET search_path = pg_catalog, public, pg_temp
AS $$
DECLARE
    v_now timestamptz := now();
    v_hash bytea := decode(p_rt_hash, 'hex');
    v_id uuid;
    v_sid uuid;
    v_tenant uuid;
    v_s sessions;
    v_t refresh_tokens;
    v_succ refresh_tokens;
    v_new uuid;
    v_idle timestamptz;
BEGIN
    IF current_setting('transaction_isolation') <> 'read committed' THEN
        RAISE EXCEPTION 'latch_refresh needs READ COMMITTED';
    END IF;
    o_status := 'invalid';
    SELECT id, session_id, tenant_id INTO v_id, v_sid, v_tenant FROM refresh_tokens WHERE token_hash = v_hash;
    IF NOT FOUND OR (p_tenant_id IS NOT NULL AND v_tenant <> p_tenant_id) THEN
        RETURN NEXT;
        RETURN;
    END IF;
    SELECT s.* INTO v_s FROM sessions s WHERE s.id = v_sid FOR UPDATE;
    IF NOT FOUND OR NOT latch_session_live(v_s)
       OR NOT EXISTS (SELECT 1 FROM users u WHERE u.tenant_id = v_s.tenant_id AND u.id = v_s.user_id
                                              AND u.status = 'active') THEN
        RETURN NEXT;
        RETURN;
    END IF;
    -- A fresh snapshot: what the previous holder of the session lock did is visible now.
    SELECT t.* INTO v_t FROM refresh_tokens t WHERE t.id = v_id;
    IF NOT FOUND OR v_t.revoked_at IS NOT NULL OR v_t.expires_at <= v_now THEN
        RETURN NEXT;
        RETURN;
    END IF;

    o_session_id := v_s.id;
    IF v_t.used_at IS NULL THEN
        v_idle := least(v_now + make_interval(secs => p_idle_ttl), v_s.expires_at);
        INSERT INTO refresh_tokens (token_hash, session_id, tenant_id, parent_id, issued_at, expires_at)
        VALUES (decode(p_new_hash, 'hex'), v_s.id, v_s.tenant_id, v_t.id, v_now, v_idle)
        RETURNING id INTO v_new;
        UPDATE refresh_tokens SET used_at = v_now, successor_id = v_new, successor_sealed = p_new_sealed
            WHERE id = v_t.id;
        UPDATE sessions SET last_seen_at = v_now, idle_expires_at = v_idle,
                            access_expires_at = greatest(access_expires_at,
                                                         v_now + make_interval(secs => p_access_ttl))
            WHERE id = v_s.id;
        o_status := 'rotated';
    ELSE
        IF p_grace > 0 AND v_t.used_at > v_now - make_interval(secs => p_grace) AND v_t.successor_id IS NOT NULL THEN
            SELECT t.* INTO v_succ FROM refresh_tokens t WHERE t.id = v_t.successor_id;
            IF FOUND AND v_succ.used_at IS NULL AND v_succ.revoked_at IS NULL THEN
                IF v_t.successor_sealed IS NULL THEN
                    -- Cleared by a maintenance run racing this request at the window's edge:
                    -- refuse without punishing (the legitimate holder has the successor).
                    o_session_id := NULL;
                    RETURN NEXT;
                    RETURN;
                END IF;
                UPDATE sessions SET access_expires_at = greatest(access_expires_at,
                                                                 v_now + make_interval(secs => p_access_ttl))
                    WHERE id = v_s.id;
                o_status := 'repeat';
                o_successor_sealed := v_t.successor_sealed;
            END IF;
        END IF;
        IF o_status <> 'repeat' THEN
            UPDATE refresh_tokens SET successor_sealed = NULL
                WHERE session_id = v_s.id AND successor_sealed IS NOT NULL;
            PERFORM latch_sessions_end(ARRAY[v_s.id], 'refresh_token_reuse');
            PERFORM latch_audit_append(v_s.tenant_id, NULL, 'refresh_token.reuse_detected', v_s.id::text, p_ip,
                                       p_request_id, 'denied',
                                       jsonb_build_object('refresh_token_id', v_t.id, 'user_id', v_s.user_id,
                                                          'used_at', latch_ts(v_t.used_at)));
            o_status := 'reuse';
            RETURN NEXT;
            RETURN;
        END IF;
    END IF;

    o_user_id := v_s.user_id;
    o_tenant_id := v_s.tenant_id;
    SELECT u.email INTO o_email FROM users u WHERE u.tenant_id = v_s.tenant_id AND u.id = v_s.user_id;
    o_roles := coalesce((SELECT jsonb_agg(r.role ORDER BY r.role) FROM user_roles r WHERE r.user_id = v_s.user_id),
                        '[]'::jsonb);
    o_amr := to_jsonb(v_s.amr);
    o_acr := v_s.acr;
    o_auth_time := extract(epoch FROM v_s.auth_time)::bigint;
    RETURN NEXT;
END
$$;

-- The sealed successors outlive their grace window only until this runs (the maintenance
-- thread, every few seconds). Also prunes the revocation log. Returns how many were cleared.
CREATE FUNCTION latch_refresh_clear_successors(p_grace integer) RETURNS integer
    LANGUAGE plpgsql VOLATILE
    SET search_path = pg_catalog, public, pg_temp
AS $$
DECLARE
    v_n integer;
BEGIN
    UPDATE refresh_tokens SET successor_sealed = NULL
        WHERE successor_sealed IS NOT NULL AND used_at < now() - make_interval(secs => p_grace);
    GET DIAGNOSTICS v_n = ROW_COUNT;
    PERFORM latch_revocations_prune();
    RETURN v_n;
END
$$;

-- RFC 7662 for a refresh token: its session's claims while the token could still be
-- rotated (unused, not revoked, not expired, session live, user active, session in
-- p_tenant_id when given), else NULL. Reads only.
CREATE FUNCTION latch_refresh_token_introspect(p_hash text, p_tenant_id uuid) RETURNS jsonb
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, public, pg_temp
AS $$
    SELECT jsonb_build_object(
               'sub', s.user_id,
               'username', u.email,
               'sid', s.id,
               'tenant', s.tenant_id,
               'exp', ceil(extract(epoch FROM t.expires_at))::bigint,
               'iat', floor(extract(epoch FROM t.issued_at))::bigint,
               'roles', coalesce((SELECT jsonb_agg(r.role ORDER BY r.role) FROM user_roles r WHERE r.user_id = u.id),
                                 '[]'::jsonb),
               'amr', to_jsonb(s.amr),
               'auth_time', extract(epoch FROM s.auth_time)::bigint,
               'scope', '')
           || CASE WHEN s.acr IS NOT NULL THEN jsonb_build_object('acr', s.acr) ELSE '{}'::jsonb END
        FROM refresh_tokens t
        JOIN sessions s ON s.id = t.session_id
        JOIN users u ON u.tenant_id = s.tenant_id AND u.id = s.user_id
        WHERE t.token_hash = decode(p_hash, 'hex') AND t.used_at IS NULL AND t.revoked_at IS NULL
          AND t.expires_at > now() AND latch_session_live(s) AND u.status = 'active'
          AND (p_tenant_id IS NULL OR s.tenant_id = p_tenant_id)
$$;

-- RFC 7009 for a refresh token: a token (used or not) of a live session of p_tenant_id
-- (when given) ends that session, with its family and its access tokens; audited as
-- token.revoked. False for anything else (the endpoint answers 200 either way).
CREATE FUNCTION latch_refresh_token_revoke(p_hash text, p_tenant_id uuid, p_actor text, p_ip text,
                                           p_request_id text) RETURNS boolean
    LANGUAGE plpgsql VOLATILE
    SET search_path = pg_catalog, public, pg_temp
AS $$
DECLARE
    v_sid uuid;
    v_tenant uuid;
BEGIN
    SELECT session_id, tenant_id INTO v_sid, v_tenant FROM refresh_tokens WHERE token_hash = decode(p_hash, 'hex');
    IF NOT FOUND OR (p_tenant_id IS NOT NULL AND v_tenant <> p_tenant_id) THEN
        RETURN false;
    END IF;
    PERFORM 1 FROM sessions s WHERE s.id = v_sid AND latch_session_live(s) FOR UPDATE;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    UPDATE refresh_tokens SET successor_sealed = NULL WHERE session_id = v_sid AND successor_sealed IS NOT NULL;
    PERFORM latch_sessions_end(ARRAY[v_sid], 'revoked');
    PERFORM latch_audit_append(v_tenant, p_actor, 'token.revoked', v_sid::text, p_ip, p_request_id, 'success',
                               jsonb_build_object('type', 'refresh_token'));
    RETURN true;
END
$$;

GRANT EXECUTE ON FUNCTION
    latch_login_succeed(uuid, uuid, text, text, text, text, integer, integer, integer, text, text, text, text),
    latch_refresh(text, text, bytea, integer, integer, integer, uuid, text, text),
    latch_refresh_clear_successors(integer),
    latch_refresh_token_introspect(text, uuid),
    latch_refresh_token_revoke(text, uuid, text, text, text)
TO latch_runtime;
