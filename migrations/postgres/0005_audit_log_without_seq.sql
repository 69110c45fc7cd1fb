-- `seq` ordered the audit rows of one instant until 0004; nothing reads it since, and
-- its identity sequence took a step for every audited row (an availability request
-- audits one row per calendar read). The rows keep their (at, id) order.
ALTER TABLE audit_log DROP COLUMN seq;
