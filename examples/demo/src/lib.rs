//! The zero-dependency quick start (`cargo run -p demo`). An embedded OTLP receiver (gRPC and HTTP on
//! loopback) keeps what it receives in memory; the example services (gateway → orders → worker)
//! run in this process, each with its own telemetry instance, orders on a real PostgreSQL and
//! Redis when given their URLs (in memory otherwise, and it says so); a few requests go through
//! them;
//! then the same trace judgement `obs verify` applies to Tempo and Jaeger runs on what arrived,
//! and the trace, its logs and the RED numbers are printed.
//!
//! Memory is bounded: the receiver keeps at most `otlp_receiver::MAX_ITEMS_PER_SIGNAL` items per
//! signal and drops the oldest beyond that.

//!
//! It lives in its own example crate so the shipped `obs` binary links neither the example
//! services nor the receiver; it uses `obs`'s library for the trace checks.

pub mod print;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime};

use anyhow::Context as _;
use obs::backends::{Span, Trace};
use obs::verify::probe::Probe;
use obs::verify::{Status, judge_trace};
use otlp_receiver::{OtlpReceiver, Snapshot};
use platform_telemetry::Telemetry;
use tracing::instrument::WithSubscriber as _;

/// The spans every request produces, as `(service, span name)`.
pub const EXPECTED: &[(&str, &str)] = &[
    ("gateway", "GET /orders/{id}"),
    ("gateway", "GET"),
    ("orders", "GET /orders/{id}"),
    ("orders", "publish orders.viewed"),
    ("worker", "process orders.viewed"),
];

/// How the demo runs.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Requests to send (each a trace to check); at least 1.
    pub requests: u32,
    /// Keep listening afterwards, printing what arrives.
    pub keep: bool,
    /// orders' PostgreSQL (`postgres://…`); `None`: orders in memory.
    pub database_url: Option<String>,
    /// orders' Redis (`redis://…`); `None`: no cache.
    pub redis_url: Option<String>,
}

/// The spans each request must produce with this store and cache: the Redis lookup whenever
/// there is a cache; the PostgreSQL query when there is a database and no cache (with a cache
/// it runs on a miss only, so a second run finds the orders cached).
pub fn expected_spans(database: bool, cache: bool) -> Vec<(String, String)> {
    let mut expected: Vec<(String, String)> = EXPECTED
        .iter()
        .map(|(s, n)| (s.to_string(), n.to_string()))
        .collect();
    if cache {
        expected.push(("orders".into(), "GET".into()));
    } else if database {
        expected.push(("orders".into(), "SELECT orders".into()));
    }
    expected
}

fn instance(name: &str, endpoint: &str) -> anyhow::Result<Telemetry> {
    platform_telemetry::builder()
        .service_name(name)
        .env_vars([
            ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint),
            ("OTEL_BSP_SCHEDULE_DELAY", "200"),
            ("OTEL_BLRP_SCHEDULE_DELAY", "200"),
            ("OTEL_TRACES_SAMPLER", "always_on"),
        ])
        .log_writer(std::io::sink)
        .build()
        .with_context(|| format!("cannot build the telemetry of {name}"))
}

/// Spans of `trace_id` in a receiver snapshot, in the verification's shape.
pub fn trace_from(snapshot: &Snapshot, trace_id: &str) -> Trace {
    Trace {
        spans: snapshot
            .spans
            .iter()
            .filter(|s| s.trace_id_hex() == trace_id)
            .map(|s| Span {
                trace_id: s.trace_id_hex(),
                span_id: s.span_id_hex(),
                parent_span_id: s.parent_span_id_hex(),
                name: s.name().to_string(),
                service: s.service_name().unwrap_or_default(),
                start_ns: u128::from(s.span.start_time_unix_nano),
                end_ns: u128::from(s.span.end_time_unix_nano),
            })
            .collect(),
    }
}

async fn serve(router: axum::Router) -> anyhow::Result<String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, router).await });
    Ok(format!("http://{address}"))
}

