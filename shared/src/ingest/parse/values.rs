//! Text to typed values, straight from byte slices: the hot loop of delimited text calls these
//! once per field, so they allocate nothing and build their error text only on failure.

/// Microseconds in a day.
const DAY_MICROS: i64 = 86_400_000_000;

/// `[+-]?digits`, fitting an i64.
pub(crate) fn parse_i64(text: &[u8]) -> Option<i64> {
    let (negative, digits) = match text.first()? {
        b'-' => (true, &text[1..]),
        b'+' => (false, &text[1..]),
        _ => (false, text),
    };
    if digits.is_empty() || digits.len() > 19 {
        return None;
    }
    let mut value: i64 = 0;
    if digits.len() < 19 {
        // 18 digits never overflow.
        for &b in digits {
            let d = b.wrapping_sub(b'0');
            if d > 9 {
                return None;
            }
            value = value * 10 + i64::from(d);
        }
        return Some(if negative { -value } else { value });
    }
    for &b in digits {
        let d = b.wrapping_sub(b'0');
        if d > 9 {
            return None;
        }
        value = value.checked_mul(10)?;
        value = if negative {
            value.checked_sub(i64::from(d))?
        } else {
            value.checked_add(i64::from(d))?
        };
    }
    Some(value)
}

/// Any number Rust reads as an f64, `inf` and `nan` included.
pub(crate) fn parse_f64(text: &[u8]) -> Option<f64> {
    if !text.is_ascii() || text.is_empty() {
        return None;
    }
    std::str::from_utf8(text).ok()?.parse().ok()
}

