//! The raw material of configuration: where variables come from, the warnings they produce,
//! and the bounded parsers every numeric and list-valued setting goes through.

use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

/// One problem found in the configuration, and what was done about it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigWarning {
    /// The environment variable (or builder method) that held the value.
    pub variable: String,
    /// The value as found.
    pub value: String,
    /// What is wrong with it.
    pub problem: String,
    /// What the library uses instead.
    pub using: String,
}

impl fmt::Display for ConfigWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}={:?}: {}; using {}",
            self.variable, self.value, self.problem, self.using
        )
    }
}

/// Where configuration variables are read from. A value longer than
/// [`bounds::MAX_VALUE_BYTES`] is never parsed: it counts as unset and is reported.
#[derive(Clone, Debug, Default)]
pub(crate) struct Env {
    vars: HashMap<String, String>,
    /// Variables whose value was too long, with its length in bytes.
    oversized: Vec<(String, usize)>,
}

impl Env {
    pub(crate) fn from_process() -> Self {
        Self::from_pairs(
            std::env::vars_os()
                .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?))),
        )
    }

    pub(crate) fn from_pairs<K: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        let mut env = Self::default();
        for (k, v) in pairs {
            let (k, v) = (k.into(), v.into());
            if v.len() > bounds::MAX_VALUE_BYTES {
                env.oversized.push((k, v.len()));
            } else {
                env.vars.insert(k, v);
            }
        }
        env
    }

    /// The value of `name`, trimmed; an empty value counts as unset, as the specification says.
    pub(crate) fn value(&self, name: &str) -> Option<String> {
        let v = self.vars.get(name)?.trim();
        (!v.is_empty()).then(|| v.to_string())
    }

    /// One warning per configuration variable that was too long to be read.
    pub(crate) fn report_oversized(&self, warnings: &mut Warnings) {
        for (name, len) in &self.oversized {
            if name.starts_with("OTEL_") || name == "RUST_LOG" || name == "LOG_FORMAT" {
                warnings.push(
                    name,
                    &format!("<{len} bytes, not shown>"),
                    format!(
                        "longer than the {} bytes a configuration variable may have",
                        bounds::MAX_VALUE_BYTES
                    ),
                    "the default, as if it were unset",
                );
            }
        }
    }
}

/// Collects warnings while resolving; each variable is reported at most once.
#[derive(Debug, Default)]
pub(crate) struct Warnings(Vec<ConfigWarning>);

impl Warnings {
    pub(crate) fn push(
        &mut self,
        variable: &str,
        value: &str,
        problem: impl Into<String>,
        using: impl Into<String>,
    ) {
        if self.0.iter().any(|w| w.variable == variable) {
            return;
        }
        self.0.push(ConfigWarning {
            variable: variable.to_string(),
            value: shorten(value),
            problem: problem.into(),
            using: using.into(),
        });
    }

    pub(crate) fn into_vec(self) -> Vec<ConfigWarning> {
        self.0
    }
}

/// At most [`SHOWN_VALUE_CHARS`] characters of a value go into a warning.
fn shorten(value: &str) -> String {
    match value.char_indices().nth(SHOWN_VALUE_CHARS) {
        None => value.to_string(),
        Some((cut, _)) => format!("{}… ({} bytes in all)", &value[..cut], value.len()),
    }
}

/// How much of a value a warning shows.
const SHOWN_VALUE_CHARS: usize = 200;

/// The bounds every numeric, file and list setting is held to, whatever the environment says.
/// The README's configuration table lists each with what happens outside it.
pub(crate) mod bounds {
    use std::time::Duration;

