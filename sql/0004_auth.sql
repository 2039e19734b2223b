-- 0004_auth: the sign-in flows as functions, one round trip each, atomic and race-safe:
-- login with lockout, sessions, refresh rotation, password change and password reset.
--
-- Division of labour (DESIGN.md, STYLE.md 15): passwords are verified and hashed in C on
-- the hasher pool, never here. A flow is "query -> argon2 in C -> query": the first
-- function decides whether an attempt may be verified at all and returns what C needs;
-- the second records the outcome. Nothing here holds configuration: thresholds, windows
-- and lifetimes arrive as parameters (seconds).
--
-- Lock order, to stay free of deadlocks between these functions (and the admin ones,
-- which follow it too): users -> one_time_tokens -> credentials -> sessions ->
-- refresh_tokens -> login_attempts (ip -> source -> account) -> the audit advisory lock.
-- latch_audit_append is always the last thing a function calls: its advisory lock is
-- held until commit, so taking a row lock after it could wait on a transaction that in
-- turn waits for the audit lock.
--
-- Secrets: token hashes arrive as hex text (SHA-256 computed in C) and are compared by
-- equality on the digest; raw tokens never reach a table, with one deliberate exception:
-- the password-reset outbox event carries the raw token because the mailer must put it
-- in the email (README, "Outbox"). Audit details never hold passwords, tokens or hashes.

-- Whole seconds from now until `t`, at least 1: the value of a Retry-After header.
CREATE FUNCTION latch_retry_after(t timestamptz) RETURNS integer
    LANGUAGE sql STABLE
    SET search_path = pg_catalog
AS $$ SELECT greatest(1, ceil(extract(epoch FROM (t - now()))))::integer $$;

-- A session can be used (bearer calls, refresh) while it is neither revoked nor past its
-- idle or absolute expiry.
CREATE FUNCTION latch_session_live(s sessions) RETURNS boolean
    LANGUAGE sql STABLE
AS $$ SELECT s.revoked_at IS NULL AND s.idle_expires_at > now() AND s.expires_at > now() $$;

-- The login counters (login_attempts, see 0003) for one attempt at (tenant, email) from
-- `p_ip`: decides whether the attempt may go on to a password verification and, if so,
-- reserves its slot. Returns o_outcome 'ok' or the refusal ('ip_limited', 'locked',
-- 'throttled') with o_retry_after in seconds.
--
--   (a) scope 'ip' (key: ip): a fixed window rate limit on attempts, p_ip_limit per
--       p_ip_window (0 = off). Every attempt counts, refused ones too: the limit only
--       ever slows that one address.
--   (b) scope 'source' (tenant, email, ip): a hard lockout. Once p_threshold attempts
--       were reserved within p_window, the next one locks the source for p_duration
--       (audited once, as login.locked_out) and every attempt until then is refused.
--       A served lockout or an expired window starts from zero.
--   (c) scope 'account' (tenant, email; ip = ''): never a hard lock, so an attacker
--       elsewhere cannot lock the owner out. From p_acct_threshold reserved attempts
--       within p_acct_window, an attempt is allowed only once min(2^(n - threshold),
--       p_acct_max_delay) seconds have passed since the last allowed one.
--
-- The slot is reserved (failures + 1) BEFORE the password is verified, under the row
-- locks the upserts take, so N parallel guesses serialise here and at most p_threshold
-- of them ever reach a verification. Success gives the slot back (latch_login_attempts_ok).
--
-- Ordering, so that refused attempts cannot be turned against anyone:
--   * the ip check comes first and refuses before touching (b) or (c): a flood from one
--     address costs that address only;
--   * a locked source is refused before (c) is looked at: its refused attempts verify
--     nothing and so do not count against the account, otherwise one locked-out attacker
--     hammering away would push the account into slowing for its owner;
--   * a throttled attempt reserves nothing in (b) or (c) (it verifies nothing either),
--     so it neither lengthens the account's delay nor locks the attacker's own source;
--   * the counters exist whether or not the tenant and user exist, so their behaviour
--     never tells which accounts are real.
CREATE FUNCTION latch_login_gate(p_tenant text, p_email_norm text, p_ip text, p_threshold integer, p_window integer,
                                 p_duration integer, p_acct_threshold integer, p_acct_window integer,
                                 p_acct_max_delay integer, p_ip_limit integer, p_ip_window integer,
                                 p_request_id text, OUT o_outcome text, OUT o_retry_after integer)
    LANGUAGE plpgsql VOLATILE
    SET search_path = pg_catalog, public, pg_temp
