-- Tenant administration (issue 8): tenant settings, user roles and deactivation.

ALTER TABLE tenants ADD COLUMN settings TEXT NOT NULL DEFAULT '{}';

ALTER TABLE users ADD COLUMN role TEXT NOT NULL DEFAULT 'member'
    CHECK (role IN ('member', 'tenant_admin'));
ALTER TABLE users ADD COLUMN deactivated_at INTEGER;

-- The periodic grant check walks a tenant's active grants by id.
CREATE INDEX grants_active ON grants (tenant_id, id) WHERE state = 'active';