/// The spans of the trace with hex id `trace_id`, as a tree.
fn render_trace_hex(snapshot: &Snapshot, trace_id: &str) -> String {
    let spans: Vec<_> = snapshot
        .spans
        .iter()
        .filter(|s| s.trace_id_hex() == trace_id)
        .collect();
    print::render_tree(&spans)
}

/// `--keep`: once a second, prints the tree of every trace that received spans, and every new
/// log record, until Ctrl-C.
async fn follow(receiver: &OtlpReceiver) {
    let mut printed = receiver.snapshot().received;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            _ = tick.tick() => {
                let snapshot = receiver.snapshot();
                let received = snapshot.received;
                print!("{}", news(&snapshot, printed));
                printed = received;
            }
        }
    }
}

/// What arrived since `printed`: the tree of each trace that got new spans (the whole trace as
/// received so far), then each new log record.
pub fn news(snapshot: &Snapshot, printed: otlp_receiver::Received) -> String {
    let new_spans = usize::try_from(snapshot.received.spans.saturating_sub(printed.spans))
        .unwrap_or(usize::MAX)
        .min(snapshot.spans.len());
    let new_logs = usize::try_from(
        snapshot
            .received
            .log_records
            .saturating_sub(printed.log_records),
    )
    .unwrap_or(usize::MAX)
    .min(snapshot.log_records.len());
    let mut out = String::new();
    // One pass to find the traces, one to gather their spans: linear in the spans kept.
    let touched: BTreeSet<&[u8]> = snapshot.spans[snapshot.spans.len() - new_spans..]
        .iter()
        .map(|s| s.span.trace_id.as_slice())
        .collect();
    let mut traces: BTreeMap<&[u8], Vec<&otlp_receiver::ReceivedSpan>> = BTreeMap::new();
    for span in &snapshot.spans {
        if touched.contains(span.span.trace_id.as_slice()) {
            traces.entry(&span.span.trace_id).or_default().push(span);
        }
    }
    for (trace_id, spans) in traces {
        out.push_str(&format!("\nTrace {}:\n", otlp_receiver::hex(trace_id)));
        out.push_str(&print::render_tree(&spans));
    }
    if new_logs > 0 {
        out.push_str("\nLog records:\n");
        for record in &snapshot.log_records[snapshot.log_records.len() - new_logs..] {
            out.push_str(&print::log_line(record));
            out.push('\n');
        }
    }
    out
}