AS $$
DECLARE
    v_now timestamptz := now();
    v_n integer;
    v_start timestamptz;
    v_locked timestamptz;
    v_an integer;
    v_astart timestamptz;
    v_alast timestamptz;
    v_delay bigint;
    v_tenant_id uuid;
    v_user_id uuid;
BEGIN
    o_outcome := 'ok';
    o_retry_after := 0;

    -- (a) per client address. The upsert computes the new count under the row lock.
    IF p_ip_limit > 0 THEN
        INSERT INTO login_attempts AS a (scope, tenant, email_norm, ip, failures, window_start, last_attempt_at)
        VALUES ('ip', '', '', p_ip, 1, v_now, v_now)
        ON CONFLICT (scope, tenant, email_norm, ip) DO UPDATE
            SET failures = CASE WHEN a.window_start + make_interval(secs => p_ip_window) <= v_now THEN 1
                                ELSE least(a.failures, 2147483646) + 1 END,
                window_start = CASE WHEN a.window_start + make_interval(secs => p_ip_window) <= v_now THEN v_now
                                    ELSE a.window_start END,
                last_attempt_at = v_now
        RETURNING a.failures, a.window_start INTO v_n, v_start;
        IF v_n > p_ip_limit THEN
            o_outcome := 'ip_limited';
            o_retry_after := latch_retry_after(v_start + make_interval(secs => p_ip_window));
            RETURN;
        END IF;
    END IF;

    -- (b) per source. The no-op DO UPDATE takes the row lock and returns the latest row.
    INSERT INTO login_attempts AS a (scope, tenant, email_norm, ip, failures, window_start, last_attempt_at)
    VALUES ('source', p_tenant, p_email_norm, p_ip, 0, v_now, v_now)
    ON CONFLICT (scope, tenant, email_norm, ip) DO UPDATE SET failures = a.failures
    RETURNING a.failures, a.window_start, a.locked_until INTO v_n, v_start, v_locked;
    IF v_locked > v_now THEN
        o_outcome := 'locked';
        o_retry_after := latch_retry_after(v_locked);
        RETURN;
    END IF;
    IF v_locked IS NOT NULL OR v_start + make_interval(secs => p_window) <= v_now THEN
        v_n := 0;
        v_start := v_now;
    END IF;
    IF v_n >= p_threshold THEN
        v_locked := v_now + make_interval(secs => p_duration);
        UPDATE login_attempts SET failures = v_n, window_start = v_start, locked_until = v_locked,
                                  last_attempt_at = v_now
            WHERE scope = 'source' AND tenant = p_tenant AND email_norm = p_email_norm AND ip = p_ip;
        SELECT t.id, u.id INTO v_tenant_id, v_user_id
            FROM tenants t LEFT JOIN users u ON u.tenant_id = t.id AND u.email_norm = p_email_norm
            WHERE t.name = p_tenant;
        PERFORM latch_audit_append(v_tenant_id, NULL, 'login.locked_out', v_user_id::text, p_ip, p_request_id,
                                   'denied', jsonb_build_object('tenant', p_tenant, 'email', p_email_norm,
                                                                'failures', v_n, 'locked_until', latch_ts(v_locked)));
        o_outcome := 'locked';
        o_retry_after := latch_retry_after(v_locked);
        RETURN;
    END IF;

    -- (c) per account, across sources.
    INSERT INTO login_attempts AS a (scope, tenant, email_norm, ip, failures, window_start, last_attempt_at)
    VALUES ('account', p_tenant, p_email_norm, '', 0, v_now, v_now)
    ON CONFLICT (scope, tenant, email_norm, ip) DO UPDATE SET failures = a.failures
    RETURNING a.failures, a.window_start, a.last_attempt_at INTO v_an, v_astart, v_alast;
    IF v_astart + make_interval(secs => p_acct_window) <= v_now THEN
        v_an := 0;
        v_astart := v_now;
    END IF;
    IF v_an >= p_acct_threshold THEN
        -- 2^k grows past any max_delay (<= 1 hour) by k = 12; the cap keeps the shift sane.
        v_delay := least(1::bigint << least(v_an - p_acct_threshold, 30), p_acct_max_delay::bigint);
        IF v_now < v_alast + make_interval(secs => v_delay) THEN
            o_outcome := 'throttled';
            o_retry_after := latch_retry_after(v_alast + make_interval(secs => v_delay));
            RETURN;
        END IF;
    END IF;

    -- Allowed: reserve the slot in both scopes.
    UPDATE login_attempts SET failures = least(v_an, 2147483646) + 1, window_start = v_astart, last_attempt_at = v_now
        WHERE scope = 'account' AND tenant = p_tenant AND email_norm = p_email_norm AND ip = '';
    UPDATE login_attempts SET failures = v_n + 1, window_start = v_start, locked_until = NULL, last_attempt_at = v_now
        WHERE scope = 'source' AND tenant = p_tenant AND email_norm = p_email_norm AND ip = p_ip;