/// Whether `text` is written like a decimal number (`-1.5`, `.5`, `2e10`): inference calls a
/// column float64 only for these, not for `inf` or `NaN`, which are more often words.
pub(crate) fn looks_like_float(text: &[u8]) -> bool {
    let mut i = 0;
    if matches!(text.first(), Some(b'+' | b'-')) {
        i += 1;
    }
    let mut digits = 0;
    while i < text.len() && text[i].is_ascii_digit() {
        i += 1;
        digits += 1;
    }
    if i < text.len() && text[i] == b'.' {
        i += 1;
        while i < text.len() && text[i].is_ascii_digit() {
            i += 1;
            digits += 1;
        }
    }
    if digits == 0 {
        return false;
    }
    if i < text.len() && matches!(text[i], b'e' | b'E') {
        i += 1;
        if matches!(text.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        let start = i;
        while i < text.len() && text[i].is_ascii_digit() {
            i += 1;
        }
        if i == start {
            return false;
        }
    }
    i == text.len()
}

/// `true` or `false`, in any case.
pub(crate) fn parse_bool(text: &[u8]) -> Option<bool> {
    if text.eq_ignore_ascii_case(b"true") {
        Some(true)
    } else if text.eq_ignore_ascii_case(b"false") {
        Some(false)
    } else {
        None
    }
}

fn digits<const N: usize>(text: &[u8]) -> Option<u32> {
    if text.len() < N {
        return None;
    }
    let mut value = 0u32;
    for &b in &text[..N] {
        let d = b.wrapping_sub(b'0');
        if d > 9 {
            return None;
        }
        value = value * 10 + u32::from(d);
    }
    Some(value)
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        _ => 28,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (valid month and day).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = if year >= 0 { year } else { year - 399 } / 400;
    let year_of_era = year - era * 400;
    let month_from_march = i64::from((month + 9) % 12);
    let day_of_year = (153 * month_from_march + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// The days since the epoch of `YYYY-MM-DD` at the start of `text`.
fn date_prefix(text: &[u8]) -> Option<i64> {
    if text.len() < 10 || text[4] != b'-' || text[7] != b'-' {
        return None;
    }
    let year = i64::from(digits::<4>(text)?);
    let month = digits::<2>(&text[5..])?;
    let day = digits::<2>(&text[8..])?;
    if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
        return None;
    }
    Some(days_from_civil(year, month, day))
}

/// `YYYY-MM-DD` exactly.
pub(crate) fn parse_date(text: &[u8]) -> Option<i32> {
    if text.len() != 10 {
        return None;
    }
    i32::try_from(date_prefix(text)?).ok()
}

/// Microseconds since the epoch, UTC, of an RFC 3339 timestamp (`2024-05-01T12:30:00.5+02:00`,
/// `…Z`; `T` or a space between date and time). Without a zone (`2024-05-01 12:30:00`, the
/// form databases export) the time is taken as UTC: the lake stores instants and a file that
/// names no zone gives no better guess. A date alone is its midnight, UTC, so that a column
/// of dates and timestamps reads as timestamps. Digits beyond microseconds are cut off.
pub(crate) fn parse_timestamp(text: &[u8]) -> Option<i64> {
    let days = date_prefix(text)?;
    if text.len() == 10 {
        return Some(days * DAY_MICROS);
    }
    if !matches!(text[10], b'T' | b't' | b' ') || text.len() < 19 {
        return None;
    }
    let time = &text[11..];
    if time[2] != b':' || time[5] != b':' {
        return None;
    }
    let (hour, minute, second) = (
        digits::<2>(time)?,
        digits::<2>(&time[3..])?,
        digits::<2>(&time[6..])?,
    );
    if hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    let mut rest = &time[8..];
    let mut micros: i64 = 0;
    if let Some(b'.') = rest.first() {
        let fraction_len = rest[1..].iter().take_while(|b| b.is_ascii_digit()).count();
        if fraction_len == 0 || fraction_len > 9 {
            return None;
        }
        for (i, &b) in rest[1..=fraction_len].iter().enumerate() {
            if i < 6 {
                micros = micros * 10 + i64::from(b - b'0');
            }
        }
        for _ in fraction_len..6 {
            micros *= 10;
        }
        rest = &rest[1 + fraction_len..];
    }
    let offset_seconds: i64 = match rest {
        [] | [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), zone @ ..] => {
            let (hours, minutes) = match zone.len() {
                2 => (digits::<2>(zone)?, 0),
                4 => (digits::<2>(zone)?, digits::<2>(&zone[2..])?),
                5 if zone[2] == b':' => (digits::<2>(zone)?, digits::<2>(&zone[3..])?),
                _ => return None,
            };
            if hours > 23 || minutes > 59 {
                return None;
            }
            let seconds = i64::from(hours * 3600 + minutes * 60);
            if *sign == b'-' { -seconds } else { seconds }
        }
        _ => return None,
    };
    let seconds_of_day = i64::from(hour * 3600 + minute * 60 + second) - offset_seconds;
    Some(days * DAY_MICROS + seconds_of_day * 1_000_000 + micros)
}

/// Why a decimal text does not fit.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum DecimalError {
    NotANumber,
    TooManyPlaces,
    TooManyDigits,
}

