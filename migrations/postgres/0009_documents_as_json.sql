-- The JSON documents read on every scheduling request are kept as `json` (their text)
-- rather than `jsonb`. The store only writes and reads them whole, never queries into
-- them, and jsonb is rebuilt into text on every read: an availability request reads 45
-- users' working hours and 50 grants' scopes, and that rebuilding was most of the cost
-- of those two statements (pgbench, 45 rows of working hours: 0.20 ms as jsonb, 0.07 ms
-- as json). The documents written before are kept as jsonb printed them.
ALTER TABLE users ALTER COLUMN working_hours TYPE json USING working_hours::json;
ALTER TABLE grants ALTER COLUMN scopes TYPE json USING scopes::json;
ALTER TABLE tenants ALTER COLUMN settings DROP DEFAULT;
ALTER TABLE tenants ALTER COLUMN settings TYPE json USING settings::json;
ALTER TABLE tenants ALTER COLUMN settings SET DEFAULT '{}'::json;