END
$$;

-- A verified password gives back the slot latch_login_gate reserved: the source starts
-- from zero (success resets the counts for that source only) and the account count
-- loses the one attempt that was not a failure. Other sources keep their counts.
CREATE FUNCTION latch_login_attempts_ok(p_tenant text, p_email_norm text, p_ip text) RETURNS void
    LANGUAGE sql VOLATILE
    SET search_path = pg_catalog, public, pg_temp
AS $$
    DELETE FROM login_attempts WHERE scope = 'source' AND tenant = p_tenant AND email_norm = p_email_norm AND ip = p_ip;
    UPDATE login_attempts SET failures = greatest(failures - 1, 0)
        WHERE scope = 'account' AND tenant = p_tenant AND email_norm = p_email_norm AND ip = '';
$$;

-- Step 1 of POST /v1/auth/login: the counters (latch_login_gate), then the account.
-- Always one row. With o_outcome 'ok', the user's id, tenant, status, PHC (NULL without a
-- credential) and reset flag, or NULLs when the tenant or email is unknown; the caller
-- verifies the password (against a dummy hash when o_phc is NULL) either way, so unknown
-- tenants, unknown emails and real accounts cost and answer the same.
CREATE FUNCTION latch_login_begin(p_tenant text, p_email text, p_ip text, p_threshold integer, p_window integer,
                                  p_duration integer, p_acct_threshold integer, p_acct_window integer,
                                  p_acct_max_delay integer, p_ip_limit integer, p_ip_window integer,
                                  p_request_id text)
    RETURNS TABLE (o_outcome text, o_retry_after integer, o_user_id uuid, o_tenant_id uuid, o_status text,
                   o_phc text, o_reset_required boolean)
    LANGUAGE plpgsql VOLATILE
    SET search_path = pg_catalog, public, pg_temp
AS $$
DECLARE
    v_tenant text := lower(btrim(p_tenant));
    v_email text := lower(btrim(p_email));
BEGIN
    SELECT g.o_outcome, g.o_retry_after INTO o_outcome, o_retry_after
        FROM latch_login_gate(v_tenant, v_email, p_ip, p_threshold, p_window, p_duration, p_acct_threshold,
                              p_acct_window, p_acct_max_delay, p_ip_limit, p_ip_window, p_request_id) g;
    IF o_outcome = 'ok' THEN
        SELECT u.id, u.tenant_id, u.status, c.phc, u.password_reset_required
            INTO o_user_id, o_tenant_id, o_status, o_phc, o_reset_required
            FROM tenants t
            JOIN users u ON u.tenant_id = t.id
            LEFT JOIN credentials c ON c.user_id = u.id
            WHERE t.name = v_tenant AND u.email_norm = v_email;
    END IF;
    RETURN NEXT;
END
$$;

