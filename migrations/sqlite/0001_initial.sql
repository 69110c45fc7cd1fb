-- Convene's schema on SQLite (the embedded default). See docs/storage.md.
--
-- Ids are 16-byte BLOBs (sqlx's UUID encoding), instants INTEGER microseconds since the
-- Unix epoch (UTC), JSON documents TEXT. Every table carries tenant_id, every primary
-- key starts with it, and foreign keys tie children to parents within one tenant.
-- Tables are STRICT: a value of the wrong type is refused rather than coerced.

CREATE TABLE tenants (
    tenant_id   BLOB    NOT NULL PRIMARY KEY,
    key         TEXT    NOT NULL,
    key_kind    TEXT    NOT NULL,
    key_value   TEXT    NOT NULL,
    name        TEXT    NOT NULL,
    created_at  INTEGER NOT NULL,
    CONSTRAINT tenants_key_unique UNIQUE (key)
) STRICT;

CREATE TABLE users (
    tenant_id        BLOB    NOT NULL REFERENCES tenants (tenant_id),
    id               BLOB    NOT NULL,
    name             TEXT    NOT NULL,
    email            TEXT    NOT NULL,
    email_lower      TEXT    NOT NULL,
    zone             TEXT    NOT NULL,
    working_hours    TEXT    NOT NULL,
    buffer_before_us INTEGER NOT NULL,
    buffer_after_us  INTEGER NOT NULL,
    created_at       INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, id),
    CONSTRAINT users_tenant_id_email_lower_key UNIQUE (tenant_id, email_lower)
) STRICT;

-- user_id has no foreign key: an erased user's grants stay (erased) after the user row
-- is gone. The store checks the user when saving a live grant.
CREATE TABLE grants (
    tenant_id        BLOB    NOT NULL REFERENCES tenants (tenant_id),
    id               BLOB    NOT NULL,
    user_id          BLOB    NOT NULL,
    provider         TEXT    NOT NULL,
    account          TEXT    NOT NULL,
    scopes           TEXT    NOT NULL,
    state            TEXT    NOT NULL CHECK (state IN ('active', 'revoked', 'erased')),
    revoked_by       TEXT,
    revoked_by_admin BLOB,
    changed_at       INTEGER,
    granted_at       INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, id)
) STRICT;
-- Erased grants have forgotten their account: they clash with nothing.
CREATE UNIQUE INDEX grants_live_account_key
    ON grants (tenant_id, user_id, provider, account) WHERE state <> 'erased';
CREATE INDEX grants_user ON grants (tenant_id, user_id);

CREATE TABLE credentials (
    tenant_id  BLOB    NOT NULL,
    grant_id   BLOB    NOT NULL,
    key_id     TEXT    NOT NULL,
    ciphertext BLOB    NOT NULL,
    -- Operational metadata from the database's clock (the port passes no time here).
    updated_at INTEGER NOT NULL DEFAULT (CAST(unixepoch('subsec') * 1000000 AS INTEGER)),
    PRIMARY KEY (tenant_id, grant_id),
    FOREIGN KEY (tenant_id, grant_id) REFERENCES grants (tenant_id, id) ON DELETE CASCADE
) STRICT;
CREATE INDEX credentials_key_id ON credentials (key_id);

CREATE TABLE meetings (
    tenant_id       BLOB    NOT NULL REFERENCES tenants (tenant_id),
    id              BLOB    NOT NULL,
    organizer_id    BLOB    NOT NULL,
    title           TEXT    NOT NULL,
    duration_min    INTEGER NOT NULL,
    window_start    INTEGER NOT NULL,
    window_end      INTEGER NOT NULL,
    state           TEXT    NOT NULL
        CHECK (state IN ('polling', 'booked', 'cancelled', 'expired', 'no_common_slot')),
    deadline        INTEGER,
    booked_proposal BLOB,
    booked_start    INTEGER,
    booked_end      INTEGER,
    state_at        INTEGER,
    round           INTEGER NOT NULL,
    sequence        INTEGER NOT NULL,
    event           TEXT,
    created_at      INTEGER NOT NULL,
    version         INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, organizer_id) REFERENCES users (tenant_id, id)
) STRICT;
CREATE INDEX meetings_organizer ON meetings (tenant_id, organizer_id, id);
CREATE INDEX meetings_polls_due ON meetings (tenant_id, deadline) WHERE state = 'polling';

CREATE TABLE participants (
    tenant_id   BLOB    NOT NULL,
    meeting_id  BLOB    NOT NULL,
    id          BLOB    NOT NULL,
    position    INTEGER NOT NULL,
    name        TEXT    NOT NULL,
    email       TEXT,
    email_lower TEXT,
    kind        TEXT    NOT NULL CHECK (kind IN ('connected', 'email', 'link', 'erased')),
    user_id     BLOB,
    attendance  TEXT    NOT NULL CHECK (attendance IN ('required', 'optional')),
    zone        TEXT,
    PRIMARY KEY (tenant_id, meeting_id, id),
    FOREIGN KEY (tenant_id, meeting_id) REFERENCES meetings (tenant_id, id) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, user_id) REFERENCES users (tenant_id, id)
) STRICT;
CREATE INDEX participants_user ON participants (tenant_id, user_id) WHERE user_id IS NOT NULL;
-- Erasure looks a person up by email across tenants.
CREATE INDEX participants_email_lower ON participants (email_lower) WHERE email_lower IS NOT NULL;

