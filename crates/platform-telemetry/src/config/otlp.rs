//! Where each signal's OTLP data goes: protocol, endpoint, headers, timeout, compression, TLS.

use std::path::PathBuf;
use std::time::Duration;

use super::values::{EntryCheck, Env, Warnings, parse_bool, parse_key_values, parse_timeout};
use super::{CodeDefaults, ConfiguredFile, OtlpConfig, Protocol, Signal, TlsFiles};

fn parse_protocol(env: &Env, code: &CodeDefaults, signal: Signal, w: &mut Warnings) -> Protocol {
    let default = code.otlp_protocol.unwrap_or(Protocol::HttpProtobuf);
    let signal_var = format!("OTEL_EXPORTER_OTLP_{}_PROTOCOL", signal.upper());
    for name in [signal_var.as_str(), "OTEL_EXPORTER_OTLP_PROTOCOL"] {
        let Some(v) = env.value(name) else { continue };
        return match v.as_str() {
            "grpc" if cfg!(feature = "grpc") => Protocol::Grpc,
            "grpc" => {
                w.push(
                    name,
                    &v,
                    "this build has no gRPC support (the `grpc` feature is off)",
                    "http/protobuf",
                );
                Protocol::HttpProtobuf
            }
            "http/protobuf" => Protocol::HttpProtobuf,
            "http/json" => {
                w.push(
                    name,
                    &v,
                    "http/json is not supported",
                    Protocol::HttpProtobuf.as_str(),
                );
                Protocol::HttpProtobuf
            }
            _ => {
                w.push(name, &v, "expected grpc or http/protobuf", default.as_str());
                default
            }
        };
    }
    default
}

/// Checks that `v` is an absolute http(s) URL with a host. Returns the reason otherwise.
fn check_url(v: &str) -> Result<(), &'static str> {
    let rest = v
        .strip_prefix("http://")
        .or_else(|| v.strip_prefix("https://"))
        .ok_or("expected an http:// or https:// URL")?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let authority = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    if authority.is_empty() || authority.starts_with(':') {
        return Err("the URL has no host");
    }
    if let Some((_, port)) = authority.rsplit_once(':')
        && !authority.ends_with(']')
        && port.parse::<u16>().is_err()
    {
        return Err("the URL's port is not a number from 0 to 65535");
    }
    if v.contains(char::is_whitespace) {
        return Err("the URL contains white space");
    }
    Ok(())
}

