-- 0014_request_signing: optional HMAC-SHA256 request signing per OAuth client (issue 7,
-- item 2). The verification runs in C from memory (lib/api/signing.c); this file stores the
-- key and the client's choice, and writes them with audit.
--
-- A client opts in when an admin gives it a signing key (POST .../signing-key, shown once;
-- a repeat rotates it). The key is 256 random bits made in C, stored SEALED under the master
-- key (AES-256-GCM, lib/crypto/seal.h, additional data "client_signing_key:<client_id>" so a
-- blob copied to another client's row does not open there): unlike the client secret, the
-- server needs the key itself to compute the HMAC, so a hash would not do. The clients
-- snapshot unseals it when it loads (control thread) and wipes it when freed.
--
-- require_signed_requests: every request authenticated as the client must then be signed.
-- It needs a key (CHECK); removing the key clears it, so a client never ends up locked out by
-- a flag it cannot satisfy.
--
-- Writes follow 0008: p_scope confines a tenant admin (NULL for a global admin), rows outside
-- it answer exactly like missing ones, (code, body) with code 'ok', 'not_found' or
-- 'conflict', pg_notify('latch_clients', client_id) so every instance reloads its snapshot,
-- and latch_audit_append last. Never the key or its sealed form in a response or the audit.

ALTER TABLE oauth_clients
    ADD COLUMN signing_key_sealed bytea
        CHECK (signing_key_sealed IS NULL OR length(signing_key_sealed) = 76), -- 1 + 12 + 47 + 16
    ADD COLUMN signing_key_created_at timestamptz,
    ADD COLUMN require_signed_requests boolean NOT NULL DEFAULT false,
    ADD CONSTRAINT oauth_clients_signing_check
        CHECK ((signing_key_sealed IS NULL) = (signing_key_created_at IS NULL)
               AND (NOT require_signed_requests OR signing_key_sealed IS NOT NULL));

-- As in 0008, plus whether the client signs (never the key).
CREATE OR REPLACE FUNCTION latch_client_json(c oauth_clients) RETURNS jsonb
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
        'secret_rotated_at', latch_ts(c.secret_rotated_at),
        'signing_key_set', c.signing_key_sealed IS NOT NULL,
        'signing_key_created_at', latch_ts(c.signing_key_created_at), -- STRICT: null without a key
        'require_signed_requests', c.require_signed_requests)
$$;

-- Creates or rotates the signing key. p_client_id is the client the blob was sealed for (its
-- additional data); it must be the client p_id names, or nothing changes (not_found).
-- p_require: the new flag, NULL to keep it.
CREATE FUNCTION latch_client_signing_key_set(p_scope uuid, p_id text, p_client_id text, p_sealed_hex text,
                                             p_require boolean, p_actor text, p_ip text, p_request_id text)
    RETURNS TABLE (code text, body jsonb)
    LANGUAGE plpgsql VOLATILE
    SET search_path = pg_catalog, public, pg_temp
AS $$
DECLARE
    v oauth_clients;
    v_had boolean;
BEGIN
    IF p_sealed_hex IS NULL OR p_sealed_hex !~ '^[0-9a-f]{152}$' THEN
        RAISE EXCEPTION 'the sealed signing key must be 152 lower-case hex digits'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT c.signing_key_sealed IS NOT NULL INTO v_had FROM oauth_clients c
    WHERE (c.client_id = p_id OR c.id = latch_client_uuid(p_id)) AND c.client_id = p_client_id
      AND (p_scope IS NULL OR c.tenant_id = p_scope)
    FOR UPDATE;
    IF NOT FOUND THEN
        RETURN QUERY SELECT 'not_found'::text, NULL::jsonb;
        RETURN;
    END IF;
    UPDATE oauth_clients c
    SET signing_key_sealed = decode(p_sealed_hex, 'hex'), signing_key_created_at = now(),
        require_signed_requests = coalesce(p_require, c.require_signed_requests), updated_at = now()
    WHERE c.client_id = p_client_id
    RETURNING c.* INTO v;
    PERFORM pg_notify('latch_clients', v.client_id);
    PERFORM latch_audit_append(v.tenant_id, p_actor,
                               CASE WHEN v_had THEN 'client.signing_key_rotated' ELSE 'client.signing_key_created' END,
                               v.client_id, p_ip, p_request_id, 'success',
                               jsonb_build_object('id', v.id, 'require_signed_requests', v.require_signed_requests));
    RETURN QUERY SELECT 'ok'::text, latch_client_json(v);
