-- Convene's schema on PostgreSQL (production). See docs/storage.md.
--
-- Every table carries tenant_id, every primary key starts with it, and foreign keys tie
-- children to parents within one tenant, so the schema can be distributed by tenant.
-- Constraint names carry their columns: the store reads them to say what is taken.

CREATE TABLE tenants (
    tenant_id  uuid        NOT NULL,
    key        text        NOT NULL,
    key_kind   text        NOT NULL,
    key_value  text        NOT NULL,
    name       text        NOT NULL,
    created_at timestamptz NOT NULL,
    CONSTRAINT tenants_pkey PRIMARY KEY (tenant_id),
    CONSTRAINT tenants_key_unique UNIQUE (key)
);

CREATE TABLE users (
    tenant_id        uuid        NOT NULL REFERENCES tenants (tenant_id),
    id               uuid        NOT NULL,
    name             text        NOT NULL,
    email            text        NOT NULL,
    email_lower      text        NOT NULL,
    zone             text        NOT NULL,
    working_hours    jsonb       NOT NULL,
    buffer_before_us bigint      NOT NULL,
    buffer_after_us  bigint      NOT NULL,
    created_at       timestamptz NOT NULL,
    CONSTRAINT users_pkey PRIMARY KEY (tenant_id, id),
    CONSTRAINT users_tenant_id_email_lower_key UNIQUE (tenant_id, email_lower)
);

-- user_id has no foreign key: an erased user's grants stay (erased) after the user row
-- is gone. The store checks the user when saving a live grant.
CREATE TABLE grants (
    tenant_id        uuid        NOT NULL REFERENCES tenants (tenant_id),
    id               uuid        NOT NULL,
    user_id          uuid        NOT NULL,
    provider         text        NOT NULL,
    account          text        NOT NULL,
    scopes           jsonb       NOT NULL,
    state            text        NOT NULL CHECK (state IN ('active', 'revoked', 'erased')),
    revoked_by       text,
    revoked_by_admin uuid,
    changed_at       timestamptz,
    granted_at       timestamptz NOT NULL,
    CONSTRAINT grants_pkey PRIMARY KEY (tenant_id, id)
);
-- Erased grants have forgotten their account: they clash with nothing.
CREATE UNIQUE INDEX grants_live_account_key
    ON grants (tenant_id, user_id, provider, account) WHERE state <> 'erased';
CREATE INDEX grants_user ON grants (tenant_id, user_id);

CREATE TABLE credentials (
    tenant_id  uuid        NOT NULL,
    grant_id   uuid        NOT NULL,
    key_id     text        NOT NULL,
    ciphertext bytea       NOT NULL,
    -- Operational metadata from the database's clock (the port passes no time here).
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT credentials_pkey PRIMARY KEY (tenant_id, grant_id),
    FOREIGN KEY (tenant_id, grant_id) REFERENCES grants (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX credentials_key_id ON credentials (key_id);

CREATE TABLE meetings (
    tenant_id       uuid        NOT NULL REFERENCES tenants (tenant_id),
    id              uuid        NOT NULL,
    organizer_id    uuid        NOT NULL,
    title           text        NOT NULL,
    duration_min    bigint      NOT NULL,
    window_start    timestamptz NOT NULL,
    window_end      timestamptz NOT NULL,
    state           text        NOT NULL
        CHECK (state IN ('polling', 'booked', 'cancelled', 'expired', 'no_common_slot')),
    deadline        timestamptz,
    booked_proposal uuid,
    booked_start    timestamptz,
    booked_end      timestamptz,
    state_at        timestamptz,
    round           bigint      NOT NULL,
    sequence        bigint      NOT NULL,
    event           jsonb,
    created_at      timestamptz NOT NULL,
    version         bigint      NOT NULL,
    CONSTRAINT meetings_pkey PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, organizer_id) REFERENCES users (tenant_id, id)
);
CREATE INDEX meetings_organizer ON meetings (tenant_id, organizer_id, id);
CREATE INDEX meetings_polls_due ON meetings (tenant_id, deadline) WHERE state = 'polling';

CREATE TABLE participants (
    tenant_id   uuid   NOT NULL,
    meeting_id  uuid   NOT NULL,
    id          uuid   NOT NULL,
    position    bigint NOT NULL,
    name        text   NOT NULL,
    email       text,
    email_lower text,
    kind        text   NOT NULL CHECK (kind IN ('connected', 'email', 'link', 'erased')),
    user_id     uuid,
    attendance  text   NOT NULL CHECK (attendance IN ('required', 'optional')),
    zone        text,
    CONSTRAINT participants_pkey PRIMARY KEY (tenant_id, meeting_id, id),
    FOREIGN KEY (tenant_id, meeting_id) REFERENCES meetings (tenant_id, id) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, user_id) REFERENCES users (tenant_id, id)
);
CREATE INDEX participants_user ON participants (tenant_id, user_id) WHERE user_id IS NOT NULL;
-- Erasure looks a person up by email across tenants.
CREATE INDEX participants_email_lower ON participants (email_lower) WHERE email_lower IS NOT NULL;

