-- 0013: API keys (issue 7). The table is fixed here so other parts of the issue (privacy,
-- lock) can rely on it; the functions that write it follow below.
--
-- A key is lt_ak_<key_id>_<secret>: key_id is public (it names the key in lists and logs),
-- the secret is 256 random bits shown once; only SHA-256(secret) is stored.

CREATE TABLE api_keys (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    key_id text NOT NULL UNIQUE CHECK (key_id ~ '^[a-z2-7]{16}$'),
    secret_hash bytea NOT NULL CHECK (length(secret_hash) = 32),
    owner_user_id uuid,
    owner_client_id uuid,
    name text NOT NULL CHECK (char_length(name) BETWEEN 1 AND 200 AND name !~ '[[:cntrl:]]'),
    scopes text[] NOT NULL DEFAULT '{}' CHECK (cardinality(scopes) <= 50),
    roles text[] NOT NULL DEFAULT '{}' CHECK (cardinality(roles) <= 50),
    expires_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    last_used_at timestamptz,
    revoked_at timestamptz,
    CHECK ((owner_user_id IS NULL) <> (owner_client_id IS NULL)),
    FOREIGN KEY (tenant_id, owner_user_id) REFERENCES users (tenant_id, id) ON DELETE CASCADE,
    FOREIGN KEY (owner_client_id) REFERENCES oauth_clients (id) ON DELETE CASCADE,
    UNIQUE (tenant_id, id)
);
CREATE INDEX api_keys_owner_user ON api_keys (tenant_id, owner_user_id) WHERE owner_user_id IS NOT NULL;
CREATE INDEX api_keys_owner_client ON api_keys (owner_client_id) WHERE owner_client_id IS NOT NULL;

