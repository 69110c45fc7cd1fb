-- One row for the audit entries appended together that share their tenant, actor,
-- action, instant and source, instead of one row each. An availability request audits
-- every calendar it read: 50 rows of one statement, each with two index entries and a
-- foreign-key check that share-locked the one tenant row (a MultiXact when requests
-- overlap), were two thirds of PostgreSQL's time under the load bench. Each entry keeps
-- its id and subject, paired by position in `ids` and `subjects`; the store unnests
-- them on read, in the same (at, id) order. Ids are UUIDv7 made by the app: no index
-- keeps them unique any more.
CREATE TABLE audit_log_grouped (
    tenant_id  uuid        NOT NULL REFERENCES tenants (tenant_id),
    at         timestamptz NOT NULL,
    actor_kind text        NOT NULL CHECK (actor_kind IN ('user', 'admin', 'guest', 'system')),
    actor_id   uuid,
    action     text        NOT NULL,
    source     text,
    ids        uuid[]      NOT NULL,
    subjects   text[]      NOT NULL,
    CONSTRAINT audit_log_entries_paired CHECK (
        cardinality(ids) > 0 AND cardinality(ids) = cardinality(subjects)
        AND array_ndims(ids) = 1 AND array_ndims(subjects) = 1
    )
);

INSERT INTO audit_log_grouped (tenant_id, at, actor_kind, actor_id, action, source, ids, subjects)
SELECT tenant_id, at, actor_kind, actor_id, action, source,
       array_agg(id ORDER BY id), array_agg(subject ORDER BY id)
FROM audit_log
GROUP BY tenant_id, at, actor_kind, actor_id, action, source;

-- Its append-only triggers go with it; the new table gets the same.
DROP TABLE audit_log;
ALTER TABLE audit_log_grouped RENAME TO audit_log;
CREATE INDEX audit_log_at ON audit_log (tenant_id, at);
-- A row of 50 reads is about 3 kB: kept whole in its page rather than compressed and
-- moved to the TOAST table (the default past 2 kB), which cost more than the insert.
ALTER TABLE audit_log SET (toast_tuple_target = 8160);
CREATE TRIGGER audit_log_append_only
    BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_refuse_change();
CREATE TRIGGER audit_log_no_truncate
    BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_refuse_change();