    /// Largest `OTEL_BSP_MAX_QUEUE_SIZE` / `OTEL_BLRP_MAX_QUEUE_SIZE`: the SDK allocates a slot
    /// per queued item up front, so this bounds the memory a queue can take.
    pub(crate) const MAX_QUEUE_SIZE: u64 = 65_536;
    /// Largest schedule delay and metric export interval.
    pub(crate) const MAX_DURATION: Duration = Duration::from_secs(3600);
    /// Largest timeout; also what a timeout of `0` (indefinite, in the specification) means.
    pub(crate) const MAX_TIMEOUT: Duration = Duration::from_secs(600);
    /// Shortest batch schedule delay: below it the export thread would spin.
    pub(crate) const MIN_SCHEDULE_DELAY: Duration = Duration::from_millis(1);
    /// Shortest metric export interval: each export collects every metric stream.
    pub(crate) const MIN_METRIC_INTERVAL: Duration = Duration::from_millis(100);
    /// Largest value of any variable the library reads; longer ones are ignored, with a warning.
    pub(crate) const MAX_VALUE_BYTES: usize = 64 * 1024;
    /// Most entries read from a `key=value,...` list (headers, resource attributes).
    pub(crate) const MAX_LIST_ENTRIES: usize = 128;
    /// Largest certificate or key file read.
    pub(crate) const MAX_FILE_BYTES: u64 = 1024 * 1024;
}

/// The specification's Boolean: `true` or `false`, case-insensitive; anything else warns and
/// is the default.
pub(crate) fn parse_bool(env: &Env, name: &str, default: bool, warnings: &mut Warnings) -> bool {
    match env.value(name) {
        None => default,
        Some(v) if v.eq_ignore_ascii_case("true") => true,
        Some(v) if v.eq_ignore_ascii_case("false") => false,
        Some(v) => {
            warnings.push(name, &v, "expected true or false", default.to_string());
            default
        }
    }
}

/// A whole number in `min..=max`. Below `min`, or not a whole number: a warning and `default`
/// (the specification's "treat as not set"). Above `max` (including numbers too large for any
/// integer type): a warning and `max`, so a request for "a lot" gets the most the library
/// allows rather than the default.
pub(crate) fn parse_integer(
    env: &Env,
    name: &str,
    default: u64,
    min: u64,
    max: u64,
    unit: &str,
    warnings: &mut Warnings,
) -> u64 {
    let Some(v) = env.value(name) else {
        return default;
    };
    let digits = v.strip_prefix('+').unwrap_or(&v);
    let is_whole = !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit());
    // All digits but no u64 holds it: far above any maximum.
    let n = match digits.parse::<u64>() {
        Ok(n) => n,
        Err(_) if is_whole => u64::MAX,
        Err(_) => {
            let expected = if min == 0 {
                format!("expected a whole number of {unit} from 0 to {max}")
            } else {
                format!("expected a whole number of {unit} from {min} to {max}")
            };
            warnings.push(name, &v, expected, format!("{default}"));
            return default;
        }
    };
    if n < min {
        warnings.push(
            name,
            &v,
            format!("below the minimum of {min} {unit}"),
            format!("{default}"),
        );
        return default;
    }
    if n > max {
        warnings.push(
            name,
            &v,
            format!("above the maximum of {max} {unit}"),
            format!("{max}"),
        );
        return max;
    }
    n
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// The specification's Duration: milliseconds in `min..=max`, as [`parse_integer`] treats them.
pub(crate) fn parse_duration(
    env: &Env,
    name: &str,
    default: Duration,
    min: Duration,
    max: Duration,
    warnings: &mut Warnings,
) -> Duration {
    Duration::from_millis(parse_integer(
        env,
        name,
        millis(default),
        millis(min),
        millis(max),
        "milliseconds",
        warnings,
    ))
}

/// The specification's Timeout: milliseconds, where `0` means indefinite, which the library
/// takes as its longest timeout, [`bounds::MAX_TIMEOUT`] (the specification allows "a very
/// long time"). Nothing ever waits longer than that.
pub(crate) fn parse_timeout(
    env: &Env,
    name: &str,
    default: Duration,
    warnings: &mut Warnings,
) -> Duration {
    let max = millis(bounds::MAX_TIMEOUT);
    match parse_integer(env, name, millis(default), 0, max, "milliseconds", warnings) {
        0 => bounds::MAX_TIMEOUT,
        ms => Duration::from_millis(ms),
    }
}

/// A count in `min..=max` (queue and batch sizes, limits).
pub(crate) fn parse_count(
    env: &Env,
    name: &str,
    default: usize,
    min: usize,
    max: usize,
    warnings: &mut Warnings,
) -> usize {
    let n = parse_integer(
        env,
        name,
        default as u64,
        min as u64,
        max as u64,
        "items",
        warnings,
    );
    usize::try_from(n).unwrap_or(max)
}

