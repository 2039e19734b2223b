-- 0005_admin: what operators do. `latchctl bootstrap` (a tenant and its first admin) and the
-- admin REST surface over tenants and users (lib/api/admin.c through lib/identity/admin.c).
--
-- Scope: every function an admin request reaches takes p_scope, the tenant the caller
-- administers, or NULL for a global admin. A row outside the scope is answered exactly like
-- a missing one (code 'not_found'), so an admin of one tenant learns nothing about another.
-- A tenant admin may read a global admin of its own tenant but not change it (code
-- 'forbidden'): otherwise a tenant admin could lock out or take over the operator.
--
-- Shape: the write functions return one row (code text, body jsonb): code 'ok' with the
-- response document, or an error code the handler maps to a problem ('not_found',
-- 'conflict', 'email_taken', 'forbidden', 'too_large'). One call is one transaction, so a
-- change and its audit event (latch_audit_append) commit together. Reads return the
-- document, or NULL when there is nothing in scope.
--
-- Lock order is 0004's (users -> one_time_tokens -> credentials -> sessions -> refresh_tokens
-- -> login_attempts -> the audit advisory lock, always last), so admin actions and sign-in
-- flows never deadlock each other.
--
-- Pagination is keyset over (created_at, id): stable under inserts, no OFFSET scans. A page
-- key is "<created_at as unix microseconds>:<id>" (latch_page_key); the API wraps it in
-- base64url as the opaque `next_cursor`.

CREATE INDEX users_page ON users (tenant_id, created_at, id);
CREATE INDEX users_page_all ON users (created_at, id);
CREATE INDEX tenants_page ON tenants (created_at, id);

-- The one JSON shape of a tenant on the wire (settings are not exposed yet).
CREATE FUNCTION latch_tenant_json(t tenants) RETURNS jsonb
    LANGUAGE sql STABLE
    AS $$
    SELECT jsonb_build_object(
        'id', t.id,
        'name', t.name,
        'display_name', t.display_name,
        'created_at', latch_ts(t.created_at),
        'updated_at', latch_ts(t.updated_at))
    $$;

-- Exact both ways: timestamptz has microsecond resolution, extract() returns numeric, and
-- microseconds since 1970 stay far below 2^53 (the multiplication runs in float8).
CREATE FUNCTION latch_page_key(p_at timestamptz, p_id uuid) RETURNS text
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    AS $$ SELECT (extract(epoch FROM p_at) * 1000000)::bigint::text || ':' || p_id::text $$;

CREATE FUNCTION latch_page_at(p_us bigint) RETURNS timestamptz
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    AS $$ SELECT timestamptz 'epoch' + p_us * interval '1 microsecond' $$;

