//! Export schedules written like EventBridge expressions, evaluated in UTC by our own one-minute
//! tick: `rate(N minutes|hours|days)` or `cron(min hour day-of-month month day-of-week year)`.

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};

/// Shortest gap allowed between two runs of one connector.
pub const MIN_INTERVAL_MINUTES: i64 = 15;

const USAGE: &str =
    "use rate(N minutes|hours|days) or cron(min hour day-of-month month day-of-week year)";
const CRON_USAGE: &str = "cron needs 6 fields: cron(min hour day-of-month month day-of-week year), e.g. cron(0 2 * * ? *)";
/// Occurrences inspected for the minimum-gap check; enough to cover month and year boundaries
/// of any schedule dense enough to break the rule.
const GAP_CHECK_OCCURRENCES: usize = 100;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Schedule {
    /// Every `minutes`, on slots counted from the Unix epoch. `expr` is the text as written.
    Rate {
        minutes: i64,
        expr: String,
    },
    Cron(CronSchedule),
}

/// A parsed `cron(…)` expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CronSchedule {
    /// Boxed: a parsed pattern is a few hundred bytes, far more than a `Rate`.
    cron: Box<Cron>,
    /// The equivalent five-field standard cron pattern (day-of-week 0–6 = SUN–SAT).
    pattern: String,
    expr: String,
}

impl CronSchedule {
    /// The equivalent standard five-field pattern, e.g. `0 9 * * 1-5` for
    /// `cron(0 9 ? * MON-FRI *)`.
    pub fn pattern(&self) -> &str {
        &self.pattern
    }
}

impl Schedule {
    pub fn parse(expr: &str) -> Result<Self, String> {
        let text = expr.trim();
        if let Some(args) = call_args(text, "rate")? {
            let minutes = parse_rate(args)?;
            return Ok(Schedule::Rate {
                minutes,
                expr: text.to_owned(),
            });
        }
        if let Some(args) = call_args(text, "cron")? {
            let (cron, pattern) = parse_cron(args)?;
            return Ok(Schedule::Cron(CronSchedule {
                cron: Box::new(cron),
                pattern,
                expr: text.to_owned(),
            }));
        }
        Err(USAGE.into())
    }

    /// The first run strictly after `after`; `None` if there is none (or it is out of range).
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self {
            Schedule::Rate { minutes, .. } => {
                // Anchored to the epoch so every tick computes the same slots.
                let step = minutes.checked_mul(60)?;
                let slot = after.timestamp().div_euclid(step).checked_add(1)?;
                DateTime::from_timestamp(slot.checked_mul(step)?, 0)
            }
            Schedule::Cron(c) => c.cron.find_next_occurrence(&after, false).ok(),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            Schedule::Rate { expr, .. } => expr,
            Schedule::Cron(c) => &c.expr,
        }
    }
}

/// Missed slots counted one by one (cron schedules) before the count stops: a connector
/// down for longer still runs once, and says "at least" this many were missed.
pub const MISSED_SLOTS_COUNTED: u32 = 10_000;

/// The slot a tick runs for a connector that is due (docs/architecture.md, "Schedules").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DueSlot {
    /// The latest slot at or before the tick: the run's identity for "one run per slot".
    pub slot: DateTime<Utc>,
    /// Earlier slots since the connector's next run that no run was started for (the service
    /// was down, or a run was still in flight); they collapse into this one run.
    pub missed: u32,
    /// The first slot after the tick: the connector's next run once this one is claimed.
    pub next: Option<DateTime<Utc>>,
}

impl Schedule {
    /// `None` while `next_run_at` is still after `tick_at`. A tick late by several slots (or
    /// two ticks for the same minute) lands on the same latest slot, so the slot's conditional
    /// write lets exactly one run through.
    pub fn due_slot(&self, next_run_at: DateTime<Utc>, tick_at: DateTime<Utc>) -> Option<DueSlot> {
        if next_run_at > tick_at {
            return None;
        }
        let mut slot = next_run_at;
        let mut missed = 0u32;
        if let Schedule::Rate { minutes, .. } = self {
            // Slots are multiples of the step from the epoch: count them without walking.
            let step = minutes.checked_mul(60)?;
            let last = tick_at.timestamp().div_euclid(step) * step;
            let first = next_run_at.timestamp();
            if last > first {
                let between = (last - first - 1).div_euclid(step) + 1;
                missed = u32::try_from(between).unwrap_or(u32::MAX);
                slot = DateTime::from_timestamp(last, 0)?;
            }
        } else {
            while let Some(later) = self.next_after(slot).filter(|t| *t <= tick_at) {
                slot = later;
                missed += 1;
                if missed == MISSED_SLOTS_COUNTED {
                    // Jump to the last slot before the tick without counting further.
                    slot = self.last_at_or_before(tick_at).unwrap_or(slot);
                    break;
                }
            }
        }
        Some(DueSlot {
            slot,
            missed,
            next: self.next_after(slot.max(tick_at)),
        })
    }

