//! Server-local time as iTop shows it (default timezone Europe/Paris).

use time::{Date, Duration, Month, OffsetDateTime, PrimitiveDateTime, Weekday};

/// Current time in Europe/Paris (CET/CEST, EU daylight-saving rule).
pub fn now_local() -> PrimitiveDateTime {
    to_paris(OffsetDateTime::now_utc())
}

pub fn to_paris(utc: OffsetDateTime) -> PrimitiveDateTime {
    let year = utc.year();
    let start =
        last_sunday(year, Month::March).map(|d| d.midnight().assume_utc() + Duration::hours(1));
    let end =
        last_sunday(year, Month::October).map(|d| d.midnight().assume_utc() + Duration::hours(1));
    let summer = matches!((start, end), (Some(s), Some(e)) if utc >= s && utc < e);
    let local = utc + Duration::hours(if summer { 2 } else { 1 });
    PrimitiveDateTime::new(local.date(), local.time())
}

fn last_sunday(year: i32, month: Month) -> Option<Date> {
    let days = time::util::days_in_month(month, year);
    let mut date = Date::from_calendar_date(year, month, days).ok()?;
    while date.weekday() != Weekday::Sunday {
        date = date.previous_day()?;
    }
    Some(date)
}

/// `Y-m-d H:i:s`.
pub fn format(t: PrimitiveDateTime) -> String {
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

pub fn now_text() -> String {
    format(now_local())
}

/// Parses `Y-m-d H:i:s` or `Y-m-d` (what the simulator accepts for case-log dates).
pub fn parse(text: &str) -> Option<PrimitiveDateTime> {
    let text = text.trim();
    let (date_part, time_part) = match text.split_once(' ') {
        Some((d, t)) => (d, t),
        None => (text, "00:00:00"),
    };
    let mut dp = date_part.split('-').map(|p| p.parse::<i64>().ok());
    let (y, m, d) = (dp.next()??, dp.next()??, dp.next()??);
    let mut tp = time_part.split(':').map(|p| p.parse::<i64>().ok());
    let h = tp.next()??;
    let mi = tp.next().flatten().unwrap_or(0);
    let s = tp.next().flatten().unwrap_or(0);
    let month = Month::try_from(u8::try_from(m).ok()?).ok()?;
    let date =
        Date::from_calendar_date(i32::try_from(y).ok()?, month, u8::try_from(d).ok()?).ok()?;
    let time = time::Time::from_hms(
        u8::try_from(h).ok()?,
        u8::try_from(mi).ok()?,
        u8::try_from(s).ok()?,
    )
    .ok()?;
    Some(PrimitiveDateTime::new(date, time))
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn paris_offsets() {
        assert_eq!(
            format(to_paris(datetime!(2026-11-25 10:13:28 UTC))),
            "2026-11-25 11:13:28"
        );
        assert_eq!(
            format(to_paris(datetime!(2026-07-01 10:00:00 UTC))),
            "2026-07-01 12:00:00"
        );
        assert_eq!(
            parse("2024-01-31 10:02:00").map(format).as_deref(),
            Some("2024-01-31 10:02:00")
        );
    }
}