-- A LIKE pattern that matches `s` literally (backslash is LIKE's default escape).
CREATE FUNCTION latch_like_escape(s text) RETURNS text
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    AS $$ SELECT replace(replace(replace(s, '\', '\\'), '%', '\%'), '_', '\_') $$;

-- RFC 7396 JSON Merge Patch: objects merge member by member, a null member removes the
-- key, anything else replaces. Recursion depth is bounded by the request's JSON depth cap.
CREATE FUNCTION latch_jsonb_merge_patch(p_target jsonb, p_patch jsonb) RETURNS jsonb
    LANGUAGE plpgsql IMMUTABLE
    AS $$
DECLARE
    v_key text;
    v_val jsonb;
    v_out jsonb;
BEGIN
    IF p_patch IS NULL OR jsonb_typeof(p_patch) <> 'object' THEN
        RETURN p_patch;
    END IF;
    v_out := CASE WHEN jsonb_typeof(p_target) = 'object' THEN p_target ELSE '{}'::jsonb END;
    FOR v_key, v_val IN SELECT e.key, e.value FROM jsonb_each(p_patch) e LOOP
        IF jsonb_typeof(v_val) = 'null' THEN
            v_out := v_out - v_key;
        ELSE
            v_out := v_out || jsonb_build_object(v_key, latch_jsonb_merge_patch(v_out -> v_key, v_val));
        END IF;
    END LOOP;
    RETURN v_out;
END
$$;

CREATE FUNCTION latch_user_has_role(p_user_id uuid, p_role text) RETURNS boolean
    LANGUAGE sql STABLE
    AS $$ SELECT EXISTS (SELECT 1 FROM user_roles r WHERE r.user_id = p_user_id AND r.role = p_role) $$;

-- Ends a user's live sessions and their refresh tokens through 0004's latch_sessions_end,
-- locking the sessions in id order as 0004 does; returns how many ended. Sessions already
-- past their idle or absolute expiry are dead anyway and not counted.
CREATE FUNCTION latch_admin_end_sessions(p_user_id uuid, p_reason text) RETURNS integer
    LANGUAGE sql VOLATILE
    AS $$
    SELECT latch_sessions_end(ARRAY(SELECT s.id FROM sessions s WHERE s.user_id = p_user_id AND latch_session_live(s)
                                    ORDER BY s.id FOR UPDATE),
                              p_reason)
    $$;

-- ---- bootstrap (latchctl) ----------------------------------------------------------------

-- Creates tenant p_tenant (unless it exists without users: a tenant made over the API
-- gets its first admin this way) and its first admin with roles 'admin' (+ 'global_admin'
-- with p_global). o_status 'exists' (and nothing changed) when the tenant already has
-- users, so scripts can run it again. Concurrent calls for one name serialise on the
-- tenant row: exactly one creates the admin.
CREATE FUNCTION latch_bootstrap(p_tenant text, p_display_name text, p_email text, p_phc text, p_global boolean,
                                p_actor text)
    RETURNS TABLE (o_status text, o_tenant_id uuid, o_user_id uuid)
    LANGUAGE plpgsql VOLATILE
    AS $$
DECLARE
    v_tenant uuid;
    v_user uuid;
    v_roles text[] := CASE WHEN p_global THEN ARRAY['admin', 'global_admin'] ELSE ARRAY['admin'] END;
BEGIN
    INSERT INTO tenants (name, display_name) VALUES (p_tenant, coalesce(p_display_name, ''))
    ON CONFLICT (name) DO NOTHING
    RETURNING id INTO v_tenant;
    IF v_tenant IS NULL THEN
        SELECT t.id INTO v_tenant FROM tenants t WHERE t.name = p_tenant FOR UPDATE;
        IF EXISTS (SELECT 1 FROM users u WHERE u.tenant_id = v_tenant) THEN
            RETURN QUERY SELECT 'exists'::text, v_tenant, NULL::uuid;
            RETURN;
        END IF;
    ELSE
        PERFORM latch_audit_append(v_tenant, p_actor, 'tenant.created', v_tenant::text, NULL, NULL, 'success',
                                   jsonb_build_object('name', p_tenant));
    END IF;

    INSERT INTO users (tenant_id, email, email_norm) VALUES (v_tenant, p_email, lower(btrim(p_email)))
    RETURNING id INTO v_user;
    INSERT INTO credentials (user_id, tenant_id, phc) VALUES (v_user, v_tenant, p_phc);
    INSERT INTO user_roles (tenant_id, user_id, role) SELECT v_tenant, v_user, r FROM unnest(v_roles) r;
    PERFORM latch_audit_append(v_tenant, p_actor, 'user.created', v_user::text, NULL, NULL, 'success',
                               jsonb_build_object('imported', false, 'roles', to_jsonb(v_roles), 'bootstrap', true));
    RETURN QUERY SELECT 'created'::text, v_tenant, v_user;
END
$$;

-- ---- tenants --------------------------------------------------------------------------------

-- Global admins only (the handler checks the role before calling).
CREATE FUNCTION latch_admin_tenant_create(p_name text, p_display_name text, p_actor text, p_ip text,
                                          p_request_id text)
    RETURNS TABLE (code text, body jsonb)
    LANGUAGE plpgsql VOLATILE
    AS $$
DECLARE
    v_t tenants;
BEGIN
    INSERT INTO tenants AS t (name, display_name) VALUES (p_name, coalesce(p_display_name, ''))
    ON CONFLICT (name) DO NOTHING
    RETURNING t.* INTO v_t;
    IF NOT FOUND THEN
        RETURN QUERY SELECT 'conflict'::text, NULL::jsonb;
        RETURN;
    END IF;
    PERFORM latch_audit_append(v_t.id, p_actor, 'tenant.created', v_t.id::text, p_ip, p_request_id, 'success',
                               jsonb_build_object('name', v_t.name));
    RETURN QUERY SELECT 'ok'::text, latch_tenant_json(v_t);
END
$$;

CREATE FUNCTION latch_admin_tenant_get(p_scope uuid, p_id uuid) RETURNS jsonb
    LANGUAGE sql STABLE
    AS $$ SELECT latch_tenant_json(t) FROM tenants t WHERE t.id = p_id AND (p_scope IS NULL OR t.id = p_scope) $$;

-- One page: items (up to p_limit) and the key to continue after, NULL on the last page.
CREATE FUNCTION latch_admin_tenant_list(p_scope uuid, p_after_us bigint, p_after_id uuid, p_limit integer)
    RETURNS TABLE (items jsonb, next_key text)
    LANGUAGE sql STABLE
    AS $$
    WITH page AS (
        SELECT t, row_number() OVER (ORDER BY t.created_at, t.id) AS n
        FROM tenants t
        WHERE (p_scope IS NULL OR t.id = p_scope)
          AND (p_after_us IS NULL OR (t.created_at, t.id) > (latch_page_at(p_after_us), p_after_id))
        ORDER BY t.created_at, t.id
        LIMIT p_limit + 1)
    SELECT coalesce(jsonb_agg(latch_tenant_json(p.t) ORDER BY p.n) FILTER (WHERE p.n <= p_limit), '[]'),
           CASE WHEN count(*) > p_limit
                THEN max(latch_page_key((p.t).created_at, (p.t).id)) FILTER (WHERE p.n = p_limit) END
    FROM page p
    $$;

-- ---- users ----------------------------------------------------------------------------------

-- p_phc is a hash made by latchd (p_imported false) or one imported from another system
-- and checked in C (lt_password_phc_check). p_roles: a JSON array of role names the
-- handler has already vetted.
CREATE FUNCTION latch_admin_user_create(p_scope uuid, p_tenant_id uuid, p_email text, p_phc text, p_attributes jsonb,
                                        p_roles jsonb, p_imported boolean, p_actor text, p_ip text,
                                        p_request_id text)
    RETURNS TABLE (code text, body jsonb)
    LANGUAGE plpgsql VOLATILE
    AS $$
DECLARE
    v_user users;
    v_roles jsonb;
BEGIN
    IF (p_scope IS NOT NULL AND p_tenant_id <> p_scope)
       OR NOT EXISTS (SELECT 1 FROM tenants t WHERE t.id = p_tenant_id) THEN
        RETURN QUERY SELECT 'not_found'::text, NULL::jsonb;
        RETURN;
    END IF;
    INSERT INTO users AS u (tenant_id, email, email_norm, attributes)
    VALUES (p_tenant_id, p_email, lower(btrim(p_email)), coalesce(p_attributes, '{}'))
    ON CONFLICT (tenant_id, email_norm) DO NOTHING
    RETURNING u.* INTO v_user;
    IF NOT FOUND THEN
        RETURN QUERY SELECT 'email_taken'::text, NULL::jsonb;
        RETURN;
    END IF;
    INSERT INTO credentials (user_id, tenant_id, phc) VALUES (v_user.id, p_tenant_id, p_phc);
    INSERT INTO user_roles (tenant_id, user_id, role)
    SELECT DISTINCT p_tenant_id, v_user.id, r FROM jsonb_array_elements_text(coalesce(p_roles, '[]')) r;
    SELECT coalesce(jsonb_agg(r.role ORDER BY r.role), '[]') INTO v_roles FROM user_roles r WHERE r.user_id = v_user.id;
    PERFORM latch_audit_append(p_tenant_id, p_actor, 'user.created', v_user.id::text, p_ip, p_request_id, 'success',
                               jsonb_build_object('imported', p_imported, 'roles', v_roles));
    RETURN QUERY SELECT 'ok'::text, latch_user_json(v_user);
END
$$;

CREATE FUNCTION latch_admin_user_get(p_scope uuid, p_id uuid) RETURNS jsonb
    LANGUAGE sql STABLE
    AS $$ SELECT latch_user_json(u) FROM users u WHERE u.id = p_id AND (p_scope IS NULL OR u.tenant_id = p_scope) $$;

-- p_tenant narrows a global admin's listing to one tenant (NULL: every tenant in scope);
-- p_email is a case-insensitive substring of the normalised email, matched literally.
CREATE FUNCTION latch_admin_user_list(p_scope uuid, p_tenant uuid, p_email text, p_after_us bigint, p_after_id uuid,
                                      p_limit integer)
    RETURNS TABLE (items jsonb, next_key text)
    LANGUAGE sql STABLE
    AS $$
    WITH page AS (
        SELECT u, row_number() OVER (ORDER BY u.created_at, u.id) AS n
        FROM users u
        WHERE (p_scope IS NULL OR u.tenant_id = p_scope)
          AND (p_tenant IS NULL OR u.tenant_id = p_tenant)
          AND (p_email IS NULL OR u.email_norm LIKE '%' || latch_like_escape(lower(p_email)) || '%')
          AND (p_after_us IS NULL OR (u.created_at, u.id) > (latch_page_at(p_after_us), p_after_id))
        ORDER BY u.created_at, u.id
        LIMIT p_limit + 1)
    SELECT coalesce(jsonb_agg(latch_user_json(p.u) ORDER BY p.n) FILTER (WHERE p.n <= p_limit), '[]'),
           CASE WHEN count(*) > p_limit
                THEN max(latch_page_key((p.u).created_at, (p.u).id)) FILTER (WHERE p.n = p_limit) END
    FROM page p
    $$;

-- Applies a merge patch to the attributes. Audits user.updated with the top-level keys
-- whose value changed (never the values), and only when something changed.
CREATE FUNCTION latch_admin_user_patch(p_scope uuid, p_id uuid, p_patch jsonb, p_actor text, p_ip text,
                                       p_request_id text)
    RETURNS TABLE (code text, body jsonb)
    LANGUAGE plpgsql VOLATILE
    AS $$
DECLARE
    v_old jsonb;
    v_new jsonb;
    v_changed jsonb;
    v_user users;
BEGIN
    SELECT u.attributes INTO v_old FROM users u
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
    v_new := latch_jsonb_merge_patch(v_old, p_patch);
    -- Attributes ride along in every user document and (later) policy evaluation.
    IF octet_length(v_new::text) > 65536 THEN
        RETURN QUERY SELECT 'too_large'::text, NULL::jsonb;
        RETURN;
    END IF;
    SELECT coalesce(jsonb_agg(k ORDER BY k), '[]') INTO v_changed
    FROM jsonb_object_keys(p_patch) k
    WHERE (v_old -> k) IS DISTINCT FROM (v_new -> k);
    IF v_changed = '[]'::jsonb THEN
        SELECT u.* INTO v_user FROM users u WHERE u.id = p_id;
    ELSE
        UPDATE users u SET attributes = v_new, updated_at = now() WHERE u.id = p_id RETURNING u.* INTO v_user;
        PERFORM latch_audit_append(v_user.tenant_id, p_actor, 'user.updated', p_id::text, p_ip, p_request_id, 'success',
                                   jsonb_build_object('changed', v_changed));
    END IF;
    RETURN QUERY SELECT 'ok'::text, latch_user_json(v_user);
END
$$;

-- The account actions of POST /v1/admin/users/{id}/<action>:
--   disable               status disabled; ends every session          user.disabled
--   enable                status active                                user.enabled
--   unlock                locked -> active; clears the login failure    user.unlocked
--                         counters of the account (source + account)
--   end_sessions          ends every session                           session.revoked
-- Answers the user document (end_sessions: {"revoked_sessions": n}).
-- force-password-reset has its own function below.
CREATE FUNCTION latch_admin_user_action(p_scope uuid, p_id uuid, p_action text, p_actor text, p_ip text,
                                        p_request_id text)
    RETURNS TABLE (code text, body jsonb)
    LANGUAGE plpgsql VOLATILE
    AS $$
DECLARE
    v_user users;
    v_tenant_name text;
    v_n integer;
    v_event text;
    v_details jsonb;
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

    CASE p_action
    WHEN 'disable' THEN
        UPDATE users u SET status = 'disabled', updated_at = now() WHERE u.id = p_id;
        v_n := latch_admin_end_sessions(p_id, 'user_disabled');
        v_event := 'user.disabled';
        v_details := jsonb_build_object('previous_status', v_user.status, 'sessions_revoked', v_n);
    WHEN 'enable' THEN
        UPDATE users u SET status = 'active', updated_at = now() WHERE u.id = p_id;
        v_event := 'user.enabled';
        v_details := jsonb_build_object('previous_status', v_user.status);
    WHEN 'unlock' THEN
        UPDATE users u SET status = 'active', updated_at = now() WHERE u.id = p_id AND u.status = 'locked';
        SELECT t.name INTO v_tenant_name FROM tenants t WHERE t.id = v_user.tenant_id;
        DELETE FROM login_attempts a
        WHERE a.scope IN ('source', 'account') AND a.tenant = v_tenant_name AND a.email_norm = v_user.email_norm;
        GET DIAGNOSTICS v_n = ROW_COUNT;
        v_event := 'user.unlocked';
        v_details := jsonb_build_object('previous_status', v_user.status, 'counters_cleared', v_n);
    WHEN 'end_sessions' THEN
        v_n := latch_admin_end_sessions(p_id, 'admin');
        PERFORM latch_audit_append(v_user.tenant_id, p_actor, 'session.revoked', p_id::text, p_ip, p_request_id,
                                   'success', jsonb_build_object('count', v_n, 'reason', 'admin'));
        RETURN QUERY SELECT 'ok'::text, jsonb_build_object('revoked_sessions', v_n);
        RETURN;
    ELSE
        RAISE EXCEPTION 'unknown admin action %', p_action USING ERRCODE = 'invalid_parameter_value';
    END CASE;

    PERFORM latch_audit_append(v_user.tenant_id, p_actor, v_event, p_id::text, p_ip, p_request_id, 'success',
                               v_details);
    SELECT u.* INTO v_user FROM users u WHERE u.id = p_id;
    RETURN QUERY SELECT 'ok'::text, latch_user_json(v_user);
END
$$;

-- POST /v1/admin/users/{id}/force-password-reset: the user must set a new password
-- (password_reset_required), every session ends, and a reset token is issued exactly as
-- 0004's latch_password_reset_request issues one (older unused reset tokens stop working;
-- the same outbox topic and payload, announced on channel latch_outbox), so the mailer
-- sends the usual reset email. The caller made the token and its hash (C, like 0004).
CREATE FUNCTION latch_admin_user_force_reset(p_scope uuid, p_id uuid, p_hash bytea, p_token text, p_ttl integer,
                                             p_actor text, p_ip text, p_request_id text)
    RETURNS TABLE (code text, body jsonb)
    LANGUAGE plpgsql VOLATILE
    AS $$
DECLARE
    v_user users;
    v_tenant text;
    v_expires timestamptz := now() + make_interval(secs => p_ttl);
    v_outbox bigint;
    v_n integer;
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
    SELECT t.name INTO v_tenant FROM tenants t WHERE t.id = v_user.tenant_id;
    UPDATE users u SET password_reset_required = true, updated_at = now() WHERE u.id = p_id;
    UPDATE one_time_tokens o SET used_at = now()
    WHERE o.user_id = p_id AND o.purpose = 'password_reset' AND o.used_at IS NULL;
    INSERT INTO one_time_tokens (tenant_id, user_id, purpose, token_hash, expires_at)
    VALUES (v_user.tenant_id, p_id, 'password_reset', p_hash, v_expires);
    v_n := latch_admin_end_sessions(p_id, 'password_reset_forced');
    INSERT INTO outbox (tenant_id, topic, payload)
    VALUES (v_user.tenant_id, 'password_reset',
            jsonb_build_object('user_id', p_id, 'tenant_id', v_user.tenant_id, 'tenant', v_tenant, 'email',
                               v_user.email, 'token', p_token, 'expires_at', latch_ts(v_expires)))
    RETURNING id INTO v_outbox;
    PERFORM pg_notify('latch_outbox', v_outbox::text);
    PERFORM latch_audit_append(v_user.tenant_id, p_actor, 'user.password_reset_forced', p_id::text, p_ip,
                               p_request_id, 'success',
                               jsonb_build_object('sessions_revoked', v_n, 'outbox_id', v_outbox));
    SELECT u.* INTO v_user FROM users u WHERE u.id = p_id;
    RETURN QUERY SELECT 'ok'::text, latch_user_json(v_user);
END
$$;

GRANT EXECUTE ON FUNCTION
    latch_tenant_json(tenants),
    latch_page_key(timestamptz, uuid),
    latch_page_at(bigint),
    latch_like_escape(text),
    latch_jsonb_merge_patch(jsonb, jsonb),
    latch_user_has_role(uuid, text),
    latch_admin_end_sessions(uuid, text),
    latch_bootstrap(text, text, text, text, boolean, text),
    latch_admin_tenant_create(text, text, text, text, text),
    latch_admin_tenant_get(uuid, uuid),
    latch_admin_tenant_list(uuid, bigint, uuid, integer),
    latch_admin_user_create(uuid, uuid, text, text, jsonb, jsonb, boolean, text, text, text),
    latch_admin_user_get(uuid, uuid),
    latch_admin_user_list(uuid, uuid, text, bigint, uuid, integer),
    latch_admin_user_patch(uuid, uuid, jsonb, text, text, text),
    latch_admin_user_action(uuid, uuid, text, text, text, text),
    latch_admin_user_force_reset(uuid, uuid, bytea, text, integer, text, text, text)
    TO latch_runtime;
