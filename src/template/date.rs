//! sprig's date functions over Go's time.Time: Go's layout-based formatting and parsing
//! (`2006-01-02 15:04:05`), durations, and time zones. The operator's local zone is UTC (as in
//! ESO's container image, which has no zone configured).

use std::rc::Rc;

/// A Go time.Time: an instant, the zone it is shown in, and (for `now`) a monotonic reading.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct GoTime {
    /// Seconds since the Unix epoch.
    pub(crate) secs: i64,
    pub(crate) nanos: u32,
    /// Seconds east of UTC.
    pub(crate) offset: i32,
    /// The zone abbreviation Go prints for MST.
    pub(crate) zone: Rc<str>,
    /// Nanoseconds of the monotonic clock (Go prints `m=+0.000000001`), for `now` only.
    pub(crate) mono: Option<i64>,
}

const DAYS: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];
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

/// Civil date from days since 1970-01-01 (proleptic Gregorian).
fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// Days since 1970-01-01 of a civil date (month and day may overflow, as Go's time.Date allows).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    // Normalise the month first.
    let y = y + (m - 1).div_euclid(12);
    let m = (m - 1).rem_euclid(12) + 1;
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn is_leap(y: i64) -> bool {
    y % 4 == 0 && (y % 100 != 0 || y % 400 == 0)
}

impl GoTime {
    pub(crate) fn utc(secs: i64, nanos: u32) -> GoTime {
        GoTime {
            secs,
            nanos,
            offset: 0,
            zone: Rc::from("UTC"),
            mono: None,
        }
    }

    /// time.Now() in the local zone (UTC), with a monotonic reading.
    pub(crate) fn now() -> GoTime {
        let d = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let mut t = GoTime::utc(d.as_secs() as i64, d.subsec_nanos());
        t.mono = Some(monotonic_ns());
        t
    }

    /// The same instant shown in `zone` (Go's LoadLocation; an unknown zone is UTC, as sprig
    /// falls back). "" and "UTC" are UTC, "Local" is the operator's zone (UTC).
    pub(crate) fn in_zone(&self, zone: &str) -> GoTime {
        let mut t = self.clone();
        t.mono = None;
        let tz: Option<chrono_tz::Tz> = match zone {
            "" | "UTC" | "Local" => None,
            z => z.parse().ok(),
        };
        match tz {
            None => {
                t.offset = 0;
                t.zone = Rc::from("UTC");
            }
            Some(tz) => {
                use chrono::{Offset as _, TimeZone as _};
                use chrono_tz::OffsetName as _;
                let Some(utc) = chrono::DateTime::from_timestamp(self.secs, 0) else {
                    return t;
                };
                let off = tz.offset_from_utc_datetime(&utc.naive_utc());
                t.offset = off.fix().local_minus_utc();
                t.zone = Rc::from(
                    off.abbreviation()
                        .map(str::to_string)
                        .unwrap_or_else(|| numeric_zone(t.offset)),
                );
            }
        }
        t
    }

    fn local_secs(&self) -> i64 {
        self.secs + i64::from(self.offset)
    }

    /// Go's Time.String: `2006-01-02 15:04:05.999999999 -0700 MST`, plus the monotonic reading.
    pub(crate) fn go_string(&self) -> String {
        let mut s = self.format("2006-01-02 15:04:05.999999999 -0700 MST");
        if let Some(m) = self.mono {
            let sign = if m < 0 { '-' } else { '+' };
            let m = m.unsigned_abs();
            s.push_str(&format!(
                " m={sign}{}.{:09}",
                m / 1_000_000_000,
                m % 1_000_000_000
            ));
        }
        s
    }

    pub(crate) fn add_nanos(&self, d: i64) -> GoTime {
        let total = i128::from(self.secs) * 1_000_000_000 + i128::from(self.nanos) + i128::from(d);
        let mut t = self.clone();
        t.secs = total.div_euclid(1_000_000_000) as i64;
        t.nanos = total.rem_euclid(1_000_000_000) as u32;
        t.mono = self.mono.map(|m| m.wrapping_add(d));
        t
    }

