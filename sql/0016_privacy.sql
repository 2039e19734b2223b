-- 0016_privacy: personal data in the audit trail made erasable without breaking the chain,
-- the data export of a user, erasure, the incident-response lock, and the audit query.
--
-- The audit chain (0002) hashes every column of every row, and the runtime role may only
-- INSERT and SELECT audit_log, so nothing written into a chained row can ever be removed
-- without leaving a break that `latchctl audit verify` names. Until now two kinds of
-- personal data reached chained rows: the client IP of every event (column ip) and the
-- email typed at login.failed, login.locked_out and password.reset_requested (details).
-- Everything else a row holds about a person is an id (user, session, token: uuids that
-- mean nothing once the user row is gone).
--
-- From this migration on latch_audit_append splits personal data off at write time:
--
--   audit_pii (event_id, salt, ip, details)   the IP and the personal keys of the details
--                                             (latch_audit_pii_keys), erasable (DELETE)
--   audit_log.details.pii_digest              hex SHA-256(salt || field(ip) ||
--                                             field(pii details as text)), chained
--
-- with field() the canonical field of 0002. The chained row keeps ip NULL and binds the
-- side row through the digest: while the side row exists, verify recomputes the digest
-- (the personal data is as tamper-evident as the rest); once erased, the row is reported
-- as erased and the chain still holds. The salt is 256 random bits kept only in the side
-- row, so after erasure the digest cannot be tested against guessed IPs or emails.
-- Readers use the view audit_events, which puts the pieces back together.
--
-- Rows written before this migration keep what they hold (rewriting a tamper-evident
-- chain is exactly what it exists to prevent); the erasure reports how many such legacy
-- rows still name the user's IP or email (legacy_audit_rows).
--
-- Lock order as 0004/0005: users -> sessions -> refresh_tokens -> api_keys ->
-- login_attempts -> the revocation lock -> the audit advisory lock, always last.

CREATE TABLE audit_pii (
    -- No foreign key: the owner may repair or truncate audit_log (tests do), and a side row
    -- without its event is harmless (verify walks audit_log).
    event_id bigint PRIMARY KEY,
    salt bytea NOT NULL CHECK (length(salt) = 32),
    ip text,
    details jsonb CHECK (details IS NULL OR jsonb_typeof(details) = 'object')
);
-- Insert with the event, read, and delete on erasure; never changed in place.
GRANT SELECT, INSERT, DELETE ON audit_pii TO latch_runtime;

-- Lookups by who did it / whom it was about (export, erasure, the audit query).
CREATE INDEX audit_log_actor ON audit_log (actor, id) WHERE actor IS NOT NULL;
CREATE INDEX audit_log_target ON audit_log (target, id) WHERE target IS NOT NULL;
CREATE INDEX audit_log_user_id ON audit_log ((details ->> 'user_id')) WHERE details ? 'user_id';
CREATE INDEX audit_pii_email ON audit_pii ((lower(btrim(details ->> 'email')))) WHERE details ? 'email';

-- The detail keys that name a person; they go to audit_pii, never to the chain.
CREATE FUNCTION latch_audit_pii_keys() RETURNS text[]
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT ARRAY['email', 'ip', 'user_agent', 'username'] $$;

-- The digest of a side row (see the top); lib/audit/audit.c computes the same bytes.
CREATE FUNCTION latch_audit_pii_digest(p_salt bytea, p_ip text, p_details jsonb) RETURNS bytea
    LANGUAGE sql STABLE PARALLEL SAFE
    SET search_path = pg_catalog, public
AS $$ SELECT sha256(p_salt || latch_audit_field(p_ip) || latch_audit_field(p_details::text)) $$;

-- As 0002, plus the split of personal data described at the top. Same signature, so
-- every existing caller gets it.
CREATE OR REPLACE FUNCTION latch_audit_append(p_tenant_id uuid, p_actor text, p_event text, p_target text, p_ip text,
                                              p_request_id text, p_outcome text, p_details jsonb) RETURNS bigint
    LANGUAGE plpgsql VOLATILE
    SET search_path = pg_catalog, public, pg_temp
AS $$
DECLARE
    v_id bigint;
    v_at timestamptz := now();
    v_prev bytea;
    v_hash bytea;
    v_details jsonb := p_details;
    v_pii jsonb;
    v_salt bytea;