CREATE TABLE proposals (
    tenant_id  BLOB    NOT NULL,
    meeting_id BLOB    NOT NULL,
    id         BLOB    NOT NULL,
    position   INTEGER NOT NULL,
    slot_start INTEGER NOT NULL,
    slot_end   INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, meeting_id, id),
    FOREIGN KEY (tenant_id, meeting_id) REFERENCES meetings (tenant_id, id) ON DELETE CASCADE
) STRICT;

CREATE TABLE votes (
    tenant_id      BLOB    NOT NULL,
    meeting_id     BLOB    NOT NULL,
    participant_id BLOB    NOT NULL,
    proposal_id    BLOB    NOT NULL,
    position       INTEGER NOT NULL,
    answer         TEXT    NOT NULL CHECK (answer IN ('yes', 'no')),
    at             INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, meeting_id, participant_id, proposal_id),
    FOREIGN KEY (tenant_id, meeting_id, participant_id)
        REFERENCES participants (tenant_id, meeting_id, id) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, meeting_id, proposal_id)
        REFERENCES proposals (tenant_id, meeting_id, id) ON DELETE CASCADE
) STRICT;
CREATE INDEX votes_proposal ON votes (tenant_id, meeting_id, proposal_id);

CREATE TABLE sessions (
    tenant_id    BLOB    NOT NULL,
    id           BLOB    NOT NULL,
    user_id      BLOB    NOT NULL,
    token_hash   BLOB    NOT NULL,
    created_at   INTEGER NOT NULL,
    last_seen_at INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, id),
    CONSTRAINT sessions_token_hash_key UNIQUE (tenant_id, token_hash),
    FOREIGN KEY (tenant_id, user_id) REFERENCES users (tenant_id, id) ON DELETE CASCADE
) STRICT;
CREATE INDEX sessions_user ON sessions (tenant_id, user_id);
CREATE INDEX sessions_last_seen_at ON sessions (last_seen_at);
CREATE INDEX sessions_created_at ON sessions (created_at);

CREATE TABLE api_tokens (
    tenant_id  BLOB    NOT NULL,
    id         BLOB    NOT NULL,
    user_id    BLOB    NOT NULL,
    label      TEXT    NOT NULL,
    token_hash BLOB    NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER,
    revoked_at INTEGER,
    PRIMARY KEY (tenant_id, id),
    CONSTRAINT api_tokens_token_hash_key UNIQUE (tenant_id, token_hash),
    FOREIGN KEY (tenant_id, user_id) REFERENCES users (tenant_id, id) ON DELETE CASCADE
) STRICT;
CREATE INDEX api_tokens_user ON api_tokens (tenant_id, user_id, created_at);

-- Append-only: rows are read in (at, rowid) order, so rows of one instant keep their
-- append order.
CREATE TABLE audit_log (
    tenant_id  BLOB    NOT NULL REFERENCES tenants (tenant_id),
    id         BLOB    NOT NULL,
    actor_kind TEXT    NOT NULL CHECK (actor_kind IN ('user', 'admin', 'guest', 'system')),
    actor_id   BLOB,
    action     TEXT    NOT NULL,
    subject    TEXT    NOT NULL,
    at         INTEGER NOT NULL,
    source     TEXT,
    PRIMARY KEY (tenant_id, id)
) STRICT;
CREATE INDEX audit_log_at ON audit_log (tenant_id, at);
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'audit_log is append-only: UPDATE refused');
END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'audit_log is append-only: DELETE refused');
END;

-- States: pending (due when available_at is NULL or reached), in_flight (until
-- claimed_until), delivered (payload NULL), dead (payload kept for an operator).
CREATE TABLE outbox (
    tenant_id     BLOB    NOT NULL REFERENCES tenants (tenant_id),
    id            BLOB    NOT NULL,
    key           TEXT    NOT NULL,
    kind          TEXT    NOT NULL,
    payload       TEXT,
    state         TEXT    NOT NULL CHECK (state IN ('pending', 'in_flight', 'delivered', 'dead')),
    attempts      INTEGER NOT NULL DEFAULT 0,
    available_at  INTEGER,
    claimed_until INTEGER,
    last_error    TEXT,
    created_at    INTEGER NOT NULL,
    done_at       INTEGER,
    PRIMARY KEY (tenant_id, id),
    CONSTRAINT outbox_tenant_id_key_key UNIQUE (tenant_id, key),
    CHECK ((state = 'delivered') = (payload IS NULL))
) STRICT;
CREATE INDEX outbox_due ON outbox (created_at, id) WHERE state IN ('pending', 'in_flight');
