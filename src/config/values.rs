//! How values are written: booleans, sizes and counts with K/M suffixes, and InspIRCd
//! durations.

use std::ops::RangeInclusive;

use super::keys::Kind;

/// The words a boolean may be, for errors.
pub const BOOLEAN_VALUES: &str = "yes, no, true, false, on, off, 1, 0";
/// How a duration is written, for errors.
pub const DURATION_SYNTAX: &str =
    "a number of seconds or numbers with units y, w, d, h, m, s (e.g. 1m30s)";

/// How a key's range reads in errors.
pub fn range_text(range: &RangeInclusive<u64>, kind: Kind) -> String {
    let (start, end) = (*range.start(), *range.end());
    match kind {
        Kind::Size => format!("{start} to {end} bytes (K and M suffixes allowed)"),
        Kind::Duration => format!("{start} to {end} seconds"),
        Kind::Count | Kind::Boolean | Kind::Choice | Kind::Text => format!("{start} to {end}"),
    }
}

/// A decimal number with an optional `K` (×1024) or `M` (×1024²) suffix.
pub fn parse_size(value: &str) -> Option<u64> {
    let value = value.trim();
    let (digits, multiplier) = if let Some(digits) = value.strip_suffix(['k', 'K']) {
        (digits, 1024)
    } else if let Some(digits) = value.strip_suffix(['m', 'M']) {
        (digits, 1024 * 1024)
    } else {
        (value, 1)
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse::<u64>().ok()?.checked_mul(multiplier)
}

/// An InspIRCd duration in seconds: a plain number of seconds, or numbers each followed
/// by a unit (`y` 365 days, `w`, `d`, `h`, `m`, `s`, either case); a trailing number
/// without a unit counts as seconds (`1m30` = 90). `None` when malformed or overflowing.
pub fn parse_duration(value: &str) -> Option<u64> {
    let value = value.trim();
    if value.is_empty() {
        return None;
    }
    let mut total: u64 = 0;
    let mut pending: Option<u64> = None;
    for c in value.chars() {
        if let Some(digit) = c.to_digit(10) {
            let so_far = pending.unwrap_or(0);
            pending = Some(so_far.checked_mul(10)?.checked_add(u64::from(digit))?);
            continue;
        }
        let unit: u64 = match c.to_ascii_lowercase() {
            'y' => 365 * 86_400,
            'w' => 7 * 86_400,
            'd' => 86_400,
            'h' => 3600,
            'm' => 60,
            's' => 1,
            _ => return None,
        };
        let count = pending.take()?;
        total = total.checked_add(count.checked_mul(unit)?)?;
    }
    if let Some(seconds) = pending {
        total = total.checked_add(seconds)?;
    }
    Some(total)
}

/// A boolean, as [`BOOLEAN_VALUES`] lists (ASCII case-insensitive).
pub fn parse_bool(value: &str) -> Option<bool> {
    const TRUE: [&str; 4] = ["yes", "true", "on", "1"];
    const FALSE: [&str; 4] = ["no", "false", "off", "0"];
    let value = value.trim();
    if TRUE.iter().any(|t| value.eq_ignore_ascii_case(t)) {
        Some(true)
    } else if FALSE.iter().any(|f| value.eq_ignore_ascii_case(f)) {
        Some(false)
    } else {
        None
    }
}
