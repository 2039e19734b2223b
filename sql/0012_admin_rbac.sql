-- 0012_admin_rbac: the admin API authorizes through the policy engine. Its operations are
-- permissions on built-in resource types (`latch:users:write`, `latch:policies:read`, ...),
-- granted by two seeded global roles that keep the names the sign-in issue gave them:
--
--   admin         administers its own tenant: users, clients, roles, policies, the tenant's
--                 settings;
--   global_admin  inherits admin and adds what reaches beyond one tenant: creating tenants,
--                 the signing keys, and `latch:scope:global` (acting in every tenant).
--
-- Escalation rules, enforced here because the database is where roles are written:
--   * "privileged" permissions (latch:scope:*, latch:keys:*, latch:tenants:create and
--     latch:tenants:*) may be granted only by global roles, which only global admins write;
--   * a tenant admin may not assign a role that grants a privileged permission, directly or
--     through its parents;
--   * tenant roles may not take the built-in names, so a tenant cannot shadow them;
--   * the built-in roles cannot be changed or deleted (a deployment would lock itself out).
-- The engine adds its part (lib/policy/decide.c): a `*` resource type, in a permission or a
-- policy, never covers the `latch:` types, and only global policies apply to them.

ALTER TABLE roles ADD COLUMN builtin boolean NOT NULL DEFAULT false;

-- Permissions split at the last ':' (as the engine always split them), so the type may hold
-- ':' and the action may not: "latch:users:*" is any action on latch:users. NOT VALID: a row
-- written under 0011's pattern stays (the engine reads it as it always did).
ALTER TABLE roles DROP CONSTRAINT roles_permissions_check;
ALTER TABLE roles ADD CONSTRAINT roles_permissions_check
    CHECK (cardinality(permissions) <= 200
           AND latch_text_array_ok(permissions, '^(\*|(\*|[A-Za-z0-9_.:-]{1,64}):(\*|[A-Za-z0-9_.-]{1,64}))$')) NOT VALID;