BEGIN
    IF current_setting('transaction_isolation') <> 'read committed' THEN
        RAISE EXCEPTION 'latch_audit_append needs READ COMMITTED, not %', current_setting('transaction_isolation')
            USING ERRCODE = 'invalid_transaction_state';
    END IF;

    IF jsonb_typeof(p_details) = 'object' THEN
        SELECT jsonb_object_agg(e.key, e.value) INTO v_pii
            FROM jsonb_each(p_details) e WHERE e.key = ANY (latch_audit_pii_keys());
        v_details := p_details - latch_audit_pii_keys();
    END IF;
    IF p_ip IS NOT NULL OR v_pii IS NOT NULL THEN
        -- gen_random_uuid draws from the strong random source: 2 x 122 random bits.
        v_salt := uuid_send(gen_random_uuid()) || uuid_send(gen_random_uuid());
        v_details := coalesce(v_details, '{}'::jsonb)
            || jsonb_build_object('pii_digest', encode(latch_audit_pii_digest(v_salt, p_ip, v_pii), 'hex'));
    END IF;

    -- The fixed key is the bytes of "latchaud" (0x6c61746368617564); nothing else may use it.
    PERFORM pg_advisory_xact_lock(7809651199138952548);

    SELECT hash INTO v_prev FROM audit_log ORDER BY id DESC LIMIT 1;
    IF NOT FOUND THEN
        v_prev := decode(repeat('00', 32), 'hex');
    END IF;

    v_id := nextval('audit_log_id_seq');
    v_hash := sha256(v_prev || latch_audit_canonical(v_id, (extract(epoch FROM v_at) * 1000000)::bigint, p_tenant_id,
                                                     p_actor, p_event, p_target, NULL, p_request_id, p_outcome,
                                                     v_details));

    INSERT INTO audit_log (id, at, tenant_id, actor, event, target, ip, request_id, outcome, details, prev_hash, hash)
    VALUES (v_id, v_at, p_tenant_id, p_actor, p_event, p_target, NULL, p_request_id, p_outcome, v_details, v_prev,
            v_hash);
    IF v_salt IS NOT NULL THEN
        INSERT INTO audit_pii (event_id, salt, ip, details) VALUES (v_id, v_salt, p_ip, v_pii);
    END IF;
    RETURN v_id;
END
$$;

-- Events as readers want them: the personal data back in place while it exists, the
-- digest out of the way. erased: the event had personal data and it has been erased.
CREATE VIEW audit_events AS
    SELECT a.id, a.at, a.tenant_id, a.actor, a.event, a.target, coalesce(p.ip, a.ip) AS ip, a.request_id,
           a.outcome,
           CASE WHEN a.details IS NULL THEN p.details
                ELSE (a.details - 'pii_digest') || coalesce(p.details, '{}'::jsonb) END AS details,
           (coalesce(a.details ? 'pii_digest', false) AND p.event_id IS NULL) AS erased
    FROM audit_log a LEFT JOIN audit_pii p ON p.event_id = a.id;
GRANT SELECT ON audit_events TO latch_runtime;