    /// Go's Time.Format with a reference-time layout.
    pub(crate) fn format(&self, layout: &str) -> String {
        let local = self.local_secs();
        let days = local.div_euclid(86_400);
        let sod = local.rem_euclid(86_400);
        let (year, month, day) = civil(days);
        let (hour, min, sec) = (sod / 3600, (sod / 60) % 60, sod % 60);
        let weekday = (days + 4).rem_euclid(7) as usize;
        let yday = days - days_from_civil(year, 1, 1) + 1;
        let mut out = String::new();
        let mut rest = layout;
        while !rest.is_empty() {
            let (prefix, tok, suffix) = next_chunk(rest);
            out.push_str(prefix);
            rest = suffix;
            let Some(tok) = tok else { break };
            match tok {
                Tok::YearLong => {
                    if year < 0 {
                        out.push('-');
                    }
                    out.push_str(&format!("{:04}", year.unsigned_abs()));
                }
                Tok::Year => out.push_str(&format!("{:02}", year.rem_euclid(100))),
                Tok::MonthLong => out.push_str(MONTHS[(month - 1) as usize]),
                Tok::Month => out.push_str(&MONTHS[(month - 1) as usize][..3]),
                Tok::NumMonth => out.push_str(&month.to_string()),
                Tok::ZeroMonth => out.push_str(&format!("{month:02}")),
                Tok::WeekDayLong => out.push_str(DAYS[weekday]),
                Tok::WeekDay => out.push_str(&DAYS[weekday][..3]),
                Tok::Day => out.push_str(&day.to_string()),
                Tok::UnderDay => out.push_str(&format!("{day:>2}")),
                Tok::ZeroDay => out.push_str(&format!("{day:02}")),
                Tok::UnderYearDay => out.push_str(&format!("{yday:>3}")),
                Tok::ZeroYearDay => out.push_str(&format!("{yday:03}")),
                Tok::Hour => out.push_str(&format!("{hour:02}")),
                Tok::Hour12 | Tok::ZeroHour12 => {
                    let h = if hour % 12 == 0 { 12 } else { hour % 12 };
                    if tok == Tok::Hour12 {
                        out.push_str(&h.to_string());
                    } else {
                        out.push_str(&format!("{h:02}"));
                    }
                }
                Tok::Minute => out.push_str(&min.to_string()),
                Tok::ZeroMinute => out.push_str(&format!("{min:02}")),
                Tok::Second => out.push_str(&sec.to_string()),
                Tok::ZeroSecond => out.push_str(&format!("{sec:02}")),
                Tok::PM => out.push_str(if hour >= 12 { "PM" } else { "AM" }),
                Tok::Pm => out.push_str(if hour >= 12 { "pm" } else { "am" }),
                Tok::Zone {
                    z,
                    colon,
                    secs,
                    hours_only,
                } => {
                    if z && self.offset == 0 {
                        out.push('Z');
                        continue;
                    }
                    let off = self.offset;
                    out.push(if off < 0 { '-' } else { '+' });
                    let a = off.unsigned_abs();
                    out.push_str(&format!("{:02}", a / 3600));
                    if !hours_only {
                        if colon {
                            out.push(':');
                        }
                        out.push_str(&format!("{:02}", (a / 60) % 60));
                    }
                    if secs {
                        if colon {
                            out.push(':');
                        }
                        out.push_str(&format!("{:02}", a % 60));
                    }
                }
                Tok::TzName => {
                    if self.zone.is_empty() {
                        // A fixed zone without a name: Go prints -0700.
                        let a = self.offset.unsigned_abs() / 60;
                        let sign = if self.offset < 0 { '-' } else { '+' };
                        out.push_str(&format!("{sign}{:02}{:02}", a / 60, a % 60));
                    } else {
                        out.push_str(&self.zone);
                    }
                }
                Tok::Frac { digits, trim, sep } => {
                    let f = format!("{:09}", self.nanos);
                    let mut f = f[..digits].to_string();
                    if trim {
                        while f.ends_with('0') {
                            f.pop();
                        }
                        if f.is_empty() {
                            continue;
                        }
                    }
                    out.push(sep);
                    out.push_str(&f);
                }
            }
        }
        out
    }

    /// Go's zero time, 0001-01-01 00:00:00 UTC (what toDate gives on a parse error).
    pub(crate) fn zero() -> GoTime {
        GoTime::utc(-62_135_596_800, 0)
    }

    /// Nanoseconds from `earlier` to self (Go's Sub, saturating).
    pub(crate) fn since(&self, earlier: &GoTime) -> i64 {
        if let (Some(a), Some(b)) = (self.mono, earlier.mono) {
            return a.saturating_sub(b);
        }
        let d = (i128::from(self.secs) - i128::from(earlier.secs)) * 1_000_000_000
            + i128::from(self.nanos)
            - i128::from(earlier.nanos);
        d.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
    }

    pub(crate) fn unix(&self) -> i64 {
        self.secs
    }

