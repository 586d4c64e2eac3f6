-- Address lookup by fragment ("jane@", "acme.co", a misspelt name) through pg_trgm, which is a
-- trusted extension the database owner may create. Where it is not available (a managed server
-- that withholds it) the schema is complete without these indexes and lookups fall back to
-- scans, so its absence is not an error.
DO $$
BEGIN
	CREATE EXTENSION IF NOT EXISTS pg_trgm;
	CREATE INDEX contacts_email_trgm ON contacts USING gin (lower(email) gin_trgm_ops);
	CREATE INDEX contacts_name_trgm ON contacts USING gin (lower(name) gin_trgm_ops);
	CREATE INDEX messages_from_trgm ON messages USING gin (lower(from_email) gin_trgm_ops);
EXCEPTION WHEN insufficient_privilege OR undefined_file OR feature_not_supported THEN
	RAISE NOTICE 'pg_trgm not available: address lookup will scan';
END $$;
