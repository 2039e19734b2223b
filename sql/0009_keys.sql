-- 0009_keys: signing key rotation.
--
-- A key moves next -> current -> previous -> retired:
--   next      published in the JWKS, not signing yet; activates_at says when it takes over.
--             Published key_prepublish (>= the JWKS max-age) before it signs, so every
--             verifier's cached JWKS knows it before the first token it signs appears.
--   current   signs (exactly one; bootstrap inserts the first key as current).
--   previous  stopped signing at retired_at; still published and verifying until the last
--             token it signed has expired (access_token_ttl + clock leeway).
--   retired   unpublished; tokens it signed no longer verify anywhere.
-- Every change takes the advisory lock "latchkey" (so instances running maintenance at
-- once do not race), NOTIFYs latch_keys (every instance reloads its ring) and is audited;
-- latch_audit_append stays the last call (its lock after ours).

ALTER TABLE signing_keys DROP CONSTRAINT signing_keys_status_check;
DROP INDEX signing_keys_one_active;
UPDATE signing_keys SET status = 'current' WHERE status = 'active';
UPDATE signing_keys SET status = 'previous', retired_at = coalesce(retired_at, now()) WHERE status = 'retired';
ALTER TABLE signing_keys ALTER COLUMN status SET DEFAULT 'current';
ALTER TABLE signing_keys ADD COLUMN activates_at timestamptz;
ALTER TABLE signing_keys ADD CONSTRAINT signing_keys_status_check
    CHECK (status IN ('next', 'current', 'previous', 'retired'));
ALTER TABLE signing_keys ADD CONSTRAINT signing_keys_next_activates
    CHECK (status <> 'next' OR activates_at IS NOT NULL);
CREATE UNIQUE INDEX signing_keys_one_current ON signing_keys ((true)) WHERE status = 'current';
CREATE UNIQUE INDEX signing_keys_one_next ON signing_keys ((true)) WHERE status = 'next';

-- The one JSON shape of a key on the admin surface (never the private half).
CREATE FUNCTION latch_key_json(k signing_keys) RETURNS jsonb
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, public, pg_temp
AS $$
    SELECT jsonb_build_object(
        'kid', k.kid,
        'alg', k.alg,
        'state', k.status,
        'created_at', latch_ts(k.created_at),
        'activates_at', latch_ts(k.activates_at),
        'retired_at', latch_ts(k.retired_at))
$$;

