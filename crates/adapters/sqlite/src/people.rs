//! Tenants, users, grants with their credentials, sessions and API tokens.

use async_trait::async_trait;
use convene_domain::access::{ApiToken, Session, TokenHash};
use convene_domain::consent::Grant;
use convene_domain::email::EmailAddress;
use convene_domain::ids::{ApiTokenId, GrantId, SessionId, TenantId, UserId};
use convene_domain::outbox::OutboxMessage;
use convene_domain::people::User;
use convene_domain::ports::{
    Credentials, GrantStore, Page, SessionStore, StoreError, TenantStore, UserStore,
};
use convene_domain::tenant::{Tenant, TenantKey, TenantSettings};
use convene_domain::time::Timestamp;
use convene_sql::Micros;
use convene_sql::credentials::{CredentialsRow, credentials_in_order};
use convene_sql::errors::{Failure, store_error};
use convene_sql::rows::{
    ApiTokenRow, GrantRow, MemberRow, OutboxRow, SessionRow, TenantRow, UserGrantRow, UserRow,
    email_lower, tenants_of, users_with_grants,
};
use sqlx::query::Query;
use sqlx::sqlite::{SqliteArguments, SqliteRow};
use sqlx::{FromRow, Sqlite, SqliteConnection};
use uuid::Uuid;

use crate::{SqliteStore, id_list, limit};

#[async_trait]
impl TenantStore for SqliteStore {
    async fn insert_tenant(&self, tenant: &Tenant) -> Result<(), StoreError> {
        let row = TenantRow::of(tenant)?;
        self.query(
            "INSERT INTO tenants (tenant_id, key, key_kind, key_value, name, created_at, \
             settings) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )
        .bind(row.tenant_id)
        .bind(row.key)
        .bind(row.key_kind)
        .bind(row.key_value)
        .bind(row.name)
        .bind(row.created_at)
        .bind(row.settings)
        .execute(&self.writer)
        .await
        .map_err(store_error)?;
        Ok(())
    }

    async fn tenant(&self, id: TenantId) -> Result<Tenant, StoreError> {
        let row: Option<TenantRow> = self
            .query_as("SELECT * FROM tenants WHERE tenant_id = ?1")
            .bind(id.as_uuid())
            .fetch_optional(&self.reader)
            .await
            .map_err(store_error)?;
        row.ok_or(StoreError::UnknownTenant)?.into_tenant()
    }

    async fn member(
        &self,
        tenant: TenantId,
        user: UserId,
    ) -> Result<(User, TenantSettings), StoreError> {
        let row: Option<MemberRow> = self
            .query_as(
                "SELECT u.*, t.settings AS tenant_settings FROM users AS u \
                 JOIN tenants AS t USING (tenant_id) WHERE u.tenant_id = ?1 AND u.id = ?2",
            )
            .bind(tenant.as_uuid())
            .bind(user.as_uuid())
            .fetch_optional(&self.reader)
            .await
            .map_err(store_error)?;
        row.ok_or(StoreError::NotFound)?.into_member()
    }

    async fn tenant_by_key(&self, key: &TenantKey) -> Result<Option<Tenant>, StoreError> {
        let row: Option<TenantRow> = self
            .query_as("SELECT * FROM tenants WHERE key = ?1")
            .bind(key.as_key())
            .fetch_optional(&self.reader)
            .await
            .map_err(store_error)?;
        row.map(TenantRow::into_tenant).transpose()
    }

    async fn tenant_ids(&self) -> Result<Vec<TenantId>, StoreError> {
        let ids: Vec<(Uuid,)> = self
            .query_as("SELECT tenant_id FROM tenants ORDER BY tenant_id")
            .fetch_all(&self.reader)
            .await
            .map_err(store_error)?;
        Ok(ids.into_iter().map(|(id,)| id.into()).collect())
    }

    async fn update_tenant_settings(
        &self,
        tenant: TenantId,
        settings: &TenantSettings,
    ) -> Result<(), StoreError> {
        let done = self
            .query("UPDATE tenants SET settings = ?2 WHERE tenant_id = ?1")
            .bind(tenant.as_uuid())
            .bind(TenantRow::settings(settings)?)
            .execute(&self.writer)
            .await
            .map_err(store_error)?;
        if done.rows_affected() == 0 {
            return Err(StoreError::UnknownTenant);
        }
        Ok(())
    }
}

#[async_trait]
impl UserStore for SqliteStore {
    async fn insert_user(&self, user: &User) -> Result<(), StoreError> {
        let row = UserRow::of(user)?;
        let tenant = row.tenant_id;
        self.insert_settled(
            self.query(
                "INSERT INTO users (tenant_id, id, name, email, email_lower, zone, \
                 working_hours, buffer_before_us, buffer_after_us, created_at, role, \
                 deactivated_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
            )
            .bind(row.tenant_id)
            .bind(row.id)
            .bind(row.name)
            .bind(row.email)
            .bind(row.email_lower)
            .bind(row.zone)
            .bind(row.working_hours)
            .bind(row.buffer_before_us)
            .bind(row.buffer_after_us)
            .bind(row.created_at)
            .bind(row.role)
            .bind(row.deactivated_at),
            tenant,
        )
        .await
    }

