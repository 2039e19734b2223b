-- 0008_clients: OAuth 2.0 confidential clients (RFC 6749 §2.1) per tenant, managed under
-- /v1/admin/clients (lib/api/admin_clients.c) and `latchctl clients`, authenticated from an
-- in-memory snapshot (lib/identity/clients.h) that every instance reloads on NOTIFY
-- latch_clients.
--
-- A client's secret is 256 random bits made in C; only its SHA-256 is stored (a secret that
-- strong needs no slow hash) and it is compared in C, in constant time, never here.
--
-- Scope, shapes and paging follow 0005: the admin functions take p_scope (the tenant the
-- caller administers, NULL for a global admin or latchctl) and answer rows outside it
-- exactly like missing ones; write functions return (code, body) with code 'ok' or
-- 'not_found'; lists are keyset pages over (created_at, id) with latch_page_key.
-- A client is named by its row id (uuid) or its client_id (lc_...): both are unique.
--
-- Every write sends pg_notify('latch_clients', client_id) (delivered at commit) and then
-- audits with latch_audit_append, always the last call (its advisory lock is last in the
-- lock order). Bad input that slipped past the C validation fails a CHECK (23514), which the
-- API answers 400.

-- Elements of a client's token lists: 1-dimensional, no NULLs, no duplicates, each from
-- p_allowed (when given) or else a scope token (RFC 6749 §3.3 subset that never needs quoting
-- in an array literal or a space-separated list).
CREATE FUNCTION latch_client_tokens_ok(p_items text[], p_allowed text[]) RETURNS boolean
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    SET search_path = pg_catalog, public, pg_temp
AS $$
    SELECT p_items IS NOT NULL
       AND coalesce(array_ndims(p_items), 1) = 1
       AND NOT EXISTS (SELECT 1 FROM unnest(p_items) s
                       WHERE s IS NULL
                          OR (p_allowed IS NULL AND s !~ '^[A-Za-z0-9_.:/-]{1,64}$')
                          OR (p_allowed IS NOT NULL AND NOT s = ANY (p_allowed)))
       AND cardinality(p_items) = (SELECT count(DISTINCT s) FROM unnest(p_items) s)
$$;

