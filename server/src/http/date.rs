//! IMF-fixdate (RFC 9110 §5.6.7, `Sun, 06 Nov 1994 08:49:37 GMT`) written straight into a
//! buffer. A PROPFIND Depth 1 of 1000 files formats 1000 dates; `httpdate` goes through
//! `core::fmt` and a fresh `String` each time (benches/dates.rs compares the two; parsing
//! stays with `httpdate`).

use std::time::{SystemTime, UNIX_EPOCH};

/// Length of every IMF-fixdate.
pub const IMF_FIXDATE_LEN: usize = 29;

const DAYS: [&[u8; 3]; 7] = [b"Thu", b"Fri", b"Sat", b"Sun", b"Mon", b"Tue", b"Wed"];
const MONTHS: [&[u8; 3]; 12] = [
    b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov", b"Dec",
];
/// The last second `httpdate` (and the format's four-digit year) can show: 9999-12-31 23:59:59.
const SECS_MAX: u64 = 253_402_300_799;

/// The IMF-fixdate of `t` (clamped to 1970..=9999, as `httpdate` does for the years it takes).
pub fn imf_fixdate(t: SystemTime) -> [u8; IMF_FIXDATE_LEN] {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
        .min(SECS_MAX);
    let days = secs / 86_400;
    let sod = secs % 86_400;
    // 0..=SECS_MAX: the year is 1970..=9999.
    let (year, month, day) = civil_from_days(days as i64);
    let year = year as u64;
    let mut out = *b"Thu, 01 Jan 1970 00:00:00 GMT";
    out[..3].copy_from_slice(DAYS[(days % 7) as usize]);
    two(&mut out[5..7], u64::from(day));
    out[8..11].copy_from_slice(MONTHS[(month - 1) as usize]);
    two(&mut out[12..14], year / 100);
    two(&mut out[14..16], year % 100);
    two(&mut out[17..19], sod / 3600);
    two(&mut out[20..22], sod / 60 % 60);
    two(&mut out[23..25], sod % 60);
    out
}

/// `(year, month 1..=12, day 1..=31)` of a day counted from 1970-01-01 (negative before it),
/// proleptic Gregorian (H. Hinnant's `civil_from_days`).
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month as u32, day as u32)
}

fn two(out: &mut [u8], n: u64) {
    debug_assert!(n < 100);
    out[0] = b'0' + (n / 10) as u8;
    out[1] = b'0' + (n % 10) as u8;
}

/// Appends the IMF-fixdate of `t` to `buf`.
pub fn push_imf_fixdate(buf: &mut String, t: SystemTime) {
    let date = imf_fixdate(t);
    // Only ASCII is ever written into it, so this never falls back to "".
    buf.push_str(std::str::from_utf8(&date).unwrap_or(""));
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::time::Duration;

    #[test]
    fn known_dates() {
        let at = |s| String::from_utf8(imf_fixdate(UNIX_EPOCH + Duration::from_secs(s)).to_vec());
        assert_eq!(at(0).unwrap(), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(at(784_111_777).unwrap(), "Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(at(951_782_400).unwrap(), "Tue, 29 Feb 2000 00:00:00 GMT");
        assert_eq!(at(SECS_MAX).unwrap(), "Fri, 31 Dec 9999 23:59:59 GMT");
        assert_eq!(at(u64::MAX / 4).unwrap(), "Fri, 31 Dec 9999 23:59:59 GMT");
        let before = UNIX_EPOCH - Duration::from_secs(10);
        assert_eq!(&imf_fixdate(before), b"Thu, 01 Jan 1970 00:00:00 GMT");
    }

    proptest! {
        #[test]
        fn same_as_httpdate(secs in 0u64..=SECS_MAX, nanos in 0u32..1_000_000_000) {
            let t = UNIX_EPOCH + Duration::new(secs, nanos);
            let mut mine = String::new();
            push_imf_fixdate(&mut mine, t);
            prop_assert_eq!(mine, httpdate::fmt_http_date(t));
        }
    }
}
