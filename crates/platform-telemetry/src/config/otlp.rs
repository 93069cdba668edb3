//! Where each signal's OTLP data goes: protocol, endpoint, headers, timeout, compression, TLS.

use std::path::PathBuf;
use std::time::Duration;

use super::values::{Env, Warnings, parse_key_values, parse_timeout};
use super::{CodeDefaults, OtlpConfig, Protocol, Signal};

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
    let authority = rest.split('/').next().unwrap_or_default();
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

pub(super) fn parse_otlp(env: &Env, code: &CodeDefaults, signal: Signal, w: &mut Warnings) -> OtlpConfig {
    let protocol = parse_protocol(env, code, signal, w);
    let up = signal.upper();
    let http_path = format!("/v1/{}", signal.as_str());
    let with_path = |base: &str| match protocol {
        Protocol::Grpc => base.to_string(),
        Protocol::HttpProtobuf => format!("{}{http_path}", base.trim_end_matches('/')),
    };
    let default_endpoint = code
        .otlp_endpoint
        .as_deref()
        .filter(|e| check_url(e).is_ok())
        .map(&with_path)
        .unwrap_or_else(|| with_path(protocol.default_endpoint()));
    let signal_var = format!("OTEL_EXPORTER_OTLP_{up}_ENDPOINT");
    let endpoint = match (
        env.value(&signal_var),
        env.value("OTEL_EXPORTER_OTLP_ENDPOINT"),
    ) {
        (Some(v), general) => match check_url(&v) {
            // The per-signal endpoint is used as is, as the specification says.
            Ok(()) => v,
            Err(problem) => {
                let fallback = general
                    .filter(|g| check_url(g).is_ok())
                    .map(|g| with_path(&g))
                    .unwrap_or(default_endpoint);
                w.push(&signal_var, &v, problem, fallback.clone());
                fallback
            }
        },
        (None, Some(v)) => match check_url(&v) {
            Ok(()) => with_path(&v),
            Err(problem) => {
                w.push(
                    "OTEL_EXPORTER_OTLP_ENDPOINT",
                    &v,
                    problem,
                    default_endpoint.clone(),
                );
                default_endpoint
            }
        },
        (None, None) => default_endpoint,
    };
    if let Some(e) = code.otlp_endpoint.as_deref()
        && let Err(problem) = check_url(e)
    {
        w.push("Builder::otlp_endpoint", e, problem, endpoint.clone());
    }

    let headers_var = format!("OTEL_EXPORTER_OTLP_{up}_HEADERS");
    let headers = match env.value(&headers_var) {
        Some(v) => parse_key_values(&headers_var, &v, w),
        None => env
            .value("OTEL_EXPORTER_OTLP_HEADERS")
            .map(|v| parse_key_values("OTEL_EXPORTER_OTLP_HEADERS", &v, w))
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

    let cert_var = format!("OTEL_EXPORTER_OTLP_{up}_CERTIFICATE");
    let certificate = env
        .value(&cert_var)
        .or_else(|| env.value("OTEL_EXPORTER_OTLP_CERTIFICATE"))
        .map(PathBuf::from);

    OtlpConfig {
        protocol,
        endpoint,
        headers,
        timeout,
        gzip,
        certificate,
    }
}
