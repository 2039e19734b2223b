-- 0010_mfa: second factors. TOTP factors (secret sealed in C under the master key),
-- recovery codes (MACed in C with a key derived from the master key), the MFA challenge
-- between a correct password and a session, the enrolment-only token of tenants that
-- require MFA, step-up, and the tenant settings that drive them.
--
-- Division of labour as in 0004: codes are checked in C (liboath), never here, because
-- the secret only exists unsealed in C. A flow is "begin -> check in C -> finish": begin
-- passes the lockout gate (latch_login_gate: wrong codes count toward the account's
-- lockout exactly like wrong passwords, and a locked source checks nothing) and returns
-- the sealed secrets; finish records the outcome atomically. The replay rule lives in
-- finish: a factor's last accepted time step only ever grows (UPDATE ... WHERE last_step <
-- p_step under the row lock), so of two requests carrying the same code one wins and the
-- other is refused, whichever got checked first in C.
--
-- The counters: a correct password whose second factor is still to come gives back its
-- slot (latch_login_attempts_release) but does not reset the source, otherwise each fresh
-- login would wipe the wrong codes of the previous challenge and guessing codes would
-- never lock. Only a completed sign-in (a correct code) resets the source.
--
-- Lock order as in 0004, with the new tables between one_time_tokens and credentials:
-- users -> one_time_tokens -> mfa_factors -> recovery_codes -> credentials -> sessions ->
-- refresh_tokens -> login_attempts -> the audit lock (always last).

ALTER TABLE one_time_tokens DROP CONSTRAINT one_time_tokens_purpose_check;
ALTER TABLE one_time_tokens ADD CONSTRAINT one_time_tokens_purpose_check
    CHECK (purpose IN ('password_reset', 'mfa_challenge', 'mfa_enrollment'));