pub(super) fn parse_otlp(
    env: &Env,
    code: &CodeDefaults,
    signal: Signal,
    w: &mut Warnings,
) -> OtlpConfig {
    let protocol = parse_protocol(env, code, signal, w);
    let up = signal.upper();
    let http_path = format!("/v1/{}", signal.as_str());
    let with_path = |base: &str| match protocol {
        Protocol::Grpc => base.to_string(),
        Protocol::HttpProtobuf => {
            // The signal's path goes before a query the base URL carries.
            let (base, query) = base
                .split_once('?')
                .map_or((base, None), |(b, q)| (b, Some(q)));
            let joined = format!("{}{http_path}", base.trim_end_matches('/'));
            match query {
                Some(q) => format!("{joined}?{q}"),
                None => joined,
            }
        }
    };
    let default_endpoint = code
        .otlp_endpoint
        .as_deref()
        .filter(|e| check_url(e).is_ok())
        .map(&with_path)
        .unwrap_or_else(|| with_path(protocol.default_endpoint()));
    // OTEL_EXPORTER_OTLP_[SIGNAL_]INSECURE: for a gRPC endpoint given without a scheme, as
    // the specification says, whether the connection goes without TLS.
    let insecure_var = format!("OTEL_EXPORTER_OTLP_{up}_INSECURE");
    let (insecure_name, insecure) = if env.value(&insecure_var).is_some() {
        let v = parse_bool(env, &insecure_var, false, w);
        (Some(insecure_var.as_str()), v)
    } else if env.value("OTEL_EXPORTER_OTLP_INSECURE").is_some() {
        let v = parse_bool(env, "OTEL_EXPORTER_OTLP_INSECURE", false, w);
        (Some("OTEL_EXPORTER_OTLP_INSECURE"), v)
    } else {
        (None, false)
    };
    let with_scheme = |v: String| {
        if protocol == Protocol::Grpc && !v.contains("://") {
            let scheme = if insecure { "http" } else { "https" };
            format!("{scheme}://{v}")
        } else {
            v
        }
    };
    let signal_var = format!("OTEL_EXPORTER_OTLP_{up}_ENDPOINT");
    let endpoint = match (
        env.value(&signal_var).map(with_scheme),
        env.value("OTEL_EXPORTER_OTLP_ENDPOINT").map(with_scheme),
    ) {
        (Some(v), general) => match check_url(&v) {
            // The per-signal endpoint is used as is, as the specification says.
            Ok(()) => v,
            Err(problem) => {
                let fallback = general
                    .filter(|g| check_url(g).is_ok())
                    .map(|g| with_path(&g))
                    .unwrap_or(default_endpoint);
                w.push(&signal_var, &redacted(&v), problem, redacted(&fallback));
                fallback
            }
        },
        (None, Some(v)) => match check_url(&v) {
            Ok(()) => with_path(&v),
            Err(problem) => {
                w.push(
                    "OTEL_EXPORTER_OTLP_ENDPOINT",
                    &redacted(&v),
                    problem,
                    redacted(&default_endpoint),
                );
                default_endpoint
            }
        },
        (None, None) => default_endpoint,
    };
    if let Some(e) = code.otlp_endpoint.as_deref()
        && let Err(problem) = check_url(e)
    {
        w.push(
            "Builder::otlp_endpoint",
            &redacted(e),
            problem,
            redacted(&endpoint),
        );
    }

    if let Some(name) = insecure_name
        && insecure
        && endpoint.starts_with("https://")
    {
        w.push(
            name,
            "true",
            format!(
                "applies only to a gRPC endpoint given without a scheme; {} asks for TLS",
                redacted(&endpoint)
            ),
            "TLS",
        );
    }

    let headers_var = format!("OTEL_EXPORTER_OTLP_{up}_HEADERS");
    let check: Option<EntryCheck> = Some(check_header);
    let headers = match env.value(&headers_var) {
        Some(v) => parse_key_values(&headers_var, &v, check, w),
        None => env
            .value("OTEL_EXPORTER_OTLP_HEADERS")
            .map(|v| parse_key_values("OTEL_EXPORTER_OTLP_HEADERS", &v, check, w))
            .unwrap_or_default(),
    };

    let timeout_var = format!("OTEL_EXPORTER_OTLP_{up}_TIMEOUT");
    let general_timeout = parse_timeout(
        env,
        "OTEL_EXPORTER_OTLP_TIMEOUT",
        Duration::from_millis(10_000),
        w,
    );
    let timeout = parse_timeout(env, &timeout_var, general_timeout, w);

    let compression_var = format!("OTEL_EXPORTER_OTLP_{up}_COMPRESSION");
    let mut gzip = false;
    for name in [compression_var.as_str(), "OTEL_EXPORTER_OTLP_COMPRESSION"] {
        let Some(v) = env.value(name) else { continue };
        match v.to_ascii_lowercase().as_str() {
            "gzip" => gzip = true,
            "none" => gzip = false,
            _ => {
                w.push(name, &v, "expected gzip or none", "none");
                continue;
            }
        }
        break;
    }

    let file = |suffix: &str| {
        let signal_var = format!("OTEL_EXPORTER_OTLP_{up}_{suffix}");
        let general_var = format!("OTEL_EXPORTER_OTLP_{suffix}");
        let (variable, path) = match env.value(&signal_var) {
            Some(path) => (signal_var, path),
            None => (general_var.clone(), env.value(&general_var)?),
        };
        Some(ConfiguredFile {
            variable,
            path: PathBuf::from(path),
        })
    };
    let tls = TlsFiles {
        certificate: file("CERTIFICATE"),
        client_key: file("CLIENT_KEY"),
        client_certificate: file("CLIENT_CERTIFICATE"),
    };
    if !endpoint.starts_with("https://") {
        for f in [&tls.certificate, &tls.client_key, &tls.client_certificate]
            .into_iter()
            .flatten()
        {
            w.push(
                &f.variable,
                &f.path.display().to_string(),
                format!(
                    "{} does not use TLS, so the file is not read",
                    redacted(&endpoint)
                ),
                "no TLS",
            );
        }
    }

    OtlpConfig {
        protocol,
        endpoint,
        headers,
        timeout,
        gzip,
        tls,
    }
}

/// Whether a decoded `OTEL_EXPORTER_OTLP_*HEADERS` entry can be sent as an HTTP header and as
/// gRPC metadata: a valid header name, and a value of visible ASCII, spaces and tabs only.
fn check_header(key: &str, value: &str) -> Result<(), &'static str> {
    if http::HeaderName::from_bytes(key.to_ascii_lowercase().as_bytes()).is_err() {
        return Err("not a valid header name");
    }
    if value.bytes().any(|b| b == b'\r' || b == b'\n') {
        return Err("the value contains a CR or LF, which cannot be sent in a header");
    }
    if !value
        .bytes()
        .all(|b| b == b'\t' || (0x20..0x7f).contains(&b))
    {
        return Err(
            "the value contains control or non-ASCII characters, which cannot be sent in a header",
        );
    }
    Ok(())
}

/// An endpoint as a warning may show it: no `user:password@`, no credential in the query.
fn redacted(endpoint: &str) -> String {
    crate::redact::Redaction::default().url(endpoint)
}
