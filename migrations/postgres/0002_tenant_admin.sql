-- Tenant administration (issue 8): tenant settings, user roles and deactivation.

ALTER TABLE tenants ADD COLUMN settings jsonb NOT NULL DEFAULT '{}'::jsonb;

ALTER TABLE users ADD COLUMN role text NOT NULL DEFAULT 'member'
    CHECK (role IN ('member', 'tenant_admin'));
ALTER TABLE users ADD COLUMN deactivated_at timestamptz;

-- The periodic grant check walks a tenant's active grants by id.
CREATE INDEX grants_active ON grants (tenant_id, id) WHERE state = 'active';
