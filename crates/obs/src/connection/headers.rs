//! Extra headers: `--B-header 'Name: value'` (repeatable) or `OBS_B_HEADERS` with one
//! `Name: value` per line (a value may hold commas, so lines separate entries). Names must be
//! HTTP tokens; values visible ASCII, spaces and tabs. Headers the HTTP layer owns (Host,
//! Content-Length, Transfer-Encoding, Connection) are refused.

use reqwest::header::HeaderName;

/// The most extra headers per store.
pub const MAX_HEADERS: usize = 32;
/// The longest header name.
pub const MAX_NAME_LEN: usize = 256;
/// The longest header value (a JWT fits).
pub const MAX_VALUE_LEN: usize = 8 * 1024;

const OWNED_BY_HTTP: &[&str] = &["host", "content-length", "transfer-encoding", "connection"];

/// Why `value` cannot be sent in a header, never quoting it (it may be a secret).
pub fn check_value(value: &str) -> Result<(), String> {
    if value.len() > MAX_VALUE_LEN {
        return Err(format!(
            "the value is {} bytes; at most {MAX_VALUE_LEN} are sent",
            value.len()
        ));
    }
    if let Some(bad) = value
        .bytes()
        .find(|b| !(*b == b'\t' || (0x20..0x7f).contains(b)))
    {
        return Err(format!(
            "the value holds byte 0x{bad:02x}; a header value is visible ASCII, spaces and tabs"
        ));
    }
    Ok(())
}

/// One `Name: value` entry.
pub fn parse(entry: &str) -> Result<(HeaderName, String), String> {
    let Some((name, value)) = entry.split_once(':') else {
        return Err("write it as `Name: value` (no ':' found)".to_string());
    };
    let name = name.trim();
    if name.is_empty() || name.len() > MAX_NAME_LEN {
        return Err(format!(
            "the header name is empty or longer than {MAX_NAME_LEN}; write it as `Name: value`"
        ));
    }
    let parsed = HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
        format!(
            "{:?} is not a header name (letters, digits and !#$%&'*+-.^_`|~ only)",
            name.chars().take(64).collect::<String>()
        )
    })?;
    if OWNED_BY_HTTP.contains(&parsed.as_str()) {
        return Err(format!(
            "{name} is set by the HTTP client itself; remove it"
        ));
    }
    let value = value.trim();
    check_value(value)?;
    Ok((parsed, value.to_string()))
}

/// Every entry of `values` (each a flag occurrence, or the variable with one entry per line);
/// on error, the entry's number (from 1) and why.
pub fn parse_all(values: &[String]) -> Result<Vec<(HeaderName, String)>, (usize, String)> {
    let entries: Vec<&str> = values
        .iter()
        .flat_map(|v| v.split('\n'))
        .map(|line| line.trim_end_matches('\r'))
        .filter(|line| !line.trim().is_empty())
        .collect();
    if entries.len() > MAX_HEADERS {
        return Err((
            MAX_HEADERS + 1,
            format!("{} headers given; at most {MAX_HEADERS}", entries.len()),
        ));
    }
    entries
        .iter()
        .enumerate()
        .map(|(i, entry)| parse(entry).map_err(|why| (i + 1, why)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn entries_are_lines_of_name_colon_value() {
        let parsed = parse_all(&[
            "X-A: 1, 2\nX-B:two words\r\n\n".to_string(),
            "authorization: Bearer t".to_string(),
        ])
        .unwrap();
        let shown: Vec<(&str, &str)> = parsed
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            shown,
            [
                ("x-a", "1, 2"),
                ("x-b", "two words"),
                ("authorization", "Bearer t")
            ]
        );
        for bad in ["no colon", ": v", "bad name: v", "Host: x", "X: a\u{7f}"] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
        let (entry, why) = parse_all(&["X-A: 1\nbroken".to_string()]).unwrap_err();
        assert_eq!(entry, 2, "{why}");
    }

    #[test]
    fn an_error_never_quotes_the_value() {
        let err = parse("X-Api-Key: s3cr3t\u{1}").unwrap_err();
        assert!(!err.contains("s3cr3t"), "{err}");
    }

    proptest! {
        /// Any input is answered without a panic, and what is accepted can be sent.
        #[test]
        fn accepted_headers_can_be_sent(input in "\\PC{0,300}") {
            if let Ok(parsed) = parse_all(&[input]) {
                prop_assert!(parsed.len() <= MAX_HEADERS);
                for (_, value) in parsed {
                    prop_assert!(reqwest::header::HeaderValue::from_str(&value).is_ok());
                }
            }
        }
    }
}
