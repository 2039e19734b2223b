-- roles.sql: the database roles Latch expects. Run once per PostgreSQL cluster by a
-- superuser (or a role with CREATEROLE), before the first `latchctl migrate`. Idempotent:
-- running it again changes nothing.
--
--   latch_owner    LOGIN. Owns the database and every object in it; runs the migrations
--                  (config key database_owner_url). latchd never uses it at run time.
--   latch_runtime  NOLOGIN group role. Each migration grants it exactly what latchd needs.
--   latch_app      LOGIN, member of latch_runtime: the user latchd connects as
--                  (config key database_url).
--
-- Typical setup (unix socket, peer/trust auth on a dev box):
--
--   psql -v ON_ERROR_STOP=1 -U postgres -f sql/roles.sql
--   psql -v ON_ERROR_STOP=1 -U postgres -c 'CREATE DATABASE latch OWNER latch_owner'
--   LATCH_DATABASE_OWNER_URL='postgresql:///latch?user=latch_owner' latchctl migrate
--   LATCH_DATABASE_URL='postgresql:///latch?user=latch_app' latchd
--
-- Passwords are deliberately not set here (this file is in version control). Where the
-- server wants passwords, the operator adds them afterwards, e.g. from psql:
--
--   \password latch_owner
--   \password latch_app
--
-- (\password sends a SCRAM verifier, so the clear text never reaches the server log.)

DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'latch_owner') THEN
        CREATE ROLE latch_owner LOGIN;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'latch_runtime') THEN
        CREATE ROLE latch_runtime NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'latch_app') THEN
        CREATE ROLE latch_app LOGIN;
    END IF;
    -- Also repairs a latch_app created earlier by hand.
    IF NOT pg_catalog.pg_has_role('latch_app', 'latch_runtime', 'MEMBER') THEN
        GRANT latch_runtime TO latch_app;
    END IF;
END
$$;