-- Codes tried against an MFA challenge (bounded by the caller's p_max_attempts).
ALTER TABLE one_time_tokens ADD COLUMN attempts integer NOT NULL DEFAULT 0;
CREATE INDEX one_time_tokens_user ON one_time_tokens (user_id, purpose);

-- How the session's second factor was proved: amr says it in RFC 8176 terms, this says
-- which of our methods (a recovery code has no amr value of its own).
ALTER TABLE sessions ADD COLUMN mfa_method text CHECK (mfa_method IN ('totp', 'recovery_code'));

-- id is made by the caller: the sealed secret's aad is "totp_secret:<id>", so a blob
-- copied onto another factor does not open. algorithm/digits/period are fixed at
-- enrolment (a later change of the tenant's settings must not break enrolled apps).
CREATE TABLE mfa_factors (
    id uuid PRIMARY KEY,
    tenant_id uuid NOT NULL,
    user_id uuid NOT NULL,
    type text NOT NULL DEFAULT 'totp' CHECK (type = 'totp'),
    label text NOT NULL DEFAULT '' CHECK (length(label) <= 64),
    status text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'active')),
    secret_sealed bytea NOT NULL CHECK (length(secret_sealed) BETWEEN 30 AND 200),
    algorithm text NOT NULL CHECK (algorithm IN ('SHA1', 'SHA256', 'SHA512')),
    digits integer NOT NULL CHECK (digits BETWEEN 6 AND 8),
    period integer NOT NULL CHECK (period BETWEEN 15 AND 120),
    last_step bigint,
    created_at timestamptz NOT NULL DEFAULT now(),
    confirmed_at timestamptz,
    last_used_at timestamptz,
    FOREIGN KEY (tenant_id, user_id) REFERENCES users (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX mfa_factors_user ON mfa_factors (user_id, status);

-- code_hash: key version byte || HMAC-SHA256 (lib/mfa/mfa.h), 33 bytes.
CREATE TABLE recovery_codes (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id uuid NOT NULL,
    user_id uuid NOT NULL,
    code_hash bytea NOT NULL CHECK (length(code_hash) = 33),
    created_at timestamptz NOT NULL DEFAULT now(),
    used_at timestamptz,
    FOREIGN KEY (tenant_id, user_id) REFERENCES users (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX recovery_codes_user ON recovery_codes (user_id) WHERE used_at IS NULL;

GRANT SELECT, INSERT, UPDATE, DELETE ON mfa_factors, recovery_codes TO latch_runtime;

-- ---- tenants and users on the wire ------------------------------------------------------

-- The tenant's effective settings: what is stored, defaults for the rest (the issuer
-- defaults to the display name, else the name). The admin handler validates what it
-- stores (lib/api/admin.c).
CREATE FUNCTION latch_tenant_settings(t tenants) RETURNS jsonb
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, public, pg_temp
AS $$
    SELECT jsonb_build_object(
        'mfa', coalesce(t.settings ->> 'mfa', 'optional'),
        'totp_algorithm', coalesce(t.settings ->> 'totp_algorithm', 'SHA1'),
        'totp_digits', coalesce((t.settings ->> 'totp_digits')::integer, 6),
        'totp_period', coalesce((t.settings ->> 'totp_period')::integer, 30),
        'totp_issuer', coalesce(t.settings ->> 'totp_issuer',
                                -- an issuer may not hold ':' (the otpauth label separator) and is
                                -- kept short for authenticator apps; a set one is checked on PATCH
                                nullif(btrim(left(translate(t.display_name, ':', ''), 64)), ''), t.name))
$$;

CREATE OR REPLACE FUNCTION latch_tenant_json(t tenants) RETURNS jsonb
    LANGUAGE sql STABLE
    AS $$
    SELECT jsonb_build_object(
        'id', t.id,
        'name', t.name,
        'display_name', t.display_name,
        'settings', latch_tenant_settings(t),
        'created_at', latch_ts(t.created_at),
        'updated_at', latch_ts(t.updated_at))
    $$;

-- As in 0003, plus whether the user has an active second factor (never the factor).
CREATE OR REPLACE FUNCTION latch_user_json(u users) RETURNS jsonb
    LANGUAGE sql STABLE
    AS $$
    SELECT jsonb_build_object(
        'id', u.id,
        'tenant_id', u.tenant_id,
        'tenant', (SELECT t.name FROM tenants t WHERE t.id = u.tenant_id),
        'email', u.email,
        'status', u.status,
        'attributes', u.attributes,
        'roles', coalesce((SELECT jsonb_agg(r.role ORDER BY r.role) FROM user_roles r WHERE r.user_id = u.id), '[]'),
        'password_reset_required', u.password_reset_required,
        'mfa_enrolled', EXISTS (SELECT 1 FROM mfa_factors f WHERE f.user_id = u.id AND f.status = 'active'),
        'created_at', latch_ts(u.created_at),
        'updated_at', latch_ts(u.updated_at))
    $$;

-- PATCH /v1/admin/tenants/{id}: display name and settings (merged; a null value drops the
-- key back to its default). NULL when no such tenant within the caller's scope.
CREATE FUNCTION latch_admin_tenant_patch(p_scope uuid, p_id uuid, p_display_name text, p_settings jsonb,
                                         p_actor text, p_ip text, p_request_id text) RETURNS jsonb
    LANGUAGE plpgsql VOLATILE
    SET search_path = pg_catalog, public, pg_temp
AS $$
DECLARE
    v_t tenants;
BEGIN
    UPDATE tenants t SET display_name = coalesce(p_display_name, t.display_name),
                         settings = jsonb_strip_nulls(t.settings || coalesce(p_settings, '{}'::jsonb)),
                         updated_at = now()
        WHERE t.id = p_id AND (p_scope IS NULL OR t.id = p_scope)
        RETURNING t.* INTO v_t;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    PERFORM latch_audit_append(v_t.id, p_actor, 'tenant.updated', v_t.id::text, p_ip, p_request_id, 'success',
                               jsonb_strip_nulls(jsonb_build_object('display_name', p_display_name,
                                                                    'settings', p_settings)));
    RETURN latch_tenant_json(v_t);
END
$$;

-- ---- sessions ------------------------------------------------------------------------------

-- A new session with its first refresh token: what login, MFA verification and the
-- enrolment of a required factor end with. The first access token's expiry is recorded
-- (ending the session revokes it until then, 0006).
CREATE FUNCTION latch_session_open(p_user_id uuid, p_tenant_id uuid, p_ip text, p_user_agent text,
                                   p_idle_ttl integer, p_max_ttl integer, p_access_ttl integer, p_rt_hash text,
                                   p_amr text[], p_acr text, p_mfa_method text) RETURNS uuid
    LANGUAGE plpgsql VOLATILE
    SET search_path = pg_catalog, public, pg_temp
AS $$
DECLARE
    v_now timestamptz := now();
    v_idle timestamptz := least(now() + make_interval(secs => p_idle_ttl), now() + make_interval(secs => p_max_ttl));
    v_sid uuid;
BEGIN
    INSERT INTO sessions (tenant_id, user_id, created_at, last_seen_at, idle_expires_at, expires_at, ip, user_agent,
                          amr, acr, mfa_method, auth_time, access_expires_at)
    VALUES (p_tenant_id, p_user_id, v_now, v_now, v_idle, v_now + make_interval(secs => p_max_ttl),
            nullif(p_ip, 'unknown')::inet, left(p_user_agent, 512), p_amr, p_acr, p_mfa_method, v_now,
            v_now + make_interval(secs => p_access_ttl))
    RETURNING id INTO v_sid;
    INSERT INTO refresh_tokens (token_hash, session_id, tenant_id, issued_at, expires_at)
    VALUES (decode(p_rt_hash, 'hex'), v_sid, p_tenant_id, v_now, v_idle);
    RETURN v_sid;
END
$$;

-- The user's roles as the access token carries them.
CREATE FUNCTION latch_user_roles(p_user_id uuid) RETURNS jsonb
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, public, pg_temp
AS $$
    SELECT coalesce((SELECT jsonb_agg(r.role ORDER BY r.role) FROM user_roles r WHERE r.user_id = p_user_id), '[]'::jsonb)
$$;

-- A correct password whose second factor is still to come: the attempt was not a failure,
-- so its slot goes back, but the source keeps its count (see the head of this file).
CREATE FUNCTION latch_login_attempts_release(p_tenant text, p_email_norm text, p_ip text) RETURNS void
    LANGUAGE sql VOLATILE
    SET search_path = pg_catalog, public, pg_temp
AS $$
    UPDATE login_attempts SET failures = greatest(failures - 1, 0)
        WHERE (scope = 'source' AND tenant = p_tenant AND email_norm = p_email_norm AND ip = p_ip)
           OR (scope = 'account' AND tenant = p_tenant AND email_norm = p_email_norm AND ip = '');
$$;

-- GET /v1/me/sessions as in 0004, plus mfa_method.
CREATE OR REPLACE FUNCTION latch_session_list(p_sid uuid, p_user_id uuid, p_tenant_id uuid) RETURNS jsonb
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, public, pg_temp
AS $$
    SELECT CASE WHEN latch_caller_live(p_sid, p_user_id, p_tenant_id) THEN
        jsonb_build_object('items', coalesce(
            (SELECT jsonb_agg(jsonb_build_object(
                        'id', s.id,
                        'created_at', latch_ts(s.created_at),
                        'last_seen_at', latch_ts(s.last_seen_at),
                        'idle_expires_at', latch_ts(s.idle_expires_at),
                        'expires_at', latch_ts(s.expires_at),
                        'ip', host(s.ip),
                        'user_agent', s.user_agent,
                        'amr', to_jsonb(s.amr),
                        'mfa_method', s.mfa_method,
                        'auth_time', latch_ts(s.auth_time),
                        'current', s.id = p_sid) ORDER BY s.created_at DESC, s.id)
                 FROM sessions s
                 WHERE s.user_id = p_user_id AND s.tenant_id = p_tenant_id AND latch_session_live(s)),
            '[]'::jsonb))
    END
$$;

-- ---- login ---------------------------------------------------------------------------------

-- Step 2 of a login whose password matched an active user, as in 0007, but the tenant's
-- MFA setting decides what it ends in. o_status:
--   'ok'                   a session (no second factor, or the tenant's mfa is 'off')
--   'mfa_required'         the user has an active factor: p_mfa_hash becomes an MFA
--                          challenge (p_challenge_ttl), no session yet
--   'enrollment_required'  the tenant requires MFA and the user has none: p_mfa_hash
--                          becomes an enrolment-only token (p_enroll_ttl)
-- No row when the user stopped being active in between.
DROP FUNCTION latch_login_succeed(uuid, uuid, text, text, text, text, integer, integer, integer, text, text, text, text);
CREATE FUNCTION latch_login_succeed(p_user_id uuid, p_tenant_id uuid, p_tenant text, p_email text, p_ip text,
                                    p_user_agent text, p_idle_ttl integer, p_max_ttl integer, p_access_ttl integer,
                                    p_rt_hash text, p_old_phc text, p_new_phc text, p_request_id text,
                                    p_mfa_hash text, p_challenge_ttl integer, p_enroll_ttl integer)
    RETURNS TABLE (o_status text, o_session_id uuid, o_roles jsonb, o_auth_time bigint, o_email text)
    LANGUAGE plpgsql VOLATILE
    SET search_path = pg_catalog, public, pg_temp
AS $$
DECLARE
    v_now timestamptz := now();
    v_sid uuid;
    v_email text;
    v_mfa text;
    v_purpose text;
    v_rehashed boolean := false;
    v_tenant text := lower(btrim(p_tenant));
    v_email_norm text := lower(btrim(p_email));
BEGIN
    SELECT u.email, coalesce(t.settings ->> 'mfa', 'optional') INTO v_email, v_mfa
        FROM users u JOIN tenants t ON t.id = u.tenant_id
        WHERE u.id = p_user_id AND u.tenant_id = p_tenant_id AND u.status = 'active' FOR SHARE OF u;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    IF v_mfa <> 'off' AND EXISTS (SELECT 1 FROM mfa_factors f WHERE f.user_id = p_user_id AND f.status = 'active') THEN
        v_purpose := 'mfa_challenge';
    ELSIF v_mfa = 'required' THEN
        v_purpose := 'mfa_enrollment';
    END IF;
    IF v_purpose IS NOT NULL THEN
        -- Spent and expired challenges of the user go now: the table stays small without a sweeper.
        DELETE FROM one_time_tokens o
            WHERE o.user_id = p_user_id AND o.purpose IN ('mfa_challenge', 'mfa_enrollment')
              AND (o.used_at IS NOT NULL OR o.expires_at <= v_now);
        INSERT INTO one_time_tokens (tenant_id, user_id, purpose, token_hash, expires_at)
        VALUES (p_tenant_id, p_user_id, v_purpose, decode(p_mfa_hash, 'hex'),
                v_now + make_interval(secs => CASE WHEN v_purpose = 'mfa_challenge' THEN p_challenge_ttl
                                                   ELSE p_enroll_ttl END));
    END IF;
    IF p_new_phc IS NOT NULL THEN
        UPDATE credentials SET phc = p_new_phc WHERE user_id = p_user_id AND phc = p_old_phc;
        v_rehashed := FOUND;
    END IF;
    IF v_purpose IS NOT NULL THEN
        PERFORM latch_login_attempts_release(v_tenant, v_email_norm, p_ip);
        PERFORM latch_audit_append(p_tenant_id, p_user_id::text,
                                   CASE WHEN v_purpose = 'mfa_challenge' THEN 'login.mfa_required'
                                        ELSE 'login.mfa_enrollment_required' END,
                                   p_user_id::text, p_ip, p_request_id, 'success',
                                   jsonb_build_object('rehashed', v_rehashed));
        RETURN QUERY SELECT CASE WHEN v_purpose = 'mfa_challenge' THEN 'mfa_required' ELSE 'enrollment_required' END,
                            NULL::uuid, NULL::jsonb, NULL::bigint, v_email;
        RETURN;
    END IF;
    v_sid := latch_session_open(p_user_id, p_tenant_id, p_ip, p_user_agent, p_idle_ttl, p_max_ttl, p_access_ttl,
                                p_rt_hash, ARRAY['pwd'], NULL, NULL);
    PERFORM latch_login_attempts_ok(v_tenant, v_email_norm, p_ip);
    PERFORM latch_audit_append(p_tenant_id, p_user_id::text, 'login.succeeded', p_user_id::text, p_ip,
                               p_request_id, 'success',
                               jsonb_build_object('session_id', v_sid, 'amr', jsonb_build_array('pwd'),
                                                  'rehashed', v_rehashed));
    RETURN QUERY SELECT 'ok'::text, v_sid, latch_user_roles(p_user_id), extract(epoch FROM v_now)::bigint, v_email;
END
$$;

-- The active factors of a user as the C side checks codes against them (sealed secrets
-- as hex; they only open in C).
CREATE FUNCTION latch_mfa_factors_for_check(p_user_id uuid) RETURNS jsonb
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, public, pg_temp
AS $$
    SELECT coalesce(jsonb_agg(jsonb_build_object('id', f.id, 'sealed', encode(f.secret_sealed, 'hex'),
                                                 'algorithm', f.algorithm, 'digits', f.digits, 'period', f.period)
                              ORDER BY f.created_at, f.id), '[]'::jsonb)
        FROM mfa_factors f WHERE f.user_id = p_user_id AND f.status = 'active'
$$;

-- Step 1 of POST /v1/auth/mfa/verify. o_outcome:
--   'invalid'   unknown, used or expired challenge, its attempts spent, or the user is no
--               longer active (the caller answers 401 invalid_mfa_token)
--   'locked', 'throttled', 'ip_limited'  refused by the gate; no attempt is consumed
--   'ok'        one attempt consumed (o_attempts_left are those after this one), the
--               gate's slot reserved; o_factors to check the code against
CREATE FUNCTION latch_mfa_challenge_begin(p_hash text, p_ip text, p_max_attempts integer, p_threshold integer,
                                          p_window integer, p_duration integer, p_acct_threshold integer,
                                          p_acct_window integer, p_acct_max_delay integer, p_ip_limit integer,
                                          p_ip_window integer, p_request_id text)
    RETURNS TABLE (o_outcome text, o_retry_after integer, o_user_id uuid, o_tenant_id uuid, o_attempts_left integer,
                   o_factors jsonb)
    LANGUAGE plpgsql VOLATILE
    SET search_path = pg_catalog, public, pg_temp
AS $$
DECLARE
    v_o one_time_tokens;
    v_tenant text;
    v_email text;
BEGIN
    o_outcome := 'invalid';
    o_retry_after := 0;
    SELECT o.* INTO v_o FROM one_time_tokens o
        WHERE o.token_hash = decode(p_hash, 'hex') AND o.purpose = 'mfa_challenge' FOR UPDATE;
    IF NOT FOUND OR v_o.used_at IS NOT NULL OR v_o.expires_at <= now() OR v_o.attempts >= p_max_attempts THEN
        RETURN NEXT;
        RETURN;
    END IF;
    SELECT t.name, u.email_norm INTO v_tenant, v_email
        FROM users u JOIN tenants t ON t.id = u.tenant_id
        WHERE u.id = v_o.user_id AND u.tenant_id = v_o.tenant_id AND u.status = 'active';
    IF NOT FOUND THEN
        RETURN NEXT;
        RETURN;
    END IF;
    SELECT g.o_outcome, g.o_retry_after INTO o_outcome, o_retry_after
        FROM latch_login_gate(v_tenant, v_email, p_ip, p_threshold, p_window, p_duration, p_acct_threshold,
                              p_acct_window, p_acct_max_delay, p_ip_limit, p_ip_window, p_request_id) g;
    IF o_outcome <> 'ok' THEN
        RETURN NEXT;
        RETURN;
    END IF;
    UPDATE one_time_tokens SET attempts = attempts + 1 WHERE id = v_o.id;
    o_user_id := v_o.user_id;
    o_tenant_id := v_o.tenant_id;
    o_attempts_left := p_max_attempts - v_o.attempts - 1;
    o_factors := latch_mfa_factors_for_check(v_o.user_id);
    RETURN NEXT;
END
$$;

-- A code that did not match (any flow): audited; the gate's slot stays reserved, so it
-- counts as a failure toward the lockout. p_context: login, step_up, enrollment.
CREATE FUNCTION latch_mfa_failed(p_user_id uuid, p_tenant_id uuid, p_context text, p_method text, p_ip text,
                                 p_request_id text) RETURNS void
    LANGUAGE sql VOLATILE
    SET search_path = pg_catalog, public, pg_temp
AS $$
    SELECT latch_audit_append(p_tenant_id, p_user_id::text, 'mfa.failed', p_user_id::text, p_ip, p_request_id,
                              'failure', jsonb_build_object('context', p_context, 'method', p_method,
                                                            'reason', 'wrong_code'));
$$;

-- Accepts time step p_step for an active factor of the user if it is newer than the last
-- accepted one (the replay rule). False: a replay, or the factor is gone.
CREATE FUNCTION latch_mfa_accept_step(p_factor_id uuid, p_user_id uuid, p_step bigint) RETURNS boolean
    LANGUAGE plpgsql VOLATILE
    SET search_path = pg_catalog, public, pg_temp
AS $$
BEGIN
    UPDATE mfa_factors SET last_step = p_step, last_used_at = now()
        WHERE id = p_factor_id AND user_id = p_user_id AND status = 'active'
          AND (last_step IS NULL OR last_step < p_step);
    RETURN FOUND;
END
$$;

-- Step 2 of POST /v1/auth/mfa/verify once C found a match: p_factor_id + p_step for a
-- TOTP code, or p_recovery (the code's MAC under each master key version the caller
-- holds) for a recovery code. Rows as latch_refresh (0007) with o_status 'rotated' for
-- the new session or 'invalid' (challenge gone meanwhile, replay, recovery code unknown
-- or used; audited).
CREATE FUNCTION latch_mfa_challenge_complete(p_hash text, p_factor_id uuid, p_step bigint, p_recovery text[],
                                             p_ip text, p_user_agent text, p_idle_ttl integer, p_max_ttl integer,
                                             p_access_ttl integer, p_rt_hash text, p_request_id text)
    RETURNS TABLE (o_status text, o_session_id uuid, o_user_id uuid, o_tenant_id uuid, o_email text, o_roles jsonb,
                   o_amr jsonb, o_acr text, o_auth_time bigint)
    LANGUAGE plpgsql VOLATILE
    SET search_path = pg_catalog, public, pg_temp
AS $$
DECLARE
    v_o one_time_tokens;
    v_tenant text;
    v_email_norm text;
    v_method text := CASE WHEN p_factor_id IS NOT NULL THEN 'totp' ELSE 'recovery_code' END;
    v_amr text[];
    v_sid uuid;
    v_left integer;
BEGIN
    o_status := 'invalid';
    SELECT o.* INTO v_o FROM one_time_tokens o
        WHERE o.token_hash = decode(p_hash, 'hex') AND o.purpose = 'mfa_challenge' FOR UPDATE;
    IF NOT FOUND OR v_o.used_at IS NOT NULL OR v_o.expires_at <= now() THEN
        RETURN NEXT;
        RETURN;
    END IF;
    SELECT t.name, u.email_norm, u.email INTO v_tenant, v_email_norm, o_email
        FROM users u JOIN tenants t ON t.id = u.tenant_id
        WHERE u.id = v_o.user_id AND u.tenant_id = v_o.tenant_id AND u.status = 'active' FOR SHARE OF u;
    IF NOT FOUND THEN
        o_email := NULL;
        RETURN NEXT;
        RETURN;
    END IF;
    IF p_factor_id IS NOT NULL THEN
        IF NOT latch_mfa_accept_step(p_factor_id, v_o.user_id, p_step) THEN
            PERFORM latch_audit_append(v_o.tenant_id, v_o.user_id::text, 'mfa.failed', v_o.user_id::text, p_ip,
                                       p_request_id, 'denied', jsonb_build_object('context', 'login', 'method', 'totp',
                                                                                  'reason', 'replay'));
            o_email := NULL;
            RETURN NEXT;
            RETURN;
        END IF;
        v_amr := ARRAY['pwd', 'otp', 'mfa'];
    ELSE
        UPDATE recovery_codes SET used_at = now()
            WHERE id = (SELECT c.id FROM recovery_codes c
                        WHERE c.user_id = v_o.user_id AND c.used_at IS NULL
                          AND c.code_hash IN (SELECT decode(h, 'hex') FROM unnest(p_recovery) h)
                        LIMIT 1 FOR UPDATE);
        IF NOT FOUND THEN
            PERFORM latch_mfa_failed(v_o.user_id, v_o.tenant_id, 'login', 'recovery_code', p_ip, p_request_id);
            o_email := NULL;
            RETURN NEXT;
            RETURN;
        END IF;
        v_amr := ARRAY['pwd', 'mfa'];
    END IF;
    UPDATE one_time_tokens SET used_at = now() WHERE id = v_o.id;
    v_sid := latch_session_open(v_o.user_id, v_o.tenant_id, p_ip, p_user_agent, p_idle_ttl, p_max_ttl, p_access_ttl,
                                p_rt_hash, v_amr, 'urn:latch:acr:mfa', v_method);
    PERFORM latch_login_attempts_ok(v_tenant, v_email_norm, p_ip);
    IF v_method = 'recovery_code' THEN
        SELECT count(*) INTO v_left FROM recovery_codes WHERE user_id = v_o.user_id AND used_at IS NULL;
        PERFORM latch_audit_append(v_o.tenant_id, v_o.user_id::text, 'mfa.recovery_code_used', v_o.user_id::text,
                                   p_ip, p_request_id, 'success',
                                   jsonb_build_object('session_id', v_sid, 'remaining', v_left));
    END IF;
    PERFORM latch_audit_append(v_o.tenant_id, v_o.user_id::text, 'login.succeeded', v_o.user_id::text, p_ip,
                               p_request_id, 'success',
                               jsonb_build_object('session_id', v_sid, 'amr', to_jsonb(v_amr), 'mfa_method', v_method));
    o_status := 'rotated';
    o_session_id := v_sid;
    o_user_id := v_o.user_id;
    o_tenant_id := v_o.tenant_id;
    o_roles := latch_user_roles(v_o.user_id);
    o_amr := to_jsonb(v_amr);
    o_acr := 'urn:latch:acr:mfa';
    o_auth_time := extract(epoch FROM now())::bigint;
    RETURN NEXT;
END
$$;

-- ---- step-up -------------------------------------------------------------------------------

-- Step 1 of POST /v1/auth/step-up: 'unauthorized' (session not live), 'not_enrolled' (no
-- active factor; nothing reserved), a refusal of the gate, or 'ok' with the factors.
CREATE FUNCTION latch_mfa_stepup_begin(p_sid uuid, p_user_id uuid, p_tenant_id uuid, p_ip text, p_threshold integer,
                                       p_window integer, p_duration integer, p_acct_threshold integer,
                                       p_acct_window integer, p_acct_max_delay integer, p_ip_limit integer,
                                       p_ip_window integer, p_request_id text)
    RETURNS TABLE (o_outcome text, o_retry_after integer, o_factors jsonb)
    LANGUAGE plpgsql VOLATILE
    SET search_path = pg_catalog, public, pg_temp
AS $$
DECLARE
    v_tenant text;
    v_email text;
BEGIN
    o_retry_after := 0;
    IF NOT latch_caller_live(p_sid, p_user_id, p_tenant_id) THEN
        o_outcome := 'unauthorized';
        RETURN NEXT;
        RETURN;
    END IF;
    o_factors := latch_mfa_factors_for_check(p_user_id);
    IF jsonb_array_length(o_factors) = 0 THEN
        o_outcome := 'not_enrolled';
        o_factors := NULL;
        RETURN NEXT;
        RETURN;
    END IF;
    SELECT t.name, u.email_norm INTO v_tenant, v_email
        FROM users u JOIN tenants t ON t.id = u.tenant_id WHERE u.id = p_user_id AND u.tenant_id = p_tenant_id;
    SELECT g.o_outcome, g.o_retry_after INTO o_outcome, o_retry_after
        FROM latch_login_gate(v_tenant, v_email, p_ip, p_threshold, p_window, p_duration, p_acct_threshold,
                              p_acct_window, p_acct_max_delay, p_ip_limit, p_ip_window, p_request_id) g;
    IF o_outcome <> 'ok' THEN
        o_factors := NULL;
    END IF;
    RETURN NEXT;
END
$$;

-- Step 2 of a step-up whose code matched: the session's auth_time is now, its amr and acr
-- say MFA, and the access token about to be issued is covered by the session's
-- revocation horizon. Rows as latch_refresh with o_status 'rotated', 'invalid' (replay)
-- or 'unauthorized' (the session ended meanwhile).
CREATE FUNCTION latch_mfa_stepup(p_sid uuid, p_user_id uuid, p_tenant_id uuid, p_factor_id uuid, p_step bigint,
                                 p_access_ttl integer, p_ip text, p_request_id text)
    RETURNS TABLE (o_status text, o_session_id uuid, o_user_id uuid, o_tenant_id uuid, o_email text, o_roles jsonb,
                   o_amr jsonb, o_acr text, o_auth_time bigint)
    LANGUAGE plpgsql VOLATILE
    SET search_path = pg_catalog, public, pg_temp
AS $$
DECLARE
    v_now timestamptz := now();
    v_tenant text;
    v_email_norm text;
BEGIN
    IF NOT latch_caller_live(p_sid, p_user_id, p_tenant_id) THEN
        o_status := 'unauthorized';
        RETURN NEXT;
        RETURN;
    END IF;
    IF NOT latch_mfa_accept_step(p_factor_id, p_user_id, p_step) THEN
        PERFORM latch_audit_append(p_tenant_id, p_user_id::text, 'mfa.failed', p_user_id::text, p_ip, p_request_id,
                                   'denied', jsonb_build_object('context', 'step_up', 'method', 'totp',
                                                                'reason', 'replay'));
        o_status := 'invalid';
        RETURN NEXT;
        RETURN;
    END IF;
    UPDATE sessions SET auth_time = v_now, amr = ARRAY['pwd', 'otp', 'mfa'], acr = 'urn:latch:acr:mfa',
                        mfa_method = 'totp', last_seen_at = v_now,
                        access_expires_at = greatest(access_expires_at, v_now + make_interval(secs => p_access_ttl))
        WHERE id = p_sid;
    SELECT t.name, u.email_norm, u.email INTO v_tenant, v_email_norm, o_email
        FROM users u JOIN tenants t ON t.id = u.tenant_id WHERE u.id = p_user_id AND u.tenant_id = p_tenant_id;
    PERFORM latch_login_attempts_ok(v_tenant, v_email_norm, p_ip);
    PERFORM latch_audit_append(p_tenant_id, p_user_id::text, 'session.stepped_up', p_sid::text, p_ip, p_request_id,
                               'success', jsonb_build_object('factor_id', p_factor_id));
    o_status := 'rotated';
    o_session_id := p_sid;
    o_user_id := p_user_id;
    o_tenant_id := p_tenant_id;
    o_roles := latch_user_roles(p_user_id);
    o_amr := '["pwd", "otp", "mfa"]'::jsonb;
    o_acr := 'urn:latch:acr:mfa';
    o_auth_time := extract(epoch FROM v_now)::bigint;
    RETURN NEXT;
END
$$;

-- ---- enrolment ----------------------------------------------------------------------------

-- Who is enrolling: the bearer's live session (p_sid, p_user_id, p_tenant_id) or, when
-- p_enroll_hash is given, the user of that live enrolment-only token. NULLs when neither.
CREATE FUNCTION latch_mfa_enrollee(p_sid uuid, p_user_id uuid, p_tenant_id uuid, p_enroll_hash text,
                                   OUT o_user_id uuid, OUT o_tenant_id uuid)
    LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog, public, pg_temp
AS $$
BEGIN
    IF p_enroll_hash IS NOT NULL THEN
        SELECT o.user_id, o.tenant_id INTO o_user_id, o_tenant_id
            FROM one_time_tokens o JOIN users u ON u.tenant_id = o.tenant_id AND u.id = o.user_id
            WHERE o.token_hash = decode(p_enroll_hash, 'hex') AND o.purpose = 'mfa_enrollment'
              AND o.used_at IS NULL AND o.expires_at > now() AND u.status = 'active';
    ELSIF latch_caller_live(p_sid, p_user_id, p_tenant_id) THEN
        o_user_id := p_user_id;
        o_tenant_id := p_tenant_id;
    END IF;
END
$$;

-- POST /v1/me/mfa/totp: stores a pending factor (id and sealed secret made by the caller).
-- {"status": "unauthorized" | "disabled" (tenant mfa off) | "too_many" (p_max_active
-- active factors already) | "ok", and for ok: email, issuer, algorithm, digits, period}.
-- Pending factors older than a day, and all but the newest few, are dropped.
CREATE FUNCTION latch_mfa_totp_enroll(p_sid uuid, p_user_id uuid, p_tenant_id uuid, p_enroll_hash text,
                                      p_factor_id uuid, p_label text, p_sealed text, p_max_active integer,
                                      p_ip text, p_request_id text) RETURNS jsonb
    LANGUAGE plpgsql VOLATILE
    SET search_path = pg_catalog, public, pg_temp
AS $$
DECLARE
    v_who record;
    v_t tenants;
    v_s jsonb;
    v_email text;
BEGIN
    SELECT * INTO v_who FROM latch_mfa_enrollee(p_sid, p_user_id, p_tenant_id, p_enroll_hash);
    IF v_who.o_user_id IS NULL THEN
        RETURN '{"status": "unauthorized"}'::jsonb;
    END IF;
    SELECT t.* INTO v_t FROM tenants t WHERE t.id = v_who.o_tenant_id;
    v_s := latch_tenant_settings(v_t);
    IF v_s ->> 'mfa' = 'off' THEN
        RETURN '{"status": "disabled"}'::jsonb;
    END IF;
    SELECT u.email INTO v_email FROM users u WHERE u.id = v_who.o_user_id FOR UPDATE;
    IF (SELECT count(*) FROM mfa_factors f WHERE f.user_id = v_who.o_user_id AND f.status = 'active') >= p_max_active THEN
        RETURN '{"status": "too_many"}'::jsonb;
    END IF;
    DELETE FROM mfa_factors f
        WHERE f.user_id = v_who.o_user_id AND f.status = 'pending'
          AND (f.created_at < now() - interval '1 day'
               OR f.id NOT IN (SELECT g.id FROM mfa_factors g WHERE g.user_id = v_who.o_user_id AND g.status = 'pending'
                               ORDER BY g.created_at DESC, g.id LIMIT 4));
    INSERT INTO mfa_factors (id, tenant_id, user_id, label, secret_sealed, algorithm, digits, period)
    VALUES (p_factor_id, v_who.o_tenant_id, v_who.o_user_id, coalesce(p_label, ''), decode(p_sealed, 'hex'),
            v_s ->> 'totp_algorithm', (v_s ->> 'totp_digits')::integer, (v_s ->> 'totp_period')::integer);
    PERFORM latch_audit_append(v_who.o_tenant_id, v_who.o_user_id::text, 'mfa.enrollment_started',
                               v_who.o_user_id::text, p_ip, p_request_id, 'success',
                               jsonb_build_object('factor_id', p_factor_id, 'type', 'totp'));
    RETURN jsonb_build_object('status', 'ok', 'email', v_email, 'issuer', v_s ->> 'totp_issuer',
                              'algorithm', v_s ->> 'totp_algorithm', 'digits', (v_s ->> 'totp_digits')::integer,
                              'period', (v_s ->> 'totp_period')::integer);
END
$$;

-- Step 1 of POST /v1/me/mfa/totp/{id}/confirm: o_outcome 'unauthorized', 'not_found',
-- 'already_confirmed', a refusal of the gate, or 'ok' with the pending factor to check
-- the code against (o_factor: {id, sealed, algorithm, digits, period}).
CREATE FUNCTION latch_mfa_factor_begin(p_sid uuid, p_user_id uuid, p_tenant_id uuid, p_enroll_hash text,
                                       p_factor_id uuid, p_ip text, p_threshold integer, p_window integer,
                                       p_duration integer, p_acct_threshold integer, p_acct_window integer,
                                       p_acct_max_delay integer, p_ip_limit integer, p_ip_window integer,
                                       p_request_id text)
    RETURNS TABLE (o_outcome text, o_retry_after integer, o_user_id uuid, o_tenant_id uuid, o_factor jsonb)
    LANGUAGE plpgsql VOLATILE
    SET search_path = pg_catalog, public, pg_temp
AS $$
DECLARE
    v_who record;
    v_f mfa_factors;
    v_tenant text;
    v_email text;
BEGIN
    o_retry_after := 0;
    SELECT * INTO v_who FROM latch_mfa_enrollee(p_sid, p_user_id, p_tenant_id, p_enroll_hash);
    IF v_who.o_user_id IS NULL THEN
        o_outcome := 'unauthorized';
        RETURN NEXT;
        RETURN;
    END IF;
    SELECT f.* INTO v_f FROM mfa_factors f WHERE f.id = p_factor_id AND f.user_id = v_who.o_user_id;
    IF NOT FOUND THEN
        o_outcome := 'not_found';
        RETURN NEXT;
        RETURN;
    END IF;
    IF v_f.status <> 'pending' THEN
        o_outcome := 'already_confirmed';
        RETURN NEXT;
        RETURN;
    END IF;
    SELECT t.name, u.email_norm INTO v_tenant, v_email
        FROM users u JOIN tenants t ON t.id = u.tenant_id WHERE u.id = v_who.o_user_id;
    SELECT g.o_outcome, g.o_retry_after INTO o_outcome, o_retry_after
        FROM latch_login_gate(v_tenant, v_email, p_ip, p_threshold, p_window, p_duration, p_acct_threshold,
                              p_acct_window, p_acct_max_delay, p_ip_limit, p_ip_window, p_request_id) g;
    IF o_outcome = 'ok' THEN
        o_user_id := v_who.o_user_id;
        o_tenant_id := v_who.o_tenant_id;
        o_factor := jsonb_build_object('id', v_f.id, 'sealed', encode(v_f.secret_sealed, 'hex'),
                                       'algorithm', v_f.algorithm, 'digits', v_f.digits, 'period', v_f.period);
    END IF;
    RETURN NEXT;
END
$$;

-- Step 2 of a confirmation whose code matched: the factor becomes active with p_step as
-- its last accepted step, the user's recovery codes are replaced by p_recovery (MACs),
-- and, for an enrolment-only token, that token is used up and the sign-in completes with a
-- new session (amr pwd+otp+mfa). Rows as latch_refresh: o_status 'rotated' (session fields
-- set only with an enrolment token), 'unauthorized' or 'not_found' (gone or confirmed
-- meanwhile).
CREATE FUNCTION latch_mfa_factor_confirm(p_sid uuid, p_user_id uuid, p_tenant_id uuid, p_enroll_hash text,
                                         p_factor_id uuid, p_step bigint, p_recovery text[], p_ip text,
                                         p_user_agent text, p_idle_ttl integer, p_max_ttl integer,
                                         p_access_ttl integer, p_rt_hash text, p_request_id text)
    RETURNS TABLE (o_status text, o_session_id uuid, o_user_id uuid, o_tenant_id uuid, o_email text, o_roles jsonb,
                   o_amr jsonb, o_acr text, o_auth_time bigint)
    LANGUAGE plpgsql VOLATILE
    SET search_path = pg_catalog, public, pg_temp
AS $$
DECLARE
    v_who record;
    v_tenant text;
    v_email_norm text;
    v_sid uuid;
BEGIN
    SELECT * INTO v_who FROM latch_mfa_enrollee(p_sid, p_user_id, p_tenant_id, p_enroll_hash);
    IF v_who.o_user_id IS NULL THEN
        o_status := 'unauthorized';
        RETURN NEXT;
        RETURN;
    END IF;
    IF p_enroll_hash IS NOT NULL THEN
        -- The row lock orders two confirmations carrying one enrolment token: the second
        -- sees it used and stops before touching anything.
        PERFORM 1 FROM one_time_tokens
            WHERE token_hash = decode(p_enroll_hash, 'hex') AND purpose = 'mfa_enrollment' AND used_at IS NULL
            FOR UPDATE;
        IF NOT FOUND THEN
            o_status := 'unauthorized';
            RETURN NEXT;
            RETURN;
        END IF;
    END IF;
    UPDATE mfa_factors SET status = 'active', confirmed_at = now(), last_step = p_step, last_used_at = now()
        WHERE id = p_factor_id AND user_id = v_who.o_user_id AND status = 'pending';
    IF NOT FOUND THEN
        o_status := 'not_found';
        RETURN NEXT;
        RETURN;
    END IF;
    IF p_enroll_hash IS NOT NULL THEN
        UPDATE one_time_tokens SET used_at = now()
            WHERE token_hash = decode(p_enroll_hash, 'hex') AND purpose = 'mfa_enrollment';
    END IF;
    DELETE FROM recovery_codes WHERE user_id = v_who.o_user_id;
    INSERT INTO recovery_codes (tenant_id, user_id, code_hash)
        SELECT v_who.o_tenant_id, v_who.o_user_id, decode(h, 'hex') FROM unnest(p_recovery) h;
    SELECT t.name, u.email_norm, u.email INTO v_tenant, v_email_norm, o_email
        FROM users u JOIN tenants t ON t.id = u.tenant_id WHERE u.id = v_who.o_user_id;
    IF p_enroll_hash IS NOT NULL THEN
        v_sid := latch_session_open(v_who.o_user_id, v_who.o_tenant_id, p_ip, p_user_agent, p_idle_ttl, p_max_ttl,
                                    p_access_ttl, p_rt_hash, ARRAY['pwd', 'otp', 'mfa'], 'urn:latch:acr:mfa', 'totp');
    END IF;
    PERFORM latch_login_attempts_ok(v_tenant, v_email_norm, p_ip);
    PERFORM latch_audit_append(v_who.o_tenant_id, v_who.o_user_id::text, 'mfa.enrolled', v_who.o_user_id::text,
                               p_ip, p_request_id, 'success',
                               jsonb_build_object('factor_id', p_factor_id, 'type', 'totp',
                                                  'recovery_codes', cardinality(p_recovery)));
    IF v_sid IS NOT NULL THEN
        PERFORM latch_audit_append(v_who.o_tenant_id, v_who.o_user_id::text, 'login.succeeded',
                                   v_who.o_user_id::text, p_ip, p_request_id, 'success',
                                   jsonb_build_object('session_id', v_sid, 'amr', '["pwd", "otp", "mfa"]'::jsonb,
                                                      'mfa_method', 'totp', 'enrolled', true));
    END IF;
    o_status := 'rotated';
    o_user_id := v_who.o_user_id;
    o_tenant_id := v_who.o_tenant_id;
    o_session_id := v_sid;
    IF v_sid IS NOT NULL THEN
        o_roles := latch_user_roles(v_who.o_user_id);
        o_amr := '["pwd", "otp", "mfa"]'::jsonb;
        o_acr := 'urn:latch:acr:mfa';
        o_auth_time := extract(epoch FROM now())::bigint;
    END IF;
    RETURN NEXT;
END
$$;

-- GET /v1/me/mfa: the factors (never a secret) and how many recovery codes are left;
-- NULL when the caller's session is not live.
CREATE FUNCTION latch_mfa_list(p_sid uuid, p_user_id uuid, p_tenant_id uuid) RETURNS jsonb
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, public, pg_temp
AS $$
    SELECT CASE WHEN latch_caller_live(p_sid, p_user_id, p_tenant_id) THEN
        jsonb_build_object(
            'factors', coalesce((SELECT jsonb_agg(jsonb_build_object(
                                            'id', f.id, 'type', f.type, 'label', f.label, 'status', f.status,
                                            'algorithm', f.algorithm, 'digits', f.digits, 'period', f.period,
                                            'created_at', latch_ts(f.created_at),
                                            'confirmed_at', latch_ts(f.confirmed_at),
                                            'last_used_at', latch_ts(f.last_used_at))
                                        ORDER BY f.created_at, f.id)
                                 FROM mfa_factors f WHERE f.user_id = p_user_id), '[]'::jsonb),
            'recovery_codes_remaining', (SELECT count(*) FROM recovery_codes c
                                         WHERE c.user_id = p_user_id AND c.used_at IS NULL))
    END
$$;

-- The recent-authentication rule of the sensitive MFA changes: the session's auth_time
-- within p_window seconds, or the current password verified by the caller just now
-- (p_password_ok; its gate slot is then given back). 'unauthorized', 'reauthentication_required'
-- or 'ok'.
CREATE FUNCTION latch_mfa_recent(p_sid uuid, p_user_id uuid, p_tenant_id uuid, p_window integer,
                                 p_password_ok boolean, p_ip text) RETURNS text
    LANGUAGE plpgsql VOLATILE
    SET search_path = pg_catalog, public, pg_temp
AS $$
DECLARE
    v_auth timestamptz;
    v_tenant text;
    v_email text;
BEGIN
    SELECT s.auth_time INTO v_auth FROM sessions s JOIN users u ON u.tenant_id = s.tenant_id AND u.id = s.user_id
        WHERE s.id = p_sid AND s.user_id = p_user_id AND s.tenant_id = p_tenant_id AND latch_session_live(s)
          AND u.status = 'active';
    IF NOT FOUND THEN
        RETURN 'unauthorized';
    END IF;
    IF p_password_ok THEN
        SELECT t.name, u.email_norm INTO v_tenant, v_email
            FROM users u JOIN tenants t ON t.id = u.tenant_id WHERE u.id = p_user_id;
        PERFORM latch_login_attempts_ok(v_tenant, v_email, p_ip);
        RETURN 'ok';
    END IF;
    RETURN CASE WHEN v_auth > now() - make_interval(secs => p_window) THEN 'ok' ELSE 'reauthentication_required' END;
END
$$;

-- DELETE /v1/me/mfa/totp/{id}: latch_mfa_recent's answers, 'not_found', or 'ok' (removed;
-- with the last active factor the recovery codes go too).
CREATE FUNCTION latch_mfa_totp_delete(p_sid uuid, p_user_id uuid, p_tenant_id uuid, p_factor_id uuid,
                                      p_window integer, p_password_ok boolean, p_ip text, p_request_id text)
    RETURNS text
    LANGUAGE plpgsql VOLATILE
    SET search_path = pg_catalog, public, pg_temp
AS $$
DECLARE
    v_r text;
    v_status text;
    v_codes integer := 0;
BEGIN
    PERFORM 1 FROM users WHERE id = p_user_id FOR UPDATE;
    v_r := latch_mfa_recent(p_sid, p_user_id, p_tenant_id, p_window, p_password_ok, p_ip);
    IF v_r <> 'ok' THEN
        RETURN v_r;
    END IF;
    DELETE FROM mfa_factors WHERE id = p_factor_id AND user_id = p_user_id RETURNING status INTO v_status;
    IF NOT FOUND THEN
        RETURN 'not_found';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM mfa_factors WHERE user_id = p_user_id AND status = 'active') THEN
        DELETE FROM recovery_codes WHERE user_id = p_user_id;
        GET DIAGNOSTICS v_codes = ROW_COUNT;
    END IF;
    PERFORM latch_audit_append(p_tenant_id, p_user_id::text, 'mfa.factor_removed', p_user_id::text, p_ip,
                               p_request_id, 'success',
                               jsonb_build_object('factor_id', p_factor_id, 'status', v_status,
                                                  'recovery_codes_removed', v_codes,
                                                  'reauthenticated', CASE WHEN p_password_ok THEN 'password'
                                                                          ELSE 'recent' END));
    RETURN 'ok';
END
$$;

-- POST /v1/me/mfa/recovery-codes: latch_mfa_recent's answers, 'not_enrolled', or 'ok'
-- (the old codes are gone, p_recovery stored).
CREATE FUNCTION latch_mfa_recovery_regenerate(p_sid uuid, p_user_id uuid, p_tenant_id uuid, p_recovery text[],
                                              p_window integer, p_password_ok boolean, p_ip text,
                                              p_request_id text) RETURNS text
    LANGUAGE plpgsql VOLATILE
    SET search_path = pg_catalog, public, pg_temp
AS $$
DECLARE
    v_r text;
BEGIN
    PERFORM 1 FROM users WHERE id = p_user_id FOR UPDATE;
    v_r := latch_mfa_recent(p_sid, p_user_id, p_tenant_id, p_window, p_password_ok, p_ip);
    IF v_r <> 'ok' THEN
        RETURN v_r;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM mfa_factors WHERE user_id = p_user_id AND status = 'active') THEN
        RETURN 'not_enrolled';
    END IF;
    DELETE FROM recovery_codes WHERE user_id = p_user_id;
    INSERT INTO recovery_codes (tenant_id, user_id, code_hash)
        SELECT p_tenant_id, p_user_id, decode(h, 'hex') FROM unnest(p_recovery) h;
    PERFORM latch_audit_append(p_tenant_id, p_user_id::text, 'mfa.recovery_codes_regenerated', p_user_id::text,
                               p_ip, p_request_id, 'success',
                               jsonb_build_object('count', cardinality(p_recovery),
                                                  'reauthenticated', CASE WHEN p_password_ok THEN 'password'
                                                                          ELSE 'recent' END));
    RETURN 'ok';
END
$$;

-- DELETE /v1/admin/users/{id}/mfa: every factor and recovery code of the user goes, and
-- pending MFA challenges with them. False when no such user within the caller's scope.
CREATE FUNCTION latch_admin_user_mfa_reset(p_scope uuid, p_id uuid, p_actor text, p_ip text, p_request_id text)
    RETURNS boolean
    LANGUAGE plpgsql VOLATILE
    SET search_path = pg_catalog, public, pg_temp
AS $$
DECLARE
    v_tenant uuid;
    v_factors integer;
    v_codes integer;
BEGIN
    SELECT u.tenant_id INTO v_tenant FROM users u
        WHERE u.id = p_id AND (p_scope IS NULL OR u.tenant_id = p_scope) FOR UPDATE;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    DELETE FROM one_time_tokens WHERE user_id = p_id AND purpose IN ('mfa_challenge', 'mfa_enrollment');
    DELETE FROM mfa_factors WHERE user_id = p_id;
    GET DIAGNOSTICS v_factors = ROW_COUNT;
    DELETE FROM recovery_codes WHERE user_id = p_id;
    GET DIAGNOSTICS v_codes = ROW_COUNT;
    PERFORM latch_audit_append(v_tenant, p_actor, 'mfa.reset', p_id::text, p_ip, p_request_id, 'success',
                               jsonb_build_object('factors_removed', v_factors, 'recovery_codes_removed', v_codes));
    RETURN true;
END
$$;

GRANT EXECUTE ON FUNCTION
    latch_tenant_settings(tenants),
    latch_admin_tenant_patch(uuid, uuid, text, jsonb, text, text, text),
    latch_session_open(uuid, uuid, text, text, integer, integer, integer, text, text[], text, text),
    latch_user_roles(uuid),
    latch_login_attempts_release(text, text, text),
    latch_login_succeed(uuid, uuid, text, text, text, text, integer, integer, integer, text, text, text, text, text,
                        integer, integer),
    latch_mfa_factors_for_check(uuid),
    latch_mfa_challenge_begin(text, text, integer, integer, integer, integer, integer, integer, integer, integer,
                              integer, text),
    latch_mfa_failed(uuid, uuid, text, text, text, text),
    latch_mfa_accept_step(uuid, uuid, bigint),
    latch_mfa_challenge_complete(text, uuid, bigint, text[], text, text, integer, integer, integer, text, text),
    latch_mfa_stepup_begin(uuid, uuid, uuid, text, integer, integer, integer, integer, integer, integer, integer,
                           integer, text),
    latch_mfa_stepup(uuid, uuid, uuid, uuid, bigint, integer, text, text),
    latch_mfa_enrollee(uuid, uuid, uuid, text),
    latch_mfa_totp_enroll(uuid, uuid, uuid, text, uuid, text, text, integer, text, text),
    latch_mfa_factor_begin(uuid, uuid, uuid, text, uuid, text, integer, integer, integer, integer, integer, integer,
                           integer, integer, text),
    latch_mfa_factor_confirm(uuid, uuid, uuid, text, uuid, bigint, text[], text, text, integer, integer, integer,
                             text, text),
    latch_mfa_list(uuid, uuid, uuid),
    latch_mfa_recent(uuid, uuid, uuid, integer, boolean, text),
    latch_mfa_totp_delete(uuid, uuid, uuid, uuid, integer, boolean, text, text),
    latch_mfa_recovery_regenerate(uuid, uuid, uuid, text[], integer, boolean, text, text),
    latch_admin_user_mfa_reset(uuid, uuid, text, text, text)
    TO latch_runtime;