    async fn user(&self, tenant: TenantId, id: UserId) -> Result<User, StoreError> {
        let row: Option<UserRow> = self
            .query_as("SELECT * FROM users WHERE tenant_id = ?1 AND id = ?2")
            .bind(tenant.as_uuid())
            .bind(id.as_uuid())
            .fetch_optional(&self.reader)
            .await
            .map_err(store_error)?;
        row.ok_or(StoreError::NotFound)?.into_user()
    }

    async fn user_by_email(
        &self,
        tenant: TenantId,
        email: &EmailAddress,
    ) -> Result<Option<User>, StoreError> {
        let row: Option<UserRow> = self
            .query_as("SELECT * FROM users WHERE tenant_id = ?1 AND email_lower = ?2")
            .bind(tenant.as_uuid())
            .bind(email_lower(email))
            .fetch_optional(&self.reader)
            .await
            .map_err(store_error)?;
        row.map(UserRow::into_user).transpose()
    }

    async fn users_by_emails_with_grants(
        &self,
        tenant: TenantId,
        emails: &[EmailAddress],
    ) -> Result<Vec<(User, Vec<Grant>)>, StoreError> {
        let wanted: Vec<String> = emails.iter().map(email_lower).collect();
        let wanted = serde_json::to_string(&wanted)
            .map_err(|e| StoreError::Invalid(format!("emails: {e}")))?;
        let rows: Vec<UserGrantRow> = self
            .query_as(
                "SELECT u.*, g.id AS grant_id, g.provider AS grant_provider, \
                 g.account AS grant_account, g.scopes AS grant_scopes, g.state AS grant_state, \
                 g.revoked_by AS grant_revoked_by, g.revoked_by_admin AS grant_revoked_by_admin, \
                 g.changed_at AS grant_changed_at, g.granted_at AS grant_granted_at \
                 FROM users AS u LEFT JOIN grants AS g \
                 ON g.tenant_id = u.tenant_id AND g.user_id = u.id \
                 WHERE u.tenant_id = ?1 AND u.email_lower IN (SELECT value FROM json_each(?2)) \
                 ORDER BY u.id, g.id",
            )
            .bind(tenant.as_uuid())
            .bind(wanted)
            .fetch_all(&self.reader)
            .await
            .map_err(store_error)?;
        users_with_grants(rows)
    }