    /// Go's MarshalJSON: RFC 3339 with nanoseconds, quoted.
    pub(crate) fn json(&self) -> String {
        format!("\"{}\"", self.format("2006-01-02T15:04:05.999999999Z07:00"))
    }
}

/// Go's name for a zone without an abbreviation: `+03`, `-0330`.
fn numeric_zone(offset: i32) -> String {
    let a = offset.unsigned_abs();
    let sign = if offset < 0 { '-' } else { '+' };
    if (a / 60).is_multiple_of(60) {
        format!("{sign}{:02}", a / 3600)
    } else {
        format!("{sign}{:02}{:02}", a / 3600, (a / 60) % 60)
    }
}

fn monotonic_ns() -> i64 {
    use std::sync::OnceLock;
    static START: OnceLock<std::time::Instant> = OnceLock::new();
    let start = *START.get_or_init(std::time::Instant::now);
    i64::try_from(start.elapsed().as_nanos()).unwrap_or(i64::MAX)
}

#[derive(Clone, Copy, PartialEq, Debug)]
enum Tok {
    YearLong,
    Year,
    MonthLong,
    Month,
    NumMonth,
    ZeroMonth,
    WeekDayLong,
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
    PM,
    Pm,
    Zone {
        z: bool,
        colon: bool,
        secs: bool,
        hours_only: bool,
    },
    TzName,
    Frac {
        digits: usize,
        trim: bool,
        sep: char,
    },
}

fn starts_lower(s: &str) -> bool {
    s.as_bytes().first().is_some_and(|c| c.is_ascii_lowercase())
}

/// Go's nextStdChunk: the text before the first layout element, the element, and what follows.
fn next_chunk(layout: &str) -> (&str, Option<Tok>, &str) {
    let b = layout.as_bytes();
    let zone = |z, colon, secs, hours_only| Tok::Zone {
        z,
        colon,
        secs,
        hours_only,
    };
    for i in 0..b.len() {
        let rest = &layout[i..];
        let hit: Option<(Tok, usize)> = match b[i] {
            b'J' if rest.starts_with("Jan") => {
                if rest.starts_with("January") {
                    Some((Tok::MonthLong, 7))
                } else if !starts_lower(&rest[3..]) {
                    Some((Tok::Month, 3))
                } else {
                    None
                }
            }
            b'M' if rest.starts_with("Mon") => {
                if rest.starts_with("Monday") {
                    Some((Tok::WeekDayLong, 6))
                } else if !starts_lower(&rest[3..]) {
                    Some((Tok::WeekDay, 3))
                } else {
                    None
                }
            }
            b'M' if rest.starts_with("MST") => Some((Tok::TzName, 3)),
            b'0' if rest.len() >= 2 && (b'1'..=b'6').contains(&b[i + 1]) => Some((
                match b[i + 1] {
                    b'1' => Tok::ZeroMonth,
                    b'2' => Tok::ZeroDay,
                    b'3' => Tok::ZeroHour12,
                    b'4' => Tok::ZeroMinute,
                    b'5' => Tok::ZeroSecond,
                    _ => Tok::Year,
                },
                2,
            )),
            b'0' if rest.starts_with("002") => Some((Tok::ZeroYearDay, 3)),
            b'1' if rest.starts_with("15") => Some((Tok::Hour, 2)),
            b'1' => Some((Tok::NumMonth, 1)),
            b'2' if rest.starts_with("2006") => Some((Tok::YearLong, 4)),
            b'2' => Some((Tok::Day, 1)),
            b'_' if rest.starts_with("_2") => {
                if rest.starts_with("_2006") {
                    // `_2006` is a literal underscore and the year.
                    return (&layout[..i + 1], Some(Tok::YearLong), &layout[i + 5..]);
                }
                Some((Tok::UnderDay, 2))
            }
            b'_' if rest.starts_with("__2") => Some((Tok::UnderYearDay, 3)),
            b'3' => Some((Tok::Hour12, 1)),
            b'4' => Some((Tok::Minute, 1)),
            b'5' => Some((Tok::Second, 1)),
            b'P' if rest.starts_with("PM") => Some((Tok::PM, 2)),
            b'p' if rest.starts_with("pm") => Some((Tok::Pm, 2)),
            b'-' | b'Z' => {
                let z = b[i] == b'Z';
                let body = &rest[1..];
                if body.starts_with("070000") {
                    Some((zone(z, false, true, false), 7))
                } else if body.starts_with("07:00:00") {
                    Some((zone(z, true, true, false), 9))
                } else if body.starts_with("0700") {
                    Some((zone(z, false, false, false), 5))
                } else if body.starts_with("07:00") {
                    Some((zone(z, true, false, false), 6))
                } else if body.starts_with("07") {
                    Some((zone(z, false, false, true), 3))
                } else {
                    None
                }
            }
            b'.' | b',' if rest.len() >= 2 && (b[i + 1] == b'0' || b[i + 1] == b'9') => {
                let ch = b[i + 1];
                let mut j = i + 1;
                while j < b.len() && b[j] == ch {
                    j += 1;
                }
                // Only when not followed by another digit.
                if j < b.len() && b[j].is_ascii_digit() {
                    None
                } else {
                    let digits = (j - i - 1).min(9);
                    Some((
                        Tok::Frac {
                            digits,
                            trim: ch == b'9',
                            sep: b[i] as char,
                        },
                        j - i,
                    ))
                }
            }
            _ => None,
        };
        if let Some((tok, len)) = hit {
            return (&layout[..i], Some(tok), &layout[i + len..]);
        }
    }
    (layout, None, "")
}

