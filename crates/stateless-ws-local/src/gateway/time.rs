//! The two timestamp formats API Gateway uses, without a date-time dependency.

use std::time::{SystemTime, UNIX_EPOCH};

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// (year, month 1..=12, day 1..=31) of a day count since 1970-01-01 (Howard Hinnant's
/// `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = u32::try_from(doy - (153 * mp + 2) / 5 + 1).unwrap_or(1);
    let month = u32::try_from(if mp < 10 { mp + 3 } else { mp - 9 }).unwrap_or(1);
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

struct Parts {
    year: i64,
    month: u32,
    day: u32,
    hour: u64,
    minute: u64,
    second: u64,
    millis: u32,
}

fn parts(t: SystemTime) -> Parts {
    let since = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let (year, month, day) = civil_from_days(days);
    let rem = secs % 86_400;
    Parts {
        year,
        month,
        day,
        hour: rem / 3_600,
        minute: rem % 3_600 / 60,
        second: rem % 60,
        millis: since.subsec_millis(),
    }
}

/// `requestContext.requestTime`: `09/Feb/2024:18:11:22 +0000`.
pub(crate) fn request_time(t: SystemTime) -> String {
    let p = parts(t);
    let month = MONTHS[(p.month as usize).saturating_sub(1) % 12];
    format!(
        "{:02}/{month}/{}:{:02}:{:02}:{:02} +0000",
        p.day, p.year, p.hour, p.minute, p.second
    )
}

/// ISO 8601 / RFC 3339 in UTC with milliseconds, as `GET @connections` answers:
/// `2026-11-26T10:00:00.000Z`.
pub(crate) fn iso8601(t: SystemTime) -> String {
    let p = parts(t);
    format!(
        "{}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        p.year, p.month, p.day, p.hour, p.minute, p.second, p.millis
    )
}

/// Milliseconds since the Unix epoch.
pub(crate) fn epoch_millis(t: SystemTime) -> i64 {
    i64::try_from(t.duration_since(UNIX_EPOCH).unwrap_or_default().as_millis()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn formats_match_api_gateway() {
        // 2024-02-09T18:11:22.123Z
        let t = UNIX_EPOCH + Duration::from_millis(1_707_502_282_123);
        assert_eq!(request_time(t), "09/Feb/2024:18:11:22 +0000");
        assert_eq!(iso8601(t), "2024-02-09T18:11:22.123Z");
        assert_eq!(epoch_millis(t), 1_707_502_282_123);
        assert_eq!(iso8601(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        // A leap day and the end of a year.
        let leap = UNIX_EPOCH + Duration::from_secs(1_709_208_000); // 2024-02-29T12:00:00Z
        assert_eq!(iso8601(leap), "2024-02-29T12:00:00.000Z");
        let eoy = UNIX_EPOCH + Duration::from_secs(1_798_761_599); // 2026-12-31T23:59:59Z
        assert_eq!(request_time(eoy), "31/Dec/2026:23:59:59 +0000");
    }
}
