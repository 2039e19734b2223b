-- 0011_policy: what decisions read. RBAC roles (tenant-scoped or global) granting
-- `resource_type:action` permissions and inheriting other roles, their assignment to users
-- (user_roles, 0003) and to OAuth clients, and ABAC policy documents with their version
-- history.
--
-- latchd never queries these on a decision: every instance holds one immutable snapshot
-- of them in memory (lib/policy/engine.h), rebuilt when `latch_policy` is notified. The
-- triggers below notify on every change of a table the snapshot is built from (users
-- too: their attributes and status feed subject enrichment), once per statement; NOTIFY
-- folds duplicates within a transaction and delivers at commit, so a change is in every
-- instance's snapshot well within a second.
--
-- Documents are validated in C before they are written (the condition compiler lives
-- there); role cycles are refused here, under a lock that orders role writers.

-- OAuth clients may now hold `decide` (AuthZEN evaluations).
ALTER TABLE oauth_clients DROP CONSTRAINT oauth_clients_permissions_check;
ALTER TABLE oauth_clients ADD CONSTRAINT oauth_clients_permissions_check
    CHECK (latch_client_tokens_ok(permissions, ARRAY['introspect', 'revoke', 'revocations', 'decide']));

-- True when every element of p_items is non-NULL, matches p_pattern, and none repeats.
CREATE FUNCTION latch_text_array_ok(p_items text[], p_pattern text) RETURNS boolean
    LANGUAGE sql IMMUTABLE
    SET search_path = pg_catalog
AS $$
    SELECT NOT EXISTS (SELECT 1 FROM unnest(p_items) s WHERE s IS NULL OR s !~ p_pattern)
       AND cardinality(p_items) = (SELECT count(DISTINCT s) FROM unnest(p_items) s)
$$;