-- Policies may be written for the latch: types too (global ones only: the API refuses a
-- tenant's), so a type may hold ':' as in permissions.
ALTER TABLE policies DROP CONSTRAINT policies_resource_type_check;
ALTER TABLE policies ADD CONSTRAINT policies_resource_type_check
    CHECK (resource_type ~ '^(\*|[A-Za-z0-9_.:-]{1,64})$');

INSERT INTO roles (tenant_id, name, description, permissions, parents, builtin) VALUES
    (NULL, 'admin', 'Built-in: administers its tenant (users, clients, roles, policies, settings).',
     ARRAY['latch:users:*', 'latch:clients:*', 'latch:roles:*', 'latch:policies:*', 'latch:tenants:read',
           'latch:tenants:write'],
     '{}', true),
    (NULL, 'global_admin', 'Built-in: administers every tenant, creates tenants, manages signing keys.',
     ARRAY['latch:scope:global', 'latch:tenants:*', 'latch:keys:*'], ARRAY['admin'], true);

CREATE FUNCTION latch_permission_privileged(p text) RETURNS boolean
    LANGUAGE sql IMMUTABLE
    SET search_path = pg_catalog
AS $$
    SELECT p ~ '^latch:(scope|keys):' OR p ~ '^latch:tenants:(\*|create)$'
$$;

-- True when any of roles p_names, seen from p_tenant, grants a privileged permission itself
-- or through its parents (resolved as the engine resolves them).
CREATE FUNCTION latch_roles_privileged(p_tenant uuid, p_names text[]) RETURNS boolean
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, public, pg_temp
AS $$
    WITH RECURSIVE walk (tenant, name, depth) AS (
        SELECT p_tenant, n, 1 FROM unnest(p_names) n
        UNION
        SELECT r.tenant_id, q, w.depth + 1
            FROM walk w CROSS JOIN LATERAL latch_role_resolve(w.tenant, w.name) r CROSS JOIN LATERAL unnest(r.parents) q
            WHERE w.depth < 64
    )
    SELECT EXISTS (SELECT 1 FROM walk w CROSS JOIN LATERAL latch_role_resolve(w.tenant, w.name) r
                       CROSS JOIN LATERAL unnest(r.permissions) p
                       WHERE latch_permission_privileged(p))
$$;

-- Why tenant role `p_name` may not have these permissions and parents, or NULL. Global roles
-- (p_tenant NULL) are written by global admins and may hold anything.
CREATE FUNCTION latch_role_escalation(p_tenant uuid, p_name text, p_permissions text[], p_parents text[])
    RETURNS text
    LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog, public, pg_temp
AS $$
DECLARE
    v_bad text;
BEGIN
    IF p_tenant IS NULL THEN
        RETURN NULL;
    END IF;
    IF p_name IN ('admin', 'global_admin') OR p_name LIKE 'latch%' THEN
        RETURN 'the name ' || p_name || ' is reserved for built-in roles';
    END IF;
    SELECT p INTO v_bad FROM unnest(coalesce(p_permissions, '{}')) p WHERE latch_permission_privileged(p) LIMIT 1;
    IF v_bad IS NOT NULL THEN
        RETURN 'the permission ' || v_bad || ' may be granted only by a global role';
    END IF;
    SELECT p INTO v_bad FROM unnest(coalesce(p_parents, '{}')) p
        WHERE latch_roles_privileged(p_tenant, ARRAY[p]) LIMIT 1;
    IF v_bad IS NOT NULL THEN
        RETURN 'the parent role ' || v_bad || ' grants permissions reserved to global roles';
    END IF;
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION latch_role_json(r roles) RETURNS jsonb
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, public, pg_temp
AS $$
    SELECT jsonb_build_object('id', r.id, 'tenant_id', r.tenant_id, 'name', r.name, 'description', r.description,
                              'permissions', to_jsonb(r.permissions), 'parents', to_jsonb(r.parents),
                              'builtin', r.builtin,
                              'created_at', latch_ts(r.created_at), 'updated_at', latch_ts(r.updated_at))
$$;

-- As in 0011, plus the escalation rules.
CREATE OR REPLACE FUNCTION latch_admin_role_create(p_scope uuid, p_tenant uuid, p_name text, p_description text,
                                                   p_permissions text[], p_parents text[], p_actor text, p_ip text,
                                                   p_request_id text) RETURNS TABLE (code text, body jsonb)
    LANGUAGE plpgsql VOLATILE
    SET search_path = pg_catalog, public, pg_temp
AS $$
DECLARE
    v_problem text;
    v_r roles;
BEGIN
    IF p_scope IS NOT NULL AND p_tenant IS DISTINCT FROM p_scope THEN
        RETURN QUERY SELECT 'forbidden'::text, NULL::jsonb;
        RETURN;
    END IF;
    PERFORM pg_advisory_xact_lock(7809651199140187411);
    IF EXISTS (SELECT 1 FROM roles r WHERE r.name = p_name AND r.tenant_id IS NOT DISTINCT FROM p_tenant) THEN
        RETURN QUERY SELECT 'conflict'::text, NULL::jsonb;
        RETURN;
    END IF;
    v_problem := coalesce(latch_role_escalation(p_tenant, p_name, p_permissions, p_parents),
                          latch_role_problem(p_tenant, p_name, coalesce(p_parents, '{}')));
    IF v_problem IS NOT NULL THEN
        RETURN QUERY SELECT 'invalid'::text, to_jsonb(v_problem);
        RETURN;
    END IF;
    INSERT INTO roles (tenant_id, name, description, permissions, parents)
    VALUES (p_tenant, p_name, coalesce(p_description, ''), coalesce(p_permissions, '{}'), coalesce(p_parents, '{}'))
    RETURNING * INTO v_r;
    PERFORM latch_audit_append(p_tenant, p_actor, 'role.created', v_r.id::text, p_ip, p_request_id, 'success',
                               jsonb_build_object('name', p_name, 'permissions', to_jsonb(v_r.permissions),
                                                  'parents', to_jsonb(v_r.parents)));
    RETURN QUERY SELECT 'ok'::text, latch_role_json(v_r);
END
$$;

-- As in 0011, plus the escalation rules; code builtin for the seeded roles.
CREATE OR REPLACE FUNCTION latch_admin_role_patch(p_scope uuid, p_id uuid, p_description text, p_permissions text[],
                                                  p_parents text[], p_actor text, p_ip text, p_request_id text)
    RETURNS TABLE (code text, body jsonb)
    LANGUAGE plpgsql VOLATILE
    SET search_path = pg_catalog, public, pg_temp
AS $$
DECLARE
    v_r roles;
    v_problem text;
BEGIN
    PERFORM pg_advisory_xact_lock(7809651199140187411);
    SELECT r.* INTO v_r FROM roles r WHERE r.id = p_id AND (p_scope IS NULL OR r.tenant_id = p_scope) FOR UPDATE;
    IF NOT FOUND THEN
        RETURN QUERY SELECT 'not_found'::text, NULL::jsonb;
        RETURN;
    END IF;
    IF v_r.builtin THEN
        RETURN QUERY SELECT 'builtin'::text, NULL::jsonb;
        RETURN;
    END IF;
    v_problem := latch_role_escalation(v_r.tenant_id, v_r.name, p_permissions, p_parents);
    IF v_problem IS NULL AND p_parents IS NOT NULL THEN
        v_problem := latch_role_problem(v_r.tenant_id, v_r.name, p_parents);
    END IF;
    IF v_problem IS NOT NULL THEN
        RETURN QUERY SELECT 'invalid'::text, to_jsonb(v_problem);
        RETURN;
    END IF;
    UPDATE roles r SET description = coalesce(p_description, r.description),
                       permissions = coalesce(p_permissions, r.permissions),
                       parents = coalesce(p_parents, r.parents), updated_at = now()
        WHERE r.id = p_id RETURNING r.* INTO v_r;
    PERFORM latch_audit_append(v_r.tenant_id, p_actor, 'role.updated', v_r.id::text, p_ip, p_request_id, 'success',
                               jsonb_build_object('name', v_r.name, 'permissions', to_jsonb(v_r.permissions),
                                                  'parents', to_jsonb(v_r.parents)));
    RETURN QUERY SELECT 'ok'::text, latch_role_json(v_r);
END
$$;

-- As in 0011; builtin for the seeded roles.
CREATE OR REPLACE FUNCTION latch_admin_role_delete(p_scope uuid, p_id uuid, p_actor text, p_ip text,
                                                   p_request_id text)
    RETURNS text
    LANGUAGE plpgsql VOLATILE
    SET search_path = pg_catalog, public, pg_temp
AS $$
DECLARE
    v_r roles;
BEGIN
    PERFORM pg_advisory_xact_lock(7809651199140187411);
    SELECT r.* INTO v_r FROM roles r WHERE r.id = p_id AND (p_scope IS NULL OR r.tenant_id = p_scope) FOR UPDATE;
    IF NOT FOUND THEN
        RETURN 'not_found';
    END IF;
    IF v_r.builtin THEN
        RETURN 'builtin';
    END IF;
    IF EXISTS (SELECT 1 FROM roles c WHERE v_r.name = ANY (c.parents) AND c.id <> v_r.id
                                       AND (c.tenant_id IS NOT DISTINCT FROM v_r.tenant_id
                                            OR (v_r.tenant_id IS NULL
                                                AND NOT EXISTS (SELECT 1 FROM roles o WHERE o.tenant_id = c.tenant_id
                                                                                       AND o.name = v_r.name)))) THEN
        RETURN 'in_use';
    END IF;
    DELETE FROM roles WHERE id = p_id;
    PERFORM latch_audit_append(v_r.tenant_id, p_actor, 'role.deleted', v_r.id::text, p_ip, p_request_id, 'success',
                               jsonb_build_object('name', v_r.name));
    RETURN 'ok';
END
$$;

-- As in 0011, with the built-in special cases replaced by the general rule: every role must
-- be visible from the subject's tenant, and a tenant admin (p_scope set) may not assign one
-- that grants a privileged permission. Clients never hold privileged roles: their tokens
-- carry no session and are refused by the admin API anyway.
CREATE OR REPLACE FUNCTION latch_admin_subject_roles_set(p_scope uuid, p_kind text, p_id text, p_roles text[],
                                                         p_actor text, p_ip text, p_request_id text)
    RETURNS TABLE (code text, body jsonb)
    LANGUAGE plpgsql VOLATILE
    SET search_path = pg_catalog, public, pg_temp
AS $$
DECLARE
    v_tenant uuid;
    v_user uuid;
    v_bad text;
BEGIN
    IF p_kind = 'user' THEN
        SELECT u.tenant_id, u.id INTO v_tenant, v_user FROM users u
            WHERE u.id::text = p_id AND (p_scope IS NULL OR u.tenant_id = p_scope) FOR UPDATE;
    ELSE
        SELECT c.tenant_id INTO v_tenant FROM oauth_clients c
            WHERE c.client_id = p_id AND (p_scope IS NULL OR c.tenant_id = p_scope) FOR UPDATE;
    END IF;
    IF v_tenant IS NULL THEN
        RETURN QUERY SELECT 'not_found'::text, NULL::jsonb;
        RETURN;
    END IF;
    SELECT r INTO v_bad FROM unnest(p_roles) r
        WHERE NOT EXISTS (SELECT 1 FROM latch_role_resolve(v_tenant, r))
           OR ((p_scope IS NOT NULL OR p_kind <> 'user') AND latch_roles_privileged(v_tenant, ARRAY[r]))
        LIMIT 1;
    IF v_bad IS NOT NULL THEN
        RETURN QUERY SELECT 'invalid'::text, to_jsonb('no role ' || v_bad || ' may be assigned here');
        RETURN;
    END IF;
    IF p_kind = 'user' THEN
        DELETE FROM user_roles WHERE user_id = v_user;
        INSERT INTO user_roles (tenant_id, user_id, role) SELECT v_tenant, v_user, r FROM unnest(p_roles) r;
    ELSE
        DELETE FROM client_roles WHERE client_id = p_id;
        INSERT INTO client_roles (tenant_id, client_id, role) SELECT v_tenant, p_id, r FROM unnest(p_roles) r;
    END IF;
    PERFORM latch_audit_append(v_tenant, p_actor, p_kind || '.roles_set', p_id, p_ip, p_request_id, 'success',
                               jsonb_build_object('roles', to_jsonb(p_roles)));
    RETURN QUERY SELECT 'ok'::text, latch_admin_subject_roles(p_scope, p_kind, p_id);
END
$$;

GRANT EXECUTE ON FUNCTION
    latch_permission_privileged(text),
    latch_roles_privileged(uuid, text[]),
    latch_role_escalation(uuid, text, text[], text[])
    TO latch_runtime;