-- Step 2 of a refused login: the audit record. p_reason: unknown_user, bad_password,
-- disabled, locked (the user's status) or password_reset_required. The counters were
-- already reserved by latch_login_begin; nothing else changes.
CREATE FUNCTION latch_login_fail(p_tenant text, p_email text, p_user_id uuid, p_tenant_id uuid, p_ip text,
                                 p_request_id text, p_reason text) RETURNS void
    LANGUAGE plpgsql VOLATILE
    SET search_path = pg_catalog, public, pg_temp
AS $$
BEGIN
    PERFORM latch_audit_append(coalesce(p_tenant_id, (SELECT id FROM tenants WHERE name = lower(btrim(p_tenant)))),
                               NULL, 'login.failed', p_user_id::text, p_ip, p_request_id,
                               CASE WHEN p_reason IN ('unknown_user', 'bad_password') THEN 'failure' ELSE 'denied' END,
                               jsonb_build_object('reason', p_reason, 'tenant', lower(btrim(p_tenant)),
                                                  'email', lower(btrim(p_email))));
END
$$;

-- Step 2 of a successful login (the password matched, the user was active). Creates the
-- session and its first refresh token, upgrades the stored hash when the hasher computed
-- a new one (only if the credential is still the one that was verified), gives back the
-- counters' slot, audits. No row when the user stopped being active in between.
-- p_ip is the client address as text ('unknown' when the socket had none).
CREATE FUNCTION latch_login_succeed(p_user_id uuid, p_tenant_id uuid, p_tenant text, p_email text, p_ip text,
                                    p_user_agent text, p_idle_ttl integer, p_max_ttl integer, p_rt_hash text,
                                    p_old_phc text, p_new_phc text, p_request_id text)
    RETURNS TABLE (o_session_id uuid, o_roles jsonb, o_auth_time bigint)
    LANGUAGE plpgsql VOLATILE
    SET search_path = pg_catalog, public, pg_temp
AS $$
DECLARE
    v_now timestamptz := now();
    v_sid uuid;
    v_idle timestamptz;
    v_rehashed boolean := false;
BEGIN
    PERFORM 1 FROM users WHERE id = p_user_id AND tenant_id = p_tenant_id AND status = 'active' FOR SHARE;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    v_idle := least(v_now + make_interval(secs => p_idle_ttl), v_now + make_interval(secs => p_max_ttl));
    INSERT INTO sessions (tenant_id, user_id, created_at, last_seen_at, idle_expires_at, expires_at, ip, user_agent,
                          amr, auth_time)
    VALUES (p_tenant_id, p_user_id, v_now, v_now, v_idle, v_now + make_interval(secs => p_max_ttl),
            nullif(p_ip, 'unknown')::inet, left(p_user_agent, 512), ARRAY['pwd'], v_now)
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
               extract(epoch FROM v_now)::bigint;
END
$$;

-- POST /v1/auth/refresh: rotates a refresh token. Consumes the presented token atomically
-- (used_at set once, by exactly one caller), checks the session is live and its user
-- active, issues the successor (same family: parent_id) and slides the session's idle
-- expiry (never past its absolute one). No row for anything wrong: unknown, used,
-- revoked or expired token, ended session, inactive user.
--
-- The session row is locked first (lock order: sessions -> refresh_tokens, as logout
-- takes them), which also serialises rotations per family: the place where the next
-- issue's reuse detection and grace window go.
CREATE FUNCTION latch_refresh(p_rt_hash text, p_new_hash text, p_idle_ttl integer)
    RETURNS TABLE (o_session_id uuid, o_user_id uuid, o_tenant_id uuid, o_roles jsonb, o_amr jsonb, o_acr text,
                   o_auth_time bigint)
    LANGUAGE plpgsql VOLATILE
    SET search_path = pg_catalog, public, pg_temp
AS $$
DECLARE
    v_now timestamptz := now();
    v_hash bytea := decode(p_rt_hash, 'hex');
    v_rt uuid;
    v_s sessions;
    v_idle timestamptz;
BEGIN
    SELECT s.* INTO v_s
        FROM refresh_tokens t
        JOIN sessions s ON s.id = t.session_id
        JOIN users u ON u.tenant_id = s.tenant_id AND u.id = s.user_id
        WHERE t.token_hash = v_hash AND latch_session_live(s) AND u.status = 'active'
        FOR UPDATE OF s;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    UPDATE refresh_tokens SET used_at = v_now
        WHERE token_hash = v_hash AND used_at IS NULL AND revoked_at IS NULL AND expires_at > v_now
        RETURNING id INTO v_rt;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    v_idle := least(v_now + make_interval(secs => p_idle_ttl), v_s.expires_at);
    INSERT INTO refresh_tokens (token_hash, session_id, tenant_id, parent_id, issued_at, expires_at)
    VALUES (decode(p_new_hash, 'hex'), v_s.id, v_s.tenant_id, v_rt, v_now, v_idle);
    UPDATE sessions SET last_seen_at = v_now, idle_expires_at = v_idle WHERE id = v_s.id;
    RETURN QUERY
        SELECT v_s.id, v_s.user_id, v_s.tenant_id,
               coalesce((SELECT jsonb_agg(r.role ORDER BY r.role) FROM user_roles r WHERE r.user_id = v_s.user_id),
                        '[]'::jsonb),
               to_jsonb(v_s.amr), v_s.acr, extract(epoch FROM v_s.auth_time)::bigint;
END
$$;

-- Ends sessions (revoked_at, reason) and their refresh tokens; returns how many sessions
-- ended. Internal helper: the callers audit.
CREATE FUNCTION latch_sessions_end(p_ids uuid[], p_reason text) RETURNS integer
    LANGUAGE plpgsql VOLATILE
    SET search_path = pg_catalog, public, pg_temp
AS $$
DECLARE
    v_n integer;
BEGIN
    UPDATE sessions SET revoked_at = now(), revoked_reason = p_reason
        WHERE id = ANY (p_ids) AND revoked_at IS NULL;
    GET DIAGNOSTICS v_n = ROW_COUNT;
    UPDATE refresh_tokens SET revoked_at = now()
        WHERE session_id = ANY (p_ids) AND revoked_at IS NULL AND used_at IS NULL;
    RETURN v_n;
END
$$;

-- GET /v1/me: the user (latch_user_json) plus session_id, or NULL when the bearer's
-- session is not live or its user not active (the caller answers 401 invalid_token).
CREATE FUNCTION latch_me(p_sid uuid, p_user_id uuid, p_tenant_id uuid) RETURNS jsonb
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, public, pg_temp
AS $$
    SELECT latch_user_json(u) || jsonb_build_object('session_id', s.id)
        FROM sessions s JOIN users u ON u.tenant_id = s.tenant_id AND u.id = s.user_id
        WHERE s.id = p_sid AND s.user_id = p_user_id AND s.tenant_id = p_tenant_id AND latch_session_live(s)
          AND u.status = 'active'
$$;

-- True when the bearer's session is live and its user active (every /v1/me call needs it).
CREATE FUNCTION latch_caller_live(p_sid uuid, p_user_id uuid, p_tenant_id uuid) RETURNS boolean
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, public, pg_temp
AS $$
    SELECT EXISTS (SELECT 1 FROM sessions s JOIN users u ON u.tenant_id = s.tenant_id AND u.id = s.user_id
                   WHERE s.id = p_sid AND s.user_id = p_user_id AND s.tenant_id = p_tenant_id
                     AND latch_session_live(s) AND u.status = 'active')
$$;

-- GET /v1/me/sessions: {"items": [...]} of the user's live sessions, newest first, the
-- caller's marked current; NULL when the caller's own session is not live.
CREATE FUNCTION latch_session_list(p_sid uuid, p_user_id uuid, p_tenant_id uuid) RETURNS jsonb
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
                        'auth_time', latch_ts(s.auth_time),
                        'current', s.id = p_sid) ORDER BY s.created_at DESC, s.id)
                 FROM sessions s
                 WHERE s.user_id = p_user_id AND s.tenant_id = p_tenant_id AND latch_session_live(s)),
            '[]'::jsonb))
    END
