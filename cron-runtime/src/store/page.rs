//! Keyset pagination: lists are newest first, and a page ends with an opaque cursor
//! (the sort key of its last row) from which the next page continues.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Datelike, Utc};
use serde::Serialize;
use sqlx::{Postgres, QueryBuilder};
use uuid::Uuid;

/// A position in a newest-first list: the sort time and id of the last row seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    pub at: DateTime<Utc>,
    pub id: Uuid,
}

/// The years a cursor's time may fall in. Cursors hold `created_at` or `scheduled_at`, and
/// every time the service stores arrives as RFC 3339 (four-digit years) or from the clock, so
/// nothing outside 1..=9999 was ever handed out. chrono holds far more (±262,000 years), and
/// PostgreSQL rejects years before 4713 BC with an error that would be a 500.
const CURSOR_YEARS: std::ops::RangeInclusive<i32> = 1..=9999;

/// The cursor could not be decoded: it was not produced by this service.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cursor is not valid: pass the next_cursor of a previous page unchanged")]
pub struct InvalidCursor;

impl Cursor {
    /// The opaque form handed to clients.
    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(format!("{}|{}", self.at.timestamp_micros(), self.id))
    }

    /// Parses the opaque form. Every value is bounded to what this service can have written,
    /// so a crafted cursor is a 400 here rather than an error from the database.
    pub fn decode(raw: &str) -> Result<Self, InvalidCursor> {
        let bytes = URL_SAFE_NO_PAD.decode(raw).map_err(|_| InvalidCursor)?;
        let text = String::from_utf8(bytes).map_err(|_| InvalidCursor)?;
        let (micros, id) = text.split_once('|').ok_or(InvalidCursor)?;
        let micros: i64 = micros.parse().map_err(|_| InvalidCursor)?;
        let at = DateTime::from_timestamp_micros(micros).ok_or(InvalidCursor)?;
        if !CURSOR_YEARS.contains(&at.year()) {
            return Err(InvalidCursor);
        }
        Ok(Cursor {
            at,
            id: Uuid::parse_str(id).map_err(|_| InvalidCursor)?,
        })
    }
}

/// One page of a list.
#[derive(Debug, Clone, Serialize)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Where the next page starts; `None` on the last page.
    pub next_cursor: Option<Cursor>,
}

impl Serialize for Cursor {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.encode())
    }
}

/// Ends a list query that pages newest first by `(time_column, id)`: only rows after `after`
/// (keyset pagination), ordered, one row more than `limit` (so [`Page::from_rows`] knows whether
/// another page follows).
pub(crate) fn push_keyset_tail(
    query: &mut QueryBuilder<'_, Postgres>,
    time_column: &'static str,
    after: Option<Cursor>,
    limit: usize,
) {
    if let Some(cursor) = after {
        query
            .push(format_args!(" AND ({time_column}, id) < ("))
            .push_bind(cursor.at)
            .push(", ")
            .push_bind(cursor.id)
            .push(")");
    }
    query
        .push(format_args!(" ORDER BY {time_column} DESC, id DESC LIMIT "))
        .push_bind(limit as i64 + 1);
}

impl<T> Page<T> {
    /// Builds a page from up to `limit + 1` rows: the extra row only says that more exist.
    pub(crate) fn from_rows(mut rows: Vec<T>, limit: usize, key: impl Fn(&T) -> Cursor) -> Self {
        let more = rows.len() > limit;
        rows.truncate(limit);
        let next_cursor = if more { rows.last().map(key) } else { None };
        Page {
            items: rows,
            next_cursor,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_round_trips_and_rejects_garbage() {
        let cursor = Cursor {
            at: DateTime::from_timestamp_micros(1_700_000_000_123_456).unwrap(),
            id: Uuid::now_v7(),
        };
        assert_eq!(Cursor::decode(&cursor.encode()), Ok(cursor));
        for bad in ["", "!!!", "bm9waXBl", &URL_SAFE_NO_PAD.encode("12|not-a-uuid")] {
            assert_eq!(Cursor::decode(bad), Err(InvalidCursor), "{bad}");
        }
    }

    #[test]
    fn cursor_times_outside_years_1_to_9999_are_rejected() {
        let id = Uuid::nil();
        let at = |micros: i64| URL_SAFE_NO_PAD.encode(format!("{micros}|{id}"));
        // The example, about 220,000 BC: chrono holds it, PostgreSQL does not.
        assert_eq!(Cursor::decode(&at(-7_000_000_000_000_000_000)), Err(InvalidCursor));
        assert_eq!(Cursor::decode(&at(i64::MIN)), Err(InvalidCursor));
        assert_eq!(Cursor::decode(&at(i64::MAX)), Err(InvalidCursor));
        let year_one = DateTime::parse_from_rfc3339("0001-01-01T00:00:00Z").unwrap();
        let micros = year_one.timestamp_micros();
        assert!(Cursor::decode(&at(micros)).is_ok());
        assert_eq!(Cursor::decode(&at(micros - 1)), Err(InvalidCursor));
        let last = DateTime::parse_from_rfc3339("9999-12-31T23:59:59.999999Z").unwrap();
        assert!(Cursor::decode(&at(last.timestamp_micros())).is_ok());
        assert_eq!(Cursor::decode(&at(last.timestamp_micros() + 1)), Err(InvalidCursor));
    }
}