/// `[+-]?digits[.digits]` as an i128 of `scale` places. Places beyond the scale must be
/// zeros: rounding would change the customer's value without telling.
pub(crate) fn parse_decimal(text: &[u8], precision: u8, scale: i8) -> Result<i128, DecimalError> {
    let scale = scale.max(0) as usize;
    let (negative, body) = match text.first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        Some(_) => (false, text),
        None => return Err(DecimalError::NotANumber),
    };
    let (whole, fraction) = match body.iter().position(|&b| b == b'.') {
        Some(dot) => (&body[..dot], &body[dot + 1..]),
        None => (body, &body[body.len()..]),
    };
    if whole.is_empty() && fraction.is_empty()
        || !whole.iter().all(u8::is_ascii_digit)
        || !fraction.iter().all(u8::is_ascii_digit)
    {
        return Err(DecimalError::NotANumber);
    }
    if fraction.len() > scale && fraction[scale..].iter().any(|&b| b != b'0') {
        return Err(DecimalError::TooManyPlaces);
    }
    let whole = match whole.iter().position(|&b| b != b'0') {
        Some(first) => &whole[first..],
        None => &whole[whole.len()..],
    };
    if whole.len() + scale > usize::from(precision) {
        return Err(DecimalError::TooManyDigits);
    }
    let mut value: i128 = 0;
    for &b in whole {
        value = value * 10 + i128::from(b - b'0');
    }
    for i in 0..scale {
        let d = fraction.get(i).map_or(0, |b| b - b'0');
        value = value * 10 + i128::from(d);
    }
    Ok(if negative { -value } else { value })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers() {
        let cases: &[(&str, Option<i64>)] = &[
            ("0", Some(0)),
            ("-12", Some(-12)),
            ("+7", Some(7)),
            ("9223372036854775807", Some(i64::MAX)),
            ("-9223372036854775808", Some(i64::MIN)),
            ("9223372036854775808", None),
            ("", None),
            ("-", None),
            ("1.0", None),
            ("1e3", None),
            (" 1", None),
            ("١", None),
        ];
        for (text, expected) in cases {
            assert_eq!(parse_i64(text.as_bytes()), *expected, "{text:?}");
        }
    }

    #[test]
    fn floats_and_what_inference_calls_a_float() {
        let cases: &[(&str, Option<f64>, bool)] = &[
            ("1.5", Some(1.5), true),
            ("-0.25", Some(-0.25), true),
            (".5", Some(0.5), true),
            ("2.", Some(2.0), true),
            ("1e3", Some(1000.0), true),
            ("1.5E-2", Some(0.015), true),
            ("12", Some(12.0), true),
            ("inf", Some(f64::INFINITY), false),
            ("1e", None, false),
            (".", None, false),
            ("1,5", None, false),
            ("abc", None, false),
        ];
        for (text, value, looks) in cases {
            assert_eq!(parse_f64(text.as_bytes()), *value, "{text:?}");
            assert_eq!(looks_like_float(text.as_bytes()), *looks, "{text:?}");
        }
    }

    #[test]
    fn dates_and_timestamps() {
        let day = DAY_MICROS;
        let cases: &[(&str, Option<i32>, Option<i64>)] = &[
            ("1970-01-01", Some(0), Some(0)),
            ("2024-02-29", Some(19_782), Some(19_782 * day)),
            ("2023-02-29", None, None),
            ("1969-12-31", Some(-1), Some(-day)),
            ("2024-13-01", None, None),
            ("2024-1-01", None, None),
            ("1970-01-01T00:00:01Z", None, Some(1_000_000)),
            ("1970-01-01 00:00:01", None, Some(1_000_000)),
            ("1970-01-01T00:00:01.5", None, Some(1_500_000)),
            ("1970-01-01T00:00:00.123456789Z", None, Some(123_456)),
            ("1970-01-01T02:00:00+02:00", None, Some(0)),
            ("1970-01-01T00:00:00-0130", None, Some(5_400_000_000)),
            ("1970-01-01t00:00:00z", None, Some(0)),
            ("1970-01-01T24:00:00Z", None, None),
            ("1970-01-01T00:00:00.Z", None, None),
            ("1970-01-01T00:00:00 UTC", None, None),
            ("1970-01-01T00:00", None, None),
        ];
        for (text, date, timestamp) in cases {
            assert_eq!(parse_date(text.as_bytes()), *date, "{text:?}");
            assert_eq!(parse_timestamp(text.as_bytes()), *timestamp, "{text:?}");
        }
    }

    #[test]
    fn decimals() {
        let cases: &[(&str, Result<i128, DecimalError>)] = &[
            ("12.34", Ok(1234)),
            ("-0.5", Ok(-50)),
            ("7", Ok(700)),
            ("1.230", Ok(123)),
            ("001.5", Ok(150)),
            (".25", Ok(25)),
            ("1.234", Err(DecimalError::TooManyPlaces)),
            ("1234", Err(DecimalError::TooManyDigits)),
            ("1e2", Err(DecimalError::NotANumber)),
            (".", Err(DecimalError::NotANumber)),
            ("", Err(DecimalError::NotANumber)),
        ];
        for (text, expected) in cases {
            assert_eq!(parse_decimal(text.as_bytes(), 5, 2), *expected, "{text:?}");
        }
    }
}
