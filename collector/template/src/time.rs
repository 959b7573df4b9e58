//! UTC calendar arithmetic and Go's reference-time layouts
//! ("2006-01-02 15:04:05"), enough for humanizeTimestamp and date.

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const DAYS: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];

struct Civil {
    year: i64,
    /// 1..=12
    month: usize,
    day: i64,
    /// 1..=366
    yday: i64,
    /// 0 is Sunday.
    weekday: usize,
    hour: i64,
    minute: i64,
    second: i64,
    nanos: u32,
}

fn is_leap(y: i64) -> bool {
    y % 4 == 0 && (y % 100 != 0 || y % 400 == 0)
}

/// Splits Unix seconds into a UTC date and time (proleptic Gregorian).
fn civil(secs: i64, nanos: u32) -> Civil {
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    // Days counted from 0000-03-01, so leap days fall at the end of a year.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    const BEFORE: [i64; 12] = [0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334];
    let month_idx = (month - 1).clamp(0, 11) as usize;
    let yday = BEFORE[month_idx] + day + i64::from(month > 2 && is_leap(year));
    Civil {
        year,
        month: month_idx + 1,
        day,
        yday,
        weekday: (days + 4).rem_euclid(7) as usize,
        hour: sod / 3600,
        minute: sod % 3600 / 60,
        second: sod % 60,
        nanos,
    }
}

/// Go's appendInt: a sign, then at least `width` digits.
fn push_int(out: &mut String, v: i64, width: usize) {
    if v < 0 {
        out.push('-');
    }
    let digits = v.unsigned_abs().to_string();
    for _ in digits.len()..width {
        out.push('0');
    }
    out.push_str(&digits);
}