    async fn users(&self, tenant: TenantId, ids: &[UserId]) -> Result<Vec<User>, StoreError> {
        let rows: Vec<UserRow> = self
            .query_as(
                "SELECT * FROM users WHERE tenant_id = ?1 \
                 AND id IN (SELECT unhex(value, '-') FROM json_each(?2)) ORDER BY id",
            )
            .bind(tenant.as_uuid())
            .bind(id_list(ids.iter().map(UserId::as_uuid)))
            .fetch_all(&self.reader)
            .await
            .map_err(store_error)?;
        rows.into_iter().map(UserRow::into_user).collect()
    }

    async fn list_users(
        &self,
        tenant: TenantId,
        page: Page<UserId>,
    ) -> Result<Vec<User>, StoreError> {
        let rows: Vec<UserRow> = self
            .query_as(
                "SELECT * FROM users WHERE tenant_id = ?1 AND (?2 IS NULL OR id > ?2) \
                 ORDER BY id LIMIT ?3",
            )
            .bind(tenant.as_uuid())
            .bind(page.after.map(|a| a.as_uuid()))
            .bind(limit(page.limit))
            .fetch_all(&self.reader)
            .await
            .map_err(store_error)?;
        rows.into_iter().map(UserRow::into_user).collect()
    }

    async fn update_user(&self, user: &User) -> Result<(), StoreError> {
        let row = UserRow::of(user)?;
        let done = self
            .query(
                "UPDATE users SET name = ?3, email = ?4, email_lower = ?5, zone = ?6, \
                 working_hours = ?7, buffer_before_us = ?8, buffer_after_us = ?9, \
                 role = ?10, deactivated_at = ?11 \
                 WHERE tenant_id = ?1 AND id = ?2",
            )
            .bind(row.tenant_id)
            .bind(row.id)
            .bind(row.name)
            .bind(row.email)
            .bind(row.email_lower)
            .bind(row.zone)
            .bind(row.working_hours)
            .bind(row.buffer_before_us)
            .bind(row.buffer_after_us)
            .bind(row.role)
            .bind(row.deactivated_at)
            .execute(&self.writer)
            .await
            .map_err(store_error)?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }
}

impl SqliteStore {
    /// Inserts or replaces a grant. A live grant needs its user in the tenant
    /// (`Invalid` otherwise); an erased one outlives its user.
    pub(crate) async fn put_grant(
        &self,
        conn: &mut SqliteConnection,
        row: &GrantRow,
    ) -> Result<(), Failure> {
        let done = self
            .query(
                "INSERT INTO grants (tenant_id, id, user_id, provider, account, scopes, state, \
                 revoked_by, revoked_by_admin, changed_at, granted_at) \
                 SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11 \
                 WHERE ?7 = 'erased' OR EXISTS \
                   (SELECT 1 FROM users WHERE tenant_id = ?1 AND id = ?3) \
                 ON CONFLICT (tenant_id, id) DO UPDATE SET user_id = excluded.user_id, \
                 provider = excluded.provider, account = excluded.account, \
                 scopes = excluded.scopes, state = excluded.state, \
                 revoked_by = excluded.revoked_by, revoked_by_admin = excluded.revoked_by_admin, \
                 changed_at = excluded.changed_at, granted_at = excluded.granted_at",
            )
            .bind(row.tenant_id)
            .bind(row.id)
            .bind(row.user_id)
            .bind(row.provider.clone())
            .bind(row.account.clone())
            .bind(row.scopes.clone())
            .bind(row.state.clone())
            .bind(row.revoked_by.clone())
            .bind(row.revoked_by_admin)
            .bind(row.changed_at)
            .bind(row.granted_at)
            .execute(&mut *conn)
            .await?;
        if done.rows_affected() == 0 {
            return Err(Failure::Missing(
                "the grant's user is not a user of this tenant".into(),
            ));
        }
        Ok(())
    }

    /// Runs an insert of one tenant's row, reading a missing reference with `settle`.
    async fn insert_settled(
        &self,
        insert: Query<'static, Sqlite, SqliteArguments>,
        tenant: Uuid,
    ) -> Result<(), StoreError> {
        let result = insert
            .execute(&self.writer)
            .await
            .map(drop)
            .map_err(Failure::from);
        self.settle(result, &[tenant]).await
    }