    /// The latest slot at or before `at` (cron): searched backwards a day, then a year.
    fn last_at_or_before(&self, at: DateTime<Utc>) -> Option<DateTime<Utc>> {
        [TimeDelta::days(1), TimeDelta::days(366)]
            .into_iter()
            .find_map(|window| {
                let mut t = self.next_after(at - window)?;
                let mut last = None;
                while t <= at {
                    last = Some(t);
                    t = self.next_after(t)?;
                }
                last
            })
    }
}

impl std::fmt::Display for Schedule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `Some(args)` for `name(args)`; `None` if `text` is not a call to `name`.
fn call_args<'a>(text: &'a str, name: &str) -> Result<Option<&'a str>, String> {
    let Some(head) = text.get(..name.len()) else {
        return Ok(None);
    };
    if !head.eq_ignore_ascii_case(name) {
        return Ok(None);
    }
    let Some(rest) = text[name.len()..].trim_start().strip_prefix('(') else {
        return Ok(None);
    };
    match rest.strip_suffix(')') {
        Some(args) => Ok(Some(args)),
        None => Err(format!("close the parenthesis: {name}(…)")),
    }
}

fn parse_rate(args: &str) -> Result<i64, String> {
    let usage = "use rate(N minutes|hours|days), e.g. rate(2 hours)";
    let [value, unit] = args.split_whitespace().collect::<Vec<_>>()[..] else {
        return Err(usage.into());
    };
    if !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "the rate must be a whole number, not \"{value}\"; {usage}"
        ));
    }
    let n: i64 = value
        .parse()
        .map_err(|_| format!("the rate \"{value}\" is too large"))?;
    if n == 0 {
        return Err(format!("the rate must be at least 1; {usage}"));
    }
    let unit = unit.to_ascii_lowercase();
    let (singular, minutes_per_unit) = match unit.as_str() {
        "minute" | "minutes" => ("minute", 1),
        "hour" | "hours" => ("hour", 60),
        "day" | "days" => ("day", 24 * 60),
        _ => return Err(format!("unknown unit \"{unit}\"; {usage}")),
    };
    // EventBridge's rule: singular for 1, plural otherwise.
    let is_plural = unit != singular;
    if n == 1 && is_plural {
        return Err(format!(
            "write rate(1 {singular}): the unit is singular for 1"
        ));
    }
    if n > 1 && !is_plural {
        return Err(format!(
            "write rate({n} {singular}s): the unit is plural above 1"
        ));
    }
    let minutes = n
        .checked_mul(minutes_per_unit)
        .ok_or_else(|| format!("the rate \"{value}\" is too large"))?;
    if minutes < MIN_INTERVAL_MINUTES {
        return Err(format!(
            "runs too often: runs must be at least {MIN_INTERVAL_MINUTES} minutes apart, e.g. rate({MIN_INTERVAL_MINUTES} minutes)"
        ));
    }
    Ok(minutes)
}