CREATE FUNCTION latch_audit_event_json(e audit_events) RETURNS jsonb
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, public, pg_temp
AS $$
    SELECT jsonb_build_object(
        'id', e.id::text,
        'at', to_char(e.at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
        'tenant_id', e.tenant_id,
        'actor', e.actor,
        'event', e.event,
        'target', e.target,
        'ip', e.ip,
        'request_id', e.request_id,
        'outcome', e.outcome,
        'details', coalesce(e.details, '{}'::jsonb),
        'erased', e.erased)
$$;

-- The audit event ids about user p_id: it acted, or it (or one of its sessions) was the
-- target, or the details name it, or the (split-off) email is its email in its tenant.
CREATE FUNCTION latch_privacy_event_ids(p_id uuid, p_tenant uuid, p_email_norm text) RETURNS SETOF bigint
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, public, pg_temp
AS $$
    SELECT a.id FROM audit_log a WHERE a.actor = p_id::text OR a.target = p_id::text
    UNION
    SELECT a.id FROM audit_log a JOIN sessions s ON a.target = s.id::text WHERE s.user_id = p_id
    UNION
    SELECT a.id FROM audit_log a
        WHERE a.details ? 'user_id' AND a.details ->> 'user_id' = p_id::text AND a.tenant_id = p_tenant
    UNION
    SELECT p.event_id FROM audit_pii p JOIN audit_log a ON a.id = p.event_id
        WHERE p.details ? 'email' AND lower(btrim(p.details ->> 'email')) = p_email_norm AND a.tenant_id = p_tenant
$$;

-- ---- export ------------------------------------------------------------------------------

-- Everything held about user p_id as one document; never a secret (no password hash,
-- token or key hash, TOTP secret, recovery code hash, reset token). NULL when not in scope.
CREATE FUNCTION latch_privacy_export(p_scope uuid, p_id uuid) RETURNS jsonb
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, public, pg_temp
AS $$
    SELECT jsonb_build_object(
        'exported_at', latch_ts(now()),
        'user', latch_user_json(u),
        'credential', (SELECT jsonb_build_object('type', 'password', 'changed_at', latch_ts(c.changed_at))
                       FROM credentials c WHERE c.user_id = u.id),
        'sessions', coalesce((SELECT jsonb_agg(jsonb_build_object(
                'id', s.id, 'created_at', latch_ts(s.created_at), 'last_seen_at', latch_ts(s.last_seen_at),
                'expires_at', latch_ts(s.expires_at), 'ip', host(s.ip), 'user_agent', s.user_agent,
                'amr', to_jsonb(s.amr), 'acr', s.acr, 'mfa_method', s.mfa_method,
                'auth_time', latch_ts(s.auth_time), 'revoked_at', latch_ts(s.revoked_at),
                'revoked_reason', s.revoked_reason, 'live', latch_session_live(s)) ORDER BY s.created_at, s.id)
            FROM sessions s WHERE s.user_id = u.id), '[]'),
        'refresh_token_families', coalesce((SELECT jsonb_agg(jsonb_build_object(
                'session_id', s.id,
                'tokens', (SELECT jsonb_agg(jsonb_build_object(
                        'id', t.id, 'parent_id', t.parent_id, 'issued_at', latch_ts(t.issued_at),
                        'expires_at', latch_ts(t.expires_at), 'used_at', latch_ts(t.used_at),
                        'revoked_at', latch_ts(t.revoked_at),
                        'status', CASE WHEN t.revoked_at IS NOT NULL THEN 'revoked'
                                       WHEN t.used_at IS NOT NULL THEN 'rotated'
                                       WHEN t.expires_at <= now() THEN 'expired' ELSE 'active' END)
                        ORDER BY t.issued_at, t.id)
                    FROM refresh_tokens t WHERE t.session_id = s.id)) ORDER BY s.created_at, s.id)
            FROM sessions s WHERE s.user_id = u.id
              AND EXISTS (SELECT 1 FROM refresh_tokens t WHERE t.session_id = s.id)), '[]'),
        'mfa_factors', coalesce((SELECT jsonb_agg(jsonb_build_object(
                'id', f.id, 'type', f.type, 'label', f.label, 'status', f.status,
                'created_at', latch_ts(f.created_at), 'confirmed_at', latch_ts(f.confirmed_at),
                'last_used_at', latch_ts(f.last_used_at)) ORDER BY f.created_at, f.id)
            FROM mfa_factors f WHERE f.user_id = u.id), '[]'),
        'recovery_codes', coalesce((SELECT jsonb_agg(jsonb_build_object(
                'id', rc.id, 'created_at', latch_ts(rc.created_at), 'used_at', latch_ts(rc.used_at))
                ORDER BY rc.created_at, rc.id)
            FROM recovery_codes rc WHERE rc.user_id = u.id), '[]'),
        'api_keys', coalesce((SELECT jsonb_agg(jsonb_build_object(
                'id', k.id, 'key_id', k.key_id, 'name', k.name, 'scopes', to_jsonb(k.scopes),
                'roles', to_jsonb(k.roles), 'created_at', latch_ts(k.created_at),
                'expires_at', latch_ts(k.expires_at), 'last_used_at', latch_ts(k.last_used_at),
                'revoked_at', latch_ts(k.revoked_at)) ORDER BY k.created_at, k.id)
            FROM api_keys k WHERE k.owner_user_id = u.id), '[]'),
        'one_time_tokens', coalesce((SELECT jsonb_agg(jsonb_build_object(
                'id', o.id, 'purpose', o.purpose, 'created_at', latch_ts(o.created_at),
                'expires_at', latch_ts(o.expires_at), 'used_at', latch_ts(o.used_at)) ORDER BY o.created_at, o.id)
            FROM one_time_tokens o WHERE o.user_id = u.id), '[]'),
        'login_attempts', coalesce((SELECT jsonb_agg(jsonb_build_object(
                'scope', a.scope, 'ip', nullif(a.ip, ''), 'failures', a.failures,
                'window_start', latch_ts(a.window_start), 'last_attempt_at', latch_ts(a.last_attempt_at),
                'locked_until', latch_ts(a.locked_until)) ORDER BY a.scope, a.ip)
            FROM login_attempts a JOIN tenants t ON t.name = a.tenant
            WHERE t.id = u.tenant_id AND a.email_norm = u.email_norm AND a.scope IN ('source', 'account')), '[]'),
        'messages', coalesce((SELECT jsonb_agg(jsonb_build_object(
                'id', m.id::text, 'topic', m.topic, 'created_at', latch_ts(m.created_at),
                'processed_at', latch_ts(m.processed_at)) ORDER BY m.id)
            FROM outbox m WHERE m.tenant_id = u.tenant_id AND m.payload ->> 'user_id' = u.id::text), '[]'),
        'audit_events', coalesce((SELECT jsonb_agg(latch_audit_event_json(e) ORDER BY e.id)
            FROM audit_events e WHERE e.id IN (SELECT latch_privacy_event_ids(u.id, u.tenant_id, u.email_norm))), '[]'))
    FROM users u
    WHERE u.id = p_id AND (p_scope IS NULL OR u.tenant_id = p_scope)
$$;

-- GET /v1/me/export: the export of the bearer's own user, or NULL when its session is not
-- live (the caller answers 401).
CREATE FUNCTION latch_privacy_me_export(p_sid uuid, p_user_id uuid, p_tenant_id uuid) RETURNS jsonb
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, public, pg_temp
AS $$
    SELECT CASE WHEN latch_caller_live(p_sid, p_user_id, p_tenant_id) THEN latch_privacy_export(p_tenant_id, p_user_id) END
$$;

-- ---- lock and erase ------------------------------------------------------------------------

-- Revokes the user's live API keys; 0013's trigger tells every instance (NOTIFY
-- latch_api_keys at commit), whose snapshot then drops them. Returns how many.
CREATE FUNCTION latch_privacy_revoke_api_keys(p_id uuid) RETURNS integer
    LANGUAGE plpgsql VOLATILE
    SET search_path = pg_catalog, public, pg_temp
AS $$
DECLARE
    v_n integer;
BEGIN
    UPDATE api_keys k SET revoked_at = now() WHERE k.owner_user_id = p_id AND k.revoked_at IS NULL;
    GET DIAGNOSTICS v_n = ROW_COUNT;
    RETURN v_n;
END
$$;

-- POST /v1/admin/users/{id}/lock (incident response), one transaction: every session ends
-- (revocations published as for end-sessions, so access tokens stop working everywhere),
-- every API key is revoked, the status becomes locked and a password reset is required.
-- One audit event user.locked. Running it again changes nothing more (and records the
-- repeated request with zero counts).
CREATE FUNCTION latch_privacy_lock(p_scope uuid, p_id uuid, p_actor text, p_ip text, p_request_id text)
    RETURNS TABLE (code text, body jsonb)
    LANGUAGE plpgsql VOLATILE
    SET search_path = pg_catalog, public, pg_temp
AS $$
DECLARE
    v_user users;
    v_sessions integer;
    v_keys integer;
BEGIN
    SELECT u.* INTO v_user FROM users u
    WHERE u.id = p_id AND (p_scope IS NULL OR u.tenant_id = p_scope)
    FOR UPDATE;
    IF NOT FOUND THEN
        RETURN QUERY SELECT 'not_found'::text, NULL::jsonb;
        RETURN;
    END IF;
    IF p_scope IS NOT NULL AND latch_user_has_role(p_id, 'global_admin') THEN
        RETURN QUERY SELECT 'forbidden'::text, NULL::jsonb;
        RETURN;
    END IF;
    UPDATE users u SET status = 'locked', password_reset_required = true, updated_at = now()
        WHERE u.id = p_id AND (u.status <> 'locked' OR NOT u.password_reset_required);
    v_sessions := latch_admin_end_sessions(p_id, 'user_locked');
    v_keys := latch_privacy_revoke_api_keys(p_id);
    PERFORM latch_audit_append(v_user.tenant_id, p_actor, 'user.locked', p_id::text, p_ip, p_request_id, 'success',
                               jsonb_build_object('previous_status', v_user.status, 'sessions_revoked', v_sessions,
                                                  'api_keys_revoked', v_keys));
    SELECT u.* INTO v_user FROM users u WHERE u.id = p_id;
    RETURN QUERY SELECT 'ok'::text, jsonb_build_object('user', latch_user_json(v_user), 'sessions_revoked', v_sessions,
                                                      'api_keys_revoked', v_keys);
END
$$;

-- DELETE /v1/admin/users/{id}?erase=true: removes the user and everything that is personal
-- data about it: the user row (email, attributes, roles), credential, sessions and refresh
-- tokens (after revoking them: tokens out there stop working at once), MFA factors and
-- recovery codes, one-time tokens, API keys (revoked first, which 0013's trigger announces), the login
-- counters of its email, outbox messages about it, and the split-off personal data of
-- its audit events. The chained audit rows stay, naming only ids that no longer resolve.
-- Audited as user.erased (target: the id). 'conflict': an admin may not erase itself.
CREATE FUNCTION latch_privacy_erase(p_scope uuid, p_id uuid, p_actor text, p_ip text, p_request_id text)
    RETURNS TABLE (code text, body jsonb)
    LANGUAGE plpgsql VOLATILE
    SET search_path = pg_catalog, public, pg_temp
AS $$
DECLARE
    v_user users;
    v_tenant text;
    v_sessions integer;
    v_keys integer;
    v_events bigint[];
    v_pii integer;
    v_attempts integer;
    v_messages integer;
    v_legacy integer;
BEGIN
    SELECT u.* INTO v_user FROM users u
    WHERE u.id = p_id AND (p_scope IS NULL OR u.tenant_id = p_scope)
    FOR UPDATE;
    IF NOT FOUND THEN
        RETURN QUERY SELECT 'not_found'::text, NULL::jsonb;
        RETURN;
    END IF;
    IF p_scope IS NOT NULL AND latch_user_has_role(p_id, 'global_admin') THEN
        RETURN QUERY SELECT 'forbidden'::text, NULL::jsonb;
        RETURN;
    END IF;
    IF p_actor = p_id::text THEN
        RETURN QUERY SELECT 'conflict'::text, NULL::jsonb;
        RETURN;
    END IF;
    SELECT t.name INTO v_tenant FROM tenants t WHERE t.id = v_user.tenant_id;

    -- Collected before the sessions go: events targeting them are about the user too.
    v_events := ARRAY(SELECT latch_privacy_event_ids(p_id, v_user.tenant_id, v_user.email_norm));
    v_sessions := latch_admin_end_sessions(p_id, 'user_erased');
    v_keys := latch_privacy_revoke_api_keys(p_id);

    -- The IP of an event someone else did to the user (an admin's) is that person's, not
    -- the user's: it stays. Events by the user, by nobody signed in (a login attempt at
    -- its email) or naming its email lose their personal data.
    DELETE FROM audit_pii p USING audit_log a
        WHERE p.event_id = ANY (v_events) AND a.id = p.event_id
          AND (a.actor IS NULL OR a.actor = p_id::text OR lower(btrim(p.details ->> 'email')) = v_user.email_norm);
    GET DIAGNOSTICS v_pii = ROW_COUNT;
    SELECT count(*) INTO v_legacy FROM audit_log a
        WHERE a.id = ANY (v_events) AND (a.ip IS NOT NULL OR a.details ? 'email');
    DELETE FROM login_attempts a
        WHERE a.scope IN ('source', 'account') AND a.tenant = v_tenant AND a.email_norm = v_user.email_norm;
    GET DIAGNOSTICS v_attempts = ROW_COUNT;
    DELETE FROM outbox m
        WHERE m.payload ->> 'user_id' = p_id::text OR lower(btrim(m.payload ->> 'email')) = v_user.email_norm;
    GET DIAGNOSTICS v_messages = ROW_COUNT;
    -- Sessions, refresh tokens, credential, roles, factors, codes, one-time tokens and
    -- API keys follow through their ON DELETE CASCADE.
    DELETE FROM users u WHERE u.id = p_id;

    PERFORM latch_audit_append(v_user.tenant_id, p_actor, 'user.erased', p_id::text, p_ip, p_request_id, 'success',
                               jsonb_build_object('sessions_revoked', v_sessions, 'api_keys_revoked', v_keys,
                                                  'audit_records_erased', v_pii, 'legacy_audit_rows', v_legacy,
                                                  'login_counters_removed', v_attempts,
                                                  'messages_removed', v_messages));
    RETURN QUERY SELECT 'ok'::text, jsonb_build_object('id', p_id, 'erased', true, 'sessions_revoked', v_sessions,
                                                      'api_keys_revoked', v_keys, 'audit_records_erased', v_pii,
                                                      'legacy_audit_rows', v_legacy);
END
$$;

-- ---- the audit query -----------------------------------------------------------------------

-- GET /v1/admin/audit: newest first, keyset paging on id (p_before: the last id of the
-- previous page). A tenant admin (p_scope) sees its tenant's events only; a global admin
-- everything, or one tenant with p_tenant. p_user matches actor or target; p_event is an
-- exact name, or a prefix when it ends in '.*' ("login.*").
CREATE FUNCTION latch_audit_query(p_scope uuid, p_tenant uuid, p_actor text, p_target text, p_user text,
                                  p_event text, p_from timestamptz, p_to timestamptz, p_before bigint,
                                  p_limit integer)
    RETURNS TABLE (items jsonb, next_key text)
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, public, pg_temp
AS $$
    WITH page AS (
        SELECT a.id, row_number() OVER (ORDER BY a.id DESC) AS n
        FROM audit_log a
        WHERE (p_scope IS NULL OR a.tenant_id = p_scope)
          AND (p_tenant IS NULL OR a.tenant_id = p_tenant)
          AND (p_actor IS NULL OR a.actor = p_actor)
          AND (p_target IS NULL OR a.target = p_target)
          AND (p_user IS NULL OR a.actor = p_user OR a.target = p_user)
          AND (p_event IS NULL OR CASE WHEN p_event LIKE '%.*'
                                       THEN a.event LIKE latch_like_escape(left(p_event, -1)) || '%'
                                       ELSE a.event = p_event END)
          AND (p_from IS NULL OR a.at >= p_from)
          AND (p_to IS NULL OR a.at < p_to)
          AND (p_before IS NULL OR a.id < p_before)
        ORDER BY a.id DESC
        LIMIT p_limit + 1)
    SELECT coalesce((SELECT jsonb_agg(latch_audit_event_json(e) ORDER BY e.id DESC)
                     FROM audit_events e JOIN page p ON p.id = e.id WHERE p.n <= p_limit), '[]'),
           (SELECT max(p.id)::text FROM page p WHERE p.n = p_limit AND EXISTS (SELECT 1 FROM page q WHERE q.n > p_limit))
$$;

-- Tenant admins read their tenant's audit trail.
UPDATE roles SET permissions = permissions || ARRAY['latch:audit:read'], updated_at = now()
    WHERE tenant_id IS NULL AND name = 'admin' AND builtin AND NOT ('latch:audit:read' = ANY (permissions));

GRANT EXECUTE ON FUNCTION
    latch_audit_pii_keys(),
    latch_audit_pii_digest(bytea, text, jsonb),
    latch_audit_event_json(audit_events),
    latch_privacy_event_ids(uuid, uuid, text),
    latch_privacy_export(uuid, uuid),
    latch_privacy_me_export(uuid, uuid, uuid),
    latch_privacy_revoke_api_keys(uuid),
    latch_privacy_lock(uuid, uuid, text, text, text),
    latch_privacy_erase(uuid, uuid, text, text, text),
    latch_audit_query(uuid, uuid, text, text, text, text, timestamptz, timestamptz, bigint, integer)
    TO latch_runtime;
