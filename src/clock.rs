//! Dates as text, computed by hand from the Unix epoch (RFC 3339 for logs and JSON, IMF-fixdate
//! for the HTTP `Date` header), and a cache so the `Date` header costs nothing per response.

use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// `2025-01-01T00:00:00.000Z` for a time.
pub fn rfc3339(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
    let (y, mo, day, h, mi, s) = civil(d.as_secs());
    format!(
        "{y:04}-{mo:02}-{day:02}T{h:02}:{mi:02}:{s:02}.{:03}Z",
        d.subsec_millis()
    )
}

/// `Thu, 01 Jan 1970 00:00:00 GMT` for a time.
pub fn http_date(t: SystemTime) -> String {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs();
    let (y, mo, day, h, mi, s) = civil(secs);
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let wd = DAYS[((secs / 86_400) % 7) as usize];
    format!(
        "{wd}, {day:02} {} {y:04} {h:02}:{mi:02}:{s:02} GMT",
        MONTHS[(mo - 1) as usize]
    )
}

/// Milliseconds since the Unix epoch.
pub fn unix_millis(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_millis() as u64
}

/// The HTTP `Date` value, recomputed at most once a second.
#[derive(Default)]
pub struct DateCache {
    cached: Mutex<(u64, String)>,
}

impl DateCache {
    /// The value for `now`.
    pub fn get(&self, now: SystemTime) -> String {
        let secs = now
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO)
            .as_secs();
        let mut c = match self.cached.lock() {
            Ok(c) => c,
            Err(poisoned) => poisoned.into_inner(),
        };
        if c.0 != secs || c.1.is_empty() {
            *c = (secs, http_date(now));
        }
        c.1.clone()
    }
}

/// (year, month, day, hour, minute, second) in UTC; the days-from-civil inverse of
/// Howard Hinnant's algorithm.
fn civil(secs: u64) -> (i64, u32, u32, u32, u32, u32) {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = if m <= 2 { y + 1 } else { y };
    (
        y,
        m,
        d,
        (rem / 3600) as u32,
        ((rem % 3600) / 60) as u32,
        (rem % 60) as u32,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epoch_and_known_dates_format_exactly() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        assert_eq!(http_date(UNIX_EPOCH), "Thu, 01 Jan 1970 00:00:00 GMT");
        let t = UNIX_EPOCH + Duration::from_millis(1_709_251_199_123); // 2024-02-29 23:59:59.123
        assert_eq!(rfc3339(t), "2024-02-29T23:59:59.123Z");
        assert_eq!(http_date(t), "Thu, 29 Feb 2024 23:59:59 GMT");
        let t = UNIX_EPOCH + Duration::from_secs(4_102_444_800); // 2100-01-01
        assert_eq!(rfc3339(t), "2100-01-01T00:00:00.000Z");
    }

    #[test]
    fn cache_changes_with_the_second() {
        let c = DateCache::default();
        let a = c.get(UNIX_EPOCH);
        assert_eq!(a, c.get(UNIX_EPOCH + Duration::from_millis(999)));
        assert_ne!(a, c.get(UNIX_EPOCH + Duration::from_secs(1)));
    }
}