/// Checks one decoded `key=value` entry; `Err` says what is wrong with it (never quoting the
/// value, which may be a credential).
pub(crate) type EntryCheck = fn(key: &str, value: &str) -> Result<(), &'static str>;

/// One entry that was not used.
struct Rejected<'a> {
    entry: &'a str,
    key: Option<&'a str>,
    reason: &'static str,
}

/// True when every `%` starts an escape of two hex digits.
fn percent_escapes_are_valid(v: &str) -> bool {
    let b = v.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = |j: usize| b.get(j).is_some_and(u8::is_ascii_hexdigit);
            if !(hex(i + 1) && hex(i + 2)) {
                return false;
            }
            i += 3;
        } else {
            i += 1;
        }
    }
    true
}

/// Parses the W3C-baggage-like `key=value,key2=value2` lists used by `OTEL_RESOURCE_ATTRIBUTES`
/// and `OTEL_EXPORTER_OTLP_HEADERS`; values are percent-decoded. At most
/// [`bounds::MAX_LIST_ENTRIES`] entries are read. Every entry that cannot be used (no `=`, an
/// empty key, an invalid percent escape, not UTF-8, or refused by `check`) is skipped, and the
/// variable gets one warning naming each skipped entry's key and why. For `*_HEADERS`
/// variables the warning never shows a value.
pub(crate) fn parse_key_values(
    name: &str,
    v: &str,
    check: Option<EntryCheck>,
    w: &mut Warnings,
) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rejected = Vec::new();
    let mut too_many = false;
    for entry in v.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        if out.len() + rejected.len() >= bounds::MAX_LIST_ENTRIES {
            too_many = true;
            break;
        }
        let mut reject = |key, reason| {
            rejected.push(Rejected { entry, key, reason });
        };
        let Some((key, raw)) = entry.split_once('=') else {
            reject(None, "no `=` between key and value");
            continue;
        };
        let key = key.trim();
        if key.is_empty() || key.contains(char::is_whitespace) {
            reject(None, "the key is empty or contains white space");
            continue;
        }
        let raw = raw.trim();
        if !percent_escapes_are_valid(raw) {
            reject(
                Some(key),
                "an invalid percent escape (`%` must start `%XX`)",
            );
            continue;
        }
        let Ok(value) = percent_encoding::percent_decode_str(raw).decode_utf8() else {
            reject(Some(key), "the decoded value is not UTF-8");
            continue;
        };
        if let Some(check) = check
            && let Err(reason) = check(key, &value)
        {
            reject(Some(key), reason);
            continue;
        }
        out.push((key.to_string(), value.into_owned()));
    }
    if !rejected.is_empty() || too_many {
        // Header values are credentials: a warning names keys only, never values.
        let secret = name.contains("HEADERS");
        let shown_value = if secret {
            v.split(',')
                .map(|pair| match pair.split_once('=') {
                    Some((k, _)) => format!("{}=<redacted>", k.trim()),
                    None => "<malformed entry>".to_string(),
                })
                .collect::<Vec<_>>()
                .join(",")
        } else {
            v.to_string()
        };
        let mut problems: Vec<String> = rejected
            .iter()
            .map(|r| match (secret, r.key) {
                (_, Some(key)) => format!("{key}: {}", r.reason),
                (true, None) => format!("an entry: {}", r.reason),
                (false, None) => format!("{:?}: {}", r.entry, r.reason),
            })
            .collect();
        if too_many {
            problems.push(format!(
                "more than {} entries; the rest are ignored",
                bounds::MAX_LIST_ENTRIES
            ));
        }
        let kept = out
            .iter()
            .map(|(k, _)| k.as_str())
            .collect::<Vec<_>>()
            .join(",");
        w.push(
            name,
            &shown_value,
            format!(
                "skipped {} (expected key=value pairs separated by commas, values percent-encoded)",
                problems.join("; ")
            ),
            if kept.is_empty() {
                "no entries".to_string()
            } else {
                format!("only the keys {kept}")
            },
        );
    }
    out
}
