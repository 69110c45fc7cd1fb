//! The two column types whose storage differs by dialect: instants and JSON documents.

use convene_domain::ports::StoreError;
use convene_domain::time::{SignedDuration, Timestamp};
use serde::Serialize;

/// An instant as microseconds since the Unix epoch, UTC.
///
/// PostgreSQL keeps it in a `timestamptz` column (whose binary form is microseconds
/// since 2000-01-01, so the conversion is one exact subtraction); SQLite in an INTEGER.
/// Finer precision is truncated on the way in, as PostgreSQL itself would.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct Micros(pub i64);

impl Micros {
    /// The instant, truncated to the microsecond.
    pub fn of(t: Timestamp) -> Self {
        Self(t.as_microsecond())
    }

    /// The instant back, or `Corrupt` when out of the domain's range.
    pub fn timestamp(self) -> Result<Timestamp, StoreError> {
        Timestamp::from_microsecond(self.0)
            .map_err(|e| crate::corrupt(format_args!("instant {} µs", self.0), e))
    }
}

/// A duration as whole microseconds (truncated).
pub fn duration_micros(d: SignedDuration) -> i64 {
    let micros = d.as_micros();
    i64::try_from(micros).unwrap_or(if micros < 0 { i64::MIN } else { i64::MAX })
}

/// A JSON document as text. PostgreSQL keeps it in a `json` column (the documents read
/// on every request: working hours, scopes, tenant settings) or a `jsonb` one (the
/// others; it is sent as jsonb and cast on the way in), SQLite in TEXT.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct JsonText(pub String);

impl JsonText {
    /// Serialises a value.
    pub fn of<T: Serialize + ?Sized>(
        what: impl std::fmt::Display,
        value: &T,
    ) -> Result<Self, StoreError> {
        serde_json::to_string(value)
            .map(Self)
            .map_err(|e| StoreError::Invalid(format!("{what} cannot be written as JSON: {e}")))
    }

    /// Deserialises the document, or `Corrupt` naming `what`.
    pub fn parse<T: serde::de::DeserializeOwned>(
        &self,
        what: impl std::fmt::Display,
    ) -> Result<T, StoreError> {
        serde_json::from_str(&self.0).map_err(|e| crate::corrupt(what, e))
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(feature = "postgres")]
mod postgres {
    use sqlx::encode::IsNull;
    use sqlx::error::BoxDynError;
    use sqlx::postgres::types::Oid;
    use sqlx::postgres::{PgArgumentBuffer, PgHasArrayType, PgTypeInfo, PgValueFormat, PgValueRef};
    use sqlx::{Decode, Encode, Postgres, Type, ValueRef};

    use super::{JsonText, Micros};

    // Built-in types have fixed OIDs (pg_type.dat), so no lookup by name is needed.
    const TIMESTAMPTZ: PgTypeInfo = PgTypeInfo::with_oid(Oid(1184));
    const TIMESTAMPTZ_ARRAY: PgTypeInfo = PgTypeInfo::with_oid(Oid(1185));
    const JSON: PgTypeInfo = PgTypeInfo::with_oid(Oid(114));
    const JSONB: PgTypeInfo = PgTypeInfo::with_oid(Oid(3802));
    const JSONB_ARRAY: PgTypeInfo = PgTypeInfo::with_oid(Oid(3807));

    /// 2000-01-01T00:00:00Z, PostgreSQL's epoch, in Unix microseconds.
    const PG_EPOCH_MICROS: i64 = 946_684_800_000_000;

    impl Type<Postgres> for Micros {
        fn type_info() -> PgTypeInfo {
            TIMESTAMPTZ
        }
    }

    impl PgHasArrayType for Micros {
        fn array_type_info() -> PgTypeInfo {
            TIMESTAMPTZ_ARRAY
        }
    }

    impl Encode<'_, Postgres> for Micros {
        fn encode_by_ref(&self, buf: &mut PgArgumentBuffer) -> Result<IsNull, BoxDynError> {
            let since_pg_epoch = self
                .0
                .checked_sub(PG_EPOCH_MICROS)
                .ok_or("instant out of PostgreSQL's range")?;
            <i64 as Encode<'_, Postgres>>::encode(since_pg_epoch, buf)
        }

        fn size_hint(&self) -> usize {
            8
        }
    }