/// Parses the six EventBridge fields into a croner schedule and its five-field pattern.
fn parse_cron(args: &str) -> Result<(Cron, String), String> {
    let fields: Vec<String> = args
        .split_whitespace()
        .map(str::to_ascii_uppercase)
        .collect();
    let [minutes, hours, dom, month, dow, year] = &fields[..] else {
        return Err(CRON_USAGE.into());
    };
    if year != "*" {
        return Err(
            "the year field must be *; limiting a schedule to certain years is not supported"
                .into(),
        );
    }
    match (dom == "?", dow == "?") {
        (true, true) => {
            return Err(
                "use ? in only one of day-of-month and day-of-week, e.g. cron(0 2 * * ? *)".into(),
            );
        }
        (false, false) => {
            return Err("one of day-of-month and day-of-week must be ?, e.g. cron(0 2 * * ? *) or cron(0 9 ? * MON-FRI *)".into());
        }
        _ => {}
    }
    let convert = |text: &str, field: &Field, numbering: Numbering| {
        if text == "?" {
            Ok("*".to_owned())
        } else {
            convert_field(text, field, numbering)
        }
    };
    let first_four = [
        convert(minutes, &MINUTES, Numbering::EventBridge)?,
        convert(hours, &HOURS, Numbering::EventBridge)?,
        convert(dom, &DAY_OF_MONTH, Numbering::EventBridge)?,
        convert(month, &MONTH, Numbering::EventBridge)?,
    ]
    .join(" ");
    let with_day_of_week =
        |numbering| convert(dow, &DAY_OF_WEEK, numbering).map(|d| format!("{first_four} {d}"));
    // croner evaluates the fields as EventBridge numbers them: its alternative (Quartz)
    // weekday mode is EventBridge's 1-7 = SUN-SAT.
    let cron = CronParser::builder()
        .seconds(Seconds::Disallowed)
        .year(Year::Disallowed)
        .alternative_weekdays(true)
        // EventBridge writes "start/step" (e.g. 0/15) where standard cron needs a range.
        .sloppy_ranges(true)
        .build()
        .parse(&with_day_of_week(Numbering::EventBridge)?)
        .map_err(|e| format!("is not a valid cron expression ({e})"))?;
    check_min_gap(&cron)?;
    Ok((cron, with_day_of_week(Numbering::Standard)?))
}

/// Rejects schedules with any two runs closer than [`MIN_INTERVAL_MINUTES`], by walking the
/// occurrences from a fixed instant (the eve of a leap year, so year ends and Feb 29 are seen).
fn check_min_gap(cron: &Cron) -> Result<(), String> {
    let start = Utc
        .with_ymd_and_hms(2027, 12, 31, 0, 0, 0)
        .single()
        .expect("a fixed, valid instant");
    let Ok(mut prev) = cron.find_next_occurrence(&start, false) else {
        return Err("never runs: no date matches it".into());
    };
    let min_gap = TimeDelta::minutes(MIN_INTERVAL_MINUTES);
    for _ in 0..GAP_CHECK_OCCURRENCES {
        let Ok(next) = cron.find_next_occurrence(&prev, false) else {
            break;
        };
        let gap = next - prev;
        if gap < min_gap {
            return Err(format!(
                "runs too often: some runs are {} minutes apart; runs must be at least {MIN_INTERVAL_MINUTES} minutes apart",
                gap.num_minutes()
            ));
        }
        prev = next;
    }
    Ok(())
}

/// How a converted field numbers weekdays.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Numbering {
    /// EventBridge's 1-7 = SUN-SAT, as written (croner's alternative weekday mode reads it).
    EventBridge,
    /// Standard cron's 0-6 = SUN-SAT, for [`CronSchedule::pattern`].
    Standard,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum FieldKind {
    Plain,
    DayOfMonth,
    DayOfWeek,
}

struct Field {
    name: &'static str,
    min: u32,
    max: u32,
    /// Names for `min`, `min + 1`, ….
    names: &'static [&'static str],
    kind: FieldKind,
    help: &'static str,
}

const MINUTES: Field = Field {
    name: "minutes",
    min: 0,
    max: 59,
    names: &[],
    kind: FieldKind::Plain,
    help: "0-59 with , - * /",
};
const HOURS: Field = Field {
    name: "hours",
    min: 0,
    max: 23,
    names: &[],
    kind: FieldKind::Plain,
    help: "0-23 with , - * /",
};
const DAY_OF_MONTH: Field = Field {
    name: "day-of-month",
    min: 1,
    max: 31,
    names: &[],
    kind: FieldKind::DayOfMonth,
    help: "1-31, L, LW or a day with W, with , - * / (or ?)",
};
const MONTH: Field = Field {
    name: "month",
    min: 1,
    max: 12,
    names: &[
        "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
    ],
    kind: FieldKind::Plain,
    help: "1-12 or JAN-DEC with , - * /",
};
/// EventBridge numbers weekdays 1–7 = SUN–SAT.
const DAY_OF_WEEK: Field = Field {
    name: "day-of-week",
    min: 1,
    max: 7,
    names: &["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"],
    kind: FieldKind::DayOfWeek,
    help: "1-7 (1 = SUN) or SUN-SAT, with , - * L # (or ?)",
};

impl Field {
    fn invalid(&self, item: &str) -> String {
        format!("{}: \"{item}\" is not valid; use {}", self.name, self.help)
    }