CREATE TABLE oauth_clients (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    client_id text NOT NULL UNIQUE CHECK (client_id ~ '^lc_[A-Za-z0-9_-]{22}$'),
    secret_hash bytea NOT NULL CHECK (length(secret_hash) = 32),
    name text NOT NULL CHECK (char_length(name) BETWEEN 1 AND 200 AND name !~ '[[:cntrl:]]'),
    grant_types text[] NOT NULL CHECK (cardinality(grant_types) >= 1
        AND latch_client_tokens_ok(grant_types, ARRAY['client_credentials', 'refresh_token'])),
    scopes text[] NOT NULL DEFAULT '{}' CHECK (cardinality(scopes) <= 50 AND latch_client_tokens_ok(scopes, NULL)),
    permissions text[] NOT NULL DEFAULT '{}'
        CHECK (latch_client_tokens_ok(permissions, ARRAY['introspect', 'revoke', 'revocations'])),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    secret_rotated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX oauth_clients_page ON oauth_clients (tenant_id, created_at, id);
CREATE INDEX oauth_clients_page_all ON oauth_clients (created_at, id);

-- The functions run as the caller (latch_runtime), as 0005's do.
GRANT SELECT, INSERT, UPDATE, DELETE ON oauth_clients TO latch_runtime;

-- The one JSON shape of a client on the wire: never the secret or its hash.
CREATE FUNCTION latch_client_json(c oauth_clients) RETURNS jsonb
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, public, pg_temp
AS $$
    SELECT jsonb_build_object(
        'id', c.id,
        'client_id', c.client_id,
        'tenant_id', c.tenant_id,
        'name', c.name,
        'grant_types', to_jsonb(c.grant_types),
        'scopes', to_jsonb(c.scopes),
        'permissions', to_jsonb(c.permissions),
        'created_at', latch_ts(c.created_at),
        'updated_at', latch_ts(c.updated_at),
        'secret_rotated_at', latch_ts(c.secret_rotated_at))
$$;

-- A JSON array of strings (what the API and latchctl bind) as text[], order kept. Anything
-- else raises 22023 (invalid_parameter_value), answered 400.
CREATE FUNCTION latch_client_text_array(p jsonb) RETURNS text[]
    LANGUAGE plpgsql IMMUTABLE
    SET search_path = pg_catalog, public, pg_temp
AS $$
BEGIN
    IF p IS NULL THEN
        RETURN '{}';
    END IF;
    IF jsonb_typeof(p) <> 'array' OR EXISTS (SELECT 1 FROM jsonb_array_elements(p) e WHERE jsonb_typeof(e) <> 'string')
    THEN
        RAISE EXCEPTION 'expected a JSON array of strings' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    RETURN coalesce((SELECT array_agg(t.e ORDER BY t.o) FROM jsonb_array_elements_text(p) WITH ORDINALITY AS t(e, o)),
                    '{}');
END
$$;

-- The row id when p_id is a UUID, else NULL (so a client_id never reaches a failing cast).
CREATE FUNCTION latch_client_uuid(p_id text) RETURNS uuid
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    SET search_path = pg_catalog, public, pg_temp
AS $$
    SELECT CASE WHEN p_id ~* '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$' THEN p_id::uuid END
$$;

-- p_client_id and the secret's hash (64 hex) come from lt_client_credentials_new.
CREATE FUNCTION latch_client_create(p_scope uuid, p_tenant_id uuid, p_client_id text, p_secret_hash_hex text,
                                    p_name text, p_grant_types text[], p_scopes text[], p_permissions text[],
                                    p_actor text, p_ip text, p_request_id text)
    RETURNS TABLE (code text, body jsonb)
    LANGUAGE plpgsql VOLATILE
    SET search_path = pg_catalog, public, pg_temp
AS $$
DECLARE
    v oauth_clients;
BEGIN
    IF (p_scope IS NOT NULL AND p_tenant_id <> p_scope)
       OR NOT EXISTS (SELECT 1 FROM tenants t WHERE t.id = p_tenant_id) THEN
        RETURN QUERY SELECT 'not_found'::text, NULL::jsonb;
        RETURN;
    END IF;
    IF p_secret_hash_hex IS NULL OR p_secret_hash_hex !~ '^[0-9a-f]{64}$' THEN
        RAISE EXCEPTION 'the secret hash must be 64 lower-case hex digits' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    INSERT INTO oauth_clients AS c (tenant_id, client_id, secret_hash, name, grant_types, scopes, permissions)
    VALUES (p_tenant_id, p_client_id, decode(p_secret_hash_hex, 'hex'), p_name, p_grant_types,
            coalesce(p_scopes, '{}'), coalesce(p_permissions, '{}'))
    RETURNING c.* INTO v;
    PERFORM pg_notify('latch_clients', v.client_id);
    PERFORM latch_audit_append(p_tenant_id, p_actor, 'client.created', v.client_id, p_ip, p_request_id, 'success',
                               jsonb_build_object('id', v.id, 'name', v.name, 'grant_types', to_jsonb(v.grant_types),
                                                  'scopes', to_jsonb(v.scopes),
                                                  'permissions', to_jsonb(v.permissions)));
    RETURN QUERY SELECT 'ok'::text, latch_client_json(v);
END
$$;

CREATE FUNCTION latch_client_get(p_scope uuid, p_id text) RETURNS jsonb
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, public, pg_temp
AS $$
    SELECT latch_client_json(c) FROM oauth_clients c
    WHERE (c.client_id = p_id OR c.id = latch_client_uuid(p_id)) AND (p_scope IS NULL OR c.tenant_id = p_scope)
$$;

-- One page: items (up to p_limit) and the key to continue after, NULL on the last page.
-- p_tenant narrows a global admin's listing to one tenant (NULL: every tenant in scope).
CREATE FUNCTION latch_client_list(p_scope uuid, p_tenant uuid, p_after_us bigint, p_after_id uuid, p_limit integer)
    RETURNS TABLE (items jsonb, next_key text)
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, public, pg_temp
AS $$
    WITH page AS (
        SELECT c, row_number() OVER (ORDER BY c.created_at, c.id) AS n
        FROM oauth_clients c
        WHERE (p_scope IS NULL OR c.tenant_id = p_scope)
          AND (p_tenant IS NULL OR c.tenant_id = p_tenant)
          AND (p_after_us IS NULL OR (c.created_at, c.id) > (latch_page_at(p_after_us), p_after_id))
        ORDER BY c.created_at, c.id
        LIMIT p_limit + 1)
    SELECT coalesce(jsonb_agg(latch_client_json(p.c) ORDER BY p.n) FILTER (WHERE p.n <= p_limit), '[]'),
           CASE WHEN count(*) > p_limit
                THEN max(latch_page_key((p.c).created_at, (p.c).id)) FILTER (WHERE p.n = p_limit) END
    FROM page p
$$;

-- A hard delete: the client stops authenticating on every instance once the NOTIFY has
-- been applied (tokens it already holds live out their short lifetime). Answers the
-- deleted client's document.
CREATE FUNCTION latch_client_delete(p_scope uuid, p_id text, p_actor text, p_ip text, p_request_id text)
    RETURNS TABLE (code text, body jsonb)
    LANGUAGE plpgsql VOLATILE
    SET search_path = pg_catalog, public, pg_temp
AS $$
DECLARE
    v oauth_clients;
BEGIN
    DELETE FROM oauth_clients c
    WHERE (c.client_id = p_id OR c.id = latch_client_uuid(p_id)) AND (p_scope IS NULL OR c.tenant_id = p_scope)
    RETURNING c.* INTO v;
    IF NOT FOUND THEN
        RETURN QUERY SELECT 'not_found'::text, NULL::jsonb;
        RETURN;
    END IF;
    PERFORM pg_notify('latch_clients', v.client_id);
    PERFORM latch_audit_append(v.tenant_id, p_actor, 'client.deleted', v.client_id, p_ip, p_request_id, 'success',
                               jsonb_build_object('id', v.id, 'name', v.name));
    RETURN QUERY SELECT 'ok'::text, latch_client_json(v);
END
$$;

-- Replaces the secret (the old one stops working everywhere once the NOTIFY is applied).
CREATE FUNCTION latch_client_rotate_secret(p_scope uuid, p_id text, p_hash_hex text, p_actor text, p_ip text,
                                           p_request_id text)
    RETURNS TABLE (code text, body jsonb)
    LANGUAGE plpgsql VOLATILE
    SET search_path = pg_catalog, public, pg_temp
AS $$
DECLARE
    v oauth_clients;
BEGIN
    IF p_hash_hex IS NULL OR p_hash_hex !~ '^[0-9a-f]{64}$' THEN
        RAISE EXCEPTION 'the secret hash must be 64 lower-case hex digits' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    UPDATE oauth_clients c SET secret_hash = decode(p_hash_hex, 'hex'), updated_at = now(), secret_rotated_at = now()
    WHERE (c.client_id = p_id OR c.id = latch_client_uuid(p_id)) AND (p_scope IS NULL OR c.tenant_id = p_scope)
    RETURNING c.* INTO v;
    IF NOT FOUND THEN
        RETURN QUERY SELECT 'not_found'::text, NULL::jsonb;
        RETURN;
    END IF;
    PERFORM pg_notify('latch_clients', v.client_id);
    PERFORM latch_audit_append(v.tenant_id, p_actor, 'client.secret_rotated', v.client_id, p_ip, p_request_id,
                               'success', jsonb_build_object('id', v.id));
    RETURN QUERY SELECT 'ok'::text, latch_client_json(v);
END
$$;

GRANT EXECUTE ON FUNCTION
    latch_client_tokens_ok(text[], text[]),
    latch_client_json(oauth_clients),
    latch_client_text_array(jsonb),
    latch_client_uuid(text),
    latch_client_create(uuid, uuid, text, text, text, text[], text[], text[], text, text, text),
    latch_client_get(uuid, text),
    latch_client_list(uuid, uuid, bigint, uuid, integer),
    latch_client_delete(uuid, text, text, text, text),
    latch_client_rotate_secret(uuid, text, text, text, text, text)
TO latch_runtime;