/// Runs the demo; `keep` leaves the receiver listening and prints traces as they arrive.
pub async fn run(options: Options) -> anyhow::Result<bool> {
    let Options {
        requests,
        keep,
        database_url,
        redis_url,
    } = options;
    let receiver = OtlpReceiver::start()
        .await
        .context("cannot start the embedded OTLP receiver")?;
    let endpoint = receiver.http_endpoint();
    println!(
        "Embedded OTLP receiver: gRPC {} · HTTP {}",
        receiver.grpc_endpoint(),
        receiver.http_endpoint()
    );
    let gateway_t = instance("gateway", &endpoint)?;
    let orders_t = instance("orders", &endpoint)?;
    let worker_t = instance("worker", &endpoint)?;

    let (sender, events) = tokio::sync::mpsc::channel(1024);
    tokio::spawn(worker::consume_channel(events).with_subscriber(worker_t.subscriber()));
    let store = match &database_url {
        Some(url) => orders::OrderStore::postgres(url)
            .await
            .context("--database-url")?,
        None => orders::OrderStore::InMemory,
    };
    let cache = match &redis_url {
        Some(url) => orders::OrderCache::redis(url)
            .await
            .context("--redis-url")?,
        None => orders::OrderCache::None,
    };
    let (store_server, cache_server) = (store.server(), cache.server());
    let expected = expected_spans(store_server.is_some(), cache_server.is_some());
    let orders_url = serve(
        orders::Service::new(orders::Events::Channel(sender))
            .store(store)
            .cache(cache)
            .router_for(&orders_t),
    )
    .await?;
    let gateway_url = serve(gateway::router_for(
        gateway::Upstream::for_telemetry(orders_url, &gateway_t),
        &gateway_t,
    ))
    .await?;
    let stores = match (&cache_server, &store_server) {
        (Some(cache), Some(store)) => format!("Redis {cache}, PostgreSQL {store}"),
        (Some(cache), None) => format!("Redis {cache}, orders in memory"),
        (None, Some(store)) => format!("PostgreSQL {store}, no cache"),
        (None, None) => "orders in memory, no cache".to_string(),
    };
    println!("Services: gateway {gateway_url} → orders ({stores}) → (in-process channel) → worker");
    if store_server.is_none() || cache_server.is_none() {
        println!(
            "  orders runs on a stand-in: without --database-url and --redis-url it keeps its \
             orders in memory, uncached, and the trace has no PostgreSQL or Redis span."
        );
    }
    println!();

    let started = SystemTime::now();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .context("cannot build the HTTP client")?;
    let mut trace_ids = Vec::new();
    for id in 1..=requests.max(1) {
        let response = client
            .get(format!("{gateway_url}/orders/{id}"))
            .send()
            .await
            .with_context(|| format!("GET {gateway_url}/orders/{id}"))?;
        let trace_id = response
            .headers()
            .get("traceresponse")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split('-').nth(1))
            .unwrap_or_default()
            .to_string();
        println!(
            "GET /orders/{id} → {} (trace {trace_id})",
            response.status()
        );
        trace_ids.push(trace_id);
    }
    // The worker consumes asynchronously: wait until the last trace reached it, then flush all.
    let last = trace_ids.last().cloned().unwrap_or_default();
    let _ = receiver
        .wait_until(Duration::from_secs(10), |s| {
            s.spans
                .iter()
                .any(|sp| sp.trace_id_hex() == last && sp.name() == "process orders.viewed")
        })
        .await;
    for t in [&gateway_t, &orders_t, &worker_t] {
        let _ = t.force_flush();
    }
    let finished = SystemTime::now();
    let snapshot = receiver.snapshot();

    let first = trace_ids.first().cloned().unwrap_or_default();
    println!("\nTrace {first}:");
    print!("{}", render_trace_hex(&snapshot, &first));
    println!("\nLogs of that trace:");
    for record in snapshot
        .log_records
        .iter()
        .filter(|l| l.trace_id_hex().as_deref() == Some(first.as_str()))
    {
        println!("{}", print::log_line(record));
    }
    println!("\nRED (from each service's /metrics):");
    for (name, t) in [("gateway", &gateway_t), ("orders", &orders_t)] {
        let body = t.scrape_metrics(None).body;
        let value = |prefix: &str| {
            body.lines()
                .filter(|l| l.starts_with(prefix))
                .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                .fold(0.0, |a, b| a + b)
        };
        let count = value("http_server_request_duration_seconds_count{");
        let sum = value("http_server_request_duration_seconds_sum{");
        let errors: f64 = body
            .lines()
            .filter(|l| {
                l.starts_with("http_server_request_duration_seconds_count{")
                    && l.contains("http_response_status_code=\"5")
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .fold(0.0, |a, b| a + b);
        println!(
            "  {name:<8} requests {count:>3}   errors {errors:>3}   mean latency {:.2} ms",
            if count > 0.0 {
                sum / count * 1000.0
            } else {
                0.0
            }
        );
    }

    println!("\nVerification (the checks obs verify applies to Tempo and Jaeger):");
    let mut all_passed = true;
    for trace_id in &trace_ids {
        let probe = Probe {
            trace_id: trace_id.clone(),
            run_id: String::new(),
            started,
            finished,
            expected_spans: expected.clone(),
            export_problems: Vec::new(),
            export_endpoints: receiver.http_endpoint(),
            export_warnings: Vec::new(),
            target_status: None,
            metrics_server: None,
        };
        let logs = snapshot
            .log_records
            .iter()
            .filter(|l| l.trace_id_hex().as_deref() == Some(trace_id.as_str()))
            .count();
        let (status, detail) = match judge_trace(
            &trace_from(&snapshot, trace_id),
            &probe,
            &[],
            Duration::from_secs(30),
        ) {
            Ok(detail) if logs >= 3 => (
                Status::Pass,
                format!("{detail}; {logs} correlated log records"),
            ),
            Ok(detail) => (
                Status::Fail,
                format!("{detail}; but only {logs} log records carry the trace id"),
            ),
            Err(why) => (Status::Fail, why.detail),
        };
        all_passed &= status == Status::Pass;
        println!(
            "  {} trace {trace_id}: {detail}",
            if status == Status::Pass {
                "PASS"
            } else {
                "FAIL"
            }
        );
    }
    println!(
        "\n{}",
        if all_passed {
            "Telemetry works: every trace crossed gateway → orders → worker intact."
        } else {
            "Telemetry is broken: see the FAIL lines."
        }
    );

    if keep {
        println!(
            "\nStill listening. Point services at it: OTEL_EXPORTER_OTLP_ENDPOINT={} (or {} with OTEL_EXPORTER_OTLP_PROTOCOL=grpc). Ctrl-C to stop.",
            receiver.http_endpoint(),
            receiver.grpc_endpoint()
        );
        follow(&receiver).await;
    }
    for t in [gateway_t, orders_t, worker_t] {
        let _ = t.shutdown();
    }
    Ok(all_passed)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use otlp_receiver::opentelemetry_proto::tonic::logs::v1::LogRecord;
    use otlp_receiver::opentelemetry_proto::tonic::trace::v1::Span as ProtoSpan;
    use otlp_receiver::{Received, ReceivedLogRecord, ReceivedSpan, Snapshot, Transport};

    use super::news;

    fn span(trace: u8, id: u8, name: &str) -> ReceivedSpan {
        ReceivedSpan {
            resource: Default::default(),
            scope: Default::default(),
            scope_schema_url: Default::default(),
            span: ProtoSpan {
                trace_id: vec![trace; 16],
                span_id: vec![id; 8],
                name: name.into(),
                ..ProtoSpan::default()
            },
            transport: Transport::Grpc,
        }
    }

    #[test]
    fn keep_prints_only_what_arrived_since_last_time_spans_and_logs() {
        let mut snapshot = Snapshot::default();
        snapshot.spans.push(span(1, 1, "old-trace"));
        snapshot.spans.push(span(2, 2, "new-root"));
        snapshot.spans.push(span(2, 3, "new-sibling"));
        snapshot.log_records.push(ReceivedLogRecord {
            resource: Default::default(),
            scope: Default::default(),
            scope_schema_url: Default::default(),
            record: LogRecord {
                severity_text: "WARN".into(),
                body: None,
                trace_id: vec![2; 16],
                span_id: vec![2; 8],
                ..LogRecord::default()
            },
            transport: Transport::Http,
        });
        // Three spans were dropped by the receiver's cap since the last print; two arrived.
        snapshot.received = Received {
            spans: 7,
            log_records: 1,
            metrics: 0,
        };
        let printed = Received {
            spans: 5,
            log_records: 0,
            metrics: 0,
        };
        let out = news(&snapshot, printed);
        assert!(!out.contains("old-trace"), "{out}");
        assert_eq!(out.matches("\nTrace ").count(), 1, "{out}");
        assert!(
            out.contains(&format!("Trace {}:", "02".repeat(16))),
            "{out}"
        );
        assert!(
            out.contains("new-root") && out.contains("new-sibling"),
            "{out}"
        );
        assert!(
            out.contains(&format!(
                "WARN    trace_id={} span_id={}",
                "02".repeat(16),
                "02".repeat(8)
            )),
            "{out}"
        );
        assert_eq!(news(&snapshot, snapshot.received), "", "nothing new");
    }
}