    /// The row a `SELECT` finds by tenant (`?1`) and token hash (`?2`).
    async fn by_token_hash<T>(
        &self,
        sql: &'static str,
        tenant: TenantId,
        hash: &TokenHash,
    ) -> Result<Option<T>, StoreError>
    where
        T: for<'r> FromRow<'r, SqliteRow> + Send + Unpin,
    {
        self.query_as(sql)
            .bind(tenant.as_uuid())
            .bind(hash.as_bytes().to_vec())
            .fetch_optional(&self.reader)
            .await
            .map_err(store_error)
    }
}

#[async_trait]
impl GrantStore for SqliteStore {
    async fn save_grant(&self, grant: &Grant, outbox: &[OutboxMessage]) -> Result<(), StoreError> {
        let row = GrantRow::of(grant)?;
        let messages = OutboxRow::of_all(outbox)?;
        let tenants = tenants_of(row.tenant_id, &messages);
        let result = async {
            let mut tx = self.write().await?;
            self.put_grant(&mut tx, &row).await?;
            self.enqueue_rows(&mut tx, &messages).await?;
            tx.commit().await?;
            Ok(())
        }
        .await;
        self.settle(result, &tenants).await
    }

    async fn grant(&self, tenant: TenantId, id: GrantId) -> Result<Grant, StoreError> {
        let row: Option<GrantRow> = self
            .query_as("SELECT * FROM grants WHERE tenant_id = ?1 AND id = ?2")
            .bind(tenant.as_uuid())
            .bind(id.as_uuid())
            .fetch_optional(&self.reader)
            .await
            .map_err(store_error)?;
        row.ok_or(StoreError::NotFound)?.into_grant()
    }

    async fn grants_of(
        &self,
        tenant: TenantId,
        users: &[UserId],
    ) -> Result<Vec<Grant>, StoreError> {
        let rows: Vec<GrantRow> = self
            .query_as(
                "SELECT * FROM grants WHERE tenant_id = ?1 \
                 AND user_id IN (SELECT unhex(value, '-') FROM json_each(?2)) ORDER BY id",
            )
            .bind(tenant.as_uuid())
            .bind(id_list(users.iter().map(UserId::as_uuid)))
            .fetch_all(&self.reader)
            .await
            .map_err(store_error)?;
        rows.into_iter().map(GrantRow::into_grant).collect()
    }

    async fn active_grants(
        &self,
        tenant: TenantId,
        page: Page<GrantId>,
    ) -> Result<Vec<Grant>, StoreError> {
        let rows: Vec<GrantRow> = self
            .query_as(
                "SELECT * FROM grants WHERE tenant_id = ?1 AND state = 'active' \
                 AND (?2 IS NULL OR id > ?2) ORDER BY id LIMIT ?3",
            )
            .bind(tenant.as_uuid())
            .bind(page.after.map(|a| a.as_uuid()))
            .bind(limit(page.limit))
            .fetch_all(&self.reader)
            .await
            .map_err(store_error)?;
        rows.into_iter().map(GrantRow::into_grant).collect()
    }