    /// A single value, by number or name, as EventBridge numbers it.
    fn value(&self, token: &str) -> Result<u32, String> {
        let n = if token.bytes().all(|b| b.is_ascii_digit()) && !token.is_empty() {
            token.parse::<u32>().ok()
        } else {
            self.names
                .iter()
                .position(|name| *name == token)
                .map(|i| self.min + i as u32)
        };
        n.filter(|n| (self.min..=self.max).contains(n))
            .ok_or_else(|| self.invalid(token))
    }

    /// The value in `numbering`: standard cron counts weekdays 0–6 from Sunday.
    fn emit(&self, value: u32, numbering: Numbering) -> u32 {
        if self.kind == FieldKind::DayOfWeek && numbering == Numbering::Standard {
            value - 1
        } else {
            value
        }
    }

    /// `a` or `a-b`, in `numbering`.
    fn range(&self, text: &str, numbering: Numbering) -> Result<String, String> {
        match text.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (self.value(a)?, self.value(b)?);
                if a > b {
                    return Err(format!(
                        "{}: write ranges from low to high, e.g. {}",
                        self.name,
                        if self.kind == FieldKind::DayOfWeek {
                            "MON-FRI"
                        } else {
                            "1-5"
                        }
                    ));
                }
                Ok(format!(
                    "{}-{}",
                    self.emit(a, numbering),
                    self.emit(b, numbering)
                ))
            }
            None => Ok(self.emit(self.value(text)?, numbering).to_string()),
        }
    }
}

/// Validates one field against EventBridge's syntax and rewrites it with numbers only.
fn convert_field(text: &str, field: &Field, numbering: Numbering) -> Result<String, String> {
    text.split(',')
        .map(|item| convert_item(item, field, numbering))
        .collect::<Result<Vec<_>, _>>()
        .map(|items| items.join(","))
}