/// Go's time.ParseInLocation(layout, value, Local) for the layout elements above. None is a
/// parse error (toDate then gives the zero time, mustToDate fails).
pub(crate) fn parse(layout: &str, value: &str) -> Option<GoTime> {
    let (mut year, mut month, mut day, mut yday) = (1i64, 1i64, 1i64, -1i64);
    let (mut hour, mut min, mut sec, mut nanos) = (0i64, 0i64, 0i64, 0i64);
    let mut pm: Option<bool> = None;
    let mut offset: Option<i32> = None;
    let mut zone_name: Option<String> = None;
    let mut rest = layout;
    let mut v = value;
    fn num(v: &str, fixed: bool, max: usize) -> Option<(i64, &str)> {
        let n = v.bytes().take(max).take_while(u8::is_ascii_digit).count();
        if n == 0 || (fixed && n != max) {
            return None;
        }
        Some((v[..n].parse().ok()?, &v[n..]))
    }
    while !rest.is_empty() {
        let (prefix, tok, suffix) = next_chunk(rest);
        v = v.strip_prefix(prefix)?;
        rest = suffix;
        let Some(tok) = tok else { break };
        match tok {
            Tok::YearLong => {
                let (n, r) = num(v, true, 4)?;
                year = n;
                v = r;
            }
            Tok::Year => {
                let (n, r) = num(v, true, 2)?;
                year = if n >= 69 { n + 1900 } else { n + 2000 };
                v = r;
            }
            Tok::MonthLong | Tok::Month => {
                let i = MONTHS.iter().position(|m| {
                    let m = if tok == Tok::Month { &m[..3] } else { m };
                    v.len() >= m.len() && v[..m.len()].eq_ignore_ascii_case(m)
                })?;
                let len = if tok == Tok::Month {
                    3
                } else {
                    MONTHS[i].len()
                };
                month = i as i64 + 1;
                v = &v[len..];
            }
            Tok::WeekDayLong | Tok::WeekDay => {
                let i = DAYS.iter().position(|d| {
                    let d = if tok == Tok::WeekDay { &d[..3] } else { d };
                    v.len() >= d.len() && v[..d.len()].eq_ignore_ascii_case(d)
                })?;
                v = &v[if tok == Tok::WeekDay {
                    3
                } else {
                    DAYS[i].len()
                }..];
            }
            Tok::NumMonth | Tok::ZeroMonth => {
                let (n, r) = num(v, tok == Tok::ZeroMonth, 2)?;
                if !(1..=12).contains(&n) {
                    return None;
                }
                month = n;
                v = r;
            }
            Tok::Day | Tok::UnderDay | Tok::ZeroDay => {
                if tok == Tok::UnderDay && v.starts_with(' ') {
                    v = &v[1..];
                }
                let (n, r) = num(v, tok == Tok::ZeroDay, 2)?;
                day = n;
                v = r;
            }
            Tok::UnderYearDay | Tok::ZeroYearDay => {
                let mut t = v;
                if tok == Tok::UnderYearDay {
                    t = t.trim_start_matches(' ');
                }
                let (n, r) = num(t, tok == Tok::ZeroYearDay, 3)?;
                yday = n;
                v = r;
            }
            Tok::Hour | Tok::Hour12 | Tok::ZeroHour12 | Tok::Minute | Tok::ZeroMinute => {
                let zero = matches!(tok, Tok::ZeroHour12 | Tok::ZeroMinute);
                let (n, r) = num(v, zero, 2)?;
                let (slot, limit) = match tok {
                    Tok::Hour => (&mut hour, 23),
                    Tok::Minute | Tok::ZeroMinute => (&mut min, 59),
                    _ => (&mut hour, 12),
                };
                if n > limit {
                    return None;
                }
                *slot = n;
                v = r;
            }
            Tok::Second | Tok::ZeroSecond => {
                let (n, r) = num(v, tok == Tok::ZeroSecond, 2)?;
                if n >= 60 {
                    return None;
                }
                sec = n;
                v = r;
                // A fractional second may follow even when the layout has none.
                if v.len() >= 2
                    && (v.starts_with('.') || v.starts_with(','))
                    && v.as_bytes()[1].is_ascii_digit()
                    && !matches!(next_chunk(rest).1, Some(Tok::Frac { .. }))
                {
                    let n = 1 + v[1..].bytes().take_while(u8::is_ascii_digit).count();
                    nanos = frac_nanos(&v[1..n]);
                    v = &v[n..];
                }
            }
            Tok::PM | Tok::Pm => {
                let p = v.get(..2)?;
                pm = Some(match p {
                    "PM" | "pm" if tok == Tok::PM || p == "pm" => true,
                    "AM" | "am" => false,
                    "PM" | "pm" => true,
                    _ => return None,
                });
                v = &v[2..];
            }
            Tok::Zone {
                z,
                colon,
                secs,
                hours_only,
            } => {
                if z && v.starts_with('Z') {
                    v = &v[1..];
                    offset = Some(0);
                    zone_name = Some("UTC".into());
                    continue;
                }
                let sign = match v.as_bytes().first()? {
                    b'+' => 1,
                    b'-' => -1,
                    _ => return None,
                };
                let mut t = &v[1..];
                let (h, r) = num(t, true, 2)?;
                t = r;
                let (mut m, mut s) = (0, 0);
                if !hours_only {
                    if colon {
                        t = t.strip_prefix(':')?;
                    }
                    let (n, r) = num(t, true, 2)?;
                    m = n;
                    t = r;
                }
                if secs {
                    if colon {
                        t = t.strip_prefix(':')?;
                    }
                    let (n, r) = num(t, true, 2)?;
                    s = n;
                    t = r;
                }
                offset = Some(sign * (h * 3600 + m * 60 + s) as i32);
                v = t;
            }
            Tok::TzName => {
                if v.starts_with("UTC") {
                    zone_name = Some("UTC".into());
                    offset.get_or_insert(0);
                    v = &v[3..];
                } else {
                    let n = v.bytes().take_while(u8::is_ascii_uppercase).count();
                    if n < 3 {
                        return None;
                    }
                    zone_name = Some(v[..n].to_string());
                    v = &v[n..];
                }
            }
            Tok::Frac { digits, trim, .. } => {
                if !v.starts_with(['.', ',']) {
                    if trim {
                        continue;
                    }
                    return None;
                }
                let n = 1 + v[1..].bytes().take_while(u8::is_ascii_digit).count();
                if !trim && n - 1 != digits {
                    return None;
                }
                nanos = frac_nanos(&v[1..n]);
                v = &v[n..];
            }
        }
    }
    if !v.is_empty() {
        return None;
    }
    if let Some(p) = pm {
        if p && hour < 12 {
            hour += 12;
        } else if !p && hour == 12 {
            hour = 0;
        }
    }
    if yday >= 0 {
        let max = if is_leap(year) { 366 } else { 365 };
        if yday < 1 || yday > max {
            return None;
        }
        let d = days_from_civil(year, 1, 1) + yday - 1;
        let (_, m, dd) = civil(d);
        month = i64::from(m);
        day = i64::from(dd);
    }
    let dim = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if is_leap(year) => 29,
        _ => 28,
    };
    if day < 1 || day > dim {
        return None;
    }
    let local = days_from_civil(year, month, day) * 86_400 + hour * 3600 + min * 60 + sec;
    let mut t = GoTime::utc(local, nanos as u32);
    match (offset, zone_name) {
        (Some(off), name) => {
            t.secs = local - i64::from(off);
            t.offset = off;
            t.zone = Rc::from(name.unwrap_or_else(|| {
                if off == 0 {
                    "UTC".to_string()
                } else {
                    String::new()
                }
            }));
        }
        // A zone name alone (not UTC): Go records the name with a zero offset.
        (None, Some(name)) => t.zone = Rc::from(name),
        (None, None) => {}
    }
    Some(t)
}