CREATE TABLE proposals (
    tenant_id  uuid        NOT NULL,
    meeting_id uuid        NOT NULL,
    id         uuid        NOT NULL,
    position   bigint      NOT NULL,
    slot_start timestamptz NOT NULL,
    slot_end   timestamptz NOT NULL,
    CONSTRAINT proposals_pkey PRIMARY KEY (tenant_id, meeting_id, id),
    FOREIGN KEY (tenant_id, meeting_id) REFERENCES meetings (tenant_id, id) ON DELETE CASCADE
);

CREATE TABLE votes (
    tenant_id      uuid        NOT NULL,
    meeting_id     uuid        NOT NULL,
    participant_id uuid        NOT NULL,
    proposal_id    uuid        NOT NULL,
    position       bigint      NOT NULL,
    answer         text        NOT NULL CHECK (answer IN ('yes', 'no')),
    at             timestamptz NOT NULL,
    CONSTRAINT votes_pkey PRIMARY KEY (tenant_id, meeting_id, participant_id, proposal_id),
    FOREIGN KEY (tenant_id, meeting_id, participant_id)
        REFERENCES participants (tenant_id, meeting_id, id) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, meeting_id, proposal_id)
        REFERENCES proposals (tenant_id, meeting_id, id) ON DELETE CASCADE
);
CREATE INDEX votes_proposal ON votes (tenant_id, meeting_id, proposal_id);

CREATE TABLE sessions (
    tenant_id    uuid        NOT NULL,
    id           uuid        NOT NULL,
    user_id      uuid        NOT NULL,
    token_hash   bytea       NOT NULL,
    created_at   timestamptz NOT NULL,
    last_seen_at timestamptz NOT NULL,
    CONSTRAINT sessions_pkey PRIMARY KEY (tenant_id, id),
    CONSTRAINT sessions_token_hash_key UNIQUE (tenant_id, token_hash),
    FOREIGN KEY (tenant_id, user_id) REFERENCES users (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX sessions_user ON sessions (tenant_id, user_id);
CREATE INDEX sessions_last_seen_at ON sessions (last_seen_at);
CREATE INDEX sessions_created_at ON sessions (created_at);

CREATE TABLE api_tokens (
    tenant_id  uuid        NOT NULL,
    id         uuid        NOT NULL,
    user_id    uuid        NOT NULL,
    label      text        NOT NULL,
    token_hash bytea       NOT NULL,
    created_at timestamptz NOT NULL,
    expires_at timestamptz,
    revoked_at timestamptz,
    CONSTRAINT api_tokens_pkey PRIMARY KEY (tenant_id, id),
    CONSTRAINT api_tokens_token_hash_key UNIQUE (tenant_id, token_hash),
    FOREIGN KEY (tenant_id, user_id) REFERENCES users (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX api_tokens_user ON api_tokens (tenant_id, user_id, created_at);

-- Append-only: `seq` keeps the append order of rows of one instant; a trigger refuses
-- every UPDATE, DELETE and TRUNCATE, whoever runs it.
CREATE TABLE audit_log (
    tenant_id  uuid        NOT NULL REFERENCES tenants (tenant_id),
    id         uuid        NOT NULL,
    seq        bigint      GENERATED ALWAYS AS IDENTITY,
    actor_kind text        NOT NULL CHECK (actor_kind IN ('user', 'admin', 'guest', 'system')),
    actor_id   uuid,
    action     text        NOT NULL,
    subject    text        NOT NULL,
    at         timestamptz NOT NULL,
    source     text,
    CONSTRAINT audit_log_pkey PRIMARY KEY (tenant_id, id)
);
CREATE INDEX audit_log_at ON audit_log (tenant_id, at, seq);

CREATE FUNCTION audit_log_refuse_change() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;
CREATE TRIGGER audit_log_append_only
    BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_refuse_change();
CREATE TRIGGER audit_log_no_truncate
    BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_refuse_change();

-- States: pending (due when available_at is NULL or reached), in_flight (until
-- claimed_until), delivered (payload NULL), dead (payload kept for an operator).
CREATE TABLE outbox (
    tenant_id     uuid        NOT NULL REFERENCES tenants (tenant_id),
    id            uuid        NOT NULL,
    key           text        NOT NULL,
    kind          text        NOT NULL,
    payload       jsonb,
    state         text        NOT NULL
        CHECK (state IN ('pending', 'in_flight', 'delivered', 'dead')),
    attempts      bigint      NOT NULL DEFAULT 0,
    available_at  timestamptz,
    claimed_until timestamptz,
    last_error    text,
    created_at    timestamptz NOT NULL,
    done_at       timestamptz,
    CONSTRAINT outbox_pkey PRIMARY KEY (tenant_id, id),
    CONSTRAINT outbox_tenant_id_key_key UNIQUE (tenant_id, key),
    CONSTRAINT outbox_payload_until_delivered CHECK ((state = 'delivered') = (payload IS NULL))
);
CREATE INDEX outbox_due ON outbox (created_at, id) WHERE state IN ('pending', 'in_flight');
