-- 0015_browser: browser sign-in frontends.
--
-- Each tenant lists the exact origins (https://host[:port], no path, no wildcard) whose
-- pages may call the sign-in surface with credentials (CORS). Every instance keeps all the
-- lists in memory (lib/identity/browser.c) and reloads them on NOTIFY latch_origins, sent
-- by a trigger whenever a list may have changed. The API validates what it stores
-- (lib/identity/browser.c, lt_browser_origin_ok); the CHECK here is the backstop for other
-- writers: lower-case host names (browsers serialise the Origin header that way), a port
-- without leading zeros, at most 20 distinct origins.

CREATE FUNCTION latch_cors_origins_ok(p_origins text[]) RETURNS boolean
    LANGUAGE sql IMMUTABLE
    SET search_path = pg_catalog, public, pg_temp
AS $$
    SELECT cardinality(p_origins) <= 20
       AND latch_text_array_ok(p_origins,
                               '^https://[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*(:[1-9][0-9]{0,4})?$')
       AND NOT EXISTS (SELECT 1 FROM unnest(p_origins) o WHERE length(o) > 270)
$$;

ALTER TABLE tenants ADD COLUMN cors_origins text[] NOT NULL DEFAULT '{}'
    CONSTRAINT tenants_cors_origins_check CHECK (latch_cors_origins_ok(cors_origins));

CREATE FUNCTION latch_origins_changed() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog, public, pg_temp
AS $$
BEGIN
    PERFORM pg_notify('latch_origins', '');
    RETURN NULL;
END
$$;

CREATE TRIGGER tenants_origins_changed AFTER INSERT OR DELETE OR UPDATE OF cors_origins ON tenants
    FOR EACH STATEMENT EXECUTE FUNCTION latch_origins_changed();

-- The snapshot's rows: one per (tenant, origin).
CREATE FUNCTION latch_origins()
    RETURNS TABLE (o_tenant_id uuid, o_tenant_name text, o_origin text)
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, public, pg_temp
AS $$
    SELECT t.id, t.name, o FROM tenants t CROSS JOIN LATERAL unnest(t.cors_origins) o
        WHERE cardinality(t.cors_origins) > 0
$$;

-- A tenant on the wire gains its origins.
CREATE OR REPLACE FUNCTION latch_tenant_json(t tenants) RETURNS jsonb
    LANGUAGE sql STABLE
    AS $$
    SELECT jsonb_build_object(
        'id', t.id,
        'name', t.name,
        'display_name', t.display_name,
        'settings', latch_tenant_settings(t),
        'cors_origins', to_jsonb(t.cors_origins),
        'created_at', latch_ts(t.created_at),
        'updated_at', latch_ts(t.updated_at))
    $$;

-- PATCH /v1/admin/tenants/{id} as in 0010, plus the origins: a JSON array of strings
-- replaces the list ([] empties it), NULL keeps it.
DROP FUNCTION latch_admin_tenant_patch(uuid, uuid, text, jsonb, text, text, text);
CREATE FUNCTION latch_admin_tenant_patch(p_scope uuid, p_id uuid, p_display_name text, p_settings jsonb,
                                         p_cors_origins jsonb, p_actor text, p_ip text, p_request_id text)
    RETURNS jsonb
    LANGUAGE plpgsql VOLATILE
    SET search_path = pg_catalog, public, pg_temp
AS $$
DECLARE
    v_t tenants;
BEGIN
    UPDATE tenants t SET display_name = coalesce(p_display_name, t.display_name),
                         settings = jsonb_strip_nulls(t.settings || coalesce(p_settings, '{}'::jsonb)),
                         cors_origins = CASE WHEN p_cors_origins IS NULL THEN t.cors_origins
                                             ELSE ARRAY(SELECT jsonb_array_elements_text(p_cors_origins)) END,
                         updated_at = now()
        WHERE t.id = p_id AND (p_scope IS NULL OR t.id = p_scope)
        RETURNING t.* INTO v_t;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    PERFORM latch_audit_append(v_t.id, p_actor, 'tenant.updated', v_t.id::text, p_ip, p_request_id, 'success',
                               jsonb_strip_nulls(jsonb_build_object('display_name', p_display_name,
                                                                    'settings', p_settings,
                                                                    'cors_origins', p_cors_origins)));
    RETURN latch_tenant_json(v_t);
END
$$;

GRANT EXECUTE ON FUNCTION
    latch_cors_origins_ok(text[]),
    latch_origins(),
    latch_tenant_json(tenants),
    latch_admin_tenant_patch(uuid, uuid, text, jsonb, jsonb, text, text, text)
    TO latch_runtime;