$$;

-- DELETE /v1/me/sessions/{id}: 'unauthorized' (the caller's session is not live),
-- 'not_found' (not a live session of the caller's) or 'ok' (ended, with its refresh
-- tokens; audited as session.revoked).
CREATE FUNCTION latch_session_revoke(p_sid uuid, p_user_id uuid, p_tenant_id uuid, p_target uuid, p_ip text,
                                     p_request_id text) RETURNS text
    LANGUAGE plpgsql VOLATILE
    SET search_path = pg_catalog, public, pg_temp
AS $$
BEGIN
    IF NOT latch_caller_live(p_sid, p_user_id, p_tenant_id) THEN
        RETURN 'unauthorized';
    END IF;
    PERFORM 1 FROM sessions s
        WHERE s.id = p_target AND s.user_id = p_user_id AND s.tenant_id = p_tenant_id AND latch_session_live(s)
        FOR UPDATE;
    IF NOT FOUND THEN
        RETURN 'not_found';
    END IF;
    PERFORM latch_sessions_end(ARRAY[p_target], 'user');
    PERFORM latch_audit_append(p_tenant_id, p_user_id::text, 'session.revoked', p_target::text, p_ip, p_request_id,
                               'success', jsonb_build_object('reason', 'user', 'by_session', p_sid));
    RETURN 'ok';
END
$$;

-- POST /v1/auth/logout: ends the bearer's session and its refresh tokens. Idempotent:
-- false when it had ended already (nothing audited then).
CREATE FUNCTION latch_logout(p_sid uuid, p_user_id uuid, p_tenant_id uuid, p_ip text, p_request_id text)
    RETURNS boolean
    LANGUAGE plpgsql VOLATILE
    SET search_path = pg_catalog, public, pg_temp
AS $$
BEGIN
    PERFORM 1 FROM sessions WHERE id = p_sid AND user_id = p_user_id AND tenant_id = p_tenant_id
                              AND revoked_at IS NULL FOR UPDATE;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    PERFORM latch_sessions_end(ARRAY[p_sid], 'logout');
    PERFORM latch_audit_append(p_tenant_id, p_user_id::text, 'session.logout', p_sid::text, p_ip, p_request_id,
                               'success', NULL);
    RETURN true;
END
$$;

-- POST /v1/me/logout-all: ends every session of the user, the caller's included.
-- Returns how many ended, or -1 when the caller's session is not live.
CREATE FUNCTION latch_logout_all(p_sid uuid, p_user_id uuid, p_tenant_id uuid, p_ip text, p_request_id text)
    RETURNS integer
    LANGUAGE plpgsql VOLATILE
    SET search_path = pg_catalog, public, pg_temp
AS $$
DECLARE
    v_n integer;
BEGIN
    IF NOT latch_caller_live(p_sid, p_user_id, p_tenant_id) THEN
        RETURN -1;
    END IF;
    v_n := latch_sessions_end(ARRAY(SELECT id FROM sessions WHERE user_id = p_user_id AND tenant_id = p_tenant_id
                                                              AND revoked_at IS NULL ORDER BY id FOR UPDATE),
                              'logout_all');
    PERFORM latch_audit_append(p_tenant_id, p_user_id::text, 'session.revoked', p_user_id::text, p_ip, p_request_id,
                               'success', jsonb_build_object('reason', 'logout_all', 'sessions', v_n));
    RETURN v_n;
END
$$;

-- Step 1 of POST /v1/me/password. A stolen access token must not become a way around the
-- login lockout, so checking the current password goes through the same counters as a
-- login for (tenant, email, client address). o_outcome: 'unauthorized' (the caller's
-- session is not live), a refusal of latch_login_gate, or 'ok' with the stored PHC (NULL
-- without a credential: the caller verifies against the dummy, which never matches) and
-- the email (for the new password's similarity check).
CREATE FUNCTION latch_password_change_begin(p_sid uuid, p_user_id uuid, p_tenant_id uuid, p_ip text,
                                            p_threshold integer, p_window integer, p_duration integer,
                                            p_acct_threshold integer, p_acct_window integer,
                                            p_acct_max_delay integer, p_ip_limit integer, p_ip_window integer,
                                            p_request_id text)
    RETURNS TABLE (o_outcome text, o_retry_after integer, o_phc text, o_email text)
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
    SELECT t.name, u.email_norm, u.email INTO v_tenant, v_email, o_email
        FROM users u JOIN tenants t ON t.id = u.tenant_id WHERE u.id = p_user_id AND u.tenant_id = p_tenant_id;
    SELECT g.o_outcome, g.o_retry_after INTO o_outcome, o_retry_after
        FROM latch_login_gate(v_tenant, v_email, p_ip, p_threshold, p_window, p_duration, p_acct_threshold,
                              p_acct_window, p_acct_max_delay, p_ip_limit, p_ip_window, p_request_id) g;
    IF o_outcome = 'ok' THEN
        SELECT phc INTO o_phc FROM credentials WHERE user_id = p_user_id;
    ELSE
        o_email := NULL;
    END IF;
    RETURN NEXT;
END
$$;

-- A wrong current password on POST /v1/me/password: audited (its slot stays reserved).
CREATE FUNCTION latch_password_change_failed(p_user_id uuid, p_tenant_id uuid, p_ip text, p_request_id text)
    RETURNS void
    LANGUAGE sql VOLATILE
    SET search_path = pg_catalog, public, pg_temp
AS $$
    SELECT latch_audit_append(p_tenant_id, p_user_id::text, 'password.changed', p_user_id::text, p_ip, p_request_id,
                              'failure', jsonb_build_object('reason', 'bad_password'));
$$;

-- Step 2 of POST /v1/me/password (current password verified, new one hashed after the
-- policy): sets the credential, clears password_reset_required, ends every OTHER session
-- of the user, gives back the counters' slot, audits password.changed. False when the
-- caller's session ended meanwhile (nothing changed).
CREATE FUNCTION latch_password_change(p_sid uuid, p_user_id uuid, p_tenant_id uuid, p_phc text, p_ip text,
                                      p_request_id text) RETURNS boolean
    LANGUAGE plpgsql VOLATILE
    SET search_path = pg_catalog, public, pg_temp
AS $$
DECLARE
    v_tenant text;
    v_email text;
    v_n integer;
BEGIN
    IF NOT latch_caller_live(p_sid, p_user_id, p_tenant_id) THEN
        RETURN false;
    END IF;
    UPDATE users u SET password_reset_required = false, updated_at = now()
        FROM tenants t
        WHERE u.id = p_user_id AND u.tenant_id = p_tenant_id AND u.status = 'active' AND t.id = u.tenant_id
        RETURNING t.name, u.email_norm INTO v_tenant, v_email;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    INSERT INTO credentials (user_id, tenant_id, phc, changed_at) VALUES (p_user_id, p_tenant_id, p_phc, now())
        ON CONFLICT (user_id) DO UPDATE SET phc = excluded.phc, changed_at = excluded.changed_at;
    v_n := latch_sessions_end(ARRAY(SELECT id FROM sessions WHERE user_id = p_user_id AND tenant_id = p_tenant_id
                                                              AND revoked_at IS NULL AND id <> p_sid
                                                              ORDER BY id FOR UPDATE),
                              'password_changed');
    PERFORM latch_login_attempts_ok(v_tenant, v_email, p_ip);
    PERFORM latch_audit_append(p_tenant_id, p_user_id::text, 'password.changed', p_user_id::text, p_ip,
                               p_request_id, 'success', jsonb_build_object('other_sessions_ended', v_n));
    RETURN true;
END
$$;

-- POST /v1/auth/password-reset. The caller made a token and its hash whether or not the
-- account exists and always answers 202; here, for an active user, the token is stored
-- (hashed; older unused reset tokens of the user stop working), the mailer's outbox event
-- written (with the raw token: the email must carry it) and announced on channel
-- latch_outbox, and the request audited. An unknown account is audited too (outcome
-- failure), so both paths do the same kind of work.
CREATE FUNCTION latch_password_reset_request(p_tenant text, p_email text, p_token text, p_hash text, p_ttl integer,
                                             p_ip text, p_request_id text) RETURNS void
    LANGUAGE plpgsql VOLATILE
    SET search_path = pg_catalog, public, pg_temp
AS $$
DECLARE
    v_tenant text := lower(btrim(p_tenant));
    v_email text := lower(btrim(p_email));
    v_u users;
    v_tenant_id uuid;
    v_expires timestamptz := now() + make_interval(secs => p_ttl);
    v_outbox bigint;
BEGIN
    SELECT u.* INTO v_u FROM users u JOIN tenants t ON t.id = u.tenant_id
        WHERE t.name = v_tenant AND u.email_norm = v_email AND u.status = 'active';
    IF NOT FOUND THEN
        SELECT id INTO v_tenant_id FROM tenants WHERE name = v_tenant;
        PERFORM latch_audit_append(v_tenant_id, NULL, 'password.reset_requested', NULL, p_ip, p_request_id, 'failure',
                                   jsonb_build_object('reason', 'unknown_user', 'tenant', v_tenant, 'email', v_email));
        RETURN;
    END IF;
    UPDATE one_time_tokens SET used_at = now()
        WHERE user_id = v_u.id AND purpose = 'password_reset' AND used_at IS NULL;
    INSERT INTO one_time_tokens (tenant_id, user_id, purpose, token_hash, expires_at)
    VALUES (v_u.tenant_id, v_u.id, 'password_reset', decode(p_hash, 'hex'), v_expires);
    INSERT INTO outbox (tenant_id, topic, payload)
    VALUES (v_u.tenant_id, 'password_reset',
            jsonb_build_object('user_id', v_u.id, 'tenant_id', v_u.tenant_id, 'tenant', v_tenant, 'email', v_u.email,
                               'token', p_token, 'expires_at', latch_ts(v_expires)))
    RETURNING id INTO v_outbox;
    PERFORM pg_notify('latch_outbox', v_outbox::text);
    PERFORM latch_audit_append(v_u.tenant_id, NULL, 'password.reset_requested', v_u.id::text, p_ip, p_request_id,
                               'success', jsonb_build_object('outbox_id', v_outbox));
END
$$;

-- Step 1 of POST /v1/auth/password-reset/confirm: the email of the token's user when the
-- token is a valid, unused, unexpired reset token of an active user (for the new
-- password's similarity check), else NULL. Reads only; step 2 consumes.
CREATE FUNCTION latch_password_reset_peek(p_hash text) RETURNS text
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, public, pg_temp
AS $$
    SELECT u.email FROM one_time_tokens o JOIN users u ON u.tenant_id = o.tenant_id AND u.id = o.user_id
        WHERE o.token_hash = decode(p_hash, 'hex') AND o.purpose = 'password_reset' AND o.used_at IS NULL
          AND o.expires_at > now() AND u.status = 'active'
$$;

-- Step 2 of the confirm: consumes the token (exactly once: the UPDATE's WHERE), sets the
-- credential, clears password_reset_required, ends ALL the user's sessions, clears the
-- per-source lockouts of the account (the owner just proved control of the mailbox),
-- audits password.reset. False when the token is no longer valid.
CREATE FUNCTION latch_password_reset_confirm(p_hash text, p_phc text, p_ip text, p_request_id text) RETURNS boolean
    LANGUAGE plpgsql VOLATILE
    SET search_path = pg_catalog, public, pg_temp
AS $$
DECLARE
    v_user_id uuid;
    v_tenant_id uuid;
    v_tenant text;
    v_email text;
    v_n integer;
BEGIN
    -- users first (lock order), then the token.
    SELECT u.id, u.tenant_id, t.name, u.email_norm INTO v_user_id, v_tenant_id, v_tenant, v_email
        FROM one_time_tokens o
        JOIN users u ON u.tenant_id = o.tenant_id AND u.id = o.user_id
        JOIN tenants t ON t.id = u.tenant_id
        WHERE o.token_hash = decode(p_hash, 'hex') AND o.purpose = 'password_reset' AND u.status = 'active'
        FOR UPDATE OF u;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    UPDATE one_time_tokens SET used_at = now()
        WHERE token_hash = decode(p_hash, 'hex') AND purpose = 'password_reset' AND used_at IS NULL
          AND expires_at > now();
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    UPDATE users SET password_reset_required = false, updated_at = now() WHERE id = v_user_id;
    INSERT INTO credentials (user_id, tenant_id, phc, changed_at) VALUES (v_user_id, v_tenant_id, p_phc, now())
        ON CONFLICT (user_id) DO UPDATE SET phc = excluded.phc, changed_at = excluded.changed_at;
    v_n := latch_sessions_end(ARRAY(SELECT id FROM sessions WHERE user_id = v_user_id AND revoked_at IS NULL
                                    ORDER BY id FOR UPDATE),
                              'password_reset');
    DELETE FROM login_attempts WHERE scope = 'source' AND tenant = v_tenant AND email_norm = v_email;
    PERFORM latch_audit_append(v_tenant_id, v_user_id::text, 'password.reset', v_user_id::text, p_ip, p_request_id,
                               'success', jsonb_build_object('sessions_ended', v_n));
    RETURN true;
END
$$;

GRANT EXECUTE ON FUNCTION
    latch_retry_after(timestamptz),
    latch_session_live(sessions),
    latch_login_gate(text, text, text, integer, integer, integer, integer, integer, integer, integer, integer, text),
    latch_login_attempts_ok(text, text, text),
    latch_login_begin(text, text, text, integer, integer, integer, integer, integer, integer, integer, integer, text),
    latch_login_fail(text, text, uuid, uuid, text, text, text),
    latch_login_succeed(uuid, uuid, text, text, text, text, integer, integer, text, text, text, text),
    latch_refresh(text, text, integer),
    latch_sessions_end(uuid[], text),
    latch_me(uuid, uuid, uuid),
    latch_caller_live(uuid, uuid, uuid),
    latch_session_list(uuid, uuid, uuid),
    latch_session_revoke(uuid, uuid, uuid, uuid, text, text),
    latch_logout(uuid, uuid, uuid, text, text),
    latch_logout_all(uuid, uuid, uuid, text, text),
    latch_password_change_begin(uuid, uuid, uuid, text, integer, integer, integer, integer, integer, integer, integer,
                                integer, text),
    latch_password_change_failed(uuid, uuid, text, text),
    latch_password_change(uuid, uuid, uuid, text, text, text),
    latch_password_reset_request(text, text, text, text, integer, text, text),
    latch_password_reset_peek(text),
    latch_password_reset_confirm(text, text, text, text)
TO latch_runtime;