-- ---- what the rest of this file adds ------------------------------------------------------
--
-- Owners: a key belongs to one user or one OAuth client of its tenant. Its roles are a subset
-- of what its owner holds (assigned or inherited) when it is made; at use latchd intersects
-- them with the owner's current roles from the policy snapshot, so a key never does more
-- than its owner. Scopes are free scope tokens; "introspect" and "decide" let a user's key
-- call /oauth2/introspect and the AuthZEN endpoints (a client's key has its client's
-- permissions instead).
--
-- Memory: every instance keeps the live keys (not revoked, not expired, owner active) in a
-- snapshot it reloads on NOTIFY latch_api_keys, which the triggers below send on every
-- insert, revocation, expiry change or delete of a key (cascades included) and whenever a
-- user's status changes. last_used_at is written in batches by each worker (one UPDATE for
-- many keys, lib/identity/apikeys.c) and sends nothing.
--
-- Admin functions take p_scope (the caller's tenant, NULL for a global admin) and answer rows
-- outside it like missing ones; writes return (code, body) and audit last, as in 0008.

ALTER TABLE api_keys ADD CONSTRAINT api_keys_scopes_ok CHECK (latch_client_tokens_ok(scopes, NULL));
ALTER TABLE api_keys ADD CONSTRAINT api_keys_roles_ok CHECK (latch_text_array_ok(roles, '^[a-z][a-z0-9_:.-]{0,63}$'));
CREATE INDEX api_keys_page ON api_keys (tenant_id, created_at, id);
CREATE INDEX api_keys_page_all ON api_keys (created_at, id);

GRANT SELECT, INSERT, UPDATE ON api_keys TO latch_runtime;

-- The admin role administers its tenant's keys too.
UPDATE roles SET permissions = permissions || ARRAY['latch:api_keys:read', 'latch:api_keys:write']
    WHERE tenant_id IS NULL AND name = 'admin' AND builtin AND NOT ('latch:api_keys:write' = ANY (permissions));

CREATE FUNCTION latch_api_keys_changed() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog, public, pg_temp
AS $$
BEGIN
    PERFORM pg_notify('latch_api_keys', '');
    RETURN NULL;
END
$$;

-- Not on last_used_at: the batched usage writes change nothing the snapshot holds.
CREATE TRIGGER api_keys_changed AFTER INSERT OR UPDATE OF revoked_at, expires_at, roles, scopes, secret_hash OR DELETE
    ON api_keys FOR EACH STATEMENT EXECUTE FUNCTION latch_api_keys_changed();
-- A disabled or locked user's keys leave the snapshot; re-enabled, they come back.
CREATE TRIGGER users_api_keys_changed AFTER UPDATE OF status ON users
    FOR EACH STATEMENT EXECUTE FUNCTION latch_api_keys_changed();

-- The one JSON shape of a key on the wire: never the secret or its hash. owner_id is the
-- user's id or the client's client_id.
CREATE FUNCTION latch_api_key_json(k api_keys) RETURNS jsonb
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, public, pg_temp
AS $$
    SELECT jsonb_build_object(
        'id', k.id,
        'key_id', k.key_id,
        'tenant_id', k.tenant_id,
        'owner_type', CASE WHEN k.owner_user_id IS NOT NULL THEN 'user' ELSE 'client' END,
        'owner_id', coalesce(k.owner_user_id::text, (SELECT c.client_id FROM oauth_clients c WHERE c.id = k.owner_client_id)),
        'name', k.name,
        'scopes', to_jsonb(k.scopes),
        'roles', to_jsonb(k.roles),
        'expires_at', latch_ts(k.expires_at),
        'created_at', latch_ts(k.created_at),
        'last_used_at', latch_ts(k.last_used_at),
        'revoked_at', latch_ts(k.revoked_at))
$$;

-- Every role an owner holds in p_tenant: p_direct and their ancestors, resolved as the engine
-- resolves them (tenant first, then global).
CREATE FUNCTION latch_api_key_owner_roles(p_tenant uuid, p_direct text[]) RETURNS text[]
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, public, pg_temp
AS $$
    WITH RECURSIVE walk (tenant, name, depth) AS (
        SELECT p_tenant, n, 1 FROM unnest(p_direct) n
        UNION
        SELECT r.tenant_id, q, w.depth + 1
            FROM walk w CROSS JOIN LATERAL latch_role_resolve(w.tenant, w.name) r CROSS JOIN LATERAL unnest(r.parents) q
            WHERE w.depth < 64
    )
    SELECT coalesce(array_agg(DISTINCT w.name), '{}') FROM walk w
$$;

-- Inserts a key after the owner and role rules; (code, body): 'not_found' (no such owner in
-- the tenant), 'invalid' (body: the reason as a JSON string) or 'ok'. p_privileged_ok false
-- (a tenant admin) refuses roles that grant privileged permissions, as role assignment does.
CREATE FUNCTION latch_api_key_insert(p_tenant uuid, p_owner_type text, p_owner_id text, p_key_id text,
                                     p_hash_hex text, p_name text, p_scopes text[], p_roles text[],
                                     p_expires_at timestamptz, p_privileged_ok boolean, p_actor text, p_ip text,
                                     p_request_id text)
    RETURNS TABLE (code text, body jsonb)
    LANGUAGE plpgsql VOLATILE
    SET search_path = pg_catalog, public, pg_temp
AS $$
DECLARE
    v_user uuid;
    v_client uuid;
    v_direct text[];
    v_bad text;
    v api_keys;
BEGIN
    IF p_hash_hex IS NULL OR p_hash_hex !~ '^[0-9a-f]{64}$' THEN
        RAISE EXCEPTION 'the secret hash must be 64 lower-case hex digits' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF p_owner_type = 'user' THEN
        SELECT u.id INTO v_user FROM users u
            WHERE u.tenant_id = p_tenant AND u.id = latch_client_uuid(p_owner_id) AND u.status = 'active' FOR SHARE;
        v_direct := coalesce((SELECT array_agg(r.role) FROM user_roles r WHERE r.user_id = v_user), '{}');
        IF v_user IS NULL THEN
            RETURN QUERY SELECT 'not_found'::text, NULL::jsonb;
            RETURN;
        END IF;
    ELSIF p_owner_type = 'client' THEN
        SELECT c.id INTO v_client FROM oauth_clients c
            WHERE c.tenant_id = p_tenant AND (c.client_id = p_owner_id OR c.id = latch_client_uuid(p_owner_id))
            FOR SHARE;
        IF v_client IS NULL THEN
            RETURN QUERY SELECT 'not_found'::text, NULL::jsonb;
            RETURN;
        END IF;
        v_direct := coalesce((SELECT array_agg(r.role) FROM client_roles r JOIN oauth_clients c ON c.client_id = r.client_id
                              WHERE c.id = v_client), '{}');
    ELSE
        RETURN QUERY SELECT 'not_found'::text, NULL::jsonb;
        RETURN;
    END IF;
    SELECT r INTO v_bad FROM unnest(coalesce(p_roles, '{}')) r
        WHERE NOT r = ANY (latch_api_key_owner_roles(p_tenant, v_direct)) LIMIT 1;
    IF v_bad IS NOT NULL THEN
        RETURN QUERY SELECT 'invalid'::text, to_jsonb('the owner does not hold the role ' || v_bad);
        RETURN;
    END IF;
    IF NOT p_privileged_ok AND latch_roles_privileged(p_tenant, coalesce(p_roles, '{}')) THEN
        RETURN QUERY SELECT 'invalid'::text, to_jsonb('roles granting global permissions may not be given to a key here'::text);
        RETURN;
    END IF;
    IF p_expires_at IS NOT NULL AND p_expires_at <= now() THEN
        RETURN QUERY SELECT 'invalid'::text, to_jsonb('expires_at must be in the future'::text);
        RETURN;
    END IF;
    INSERT INTO api_keys AS k (tenant_id, key_id, secret_hash, owner_user_id, owner_client_id, name, scopes, roles,
                               expires_at)
    VALUES (p_tenant, p_key_id, decode(p_hash_hex, 'hex'), v_user, v_client, p_name, coalesce(p_scopes, '{}'),
            coalesce(p_roles, '{}'), p_expires_at)
    RETURNING k.* INTO v;
    PERFORM latch_audit_append(p_tenant, p_actor, 'api_key.created', v.key_id, p_ip, p_request_id, 'success',
                               jsonb_build_object('id', v.id, 'name', v.name, 'owner_type', p_owner_type,
                                                  'owner_id', coalesce(v_user::text, p_owner_id),
                                                  'scopes', to_jsonb(v.scopes), 'roles', to_jsonb(v.roles),
                                                  'expires_at', latch_ts(v.expires_at)));
    RETURN QUERY SELECT 'ok'::text, latch_api_key_json(v);
END
$$;

-- POST /v1/admin/api-keys.
CREATE FUNCTION latch_api_key_create(p_scope uuid, p_tenant uuid, p_owner_type text, p_owner_id text, p_key_id text,
                                     p_hash_hex text, p_name text, p_scopes text[], p_roles text[],
                                     p_expires_at timestamptz, p_actor text, p_ip text, p_request_id text)
    RETURNS TABLE (code text, body jsonb)
    LANGUAGE plpgsql VOLATILE
    SET search_path = pg_catalog, public, pg_temp
AS $$
BEGIN
    IF p_scope IS NOT NULL AND p_tenant <> p_scope THEN
        RETURN QUERY SELECT 'not_found'::text, NULL::jsonb;
        RETURN;
    END IF;
    RETURN QUERY SELECT * FROM latch_api_key_insert(p_tenant, p_owner_type, p_owner_id, p_key_id, p_hash_hex, p_name,
                                                    p_scopes, p_roles, p_expires_at, p_scope IS NULL, p_actor, p_ip,
                                                    p_request_id);
END
$$;

-- POST /v1/me/api-keys: latch_mfa_recent's answers ('unauthorized', 'reauthentication_required')
-- or latch_api_key_insert's for a key of the caller itself.
CREATE FUNCTION latch_api_key_me_create(p_sid uuid, p_user_id uuid, p_tenant uuid, p_window integer,
                                        p_password_ok boolean, p_key_id text, p_hash_hex text, p_name text,
                                        p_scopes text[], p_roles text[], p_expires_at timestamptz, p_ip text,
                                        p_request_id text)
    RETURNS TABLE (code text, body jsonb)
    LANGUAGE plpgsql VOLATILE
    SET search_path = pg_catalog, public, pg_temp
AS $$
DECLARE
    v_r text;
BEGIN
    v_r := latch_mfa_recent(p_sid, p_user_id, p_tenant, p_window, p_password_ok, p_ip);
    IF v_r <> 'ok' THEN
        RETURN QUERY SELECT v_r, NULL::jsonb;
        RETURN;
    END IF;
    RETURN QUERY SELECT * FROM latch_api_key_insert(p_tenant, 'user', p_user_id::text, p_key_id, p_hash_hex, p_name,
                                                    p_scopes, p_roles, p_expires_at, true, p_user_id::text, p_ip,
                                                    p_request_id);
END
$$;

CREATE FUNCTION latch_api_key_find(p_scope uuid, p_id text) RETURNS SETOF api_keys
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, public, pg_temp
AS $$
    SELECT k.* FROM api_keys k
    WHERE (k.key_id = p_id OR k.id = latch_client_uuid(p_id)) AND (p_scope IS NULL OR k.tenant_id = p_scope)
$$;

CREATE FUNCTION latch_api_key_get(p_scope uuid, p_id text) RETURNS jsonb
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, public, pg_temp
AS $$
    SELECT latch_api_key_json(k) FROM latch_api_key_find(p_scope, p_id) k
$$;

-- One page, newest last as every admin list: items and the key to continue after. Filters:
-- p_tenant (a global admin's narrowing), the owner (p_owner_type 'user'/'client' and its id).
CREATE FUNCTION latch_api_key_list(p_scope uuid, p_tenant uuid, p_owner_type text, p_owner_id text, p_after_us bigint,
                                   p_after_id uuid, p_limit integer)
    RETURNS TABLE (items jsonb, next_key text)
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, public, pg_temp
AS $$
    WITH page AS (
        SELECT k, row_number() OVER (ORDER BY k.created_at, k.id) AS n
        FROM api_keys k
        WHERE (p_scope IS NULL OR k.tenant_id = p_scope)
          AND (p_tenant IS NULL OR k.tenant_id = p_tenant)
          AND (p_owner_type IS NULL
               OR (p_owner_type = 'user' AND k.owner_user_id = latch_client_uuid(p_owner_id))
               OR (p_owner_type = 'client' AND k.owner_client_id = (SELECT c.id FROM oauth_clients c
                                                                     WHERE c.client_id = p_owner_id
                                                                        OR c.id = latch_client_uuid(p_owner_id))))
          AND (p_after_us IS NULL OR (k.created_at, k.id) > (latch_page_at(p_after_us), p_after_id))
        ORDER BY k.created_at, k.id
        LIMIT p_limit + 1)
    SELECT coalesce(jsonb_agg(latch_api_key_json(p.k) ORDER BY p.n) FILTER (WHERE p.n <= p_limit), '[]'),
           CASE WHEN count(*) > p_limit
                THEN max(latch_page_key((p.k).created_at, (p.k).id)) FILTER (WHERE p.n = p_limit) END
    FROM page p
$$;

-- Revokes a key (idempotent: revoking a revoked key answers it unchanged, without a second
-- audit event). Every instance drops it from memory once the NOTIFY is applied.
CREATE FUNCTION latch_api_key_revoke(p_scope uuid, p_id text, p_actor text, p_ip text, p_request_id text)
    RETURNS TABLE (code text, body jsonb)
    LANGUAGE plpgsql VOLATILE
    SET search_path = pg_catalog, public, pg_temp
AS $$
DECLARE
    v api_keys;
BEGIN
    SELECT k.* INTO v FROM latch_api_key_find(p_scope, p_id) k;
    IF NOT FOUND THEN
        RETURN QUERY SELECT 'not_found'::text, NULL::jsonb;
        RETURN;
    END IF;
    IF v.revoked_at IS NULL THEN
        UPDATE api_keys k SET revoked_at = now() WHERE k.id = v.id AND k.revoked_at IS NULL RETURNING k.* INTO v;
        IF FOUND THEN
            PERFORM latch_audit_append(v.tenant_id, p_actor, 'api_key.revoked', v.key_id, p_ip, p_request_id,
                                       'success', jsonb_build_object('id', v.id, 'name', v.name));
        END IF;
    END IF;
    RETURN QUERY SELECT 'ok'::text, latch_api_key_json(v);
END
$$;

-- GET /v1/me/api-keys: a page of the caller's own keys; no row when its session is not live.
CREATE FUNCTION latch_api_key_me_list(p_sid uuid, p_user_id uuid, p_tenant uuid, p_after_us bigint, p_after_id uuid,
                                      p_limit integer)
    RETURNS TABLE (items jsonb, next_key text)
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, public, pg_temp
AS $$
    SELECT l.items, l.next_key FROM latch_api_key_list(p_tenant, p_tenant, 'user', p_user_id::text, p_after_us,
                                                       p_after_id, p_limit) l
    WHERE latch_caller_live(p_sid, p_user_id, p_tenant)
$$;

-- DELETE /v1/me/api-keys/{id}: 'unauthorized' (session not live), 'not_found' (not a key of
-- the caller's) or 'ok'.
CREATE FUNCTION latch_api_key_me_revoke(p_sid uuid, p_user_id uuid, p_tenant uuid, p_id text, p_ip text,
                                        p_request_id text) RETURNS text
    LANGUAGE plpgsql VOLATILE
    SET search_path = pg_catalog, public, pg_temp
AS $$
BEGIN
    IF NOT latch_caller_live(p_sid, p_user_id, p_tenant) THEN
        RETURN 'unauthorized';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM latch_api_key_find(p_tenant, p_id) k WHERE k.owner_user_id = p_user_id) THEN
        RETURN 'not_found';
    END IF;
    PERFORM 1 FROM latch_api_key_revoke(p_tenant, p_id, p_user_id::text, p_ip, p_request_id);
    RETURN 'ok';
END
$$;

-- The admin API's liveness check for a key as the caller (an access token's is
-- latch_caller_live): the key itself live and its owner active, in p_tenant.
CREATE FUNCTION latch_api_key_caller_live(p_id uuid, p_tenant uuid) RETURNS boolean
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, public, pg_temp
AS $$
    SELECT EXISTS (SELECT 1 FROM api_keys k LEFT JOIN users u ON u.id = k.owner_user_id
                   WHERE k.id = p_id AND k.tenant_id = p_tenant AND k.revoked_at IS NULL
                     AND (k.expires_at IS NULL OR k.expires_at > now())
                     AND (k.owner_user_id IS NULL OR u.status = 'active'))
$$;

GRANT EXECUTE ON FUNCTION
    latch_api_key_json(api_keys),
    latch_api_key_owner_roles(uuid, text[]),
    latch_api_key_insert(uuid, text, text, text, text, text, text[], text[], timestamptz, boolean, text, text, text),
    latch_api_key_create(uuid, uuid, text, text, text, text, text, text[], text[], timestamptz, text, text, text),
    latch_api_key_me_create(uuid, uuid, uuid, integer, boolean, text, text, text, text[], text[], timestamptz, text,
                            text),
    latch_api_key_find(uuid, text),
    latch_api_key_get(uuid, text),
    latch_api_key_list(uuid, uuid, text, text, bigint, uuid, integer),
    latch_api_key_revoke(uuid, text, text, text, text),
    latch_api_key_me_list(uuid, uuid, uuid, bigint, uuid, integer),
    latch_api_key_me_revoke(uuid, uuid, uuid, text, text, text),
    latch_api_key_caller_live(uuid, uuid)
TO latch_runtime;
