-- 0003_identity: tenants, users, credentials, sessions, refresh tokens, signing keys,
-- one-time tokens, the outbox and the login-attempt counters.
--
-- Ids are UUIDs (gen_random_uuid) so they can be shown to clients without revealing
-- counts. Every row that belongs to a tenant carries tenant_id, and child tables reference
-- (tenant_id, id) pairs so a row can never point into another tenant. Token-like secrets
-- are stored only as SHA-256 digests (bytea, 32 bytes).

CREATE TABLE tenants (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name text NOT NULL UNIQUE CHECK (name ~ '^[a-z0-9][a-z0-9-]{0,62}$'),
    display_name text NOT NULL DEFAULT '' CHECK (length(display_name) <= 200),
    settings jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(settings) = 'object'),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- email keeps what was given (trimmed); email_norm is lower(btrim(email)) and is what
-- uniqueness and login compare.
CREATE TABLE users (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    email text NOT NULL CHECK (length(email) BETWEEN 3 AND 320),
    email_norm text NOT NULL CHECK (email_norm = lower(btrim(email))),
    status text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'disabled', 'locked')),
    attributes jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(attributes) = 'object'),
    password_reset_required boolean NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, email_norm),
    UNIQUE (tenant_id, id)
);

-- Built-in roles until the policy issue: 'admin' (administers its tenant) and
-- 'global_admin' (administers every tenant).
CREATE TABLE user_roles (
    tenant_id uuid NOT NULL,
    user_id uuid NOT NULL,
    role text NOT NULL CHECK (role ~ '^[a-z][a-z0-9_:.-]{0,63}$'),
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, role),
    FOREIGN KEY (tenant_id, user_id) REFERENCES users (tenant_id, id) ON DELETE CASCADE
);

CREATE TABLE credentials (
    user_id uuid PRIMARY KEY,
    tenant_id uuid NOT NULL,
    phc text NOT NULL CHECK (phc LIKE '$argon2%'),
    changed_at timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (tenant_id, user_id) REFERENCES users (tenant_id, id) ON DELETE CASCADE
);

CREATE TABLE sessions (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id uuid NOT NULL,
    user_id uuid NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    last_seen_at timestamptz NOT NULL DEFAULT now(),
    idle_expires_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL, -- absolute lifetime
    ip inet,
    user_agent text CHECK (length(user_agent) <= 512),
    amr text[] NOT NULL,
    acr text,
    auth_time timestamptz NOT NULL,
    revoked_at timestamptz,
    revoked_reason text,
    FOREIGN KEY (tenant_id, user_id) REFERENCES users (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX sessions_user_live ON sessions (user_id) WHERE revoked_at IS NULL;

-- One family per session: parent_id links each rotation to the token it replaced.
CREATE TABLE refresh_tokens (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    token_hash bytea NOT NULL UNIQUE CHECK (length(token_hash) = 32),
    session_id uuid NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    tenant_id uuid NOT NULL,
    parent_id uuid REFERENCES refresh_tokens (id) ON DELETE SET NULL,
    issued_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    used_at timestamptz,
    revoked_at timestamptz
);
CREATE INDEX refresh_tokens_session ON refresh_tokens (session_id);

-- Private halves sealed with AES-256-GCM under the master key (first byte: key version).
-- At most one active key; retired keys stay published until their tokens have expired.
CREATE TABLE signing_keys (
    kid text PRIMARY KEY CHECK (kid ~ '^[A-Za-z0-9_-]{8,64}$'),
    alg text NOT NULL CHECK (alg IN ('ES256', 'EdDSA')),
    public_jwk jsonb NOT NULL,
    private_sealed bytea NOT NULL,
    status text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'retired')),
    created_at timestamptz NOT NULL DEFAULT now(),
    retired_at timestamptz
);
CREATE UNIQUE INDEX signing_keys_one_active ON signing_keys ((true)) WHERE status = 'active';

CREATE TABLE one_time_tokens (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id uuid NOT NULL,
    user_id uuid NOT NULL,
    purpose text NOT NULL CHECK (purpose IN ('password_reset')),
    token_hash bytea NOT NULL UNIQUE CHECK (length(token_hash) = 32),
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    used_at timestamptz,
    FOREIGN KEY (tenant_id, user_id) REFERENCES users (tenant_id, id) ON DELETE CASCADE
);

-- Messages for other systems (the mailer): written in the same transaction as the change
-- that causes them, consumed with SELECT ... FOR UPDATE SKIP LOCKED (README, "Outbox").
CREATE TABLE outbox (
    id bigserial PRIMARY KEY,
    tenant_id uuid REFERENCES tenants (id) ON DELETE CASCADE,
    topic text NOT NULL,
    payload jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    processed_at timestamptz,
    attempts integer NOT NULL DEFAULT 0
);
CREATE INDEX outbox_pending ON outbox (id) WHERE processed_at IS NULL;

-- Login failure counters, kept for any (tenant, email) whether or not such a user exists,
-- so their behaviour reveals nothing. scope: 'source' (tenant, email, ip), 'account'
-- (tenant, email; ip = ''), 'ip' (ip only; tenant = email = ''). tenant is the tenant
-- name as given at login (an unknown tenant behaves like an unknown email).
CREATE TABLE login_attempts (
    scope text NOT NULL CHECK (scope IN ('source', 'account', 'ip')),
    tenant text NOT NULL,
    email_norm text NOT NULL,
    ip text NOT NULL,
    failures integer NOT NULL DEFAULT 0,
    window_start timestamptz NOT NULL DEFAULT now(),
    last_attempt_at timestamptz NOT NULL DEFAULT now(),
    locked_until timestamptz,
    PRIMARY KEY (scope, tenant, email_norm, ip)
);

GRANT SELECT, INSERT, UPDATE, DELETE ON tenants, users, user_roles, credentials, sessions, refresh_tokens,
    one_time_tokens, outbox, login_attempts TO latch_runtime;
-- Keys are created and retired, never deleted by the service.
GRANT SELECT, INSERT, UPDATE ON signing_keys TO latch_runtime;
GRANT USAGE ON SEQUENCE outbox_id_seq TO latch_runtime;

-- Timestamps on the wire: RFC 3339 in UTC, second precision.
CREATE FUNCTION latch_ts(t timestamptz) RETURNS text
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    AS $$ SELECT to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') $$;

-- The one JSON shape of a user on every surface (/v1/me, /v1/admin/users): never a
-- credential. roles sorted for stable output.
CREATE FUNCTION latch_user_json(u users) RETURNS jsonb
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
        'created_at', latch_ts(u.created_at),
        'updated_at', latch_ts(u.updated_at))
    $$;

GRANT EXECUTE ON FUNCTION latch_ts(timestamptz), latch_user_json(users) TO latch_runtime;