    impl<'r> Decode<'r, Postgres> for Micros {
        fn decode(value: PgValueRef<'r>) -> Result<Self, BoxDynError> {
            if value.format() != PgValueFormat::Binary {
                return Err(
                    "timestamptz in text format: query it through a prepared statement".into(),
                );
            }
            let since_pg_epoch = <i64 as Decode<'r, Postgres>>::decode(value)?;
            since_pg_epoch
                .checked_add(PG_EPOCH_MICROS)
                .map(Micros)
                .ok_or_else(|| "timestamptz out of range (infinity?)".into())
        }
    }

    impl Type<Postgres> for JsonText {
        fn type_info() -> PgTypeInfo {
            JSONB
        }

        fn compatible(ty: &PgTypeInfo) -> bool {
            *ty == JSONB || *ty == JSON
        }
    }

    impl PgHasArrayType for JsonText {
        fn array_type_info() -> PgTypeInfo {
            JSONB_ARRAY
        }
    }

    impl Encode<'_, Postgres> for JsonText {
        fn encode_by_ref(&self, buf: &mut PgArgumentBuffer) -> Result<IsNull, BoxDynError> {
            // jsonb's binary input: a version byte (1), then the JSON text.
            buf.push(1);
            buf.extend_from_slice(self.0.as_bytes());
            Ok(IsNull::No)
        }

        fn size_hint(&self) -> usize {
            self.0.len() + 1
        }
    }

    impl<'r> Decode<'r, Postgres> for JsonText {
        fn decode(value: PgValueRef<'r>) -> Result<Self, BoxDynError> {
            let jsonb = value.format() == PgValueFormat::Binary && *value.type_info() == JSONB;
            let mut bytes = value.as_bytes()?;
            if jsonb {
                match bytes.split_first() {
                    Some((1, rest)) => bytes = rest,
                    Some((v, _)) => {
                        return Err(format!("jsonb format version {v}, expected 1").into());
                    }
                    None => return Err("empty jsonb value".into()),
                }
            }
            Ok(JsonText(std::str::from_utf8(bytes)?.to_owned()))
        }
    }
}

#[cfg(feature = "sqlite")]
mod sqlite {
    use sqlx::encode::IsNull;
    use sqlx::error::BoxDynError;
    use sqlx::sqlite::{SqliteArgumentsBuffer, SqliteTypeInfo, SqliteValueRef};
    use sqlx::{Decode, Encode, Sqlite, Type};

    use super::{JsonText, Micros};

    impl Type<Sqlite> for Micros {
        fn type_info() -> SqliteTypeInfo {
            <i64 as Type<Sqlite>>::type_info()
        }

        fn compatible(ty: &SqliteTypeInfo) -> bool {
            <i64 as Type<Sqlite>>::compatible(ty)
        }
    }

    impl Encode<'_, Sqlite> for Micros {
        fn encode_by_ref(&self, buf: &mut SqliteArgumentsBuffer) -> Result<IsNull, BoxDynError> {
            <i64 as Encode<'_, Sqlite>>::encode(self.0, buf)
        }
    }

    impl<'r> Decode<'r, Sqlite> for Micros {
        fn decode(value: SqliteValueRef<'r>) -> Result<Self, BoxDynError> {
            <i64 as Decode<'r, Sqlite>>::decode(value).map(Micros)
        }
    }

    impl Type<Sqlite> for JsonText {
        fn type_info() -> SqliteTypeInfo {
            <String as Type<Sqlite>>::type_info()
        }

        fn compatible(ty: &SqliteTypeInfo) -> bool {
            <String as Type<Sqlite>>::compatible(ty)
        }
    }

    impl Encode<'_, Sqlite> for JsonText {
        fn encode_by_ref(&self, buf: &mut SqliteArgumentsBuffer) -> Result<IsNull, BoxDynError> {
            <String as Encode<'_, Sqlite>>::encode(self.0.clone(), buf)
        }
    }

    impl<'r> Decode<'r, Sqlite> for JsonText {
        fn decode(value: SqliteValueRef<'r>) -> Result<Self, BoxDynError> {
            <String as Decode<'r, Sqlite>>::decode(value).map(JsonText)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn micros_truncate_and_round_trip() {
        let t: Timestamp = "2026-03-02T08:00:00.123456789Z".parse().unwrap();
        let m = Micros::of(t);
        assert_eq!(m.0 % 1_000_000, 123_456);
        assert_eq!(
            m.timestamp().unwrap(),
            "2026-03-02T08:00:00.123456Z".parse::<Timestamp>().unwrap()
        );
        assert!(matches!(
            Micros(i64::MAX).timestamp(),
            Err(StoreError::Corrupt(_))
        ));
        assert_eq!(duration_micros(SignedDuration::from_mins(5)), 300_000_000);
    }
}
