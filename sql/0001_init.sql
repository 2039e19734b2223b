-- 0001_init: the privilege model every later migration builds on.
--
-- Runs as the owner role (the database owner, see roles.sql), inside the runner's
-- transaction, after the runner created schema_migrations. The owner owns every object;
-- latchd connects as a member of latch_runtime, which gets only what a migration grants it
-- explicitly, next to the CREATE statement that needs it.

-- Only the owner and the runtime may use the schema. PostgreSQL 15 already keeps CREATE
-- from PUBLIC; this also takes USAGE away from roles that have no business here.
REVOKE ALL ON SCHEMA public FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO latch_runtime;

-- Tables and sequences grant nothing to others by default; functions would grant EXECUTE
-- to PUBLIC. Make every grant a deliberate line in a migration.
ALTER DEFAULT PRIVILEGES REVOKE EXECUTE ON FUNCTIONS FROM PUBLIC;

-- latchd may read the migration history (to check the schema it runs against), never
-- change it.
REVOKE ALL ON TABLE schema_migrations FROM PUBLIC;
GRANT SELECT ON TABLE schema_migrations TO latch_runtime;