fn frac_nanos(digits: &str) -> i64 {
    let mut d: String = digits.chars().take(9).collect();
    while d.len() < 9 {
        d.push('0');
    }
    d.parse().unwrap_or(0)
}

/// Go's Duration.Round(time.Second): half away from zero.
pub(crate) fn round_second(d: i64) -> i64 {
    let m = 1_000_000_000i64;
    let r = d % m;
    if d < 0 {
        let r = -r;
        if r + r < m {
            d + r
        } else {
            d.checked_sub(m - r).unwrap_or(i64::MIN)
        }
    } else if r + r < m {
        d - r
    } else {
        d.checked_add(m - r).unwrap_or(i64::MAX)
    }
}

/// sprig's durationRound: the largest whole unit (y = 365 days, mo = 30 days).
pub(crate) fn duration_round(d: i64) -> String {
    let u = d.unsigned_abs();
    let hour = 3_600_000_000_000u64;
    for (unit, name) in [
        (hour * 24 * 365, "y"),
        (hour * 24 * 30, "mo"),
        (hour * 24, "d"),
        (hour, "h"),
        (60_000_000_000, "m"),
        (1_000_000_000, "s"),
    ] {
        if u > unit {
            return format!("{}{name}", u / unit);
        }
    }
    "0s".into()
}

