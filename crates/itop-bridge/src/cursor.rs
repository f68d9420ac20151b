//! The reconciler's position in the external iTop's `last_update` times.
//!
//! iTop dates are the server's local time without a zone (`Y-m-d H:i:s`,
//! Europe/Paris by default), so the cursor only ever holds values the server
//! produced, compared as dates (not as text), plus one start value that is
//! certainly not in the server's future whatever its timezone.

use time::format_description::BorrowedFormatItem;
use time::macros::format_description;
use time::{Duration, OffsetDateTime, PrimitiveDateTime};

const FORMAT: &[BorrowedFormatItem<'static>] =
    format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");

/// How far back every query reaches before the cursor: a change committed
/// late with an earlier `last_update` than one already seen is still found.
pub const OVERLAP: Duration = Duration::seconds(60);

/// Timezones run from UTC−12 to UTC+14: UTC now minus 14 hours is in the
/// past of every server clock (with two hours to spare for a slow clock here).
const START_BEHIND_UTC: Duration = Duration::hours(14);

pub fn parse(text: &str) -> Option<PrimitiveDateTime> {
    PrimitiveDateTime::parse(text.trim(), FORMAT).ok()
}

fn format(t: PrimitiveDateTime) -> String {
    t.format(FORMAT).unwrap_or_default()
}

/// The first cursor of a bridge: before "now" on any server clock.
pub fn start(now_utc: OffsetDateTime) -> String {
    let t = now_utc - START_BEHIND_UTC;
    format(PrimitiveDateTime::new(t.date(), t.time()))
}

/// The lower bound of the next query: the cursor minus [`OVERLAP`] (the
/// cursor itself when it is not a date this module can read).
pub fn query_from(cursor: &str) -> String {
    parse(cursor)
        .map(|t| format(t.saturating_sub(OVERLAP)))
        .unwrap_or_else(|| cursor.to_string())
}

/// The newest of the cursor and the `last_update` values seen (unreadable
/// values are ignored).
pub fn newest<'a>(cursor: &str, seen: impl IntoIterator<Item = &'a str>) -> String {
    let mut best = (parse(cursor), cursor.to_string());
    for text in seen {
        if let Some(t) = parse(text)
            && best.0.is_none_or(|b| t > b)
        {
            best = (Some(t), text.trim().to_string());
        }
    }
    best.1
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn start_is_behind_every_timezone() {
        assert_eq!(
            start(datetime!(2026-03-01 10:00:00 UTC)),
            "2026-02-28 20:00:00"
        );
    }

    #[test]
    fn queries_overlap_and_cursor_moves_forward_only() {
        assert_eq!(query_from("2026-01-01 00:00:30"), "2025-12-31 23:59:30");
        assert_eq!(query_from("garbage"), "garbage");
        assert_eq!(
            newest(
                "2026-01-01 10:00:00",
                ["2026-01-01 09:00:00", "2026-01-01 10:00:05", "x"]
            ),
            "2026-01-01 10:00:05"
        );
        assert_eq!(
            newest("2026-01-01 10:00:00", ["2026-01-01 09:59:59"]),
            "2026-01-01 10:00:00"
        );
    }
}
