//! The simulated clock: real time, optionally shifted to start at a fixed instant.

use time::{
    OffsetDateTime, PrimitiveDateTime, format_description::BorrowedFormatItem,
    macros::format_description,
};

const GLPI_FORMAT: &[BorrowedFormatItem<'static>] =
    format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");
const HTTP_FORMAT: &[BorrowedFormatItem<'static>] = format_description!(
    "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
);

#[derive(Clone, Debug)]
pub(crate) struct Clock {
    offset: time::Duration,
    /// The time of the request being served: GLPI reads the clock once per request
    /// (`$_SESSION["glpi_currenttime"]`), so every row one request writes (a massive
    /// action, the autoclose cron) gets the same `date_mod`.
    frozen: Option<String>,
}

impl Clock {
    pub(crate) fn new(start: Option<&str>) -> Result<Clock, String> {
        let offset = match start {
            None => time::Duration::ZERO,
            Some(s) => {
                let at = PrimitiveDateTime::parse(s, GLPI_FORMAT)
                    .map_err(|e| format!("clock_start {s:?}: {e}"))?
                    .assume_utc();
                at - OffsetDateTime::now_utc()
            }
        };
        Ok(Clock {
            offset,
            frozen: None,
        })
    }

    /// Read the clock once for the request starting now; [`Clock::now`] answers that time
    /// until [`Clock::thaw`].
    pub(crate) fn freeze(&mut self) {
        self.frozen = None;
        self.frozen = Some(self.now());
    }

    /// The request is over: the clock runs again.
    pub(crate) fn thaw(&mut self) {
        self.frozen = None;
    }

    fn now_dt(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc() + self.offset
    }

    /// Now as GLPI writes datetimes: `YYYY-MM-DD HH:MM:SS` (UTC, no zone).
    pub(crate) fn now(&self) -> String {
        if let Some(frozen) = &self.frozen {
            return frozen.clone();
        }
        self.now_dt().format(GLPI_FORMAT).unwrap_or_default()
    }
}

/// `2026-11-25 10:13:37` -> `Wed, 25 Nov 2026 10:13:37 GMT`.
pub(crate) fn http_date(glpi: &str) -> Option<String> {
    let dt = PrimitiveDateTime::parse(glpi, GLPI_FORMAT)
        .ok()?
        .assume_utc();
    dt.format(HTTP_FORMAT).ok()
}