/// Go's Duration.String: `1h2m3.5s`, `1.5µs`, `0s`.
pub(crate) fn duration_string(d: i64) -> String {
    if d == 0 {
        return "0s".into();
    }
    let neg = d < 0;
    let u = d.unsigned_abs();
    let mut out = String::new();
    if u < 1_000_000_000 {
        let (unit, div, prec) = if u < 1_000 {
            ("ns", 1u64, 0)
        } else if u < 1_000_000 {
            ("µs", 1_000, 3)
        } else {
            ("ms", 1_000_000, 6)
        };
        out.push_str(&frac(u / div, u % div, prec));
        out.push_str(unit);
    } else {
        let secs = u / 1_000_000_000;
        let ns = u % 1_000_000_000;
        let (h, m, s) = (secs / 3600, (secs / 60) % 60, secs % 60);
        if h > 0 {
            out.push_str(&format!("{h}h"));
        }
        if h > 0 || m > 0 {
            out.push_str(&format!("{m}m"));
        }
        out.push_str(&frac(s, ns, 9));
        out.push('s');
    }
    if neg {
        out.insert(0, '-');
    }
    out
}

/// `int.frac` with trailing zeros (and a bare point) removed; `prec` digits of fraction.
fn frac(int: u64, f: u64, prec: usize) -> String {
    if prec == 0 || f == 0 {
        return int.to_string();
    }
    let mut fs = format!("{f:0prec$}");
    while fs.ends_with('0') {
        fs.pop();
    }
    format!("{int}.{fs}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_layouts_format_the_reference_instant() {
        // 2006-01-02T15:04:05.123Z, a Monday.
        let t = GoTime::utc(1_136_214_245, 123_000_000);
        assert_eq!(
            t.format("Mon Jan _2 15:04:05.000 MST 2006 pm -07:00"),
            "Mon Jan  2 15:04:05.123 UTC 2006 pm +00:00"
        );
        assert_eq!(
            t.format("2006-01-02T15:04:05.999999999Z07:00"),
            "2006-01-02T15:04:05.123Z"
        );
        assert_eq!(t.go_string(), "2006-01-02 15:04:05.123 +0000 UTC");
    }

    #[test]
    fn parsing_keeps_the_written_offset() {
        let t = parse("2006-01-02T15:04:05Z07:00", "2024-03-09T17:08:09+05:30").unwrap();
        assert_eq!(t.unix(), 1_709_984_289);
        assert_eq!(t.format("15:04 -0700"), "17:08 +0530");
        assert!(
            parse("2006-01-02", "2023-02-29").is_none(),
            "no 29 February in 2023"
        );
    }

    #[test]
    fn durations_print_as_go_does() {
        let s = 1_000_000_000;
        assert_eq!(duration_string(90 * 60 * s), "1h30m0s");
        assert_eq!(duration_string(1_500), "1.5µs");
        assert_eq!(duration_string(300_000_000), "300ms");
        assert_eq!(duration_string(-5 * s), "-5s");
        assert_eq!(duration_round(400 * 3600 * s), "16d");
        assert_eq!(round_second(1_500_000_000), 2 * s);
    }
}