fn convert_item(item: &str, field: &Field, numbering: Numbering) -> Result<String, String> {
    if item.is_empty() {
        return Err(format!("{}: empty value in a list", field.name));
    }
    match field.kind {
        FieldKind::DayOfMonth => {
            if item == "L" || item == "LW" {
                return Ok(item.to_owned());
            }
            if let Some(day) = item.strip_suffix('W') {
                return Ok(format!("{}W", field.value(day)?));
            }
        }
        FieldKind::DayOfWeek => {
            if item.contains('/') {
                return Err(
                    "day-of-week does not support /; list the days, e.g. MON,WED,FRI".into(),
                );
            }
            // "L" alone is the last day of the week.
            if item == "L" {
                return Ok(field.emit(7, numbering).to_string());
            }
            if let Some((day, nth)) = item.split_once('#') {
                let day = field.value(day)?;
                return match nth.parse::<u32>() {
                    Ok(n @ 1..=5) => Ok(format!("{}#{n}", field.emit(day, numbering))),
                    _ => Err(format!(
                        "day-of-week: the number after # must be 1-5, e.g. 6#3 for the third Friday, not \"{item}\""
                    )),
                };
            }
            // "6L": the last Friday of the month.
            if let Some(day) = item.strip_suffix('L') {
                return Ok(format!("{}L", field.emit(field.value(day)?, numbering)));
            }
        }
        FieldKind::Plain => {}
    }
    if item == "*" {
        return Ok("*".into());
    }
    if let Some((base, step)) = item.split_once('/') {
        let step_ok = !step.is_empty() && step.bytes().all(|b| b.is_ascii_digit());
        match step.parse::<u32>() {
            Ok(s) if step_ok && (1..=field.max).contains(&s) => {}
            _ => {
                return Err(format!(
                    "{}: the step after / must be 1-{}, not \"{step}\"",
                    field.name, field.max
                ));
            }
        }
        let base = if base == "*" {
            "*".to_owned()
        } else {
            field.range(base, numbering)?
        };
        return Ok(format!("{base}/{step}"));
    }
    field.range(item, numbering)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Datelike, Weekday};

    fn at(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, s).unwrap()
    }

    enum Expected {
        Every(i64),
        /// The five-field croner pattern.
        Pattern(&'static str),
        /// An error containing this text.
        Fails(&'static str),
    }
    use Expected::*;

    const PARSE_CASES: &[(&str, Expected)] = &[
        ("rate(15 minutes)", Every(15)),
        ("rate(1 hour)", Every(60)),
        ("rate(2 hours)", Every(120)),
        ("rate(90 minutes)", Every(90)),
        ("rate(1 day)", Every(1440)),
        ("rate(7 days)", Every(10080)),
        ("  rate( 30   minutes )  ", Every(30)),
        ("RATE(2 Hours)", Every(120)),
        (
            "rate(1 minute)",
            Fails("runs too often: runs must be at least 15 minutes apart"),
        ),
        ("rate(14 minutes)", Fails("at least 15 minutes apart")),
        (
            "rate(1 minutes)",
            Fails("write rate(1 minute): the unit is singular for 1"),
        ),
        ("rate(1 hours)", Fails("write rate(1 hour)")),
        (
            "rate(2 hour)",
            Fails("write rate(2 hours): the unit is plural above 1"),
        ),
        ("rate(30 day)", Fails("write rate(30 days)")),
        ("rate(0 minutes)", Fails("the rate must be at least 1")),
        (
            "rate(-5 minutes)",
            Fails("the rate must be a whole number, not \"-5\""),
        ),
        ("rate(1.5 hours)", Fails("whole number")),
        ("rate(2 weeks)", Fails("unknown unit \"weeks\"")),
        (
            "rate(2)",
            Fails("use rate(N minutes|hours|days), e.g. rate(2 hours)"),
        ),
        ("rate()", Fails("use rate(N minutes|hours|days)")),
        ("rate(2 hours", Fails("close the parenthesis: rate(…)")),
        ("rate(99999999999999999999 days)", Fails("is too large")),
        ("rate(9223372036854775807 days)", Fails("is too large")),
        ("", Fails(USAGE)),
        ("every 2 hours", Fails(USAGE)),
        ("0 2 * * *", Fails(USAGE)),
        ("@daily", Fails(USAGE)),
        ("cron(0 2 * * ? *)", Pattern("0 2 * * *")),
        ("cron(0 9 ? * MON-FRI *)", Pattern("0 9 * * 1-5")),
        ("cron(0 9 ? * mon-fri *)", Pattern("0 9 * * 1-5")),
        ("cron(30 6 ? * 2 *)", Pattern("30 6 * * 1")),
        ("cron(0 0 ? * 1,7 *)", Pattern("0 0 * * 0,6")),
        ("cron(0 0 ? * SUN-SAT *)", Pattern("0 0 * * 0-6")),
        ("cron(0 0 ? * 2-6 *)", Pattern("0 0 * * 1-5")),
        ("cron(0/15 * * * ? *)", Pattern("0/15 * * * *")),
        ("cron(*/15 * * * ? *)", Pattern("*/15 * * * *")),
        (
            "cron(0,30 8-17 ? * MON-FRI *)",
            Pattern("0,30 8-17 * * 1-5"),
        ),
        ("cron(0 */6 * * ? *)", Pattern("0 */6 * * *")),
        ("cron(0 2 1/7 JAN,JUL ? *)", Pattern("0 2 1/7 1,7 *")),
        ("cron(0 2 L * ? *)", Pattern("0 2 L * *")),
        ("cron(0 2 LW * ? *)", Pattern("0 2 LW * *")),
        ("cron(0 2 15W * ? *)", Pattern("0 2 15W * *")),
        ("cron(0 12 ? * 6#3 *)", Pattern("0 12 * * 5#3")),
        ("cron(0 12 ? * FRI#3 *)", Pattern("0 12 * * 5#3")),
        ("cron(0 12 ? * 6L *)", Pattern("0 12 * * 5L")),
        ("cron(0 12 ? * L *)", Pattern("0 12 * * 6")),
        (
            "cron(0/5 * * * ? *)",
            Fails("runs too often: some runs are 5 minutes apart"),
        ),
        ("cron(* * * * ? *)", Fails("some runs are 1 minutes apart")),
        (
            "cron(0,10 * * * ? *)",
            Fails("some runs are 10 minutes apart"),
        ),
        (
            "cron(0,50 0,23 1,31 1,12 ? *)",
            Fails("some runs are 10 minutes apart"),
        ),
        (
            "cron(0,50 0,23 1,29 2,3 ? *)",
            Fails("some runs are 10 minutes apart"),
        ),
        (
            "cron(0 2 * * * *)",
            Fails("one of day-of-month and day-of-week must be ?"),
        ),
        (
            "cron(0 2 1 * MON *)",
            Fails("one of day-of-month and day-of-week must be ?"),
        ),
        (
            "cron(0 2 ? * ? *)",
            Fails("use ? in only one of day-of-month and day-of-week"),
        ),
        ("cron(0 2 * * ? 2026)", Fails("the year field must be *")),
        ("cron(0 2 * * ?)", Fails(CRON_USAGE)),
        ("cron(0 0 2 * * ? *)", Fails(CRON_USAGE)),
        ("cron()", Fails(CRON_USAGE)),
        ("cron(0 2 * * ? *", Fails("close the parenthesis: cron(…)")),
        (
            "cron(60 2 * * ? *)",
            Fails("minutes: \"60\" is not valid; use 0-59"),
        ),
        (
            "cron(0 24 * * ? *)",
            Fails("hours: \"24\" is not valid; use 0-23"),
        ),
        (
            "cron(0 2 32 * ? *)",
            Fails("day-of-month: \"32\" is not valid"),
        ),
        (
            "cron(0 2 0 * ? *)",
            Fails("day-of-month: \"0\" is not valid"),
        ),
        (
            "cron(0 2 * 13 ? *)",
            Fails("month: \"13\" is not valid; use 1-12 or JAN-DEC"),
        ),
        ("cron(0 2 * FOO ? *)", Fails("month: \"FOO\" is not valid")),
        (
            "cron(0 2 ? * 0 *)",
            Fails("day-of-week: \"0\" is not valid; use 1-7 (1 = SUN)"),
        ),
        (
            "cron(0 2 ? * 8 *)",
            Fails("day-of-week: \"8\" is not valid"),
        ),
        (
            "cron(0 2 ? * FRI-MON *)",
            Fails("write ranges from low to high, e.g. MON-FRI"),
        ),
        (
            "cron(0 2 10-5 * ? *)",
            Fails("write ranges from low to high, e.g. 1-5"),
        ),
        (
            "cron(0 2 ? * 2/2 *)",
            Fails("day-of-week does not support /"),
        ),
        (
            "cron(0 2 ? * MON#6 *)",
            Fails("the number after # must be 1-5"),
        ),
        (
            "cron(0/0 * * * ? *)",
            Fails("minutes: the step after / must be 1-59"),
        ),
        ("cron(0/x * * * ? *)", Fails("the step after / must be")),
        (
            "cron(0,,5 2 * * ? *)",
            Fails("minutes: empty value in a list"),
        ),
        ("cron(5W 2 * * ? *)", Fails("minutes: \"5W\" is not valid")),
        (
            "cron(0 2 L-2 * ? *)",
            Fails("day-of-month: \"L\" is not valid"),
        ),
        ("cron(0 0 30 2 ? *)", Fails("never runs")),
    ];

    #[test]
    fn parses() {
        for (expr, expected) in PARSE_CASES {
            match (Schedule::parse(expr), expected) {
                (
                    Ok(Schedule::Rate {
                        minutes,
                        expr: text,
                    }),
                    Every(want),
                ) => {
                    assert_eq!(minutes, *want, "{expr:?}");
                    assert_eq!(text, expr.trim(), "{expr:?}");
                }
                (Ok(Schedule::Cron(c)), Pattern(want)) => {
                    assert_eq!(c.pattern(), *want, "{expr:?}");
                    assert_eq!(c.expr, expr.trim(), "{expr:?}");
                }
                (Err(e), Fails(want)) => {
                    assert!(
                        e.contains(want),
                        "{expr:?}: {e:?} does not contain {want:?}"
                    );
                }
                (got, _) => panic!("{expr:?}: unexpected {got:?}"),
            }
        }
    }

    #[test]
    fn next_runs() {
        let cases: &[(&str, DateTime<Utc>, DateTime<Utc>)] = &[
            (
                "cron(0 2 * * ? *)",
                at(2026, 1, 15, 1, 59, 59),
                at(2026, 1, 15, 2, 0, 0),
            ),
            (
                "cron(0 2 * * ? *)",
                at(2026, 1, 15, 2, 0, 0),
                at(2026, 1, 16, 2, 0, 0),
            ),
            (
                "cron(0 2 * * ? *)",
                at(2026, 1, 15, 1, 59, 59) + TimeDelta::milliseconds(500),
                at(2026, 1, 15, 2, 0, 0),
            ),
            (
                "cron(0 2 * * ? *)",
                at(2026, 1, 15, 2, 0, 0) + TimeDelta::milliseconds(500),
                at(2026, 1, 16, 2, 0, 0),
            ),
            (
                "cron(0 2 * * ? *)",
                at(2026, 12, 31, 3, 0, 0),
                at(2027, 1, 1, 2, 0, 0),
            ),
            // 2026-01-16 is a Friday.
            (
                "cron(0 9 ? * MON-FRI *)",
                at(2026, 1, 16, 9, 0, 0),
                at(2026, 1, 19, 9, 0, 0),
            ),
            (
                "cron(0 9 ? * MON-FRI *)",
                at(2026, 1, 16, 8, 0, 0),
                at(2026, 1, 16, 9, 0, 0),
            ),
            // EventBridge weekdays: 1 = Sunday, 2 = Monday, 7 = Saturday.
            (
                "cron(30 6 ? * 2 *)",
                at(2026, 1, 15, 0, 0, 0),
                at(2026, 1, 19, 6, 30, 0),
            ),
            (
                "cron(0 0 ? * 1 *)",
                at(2026, 1, 15, 0, 0, 0),
                at(2026, 1, 18, 0, 0, 0),
            ),
            (
                "cron(0 0 ? * 7 *)",
                at(2026, 1, 15, 0, 0, 0),
                at(2026, 1, 17, 0, 0, 0),
            ),
            (
                "cron(0 12 ? * L *)",
                at(2026, 1, 15, 0, 0, 0),
                at(2026, 1, 17, 12, 0, 0),
            ),
            (
                "cron(0 12 ? * 6#3 *)",
                at(2026, 1, 1, 0, 0, 0),
                at(2026, 1, 16, 12, 0, 0),
            ),
            (
                "cron(0 12 ? * 6L *)",
                at(2026, 1, 1, 0, 0, 0),
                at(2026, 1, 30, 12, 0, 0),
            ),
            (
                "cron(0 0 L * ? *)",
                at(2026, 2, 1, 0, 0, 0),
                at(2026, 2, 28, 0, 0, 0),
            ),
            // 2026-02-15 is a Sunday: the nearest weekday is Monday the 16th.
            (
                "cron(0 12 15W * ? *)",
                at(2026, 2, 1, 0, 0, 0),
                at(2026, 2, 16, 12, 0, 0),
            ),
            (
                "cron(0/15 * * * ? *)",
                at(2026, 1, 15, 10, 7, 30),
                at(2026, 1, 15, 10, 15, 0),
            ),
            (
                "rate(2 hours)",
                at(2026, 1, 15, 1, 0, 0),
                at(2026, 1, 15, 2, 0, 0),
            ),
            (
                "rate(2 hours)",
                at(2026, 1, 15, 2, 0, 0),
                at(2026, 1, 15, 4, 0, 0),
            ),
            (
                "rate(2 hours)",
                at(2026, 1, 15, 3, 59, 59),
                at(2026, 1, 15, 4, 0, 0),
            ),
            (
                "rate(2 hours)",
                at(2026, 1, 15, 2, 0, 0) + TimeDelta::milliseconds(1),
                at(2026, 1, 15, 4, 0, 0),
            ),
            (
                "rate(15 minutes)",
                at(2026, 1, 15, 0, 7, 30),
                at(2026, 1, 15, 0, 15, 0),
            ),
            (
                "rate(90 minutes)",
                at(2026, 1, 15, 1, 0, 0),
                at(2026, 1, 15, 1, 30, 0),
            ),
            (
                "rate(1 day)",
                at(2026, 1, 15, 10, 0, 0),
                at(2026, 1, 16, 0, 0, 0),
            ),
            // The epoch was a Thursday, and so is 2026-01-15.
            (
                "rate(7 days)",
                at(2026, 1, 15, 0, 0, 0),
                at(2026, 1, 22, 0, 0, 0),
            ),
        ];
        for (expr, after, want) in cases {
            let schedule = Schedule::parse(expr).unwrap();
            assert_eq!(
                schedule.next_after(*after),
                Some(*want),
                "{expr} after {after}"
            );
        }
    }

    #[test]
    fn eventbridge_day_2_is_monday() {
        let s = Schedule::parse("cron(0 8 ? * 2 *)").unwrap();
        let mut t = at(2026, 1, 1, 0, 0, 0);
        for _ in 0..10 {
            t = s.next_after(t).unwrap();
            assert_eq!(t.weekday(), Weekday::Mon, "{t}");
        }
    }

    #[test]
    fn due_slots() {
        let every_15 = Schedule::parse("rate(15 minutes)").unwrap();
        let nightly = Schedule::parse("cron(0 2 * * ? *)").unwrap();
        let hourly = Schedule::parse("cron(0 * * * ? *)").unwrap();
        // (schedule, next run, tick, expected slot, missed, next)
        let cases = [
            (
                &every_15,
                at(2026, 12, 1, 10, 15, 0),
                at(2026, 12, 1, 10, 14, 59),
                None,
            ),
            (
                &every_15,
                at(2026, 12, 1, 10, 15, 0),
                at(2026, 12, 1, 10, 15, 0),
                Some((at(2026, 12, 1, 10, 15, 0), 0, at(2026, 12, 1, 10, 30, 0))),
            ),
            // A tick a few seconds late is still the same slot.
            (
                &every_15,
                at(2026, 12, 1, 10, 15, 0),
                at(2026, 12, 1, 10, 16, 40),
                Some((at(2026, 12, 1, 10, 15, 0), 0, at(2026, 12, 1, 10, 30, 0))),
            ),
            // Down for two hours: one run for the latest slot, the eight before it missed.
            (
                &every_15,
                at(2026, 12, 1, 10, 15, 0),
                at(2026, 12, 1, 12, 20, 0),
                Some((at(2026, 12, 1, 12, 15, 0), 8, at(2026, 12, 1, 12, 30, 0))),
            ),
            (
                &every_15,
                at(2026, 12, 1, 10, 15, 0),
                at(2026, 12, 1, 10, 30, 0),
                Some((at(2026, 12, 1, 10, 30, 0), 1, at(2026, 12, 1, 10, 45, 0))),
            ),
            (
                &nightly,
                at(2026, 12, 1, 2, 0, 0),
                at(2026, 12, 1, 2, 1, 0),
                Some((at(2026, 12, 1, 2, 0, 0), 0, at(2026, 12, 2, 2, 0, 0))),
            ),
            (
                &nightly,
                at(2026, 12, 1, 2, 0, 0),
                at(2026, 12, 4, 9, 0, 0),
                Some((at(2026, 12, 4, 2, 0, 0), 3, at(2026, 12, 5, 2, 0, 0))),
            ),
            // A next run that is not on a slot (set before a schedule change) still runs once.
            (
                &hourly,
                at(2026, 12, 1, 2, 30, 0),
                at(2026, 12, 1, 2, 45, 0),
                Some((at(2026, 12, 1, 2, 30, 0), 0, at(2026, 12, 1, 3, 0, 0))),
            ),
        ];
        for (schedule, next_run_at, tick, expected) in cases {
            let got = schedule
                .due_slot(next_run_at, tick)
                .map(|d| (d.slot, d.missed, d.next.unwrap()));
            assert_eq!(got, expected, "{schedule} next {next_run_at} tick {tick}");
        }
    }

    #[test]
    fn a_long_outage_counts_missed_slots_up_to_a_bound_and_runs_the_latest_slot() {
        let hourly = Schedule::parse("cron(0 * * * ? *)").unwrap();
        let due = hourly
            .due_slot(at(2025, 1, 1, 0, 0, 0), at(2026, 12, 1, 10, 30, 0))
            .unwrap();
        assert_eq!(due.missed, MISSED_SLOTS_COUNTED);
        assert_eq!(due.slot, at(2026, 12, 1, 10, 0, 0));
        assert_eq!(due.next, Some(at(2026, 12, 1, 11, 0, 0)));
        let every_15 = Schedule::parse("rate(15 minutes)").unwrap();
        let due = every_15
            .due_slot(at(2025, 1, 1, 0, 0, 0), at(2026, 12, 1, 10, 30, 0))
            .unwrap();
        assert_eq!(due.slot, at(2026, 12, 1, 10, 30, 0));
        assert_eq!(
            i64::from(due.missed),
            (at(2026, 12, 1, 10, 30, 0) - at(2025, 1, 1, 0, 0, 0)).num_minutes() / 15
        );
    }

    #[test]
    fn keeps_the_text_as_written() {
        for expr in ["rate(2 hours)", "cron(0 9 ? * MON-FRI *)"] {
            let s = Schedule::parse(&format!(" {expr} ")).unwrap();
            assert_eq!(s.as_str(), expr);
            assert_eq!(s.to_string(), expr);
        }
    }
}