enum Std {
    LongMonth,
    Month,
    NumMonth,
    ZeroMonth,
    LongWeekDay,
    WeekDay,
    Day,
    UnderDay,
    ZeroDay,
    UnderYearDay,
    ZeroYearDay,
    Hour,
    Hour12,
    ZeroHour12,
    Minute,
    ZeroMinute,
    Second,
    ZeroSecond,
    LongYear,
    Year,
    PM,
    Pm,
    /// `Z07:00` and friends: "Z" for UTC.
    Iso,
    /// `-07:00` and friends: the numeric offset, zero here.
    NumTz(&'static str),
    Tz,
    /// `.000` (zeros kept) or `.999` (zeros trimmed), with the separator.
    Frac {
        sep: char,
        digits: usize,
        trim: bool,
    },
}

fn starts_lower(s: &str) -> bool {
    s.starts_with(|c: char| c.is_ascii_lowercase())
}

/// The layout element at the start of `s`, if any, and its length;
/// the same elements, in the same order of preference, as Go's
/// nextStdChunk.
fn std_at(s: &str) -> Option<(Std, usize)> {
    let b = s.as_bytes();
    let at = |i: usize| b.get(i).copied().unwrap_or(0);
    match at(0) {
        b'J' if s.starts_with("January") => Some((Std::LongMonth, 7)),
        b'J' if s.starts_with("Jan") && !starts_lower(&s[3..]) => Some((Std::Month, 3)),
        b'M' if s.starts_with("Monday") => Some((Std::LongWeekDay, 6)),
        b'M' if s.starts_with("Mon") && !starts_lower(&s[3..]) => Some((Std::WeekDay, 3)),
        b'M' if s.starts_with("MST") => Some((Std::Tz, 3)),
        b'0' if (b'1'..=b'6').contains(&at(1)) => Some((
            match at(1) {
                b'1' => Std::ZeroMonth,
                b'2' => Std::ZeroDay,
                b'3' => Std::ZeroHour12,
                b'4' => Std::ZeroMinute,
                b'5' => Std::ZeroSecond,
                _ => Std::Year,
            },
            2,
        )),
        b'0' if s.starts_with("002") => Some((Std::ZeroYearDay, 3)),
        b'1' if at(1) == b'5' => Some((Std::Hour, 2)),
        b'1' => Some((Std::NumMonth, 1)),
        b'2' if s.starts_with("2006") => Some((Std::LongYear, 4)),
        b'2' => Some((Std::Day, 1)),
        // "_2006" is a literal underscore and then the year.
        b'_' if at(1) == b'2' && !s[1..].starts_with("2006") => Some((Std::UnderDay, 2)),
        b'_' if s.starts_with("__2") => Some((Std::UnderYearDay, 3)),
        b'3' => Some((Std::Hour12, 1)),
        b'4' => Some((Std::Minute, 1)),
        b'5' => Some((Std::Second, 1)),
        b'P' if at(1) == b'M' => Some((Std::PM, 2)),
        b'p' if at(1) == b'm' => Some((Std::Pm, 2)),
        b'-' => ["-070000", "-07:00:00", "-0700", "-07:00", "-07"]
            .into_iter()
            .find(|p| s.starts_with(p))
            .map(|p| {
                let offset = match p {
                    "-070000" => "+000000",
                    "-07:00:00" => "+00:00:00",
                    "-0700" => "+0000",
                    "-07:00" => "+00:00",
                    _ => "+00",
                };
                (Std::NumTz(offset), p.len())
            }),
        b'Z' => ["Z070000", "Z07:00:00", "Z0700", "Z07:00", "Z07"]
            .into_iter()
            .find(|p| s.starts_with(p))
            .map(|p| (Std::Iso, p.len())),
        c @ (b'.' | b',') if matches!(at(1), b'0' | b'9') => {
            let d = at(1);
            let run = b[1..].iter().take_while(|&&x| x == d).count();
            // Only a fraction if the digits end the number.
            if at(1 + run).is_ascii_digit() {
                return None;
            }
            Some((
                Std::Frac {
                    sep: c as char,
                    digits: run,
                    trim: d == b'9',
                },
                1 + run,
            ))
        }
        _ => None,
    }
}

/// Formats a UTC instant with a Go layout.
pub(crate) fn format(secs: i64, nanos: u32, layout: &str) -> String {
    let c = civil(secs, nanos);
    let mut out = String::with_capacity(layout.len() + 10);
    let mut literal = 0;
    let mut i = 0;
    while i < layout.len() {
        let Some((std, len)) = layout.get(i..).and_then(std_at) else {
            i += 1;
            continue;
        };
        out.push_str(&layout[literal..i]);
        i += len;
        literal = i;
        let month = MONTHS[(c.month - 1).min(11)];
        let day = DAYS[c.weekday.min(6)];
        let hour12 = if c.hour % 12 == 0 { 12 } else { c.hour % 12 };
        match std {
            Std::LongMonth => out.push_str(month),
            Std::Month => out.push_str(&month[..3]),
            Std::NumMonth => push_int(&mut out, c.month as i64, 0),
            Std::ZeroMonth => push_int(&mut out, c.month as i64, 2),
            Std::LongWeekDay => out.push_str(day),
            Std::WeekDay => out.push_str(&day[..3]),
            Std::Day => push_int(&mut out, c.day, 0),
            Std::UnderDay => {
                if c.day < 10 {
                    out.push(' ');
                }
                push_int(&mut out, c.day, 0);
            }
            Std::ZeroDay => push_int(&mut out, c.day, 2),
            Std::UnderYearDay => {
                for _ in c.yday.to_string().len()..3 {
                    out.push(' ');
                }
                push_int(&mut out, c.yday, 0);
            }
            Std::ZeroYearDay => push_int(&mut out, c.yday, 3),
            Std::Hour => push_int(&mut out, c.hour, 2),
            Std::Hour12 => push_int(&mut out, hour12, 0),
            Std::ZeroHour12 => push_int(&mut out, hour12, 2),
            Std::Minute => push_int(&mut out, c.minute, 0),
            Std::ZeroMinute => push_int(&mut out, c.minute, 2),
            Std::Second => push_int(&mut out, c.second, 0),
            Std::ZeroSecond => push_int(&mut out, c.second, 2),
            Std::LongYear => push_int(&mut out, c.year, 4),
            Std::Year => push_int(&mut out, c.year % 100, 2),
            Std::PM => out.push_str(if c.hour >= 12 { "PM" } else { "AM" }),
            Std::Pm => out.push_str(if c.hour >= 12 { "pm" } else { "am" }),
            Std::Iso => out.push('Z'),
            Std::NumTz(offset) => out.push_str(offset),
            Std::Tz => out.push_str("UTC"),
            Std::Frac { sep, digits, trim } => {
                let all = format!("{:09}", c.nanos);
                let mut frac = &all[..digits.min(9)];
                if trim {
                    frac = frac.trim_end_matches('0');
                }
                if !frac.is_empty() {
                    out.push(sep);
                    out.push_str(frac);
                }
            }
        }
    }
    out.push_str(&layout[literal..]);
    out
}

/// Go's time.Time.String() for a UTC time.
pub(crate) fn go_string(secs: i64, nanos: u32) -> String {
    format(secs, nanos, "2006-01-02 15:04:05.999999999 -0700 MST")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates() {
        assert_eq!(go_string(0, 0), "1970-01-01 00:00:00 +0000 UTC");
        assert_eq!(go_string(-1, 0), "1969-12-31 23:59:59 +0000 UTC");
        assert_eq!(
            go_string(1_435_065_584, 128_000_000),
            "2015-06-23 13:19:44.128 +0000 UTC"
        );
        assert_eq!(go_string(951_782_400, 0), "2000-02-29 00:00:00 +0000 UTC");
        assert_eq!(go_string(9_223_372_036, 0), "2262-04-11 23:47:16 +0000 UTC");
        // Go's zero time, which Alertmanager sends for an unset end.
        assert_eq!(
            go_string(-62_135_596_800, 0),
            "0001-01-01 00:00:00 +0000 UTC"
        );
        assert_eq!(format(-62_135_596_800, 0, "Mon 002"), "Mon 001");
    }

    #[test]
    fn layouts() {
        // 2024-03-05T14:07:09.5Z, a Tuesday, day 65 of a leap year.
        let t = 1_709_647_629;
        let n = 500_000_000;
        assert_eq!(format(t, n, "2006-01-02 15:04:05"), "2024-03-05 14:07:09");
        assert_eq!(
            format(t, n, "Mon Jan _2 3:4:5 PM 06"),
            "Tue Mar  5 2:7:9 PM 24"
        );
        assert_eq!(
            format(t, n, "Monday, January 2, 2006"),
            "Tuesday, March 5, 2024"
        );
        assert_eq!(
            format(t, n, "2006-01-02T15:04:05.000Z07:00"),
            "2024-03-05T14:07:09.500Z"
        );
        assert_eq!(
            format(t, n, "15:04:05.999 -0700 MST"),
            "14:07:09.5 +0000 UTC"
        );
        assert_eq!(
            format(t, 0, "05.999|05.000|002|__2|pm"),
            "09|09.000|065| 65|pm"
        );
        assert_eq!(format(t, n, "_2006 Janx"), "_2024 Janx");
    }
}