END
$$;

-- Removes the key (and with it the requirement). A client without a key answers 'ok'
-- unchanged and unaudited: the caller's intent already holds.
CREATE FUNCTION latch_client_signing_key_delete(p_scope uuid, p_id text, p_actor text, p_ip text, p_request_id text)
    RETURNS TABLE (code text, body jsonb)
    LANGUAGE plpgsql VOLATILE
    SET search_path = pg_catalog, public, pg_temp
AS $$
DECLARE
    v oauth_clients;
    v_had boolean;
BEGIN
    SELECT c.signing_key_sealed IS NOT NULL INTO v_had FROM oauth_clients c
    WHERE (c.client_id = p_id OR c.id = latch_client_uuid(p_id)) AND (p_scope IS NULL OR c.tenant_id = p_scope)
    FOR UPDATE;
    IF NOT FOUND THEN
        RETURN QUERY SELECT 'not_found'::text, NULL::jsonb;
        RETURN;
    END IF;
    UPDATE oauth_clients c
    SET signing_key_sealed = NULL, signing_key_created_at = NULL, require_signed_requests = false,
        updated_at = CASE WHEN v_had THEN now() ELSE c.updated_at END
    WHERE (c.client_id = p_id OR c.id = latch_client_uuid(p_id))
    RETURNING c.* INTO v;
    IF v_had THEN
        PERFORM pg_notify('latch_clients', v.client_id);
        PERFORM latch_audit_append(v.tenant_id, p_actor, 'client.signing_key_deleted', v.client_id, p_ip,
                                   p_request_id, 'success', jsonb_build_object('id', v.id));
    END IF;
    RETURN QUERY SELECT 'ok'::text, latch_client_json(v);
END
$$;

-- Sets require_signed_requests; 'conflict' when asked to require signatures of a client
-- without a key.
CREATE FUNCTION latch_client_signing_require(p_scope uuid, p_id text, p_require boolean, p_actor text, p_ip text,
                                             p_request_id text)
    RETURNS TABLE (code text, body jsonb)
    LANGUAGE plpgsql VOLATILE
    SET search_path = pg_catalog, public, pg_temp
AS $$
DECLARE
    v oauth_clients;
BEGIN
    IF p_require IS NULL THEN
        RAISE EXCEPTION 'require_signed_requests must be true or false' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT c.* INTO v FROM oauth_clients c
    WHERE (c.client_id = p_id OR c.id = latch_client_uuid(p_id)) AND (p_scope IS NULL OR c.tenant_id = p_scope)
    FOR UPDATE;
    IF NOT FOUND THEN
        RETURN QUERY SELECT 'not_found'::text, NULL::jsonb;
        RETURN;
    END IF;
    IF p_require AND v.signing_key_sealed IS NULL THEN
        RETURN QUERY SELECT 'conflict'::text, NULL::jsonb;
        RETURN;
    END IF;
    IF v.require_signed_requests = p_require THEN
        RETURN QUERY SELECT 'ok'::text, latch_client_json(v);
        RETURN;
    END IF;
    UPDATE oauth_clients c SET require_signed_requests = p_require, updated_at = now()
    WHERE c.id = v.id
    RETURNING c.* INTO v;
    PERFORM pg_notify('latch_clients', v.client_id);
    PERFORM latch_audit_append(v.tenant_id, p_actor, 'client.signing_requirement_changed', v.client_id, p_ip,
                               p_request_id, 'success',
                               jsonb_build_object('id', v.id, 'require_signed_requests', p_require));
    RETURN QUERY SELECT 'ok'::text, latch_client_json(v);
END
$$;

GRANT EXECUTE ON FUNCTION
    latch_client_signing_key_set(uuid, text, text, text, boolean, text, text, text),
    latch_client_signing_key_delete(uuid, text, text, text, text),
    latch_client_signing_require(uuid, text, boolean, text, text, text)
TO latch_runtime;