-- Stores a new 'next' key that starts signing p_prepublish_s seconds from now (the
-- database's clock, as for every other key transition). No row when a next key exists
-- already (the caller answers 409): one pending rotation at a time.
CREATE FUNCTION latch_key_add_next(p_kid text, p_alg text, p_public_jwk jsonb, p_private_sealed bytea,
                                   p_prepublish_s integer, p_actor text, p_ip text, p_request_id text)
    RETURNS TABLE (o_body jsonb, o_activates_at bigint)
    LANGUAGE plpgsql VOLATILE
    SET search_path = pg_catalog, public, pg_temp
AS $$
DECLARE
    v_k signing_keys;
BEGIN
    IF p_prepublish_s IS NULL OR p_prepublish_s < 0 THEN
        RAISE EXCEPTION 'latch_key_add_next: bad prepublish %', p_prepublish_s
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    PERFORM pg_advisory_xact_lock(7809651199139603833);
    IF EXISTS (SELECT 1 FROM signing_keys WHERE status = 'next') THEN
        RETURN;
    END IF;
    INSERT INTO signing_keys (kid, alg, public_jwk, private_sealed, status, activates_at)
        VALUES (p_kid, p_alg, p_public_jwk, p_private_sealed, 'next',
                now() + make_interval(secs => p_prepublish_s))
        RETURNING * INTO v_k;
    PERFORM pg_notify('latch_keys', '');
    PERFORM latch_audit_append(NULL, p_actor, 'key.created', p_kid, p_ip, p_request_id, 'success',
                               jsonb_build_object('alg', p_alg, 'state', 'next',
                                                  'activates_at', latch_ts(v_k.activates_at)));
    RETURN QUERY SELECT latch_key_json(v_k), ceil(extract(epoch FROM v_k.activates_at))::bigint;
END
$$;

-- Moves keys along: a due 'next' key becomes current (the old current becomes previous,
-- retired_at = now), and previous keys that stopped signing more than p_previous_keep_s
-- ago (the access token lifetime plus the verifiers' leeway) are retired. Returns whether
-- anything changed. Cheap when nothing is due (no lock taken): every instance calls it
-- every maintenance interval.
CREATE FUNCTION latch_keys_advance(p_previous_keep_s integer) RETURNS boolean
    LANGUAGE plpgsql VOLATILE
    SET search_path = pg_catalog, public, pg_temp
AS $$
DECLARE
    v_keep interval := make_interval(secs => greatest(coalesce(p_previous_keep_s, 0), 0));
    v_next text;
    v_old text;
    v_retired text[];
    v_kid text;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM signing_keys WHERE status = 'next' AND activates_at <= now())
       AND NOT EXISTS (SELECT 1 FROM signing_keys WHERE status = 'previous'
                                                    AND coalesce(retired_at, created_at) < now() - v_keep) THEN
        RETURN false;
    END IF;
    PERFORM pg_advisory_xact_lock(7809651199139603833);
    -- Re-read under the lock: another instance may have done it meanwhile.
    SELECT kid INTO v_next FROM signing_keys WHERE status = 'next' AND activates_at <= now();
    IF v_next IS NOT NULL THEN
        -- Old current first: the unique index allows one current at any moment.
        UPDATE signing_keys SET status = 'previous', retired_at = now()
            WHERE status = 'current' RETURNING kid INTO v_old;
        UPDATE signing_keys SET status = 'current' WHERE kid = v_next;
    END IF;
    SELECT array_agg(kid ORDER BY kid) INTO v_retired FROM signing_keys
        WHERE status = 'previous' AND coalesce(retired_at, created_at) < now() - v_keep;
    IF v_retired IS NOT NULL THEN
        UPDATE signing_keys SET status = 'retired' WHERE kid = ANY (v_retired);
    END IF;
    IF v_next IS NULL AND v_retired IS NULL THEN
        RETURN false;
    END IF;
    PERFORM pg_notify('latch_keys', '');
    IF v_next IS NOT NULL THEN
        PERFORM latch_audit_append(NULL, 'system', 'key.activated', v_next, NULL, NULL, 'success',
                                   jsonb_build_object('previous', v_old));
    END IF;
    FOREACH v_kid IN ARRAY coalesce(v_retired, ARRAY[]::text[]) LOOP
        PERFORM latch_audit_append(NULL, 'system', 'key.retired', v_kid, NULL, NULL, 'success', '{}'::jsonb);
    END LOOP;
    RETURN true;
END
$$;

-- Whether automatic rotation should add a next key now: rotation is on, none is pending,
-- and the current key has signed long enough that a key added now (activating
-- p_prepublish_s later) gives it a lifetime of p_interval_s.
CREATE FUNCTION latch_keys_rotation_due(p_interval_s integer, p_prepublish_s integer) RETURNS boolean
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, public, pg_temp
AS $$
    SELECT coalesce(p_interval_s, 0) > 0
       AND NOT EXISTS (SELECT 1 FROM signing_keys WHERE status = 'next')
       AND EXISTS (SELECT 1 FROM signing_keys WHERE status = 'current'
                      AND coalesce(activates_at, created_at)
                          <= now() - make_interval(secs => greatest(p_interval_s - coalesce(p_prepublish_s, 0), 0)))
$$;

-- Every key for the admin list: pending and live ones first, then the most recent retired.
CREATE FUNCTION latch_keys_list(p_limit integer) RETURNS jsonb
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, public, pg_temp
AS $$
    SELECT jsonb_build_object('items', coalesce(jsonb_agg(latch_key_json(k) ORDER BY
                                  array_position(ARRAY['next', 'current', 'previous', 'retired'], k.status),
                                  k.created_at DESC, k.kid), '[]'::jsonb))
        FROM (SELECT * FROM signing_keys s
                 ORDER BY array_position(ARRAY['next', 'current', 'previous', 'retired'], s.status),
                          s.created_at DESC, s.kid
                 LIMIT greatest(coalesce(p_limit, 100), 1)) k
$$;

GRANT EXECUTE ON FUNCTION
    latch_key_json(signing_keys),
    latch_key_add_next(text, text, jsonb, bytea, integer, text, text, text),
    latch_keys_advance(integer),
    latch_keys_rotation_due(integer, integer),
    latch_keys_list(integer)
TO latch_runtime;