-- A role name is unique within its tenant; global roles (tenant_id NULL) within the
-- global scope. Permissions "type:action" with '*' on either side.
CREATE TABLE roles (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id uuid REFERENCES tenants (id) ON DELETE CASCADE,
    name text NOT NULL CHECK (name ~ '^[a-z][a-z0-9_:.-]{0,63}$'),
    description text NOT NULL DEFAULT '' CHECK (char_length(description) <= 500),
    permissions text[] NOT NULL DEFAULT '{}'
        CHECK (cardinality(permissions) <= 200
               AND latch_text_array_ok(permissions, '^(\*|(\*|[A-Za-z0-9_.-]{1,64}):(\*|[A-Za-z0-9_.:-]{1,64}))$')),
    parents text[] NOT NULL DEFAULT '{}'
        CHECK (cardinality(parents) <= 50 AND latch_text_array_ok(parents, '^[a-z][a-z0-9_:.-]{0,63}$')),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX roles_name ON roles (coalesce(tenant_id, '00000000-0000-0000-0000-000000000000'::uuid), name);

CREATE TABLE client_roles (
    tenant_id uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    client_id text NOT NULL REFERENCES oauth_clients (client_id) ON DELETE CASCADE,
    role text NOT NULL CHECK (role ~ '^[a-z][a-z0-9_:.-]{0,63}$'),
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (client_id, role)
);

-- The current version of each document; every version (the current one included) is kept
-- in policy_versions for listing and roll back.
CREATE TABLE policies (
    uid uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id uuid REFERENCES tenants (id) ON DELETE CASCADE,
    id text NOT NULL CHECK (id ~ '^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$'),
    resource_type text NOT NULL CHECK (resource_type ~ '^(\*|[A-Za-z0-9_.-]{1,64})$'),
    version integer NOT NULL CHECK (version >= 1),
    document jsonb NOT NULL CHECK (jsonb_typeof(document) = 'object'),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX policies_id ON policies (coalesce(tenant_id, '00000000-0000-0000-0000-000000000000'::uuid), id);

CREATE TABLE policy_versions (
    policy_uid uuid NOT NULL REFERENCES policies (uid) ON DELETE CASCADE,
    version integer NOT NULL,
    document jsonb NOT NULL,
    actor text,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (policy_uid, version)
);

GRANT SELECT, INSERT, UPDATE, DELETE ON roles, client_roles, policies, policy_versions TO latch_runtime;

CREATE FUNCTION latch_policy_changed() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog, public, pg_temp
AS $$
BEGIN
    PERFORM pg_notify('latch_policy', '');
    RETURN NULL;
END
$$;

CREATE TRIGGER roles_changed AFTER INSERT OR UPDATE OR DELETE ON roles
    FOR EACH STATEMENT EXECUTE FUNCTION latch_policy_changed();
CREATE TRIGGER client_roles_changed AFTER INSERT OR UPDATE OR DELETE ON client_roles
    FOR EACH STATEMENT EXECUTE FUNCTION latch_policy_changed();
CREATE TRIGGER policies_changed AFTER INSERT OR UPDATE OR DELETE ON policies
    FOR EACH STATEMENT EXECUTE FUNCTION latch_policy_changed();
CREATE TRIGGER user_roles_changed AFTER INSERT OR UPDATE OR DELETE ON user_roles
    FOR EACH STATEMENT EXECUTE FUNCTION latch_policy_changed();
CREATE TRIGGER users_changed AFTER INSERT OR UPDATE OF attributes, status OR DELETE ON users
    FOR EACH STATEMENT EXECUTE FUNCTION latch_policy_changed();

-- ---- the snapshot's rows (the loader reads them in one transaction) ------------------

-- Roles visible anywhere: tenant ones and global ones (tenant_id NULL).
CREATE FUNCTION latch_policy_roles()
    RETURNS TABLE (o_tenant_id uuid, o_name text, o_permissions text[], o_parents text[])
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, public, pg_temp
AS $$
    SELECT tenant_id, name, permissions, parents FROM roles ORDER BY tenant_id NULLS FIRST, name
$$;

CREATE FUNCTION latch_policy_documents()
    RETURNS TABLE (o_tenant_id uuid, o_id text, o_document jsonb)
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, public, pg_temp
AS $$
    SELECT tenant_id, id, document FROM policies ORDER BY tenant_id NULLS FIRST, id
$$;

-- Known subjects: active users (type "user", their id) and OAuth clients (type "client",
-- their client_id), with their direct roles and, for users, their attributes plus email.
CREATE FUNCTION latch_policy_subjects()
    RETURNS TABLE (o_tenant_id uuid, o_type text, o_id text, o_roles text[], o_attributes jsonb)
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, public, pg_temp
AS $$
    SELECT u.tenant_id, 'user', u.id::text,
           coalesce((SELECT array_agg(r.role ORDER BY r.role) FROM user_roles r WHERE r.user_id = u.id), '{}'),
           u.attributes || jsonb_build_object('email', u.email)
        FROM users u WHERE u.status = 'active'
    UNION ALL
    SELECT c.tenant_id, 'client', c.client_id,
           coalesce((SELECT array_agg(r.role ORDER BY r.role) FROM client_roles r WHERE r.client_id = c.client_id),
                    '{}'),
           '{}'::jsonb
        FROM oauth_clients c
$$;

GRANT EXECUTE ON FUNCTION
    latch_text_array_ok(text[], text),
    latch_policy_roles(),
    latch_policy_documents(),
    latch_policy_subjects()
    TO latch_runtime;

-- ---- administration: roles ----------------------------------------------------------
--
-- p_scope is the caller's tenant (NULL for a global admin), as in 0005: a tenant admin
-- reads its tenant's roles and the global ones and writes only its own; a global admin
-- reads and writes everything. Role writes take one advisory lock, so two concurrent
-- writes cannot close a cycle between them.

CREATE FUNCTION latch_role_json(r roles) RETURNS jsonb
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, public, pg_temp
AS $$
    SELECT jsonb_build_object('id', r.id, 'tenant_id', r.tenant_id, 'name', r.name, 'description', r.description,
                              'permissions', to_jsonb(r.permissions), 'parents', to_jsonb(r.parents),
                              'created_at', latch_ts(r.created_at), 'updated_at', latch_ts(r.updated_at))
$$;

-- The role a name means from `p_tenant`: the tenant's own, else the global one.
CREATE FUNCTION latch_role_resolve(p_tenant uuid, p_name text) RETURNS SETOF roles
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, public, pg_temp
AS $$
    SELECT r.* FROM roles r WHERE r.name = p_name AND (r.tenant_id = p_tenant OR r.tenant_id IS NULL)
        ORDER BY r.tenant_id NULLS LAST LIMIT 1
$$;

-- Why role `p_name` of `p_tenant` may not have `p_parents`: an unknown parent, or a cycle
-- (following parents, as the engine resolves them, leads back to the role). NULL when fine.
CREATE FUNCTION latch_role_problem(p_tenant uuid, p_name text, p_parents text[]) RETURNS text
    LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog, public, pg_temp
AS $$
DECLARE
    v_missing text;
    v_cycle boolean;
BEGIN
    SELECT p INTO v_missing FROM unnest(p_parents) p
        WHERE p <> p_name AND NOT EXISTS (SELECT 1 FROM latch_role_resolve(p_tenant, p)) LIMIT 1;
    IF v_missing IS NOT NULL THEN
        RETURN 'unknown parent role ' || v_missing;
    END IF;
    WITH RECURSIVE walk (tenant, name, depth) AS (
        SELECT p_tenant, p, 1 FROM unnest(p_parents) p
        UNION
        SELECT r.tenant_id, q, w.depth + 1
            FROM walk w CROSS JOIN LATERAL latch_role_resolve(w.tenant, w.name) r CROSS JOIN LATERAL unnest(r.parents) q
            WHERE w.depth < 64 AND NOT (w.name = p_name AND w.tenant IS NOT DISTINCT FROM p_tenant)
    )
    SELECT EXISTS (SELECT 1 FROM walk WHERE name = p_name AND tenant IS NOT DISTINCT FROM p_tenant) INTO v_cycle;
    IF v_cycle THEN
        RETURN 'the parents would make a cycle through ' || p_name;
    END IF;
    RETURN NULL;
END
$$;

-- POST /v1/admin/roles. code: ok, conflict (the name exists there), invalid (body: the
-- problem text), forbidden (a tenant admin asking for a global role or another tenant).
CREATE FUNCTION latch_admin_role_create(p_scope uuid, p_tenant uuid, p_name text, p_description text,
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
    v_problem := latch_role_problem(p_tenant, p_name, coalesce(p_parents, '{}'));
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

CREATE FUNCTION latch_admin_role_get(p_scope uuid, p_id uuid) RETURNS jsonb
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, public, pg_temp
AS $$
    SELECT latch_role_json(r) FROM roles r
        WHERE r.id = p_id AND (p_scope IS NULL OR r.tenant_id = p_scope OR r.tenant_id IS NULL)
$$;

-- Every role the caller can see (global ones first), as {"items": [...]}: roles are few.
CREATE FUNCTION latch_admin_role_list(p_scope uuid) RETURNS jsonb
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, public, pg_temp
AS $$
    SELECT jsonb_build_object('items', coalesce(jsonb_agg(latch_role_json(r) ORDER BY r.tenant_id NULLS FIRST, r.name),
                                                '[]'::jsonb),
                              'next_cursor', NULL)
        FROM roles r WHERE p_scope IS NULL OR r.tenant_id = p_scope OR r.tenant_id IS NULL
$$;

-- PATCH /v1/admin/roles/{id}: description, permissions, parents (NULL: unchanged). code:
-- ok, not_found (or not writable by the caller), invalid.
CREATE FUNCTION latch_admin_role_patch(p_scope uuid, p_id uuid, p_description text, p_permissions text[],
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
    IF p_parents IS NOT NULL THEN
        v_problem := latch_role_problem(v_r.tenant_id, v_r.name, p_parents);
        IF v_problem IS NOT NULL THEN
            RETURN QUERY SELECT 'invalid'::text, to_jsonb(v_problem);
            RETURN;
        END IF;
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

-- DELETE /v1/admin/roles/{id}: ok, not_found, in_use (another role inherits it: remove
-- that edge first). Assignments of the name stay (they grant nothing without the role).
CREATE FUNCTION latch_admin_role_delete(p_scope uuid, p_id uuid, p_actor text, p_ip text, p_request_id text)
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

-- The direct roles of a user or client in the caller's scope: {"roles": [...]}, NULL when
-- no such subject there. p_kind: user (p_id a user id) or client (p_id a client_id).
CREATE FUNCTION latch_admin_subject_roles(p_scope uuid, p_kind text, p_id text) RETURNS jsonb
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, public, pg_temp
AS $$
    SELECT CASE
        WHEN p_kind = 'user' THEN
            (SELECT jsonb_build_object('roles', coalesce((SELECT jsonb_agg(r.role ORDER BY r.role) FROM user_roles r
                                                          WHERE r.user_id = u.id), '[]'::jsonb))
                FROM users u WHERE u.id::text = p_id AND (p_scope IS NULL OR u.tenant_id = p_scope))
        ELSE
            (SELECT jsonb_build_object('roles', coalesce((SELECT jsonb_agg(r.role ORDER BY r.role) FROM client_roles r
                                                          WHERE r.client_id = c.client_id), '[]'::jsonb))
                FROM oauth_clients c WHERE c.client_id = p_id AND (p_scope IS NULL OR c.tenant_id = p_scope))
        END
$$;

-- PUT /v1/admin/{users|clients}/{id}/roles: replaces the subject's direct roles. Each
-- must be a role visible from the subject's tenant, or the built-in `admin`; the built-in
-- `global_admin` only when the caller is a global admin (p_scope NULL) and only for users.
-- code: ok (body {"roles"}), not_found, invalid (body: the problem text).
CREATE FUNCTION latch_admin_subject_roles_set(p_scope uuid, p_kind text, p_id text, p_roles text[], p_actor text,
                                              p_ip text, p_request_id text) RETURNS TABLE (code text, body jsonb)
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
        WHERE NOT (r = 'admin' OR (r = 'global_admin' AND p_scope IS NULL AND p_kind = 'user')
                   OR EXISTS (SELECT 1 FROM latch_role_resolve(v_tenant, r)))
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

-- ---- administration: policies -------------------------------------------------------
--
-- A policy is named by (tenant, id): a tenant admin's are its tenant's; a global admin
-- names the tenant with p_tenant (NULL: a global policy). Documents arrive validated.

CREATE FUNCTION latch_policy_json(p policies) RETURNS jsonb
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, public, pg_temp
AS $$
    SELECT jsonb_build_object('id', p.id, 'tenant_id', p.tenant_id, 'resource_type', p.resource_type,
                              'version', p.version, 'document', p.document,
                              'created_at', latch_ts(p.created_at), 'updated_at', latch_ts(p.updated_at))
$$;

-- PUT /v1/admin/policies/{id}: creates version 1 or the next version. code: created, ok,
-- forbidden (a tenant admin naming another tenant or a global policy).
CREATE FUNCTION latch_admin_policy_put(p_scope uuid, p_tenant uuid, p_id text, p_resource_type text,
                                       p_document jsonb, p_actor text, p_ip text, p_request_id text)
    RETURNS TABLE (code text, body jsonb)
    LANGUAGE plpgsql VOLATILE
    SET search_path = pg_catalog, public, pg_temp
AS $$
DECLARE
    v_p policies;
    v_created boolean := false;
BEGIN
    IF p_scope IS NOT NULL AND p_tenant IS DISTINCT FROM p_scope THEN
        RETURN QUERY SELECT 'forbidden'::text, NULL::jsonb;
        RETURN;
    END IF;
    SELECT p.* INTO v_p FROM policies p WHERE p.id = p_id AND p.tenant_id IS NOT DISTINCT FROM p_tenant FOR UPDATE;
    IF NOT FOUND THEN
        INSERT INTO policies (tenant_id, id, resource_type, version, document)
        VALUES (p_tenant, p_id, p_resource_type, 1, p_document)
        ON CONFLICT DO NOTHING
        RETURNING * INTO v_p;
        IF NOT FOUND THEN -- created meanwhile: take the update path
            SELECT p.* INTO v_p FROM policies p WHERE p.id = p_id AND p.tenant_id IS NOT DISTINCT FROM p_tenant
                FOR UPDATE;
        ELSE
            v_created := true;
        END IF;
    END IF;
    IF NOT v_created THEN
        UPDATE policies SET resource_type = p_resource_type, version = version + 1, document = p_document,
                            updated_at = now()
            WHERE uid = v_p.uid RETURNING * INTO v_p;
    END IF;
    INSERT INTO policy_versions (policy_uid, version, document, actor) VALUES (v_p.uid, v_p.version, p_document, p_actor);
    PERFORM latch_audit_append(p_tenant, p_actor, 'policy.' || CASE WHEN v_created THEN 'created' ELSE 'updated' END,
                               p_id, p_ip, p_request_id, 'success', jsonb_build_object('version', v_p.version));
    RETURN QUERY SELECT CASE WHEN v_created THEN 'created' ELSE 'ok' END, latch_policy_json(v_p);
END
$$;

CREATE FUNCTION latch_admin_policy_get(p_scope uuid, p_tenant uuid, p_id text) RETURNS jsonb
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, public, pg_temp
AS $$
    SELECT latch_policy_json(p) FROM policies p
        WHERE p.id = p_id AND p.tenant_id IS NOT DISTINCT FROM coalesce(p_scope, p_tenant)
$$;

-- The caller's policies: a tenant admin's tenant ones and the global ones; a global admin
-- every one (or one tenant's with p_tenant).
CREATE FUNCTION latch_admin_policy_list(p_scope uuid, p_tenant uuid) RETURNS jsonb
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, public, pg_temp
AS $$
    SELECT jsonb_build_object('items', coalesce(jsonb_agg(latch_policy_json(p) ORDER BY p.tenant_id NULLS FIRST, p.id),
                                                '[]'::jsonb),
                              'next_cursor', NULL)
        FROM policies p
        WHERE (p_scope IS NOT NULL AND (p.tenant_id = p_scope OR p.tenant_id IS NULL))
           OR (p_scope IS NULL AND (p_tenant IS NULL OR p.tenant_id = p_tenant))
$$;

CREATE FUNCTION latch_admin_policy_versions(p_scope uuid, p_tenant uuid, p_id text) RETURNS jsonb
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, public, pg_temp
AS $$
    SELECT jsonb_build_object('items', coalesce((SELECT jsonb_agg(jsonb_build_object(
                                                        'version', v.version, 'document', v.document,
                                                        'actor', v.actor, 'created_at', latch_ts(v.created_at),
                                                        'current', v.version = p.version) ORDER BY v.version DESC)
                                                 FROM policy_versions v WHERE v.policy_uid = p.uid), '[]'::jsonb))
        FROM policies p WHERE p.id = p_id AND p.tenant_id IS NOT DISTINCT FROM coalesce(p_scope, p_tenant)
$$;

-- POST /v1/admin/policies/{id}/rollback: the document of an earlier version becomes a new
-- version (history is never rewritten). code: ok, not_found (policy or version).
CREATE FUNCTION latch_admin_policy_rollback(p_scope uuid, p_tenant uuid, p_id text, p_version integer,
                                            p_actor text, p_ip text, p_request_id text)
    RETURNS TABLE (code text, body jsonb)
    LANGUAGE plpgsql VOLATILE
    SET search_path = pg_catalog, public, pg_temp
AS $$
DECLARE
    v_p policies;
    v_doc jsonb;
BEGIN
    SELECT p.* INTO v_p FROM policies p
        WHERE p.id = p_id AND p.tenant_id IS NOT DISTINCT FROM coalesce(p_scope, p_tenant) FOR UPDATE;
    IF NOT FOUND THEN
        RETURN QUERY SELECT 'not_found'::text, NULL::jsonb;
        RETURN;
    END IF;
    SELECT v.document INTO v_doc FROM policy_versions v WHERE v.policy_uid = v_p.uid AND v.version = p_version;
    IF NOT FOUND THEN
        RETURN QUERY SELECT 'not_found'::text, NULL::jsonb;
        RETURN;
    END IF;
    UPDATE policies SET version = version + 1, document = v_doc,
                        resource_type = coalesce(v_doc ->> 'resource_type', resource_type), updated_at = now()
        WHERE uid = v_p.uid RETURNING * INTO v_p;
    INSERT INTO policy_versions (policy_uid, version, document, actor) VALUES (v_p.uid, v_p.version, v_doc, p_actor);
    PERFORM latch_audit_append(v_p.tenant_id, p_actor, 'policy.rolled_back', p_id, p_ip, p_request_id, 'success',
                               jsonb_build_object('to_version', p_version, 'version', v_p.version));
    RETURN QUERY SELECT 'ok'::text, latch_policy_json(v_p);
END
$$;

CREATE FUNCTION latch_admin_policy_delete(p_scope uuid, p_tenant uuid, p_id text, p_actor text, p_ip text,
                                          p_request_id text) RETURNS boolean
    LANGUAGE plpgsql VOLATILE
    SET search_path = pg_catalog, public, pg_temp
AS $$
DECLARE
    v_p policies;
BEGIN
    DELETE FROM policies p WHERE p.id = p_id AND p.tenant_id IS NOT DISTINCT FROM coalesce(p_scope, p_tenant)
        RETURNING p.* INTO v_p;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    PERFORM latch_audit_append(v_p.tenant_id, p_actor, 'policy.deleted', p_id, p_ip, p_request_id, 'success',
                               jsonb_build_object('version', v_p.version));
    RETURN true;
END
$$;

GRANT EXECUTE ON FUNCTION
    latch_role_json(roles),
    latch_role_resolve(uuid, text),
    latch_role_problem(uuid, text, text[]),
    latch_admin_role_create(uuid, uuid, text, text, text[], text[], text, text, text),
    latch_admin_role_get(uuid, uuid),
    latch_admin_role_list(uuid),
    latch_admin_role_patch(uuid, uuid, text, text[], text[], text, text, text),
    latch_admin_role_delete(uuid, uuid, text, text, text),
    latch_admin_subject_roles(uuid, text, text),
    latch_admin_subject_roles_set(uuid, text, text, text[], text, text, text),
    latch_policy_json(policies),
    latch_admin_policy_put(uuid, uuid, text, text, jsonb, text, text, text),
    latch_admin_policy_get(uuid, uuid, text),
    latch_admin_policy_list(uuid, uuid),
    latch_admin_policy_versions(uuid, uuid, text),
    latch_admin_policy_rollback(uuid, uuid, text, integer, text, text, text),
    latch_admin_policy_delete(uuid, uuid, text, text, text, text)
    TO latch_runtime;
