-- The audit log pages by (at, id): an instant often holds many rows (an availability
-- request audits every calendar it read), and paging by the instant alone skipped or
-- repeated them.
CREATE INDEX audit_log_at_id ON audit_log (tenant_id, at, id);
DROP INDEX audit_log_at;