    async fn put_credentials(
        &self,
        tenant: TenantId,
        grant: GrantId,
        credentials: &Credentials,
    ) -> Result<(), StoreError> {
        let row = CredentialsRow::seal(&self.ring, tenant, grant, credentials)?;
        let done = self
            .query(
                "INSERT INTO credentials (tenant_id, grant_id, key_id, ciphertext) \
                 SELECT ?1, ?2, ?3, ?4 \
                 WHERE EXISTS (SELECT 1 FROM grants WHERE tenant_id = ?1 AND id = ?2) \
                 ON CONFLICT (tenant_id, grant_id) DO UPDATE SET key_id = excluded.key_id, \
                 ciphertext = excluded.ciphertext, \
                 updated_at = CAST(unixepoch('subsec') * 1000000 AS INTEGER)",
            )
            .bind(row.tenant_id)
            .bind(row.grant_id)
            .bind(row.key_id)
            .bind(row.ciphertext)
            .execute(&self.writer)
            .await
            .map_err(store_error)?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    async fn credentials(
        &self,
        tenant: TenantId,
        grant: GrantId,
    ) -> Result<Option<Credentials>, StoreError> {
        let row: Option<CredentialsRow> = self
            .query_as(
                "SELECT tenant_id, grant_id, key_id, ciphertext FROM credentials \
                 WHERE tenant_id = ?1 AND grant_id = ?2",
            )
            .bind(tenant.as_uuid())
            .bind(grant.as_uuid())
            .fetch_optional(&self.reader)
            .await
            .map_err(store_error)?;
        row.map(|r| r.open(&self.ring)).transpose()
    }

    async fn credentials_of(
        &self,
        grants: &[(TenantId, GrantId)],
    ) -> Vec<Result<Option<Credentials>, StoreError>> {
        if grants.is_empty() {
            return Vec::new();
        }
        let keys: Vec<(Uuid, Uuid)> = grants
            .iter()
            .map(|(t, g)| (t.as_uuid(), g.as_uuid()))
            .collect();
        let rows = match serde_json::to_string(&keys) {
            Ok(keys) => self
                .query_as(
                    "SELECT tenant_id, grant_id, key_id, ciphertext FROM credentials \
                     WHERE (tenant_id, grant_id) IN \
                     (SELECT unhex(value ->> 0, '-'), unhex(value ->> 1, '-') FROM json_each(?1))",
                )
                .bind(keys)
                .fetch_all(&self.reader)
                .await
                .map_err(store_error),
            Err(e) => Err(StoreError::Invalid(format!("grant keys as JSON: {e}"))),
        };
        credentials_in_order(rows, grants, &self.ring)
    }

    async fn delete_credentials(&self, tenant: TenantId, grant: GrantId) -> Result<(), StoreError> {
        self.query("DELETE FROM credentials WHERE tenant_id = ?1 AND grant_id = ?2")
            .bind(tenant.as_uuid())
            .bind(grant.as_uuid())
            .execute(&self.writer)
            .await
            .map_err(store_error)?;
        Ok(())
    }
}

#[async_trait]
impl SessionStore for SqliteStore {
    async fn insert_session(&self, session: &Session) -> Result<(), StoreError> {
        let row = SessionRow::of(session);
        let tenant = row.tenant_id;
        self.insert_settled(
            self.query(
                "INSERT INTO sessions (tenant_id, id, user_id, token_hash, created_at, \
                 last_seen_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )
            .bind(row.tenant_id)
            .bind(row.id)
            .bind(row.user_id)
            .bind(row.token_hash)
            .bind(row.created_at)
            .bind(row.last_seen_at),
            tenant,
        )
        .await
    }

    async fn session(
        &self,
        tenant: TenantId,
        hash: &TokenHash,
    ) -> Result<Option<Session>, StoreError> {
        let row: Option<SessionRow> = self
            .by_token_hash(
                "SELECT * FROM sessions WHERE tenant_id = ?1 AND token_hash = ?2",
                tenant,
                hash,
            )
            .await?;
        row.map(SessionRow::into_session).transpose()
    }

    async fn touch_session(
        &self,
        tenant: TenantId,
        id: SessionId,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let done = self
            .query(
                "UPDATE sessions SET last_seen_at = max(last_seen_at, ?3) \
                 WHERE tenant_id = ?1 AND id = ?2",
            )
            .bind(tenant.as_uuid())
            .bind(id.as_uuid())
            .bind(Micros::of(now))
            .execute(&self.writer)
            .await
            .map_err(store_error)?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    async fn delete_session(&self, tenant: TenantId, id: SessionId) -> Result<(), StoreError> {
        self.query("DELETE FROM sessions WHERE tenant_id = ?1 AND id = ?2")
            .bind(tenant.as_uuid())
            .bind(id.as_uuid())
            .execute(&self.writer)
            .await
            .map_err(store_error)?;
        Ok(())
    }

    async fn delete_sessions_of(&self, tenant: TenantId, user: UserId) -> Result<(), StoreError> {
        self.query("DELETE FROM sessions WHERE tenant_id = ?1 AND user_id = ?2")
            .bind(tenant.as_uuid())
            .bind(user.as_uuid())
            .execute(&self.writer)
            .await
            .map_err(store_error)?;
        Ok(())
    }

    async fn purge_sessions(
        &self,
        idle_before: Timestamp,
        created_before: Timestamp,
    ) -> Result<u64, StoreError> {
        let done = self
            .query("DELETE FROM sessions WHERE last_seen_at < ?1 OR created_at < ?2")
            .bind(Micros::of(idle_before))
            .bind(Micros::of(created_before))
            .execute(&self.writer)
            .await
            .map_err(store_error)?;
        Ok(done.rows_affected())
    }

    async fn insert_api_token(&self, token: &ApiToken) -> Result<(), StoreError> {
        let row = ApiTokenRow::of(token)?;
        let tenant = row.tenant_id;
        self.insert_settled(
            self.query(
                "INSERT INTO api_tokens (tenant_id, id, user_id, label, token_hash, created_at, \
                 expires_at, revoked_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )
            .bind(row.tenant_id)
            .bind(row.id)
            .bind(row.user_id)
            .bind(row.label)
            .bind(row.token_hash)
            .bind(row.created_at)
            .bind(row.expires_at)
            .bind(row.revoked_at),
            tenant,
        )
        .await
    }

    async fn api_token(
        &self,
        tenant: TenantId,
        hash: &TokenHash,
    ) -> Result<Option<ApiToken>, StoreError> {
        let row: Option<ApiTokenRow> = self
            .by_token_hash(
                "SELECT * FROM api_tokens WHERE tenant_id = ?1 AND token_hash = ?2",
                tenant,
                hash,
            )
            .await?;
        row.map(ApiTokenRow::into_token).transpose()
    }

    async fn api_tokens_of(
        &self,
        tenant: TenantId,
        user: UserId,
    ) -> Result<Vec<ApiToken>, StoreError> {
        let rows: Vec<ApiTokenRow> = self
            .query_as(
                "SELECT * FROM api_tokens WHERE tenant_id = ?1 AND user_id = ?2 \
                 ORDER BY created_at DESC, id DESC",
            )
            .bind(tenant.as_uuid())
            .bind(user.as_uuid())
            .fetch_all(&self.reader)
            .await
            .map_err(store_error)?;
        rows.into_iter().map(ApiTokenRow::into_token).collect()
    }

    async fn revoke_api_tokens_of(
        &self,
        tenant: TenantId,
        user: UserId,
        now: Timestamp,
    ) -> Result<u64, StoreError> {
        let done = self
            .query(
                "UPDATE api_tokens SET revoked_at = ?3 \
                 WHERE tenant_id = ?1 AND user_id = ?2 AND revoked_at IS NULL",
            )
            .bind(tenant.as_uuid())
            .bind(user.as_uuid())
            .bind(Micros::of(now))
            .execute(&self.writer)
            .await
            .map_err(store_error)?;
        Ok(done.rows_affected())
    }

    async fn revoke_api_token(
        &self,
        tenant: TenantId,
        user: UserId,
        id: ApiTokenId,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let done = self
            .query(
                "UPDATE api_tokens SET revoked_at = coalesce(revoked_at, ?4) \
                 WHERE tenant_id = ?1 AND user_id = ?2 AND id = ?3",
            )
            .bind(tenant.as_uuid())
            .bind(user.as_uuid())
            .bind(id.as_uuid())
            .bind(Micros::of(now))
            .execute(&self.writer)
            .await
            .map_err(store_error)?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }
}
