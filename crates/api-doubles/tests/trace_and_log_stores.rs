#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The Tempo, Loki and Jaeger doubles, fed by real OTLP, answer as the recorded upstream servers
//! did (`shared/upstream-samples`), and can be slow, not ready, down or forgetful.

use std::time::{Duration, Instant};

use api_doubles::FaultSwitches;
use api_doubles::collector::CollectorDouble;
use api_doubles::jaeger::JaegerDouble;
use api_doubles::loki::LokiDouble;
use api_doubles::sample;
use api_doubles::tempo::TempoDouble;
use base64::Engine as _;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::logs::v1::logs_service_client::LogsServiceClient;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use prost::Message;
use serde_json::{Value, json};

const TRACE_ID: &str = "00a1b2c3d4e5f60718293a4b5c6d7e8f";
const STRIPPED: &str = "a1b2c3d4e5f60718293a4b5c6d7e8f";
/// Around the recorded data's timestamps (2026-11-22T13:30:21Z).
const WINDOW_S: (u64, u64) = (1_795_354_200, 1_795_354_300);

fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}

fn traces_request() -> ExportTraceServiceRequest {
    serde_json::from_str(&sample("request_otlp_traces.json")).unwrap()
}

fn logs_request() -> ExportLogsServiceRequest {
    serde_json::from_str(&sample("request_otlp_logs.json")).unwrap()
}

/// A Loki whose clock reads the day the samples were recorded (2026-11-22), so the recorded
/// requests stay within Loki's one-week acceptance window whenever the tests run.
fn loki_on_sample_day() -> LokiDouble {
    let loki = LokiDouble::start().unwrap();
    loki.set_clock(std::time::UNIX_EPOCH + Duration::from_secs(1_795_354_300));
    loki
}

fn sample_json(name: &str) -> Value {
    serde_json::from_str(&sample(name)).unwrap()
}

/// A recorded `.txt` answer: (status, body).
fn recorded(name: &str) -> (u16, String) {
    let text = sample(name);
    let (body, status) = text.trim_end().rsplit_once("\nHTTP ").unwrap();
    (status.parse().unwrap(), body.to_owned())
}

async fn get(url: &str) -> (u16, String) {
    let response = client().get(url).send().await.expect("the double answers");
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

async fn get_json(url: &str) -> (u16, Value) {
    let (status, body) = get(url).await;
    let value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{url}: {e}: {body}"));
    (status, value)
}

/// The JSON's structure: keys kept, every leaf replaced by its type.
fn shape(v: &Value) -> Value {
    match v {
        Value::Object(map) => map.iter().map(|(k, v)| (k.clone(), shape(v))).collect(),
        Value::Array(items) => items.iter().map(shape).collect(),
        Value::String(_) => json!("string"),
        Value::Number(_) => json!("number"),
        Value::Bool(_) => json!("bool"),
        Value::Null => json!("null"),
    }
}

/// Polls `probe` until it gives a value, for at most 10 s.
async fn eventually<T>(what: &str, mut probe: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn export_traces_grpc(endpoint: String) {
    let mut traces = TraceServiceClient::connect(endpoint).await.unwrap();
    traces.export(traces_request()).await.unwrap();
}

async fn export_traces_http(base: &str) -> u16 {
    let response = client()
        .post(format!("{base}/v1/traces"))
        .header("content-type", "application/x-protobuf")
        .body(traces_request().encode_to_vec())
        .send()
        .await
        .unwrap();
    response.status().as_u16()
}

async fn push_logs(loki: &LokiDouble, content_type: &str, body: Vec<u8>) -> (u16, String) {
    let response = client()
        .post(format!("{}/v1/logs", loki.otlp_endpoint()))
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

async fn tempo_with_trace() -> TempoDouble {
    let tempo = TempoDouble::start().unwrap();
    export_traces_grpc(tempo.otlp_grpc_endpoint()).await;
    let url = format!("{}/api/v2/traces/{TRACE_ID}", tempo.url());
    eventually("the trace in Tempo", async || {
        let (_, body) = get_json(&url).await;
        (body["trace"]["resourceSpans"].as_array()?.len() == 2).then_some(())
    })
    .await;
    tempo
}

fn loki_query(loki: &LokiDouble, query: &str) -> String {
    let (start, end) = WINDOW_S;
    let query = percent_encode(query);
    format!(
        "{}/loki/api/v1/query_range?query={query}&start={start}&end={end}",
        loki.url()
    )
}

fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn search_url(tempo: &TempoDouble, q: &str) -> String {
    let (start, end) = WINDOW_S;
    format!(
        "{}/api/search?q={}&start={start}&end={end}",
        tempo.url(),
        percent_encode(q)
    )
}

#[tokio::test]
async fn tempo_answers_trace_by_id_exactly_as_recorded_in_v2_and_v1() {
    let tempo = tempo_with_trace().await;
    let (status, v2) = get_json(&format!("{}/api/v2/traces/{TRACE_ID}", tempo.url())).await;
    assert_eq!(
        (status, &v2),
        (200, &sample_json("tempo_v2_trace_found.json"))
    );
    let (status, v1) = get_json(&format!("{}/api/traces/{TRACE_ID}", tempo.url())).await;
    assert_eq!(
        (status, &v1),
        (200, &sample_json("tempo_v1_trace_found.json"))
    );

    // Tempo left-pads ids: without leading zeros, or in capitals, the trace is the same.
    for id in [STRIPPED, &TRACE_ID.to_uppercase()] {
        assert_eq!(
            get_json(&format!("{}/api/v2/traces/{id}", tempo.url()))
                .await
                .1,
            v2
        );
        assert_eq!(
            get_json(&format!("{}/api/traces/{id}", tempo.url()))
                .await
                .1,
            v1
        );
    }
    assert_eq!(tempo.spans().len(), 3, "each span stored once");
}

#[tokio::test]
async fn tempo_answers_200_empty_for_a_missing_trace_on_v2_and_404_on_v1() {
    let tempo = TempoDouble::start().unwrap();
    let missing = "0123456789abcdef0123456789abcdef";
    let (status, body) = get(&format!("{}/api/v2/traces/{missing}", tempo.url())).await;
    let recorded_v2 = recorded("tempo_v2_trace_missing.txt");
    assert_eq!(status, recorded_v2.0);
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body, serde_json::from_str::<Value>(&recorded_v2.1).unwrap());
    let answer = get(&format!("{}/api/traces/{missing}", tempo.url())).await;
    assert_eq!(answer, recorded("tempo_v1_trace_missing.txt"));

    let (status, body) = get(&format!("{}/api/v2/traces/xyz", tempo.url())).await;
    assert_eq!(status, 400);
    assert_eq!(
        body,
        "trace IDs can only contain hex characters: invalid character 'x' at position 1\n"
    );
    let (status, body) = get(&format!("{}/api/traces/{}", tempo.url(), "1".repeat(33))).await;
    assert_eq!(
        (status, body.as_str()),
        (400, "trace IDs can't be larger than 128 bits\n")
    );
}

#[tokio::test]
async fn tempo_search_finds_by_traceql_and_strips_leading_zeros() {
    let tempo = tempo_with_trace().await;
    let recorded = sample_json("tempo_search_traceql.json");
    let (status, found) = get_json(&search_url(
        &tempo,
        r#"{ resource.service.name = "orders" }"#,
    ))
    .await;
    assert_eq!(status, 200);
    assert_eq!(found["traces"], recorded["traces"]);
    assert_eq!(shape(&found), shape(&recorded));
    assert_eq!(found["traces"][0]["traceID"], STRIPPED);

    let matching = [
        r#"{ span.http.route = "/orders/{id}" }"#,
        r#"{ name = "GET" }"#,
        r#"{ resource.service.name = "gateway" && span.http.response.status_code = 200 }"#,
        r#"{ .service.name =~ "ord.*" && status = error }"#,
        r#"{ kind = client || name = "nothing" }"#,
        "{}",
    ];
    for q in matching {
        let (status, body) = get_json(&search_url(&tempo, q)).await;
        assert_eq!(
            (status, body["traces"][0]["traceID"].as_str()),
            (200, Some(STRIPPED)),
            "{q}"
        );
    }
    let (_, body) = get_json(&search_url(&tempo, r#"{ name = "GET" }"#)).await;
    assert_eq!(body["traces"][0]["spanSet"]["spans"][0]["name"], "GET");
    let missing = [
        r#"{ resource.service.name = "billing" }"#,
        r#"{ resource.service.name = "orders" && span.http.route = "/orders/{id}" }"#,
        r#"{ span.nothing != "x" }"#,
    ];
    for q in missing {
        let (status, body) = get_json(&search_url(&tempo, q)).await;
        assert_eq!(
            (status, body["traces"].as_array().map(Vec::len)),
            (200, Some(0)),
            "{q}"
        );
    }
    let url = format!(
        "{}/api/search?q={}&start=1&end=100",
        tempo.url(),
        percent_encode("{}")
    );
    assert_eq!(
        get_json(&url).await.1["traces"],
        json!([]),
        "outside the time window"
    );
}

#[tokio::test]
async fn tempo_refuses_malformed_traceql_and_parameters_with_400() {
    let tempo = TempoDouble::start().unwrap();
    let cases = [
        (
            r#"{ .foo="bar" "#,
            "invalid TraceQL query: parse error at line 1, col 14: syntax error: unexpected $end\n",
        ),
        (
            r#"{ .foo = "bar }"#,
            "invalid TraceQL query: parse error at line 1, col 10: literal not terminated\n",
        ),
        (
            r#"{ resource.service.name "x" }"#,
            "invalid TraceQL query: parse error at line 1, col 25: syntax error: unexpected STRING\n",
        ),
    ];
    for (q, expected) in cases {
        let (status, body) = get(&search_url(&tempo, q)).await;
        assert_eq!((status, body.as_str()), (400, expected), "{q}");
    }
    let url = format!("{}/api/search?q=%7B%7D&limit=ten", tempo.url());
    let (status, body) = get(&url).await;
    assert_eq!(
        (status, body.as_str()),
        (
            400,
            "invalid limit: strconv.Atoi: parsing \"ten\": invalid syntax\n"
        )
    );
    let url = format!("{}/api/search?start=20&end=10", tempo.url());
    assert_eq!(get(&url).await.0, 400);
}

#[tokio::test]
async fn tempo_search_lags_trace_by_id_as_configured() {
    let tempo = TempoDouble::start().unwrap();
    tempo.visible_after(Duration::from_millis(200));
    tempo.searchable_after(Duration::from_millis(1200));
    let sent = Instant::now();
    export_traces_http(&tempo.otlp_http_endpoint()).await;
    let by_id = format!("{}/api/v2/traces/{TRACE_ID}", tempo.url());
    let search = search_url(&tempo, r#"{ resource.service.name = "orders" }"#);
    assert_eq!(
        get_json(&by_id).await.1,
        json!({ "trace": {}, "metrics": {} }),
        "not visible yet"
    );

    eventually("the trace by id", async || {
        let (_, body) = get_json(&by_id).await;
        body["trace"].get("resourceSpans").map(|_| ())
    })
    .await;
    let fetchable = sent.elapsed();
    assert!(fetchable >= Duration::from_millis(200), "{fetchable:?}");
    if fetchable < Duration::from_millis(1100) {
        assert_eq!(
            get_json(&search).await.1["traces"],
            json!([]),
            "not searchable yet"
        );
    }
    eventually("the trace by search", async || {
        let (_, body) = get_json(&search).await;
        (!body["traces"].as_array()?.is_empty()).then_some(())
    })
    .await;
    assert!(sent.elapsed() >= Duration::from_millis(1200));
}

#[tokio::test]
async fn tempo_is_not_ready_then_ready() {
    let tempo = TempoDouble::start().unwrap();
    tempo.not_ready_for(2);
    let url = format!("{}/ready", tempo.url());
    for _ in 0..2 {
        let (status, body) = get(&url).await;
        assert_eq!(status, 503);
        assert!(body.contains("not ready"), "{body}");
    }
    assert_eq!(get(&url).await, recorded("tempo_ready.txt"));
    tempo.set_ready(false);
    assert_eq!(get(&url).await.0, 503);
    tempo.set_ready(true);
    assert_eq!(get(&url).await.0, 200);
}

#[tokio::test]
async fn tempo_down_refuses_connections_and_exports_then_comes_back() {
    let tempo = tempo_with_trace().await;
    let ready = format!("{}/ready", tempo.url());
    let client = client();
    assert!(client.get(&ready).send().await.is_ok());
    tempo.set_down();
    let refused = client.get(&ready).send().await;
    assert!(
        refused.is_err(),
        "kept-alive connections are dropped too: {refused:?}"
    );
    assert!(reqwest::Client::new().get(&ready).send().await.is_err());
    assert_eq!(export_traces_http(&tempo.otlp_http_endpoint()).await, 503);
    tempo.set_up();
    let back = eventually("Tempo back up", async || {
        client.get(&ready).send().await.ok()
    })
    .await;
    assert_eq!(back.status().as_u16(), 200);
    assert_eq!(export_traces_http(&tempo.otlp_http_endpoint()).await, 200);
}

#[tokio::test]
async fn tempo_can_lose_spans_or_whole_traces() {
    let tempo = tempo_with_trace().await;
    tempo.drop_spans(|s| s.service_name().as_deref() == Some("orders"));
    let url = format!("{}/api/v2/traces/{TRACE_ID}", tempo.url());
    let (_, body) = get_json(&url).await;
    let services = body["trace"]["resourceSpans"].as_array().unwrap();
    assert_eq!(services.len(), 1, "only the gateway's spans are left");
    assert!(tempo.forget_trace(STRIPPED));
    assert_eq!(
        get_json(&url).await.1,
        json!({ "trace": {}, "metrics": {} })
    );
    export_traces_grpc(tempo.otlp_grpc_endpoint()).await;
    assert!(
        tempo.spans().is_empty(),
        "a forgotten trace stays forgotten"
    );
}

#[tokio::test]
async fn loki_answers_query_range_as_recorded_for_otlp_json_and_protobuf() {
    for protobuf in [false, true] {
        let loki = loki_on_sample_day();
        let (status, body) = if protobuf {
            push_logs(
                &loki,
                "application/x-protobuf",
                logs_request().encode_to_vec(),
            )
            .await
        } else {
            push_logs(
                &loki,
                "application/json",
                sample("request_otlp_logs.json").into_bytes(),
            )
            .await
        };
        assert_eq!((status, body.as_str()), (204, ""));
        let url = loki_query(
            &loki,
            &format!(r#"{{service_name="orders"}} | trace_id="{TRACE_ID}""#),
        );
        let (status, body) = get_json(&url).await;
        let recorded = sample_json("loki_query_range_by_trace_id.json");
        assert_eq!(status, 200);
        assert_eq!(
            body["data"]["result"], recorded["data"]["result"],
            "protobuf: {protobuf}"
        );
        assert_eq!(shape(&body), shape(&recorded));
    }
}

#[tokio::test]
async fn loki_filters_by_labels_metadata_and_line() {
    let loki = loki_on_sample_day();
    let body = logs_request().encode_to_vec();
    assert_eq!(
        push_logs(&loki, "application/x-protobuf", body).await.0,
        204
    );
    let lines = async |query: &str| -> Vec<String> {
        let (status, body) = get_json(&loki_query(&loki, query)).await;
        assert_eq!(status, 200, "{query}: {body}");
        let mut lines = Vec::new();
        for stream in body["data"]["result"].as_array().unwrap() {
            for value in stream["values"].as_array().unwrap() {
                lines.push(value[1].as_str().unwrap().to_owned());
            }
        }
        lines
    };
    let both = ["payment failed", "order loaded"];
    assert_eq!(
        lines(r#"{service_name="orders"}"#).await,
        both,
        "newest first"
    );
    assert_eq!(
        lines(&format!(
            r#"{{service_name=~"ord.+"}} | trace_id="{TRACE_ID}""#
        ))
        .await,
        both
    );
    assert!(
        lines(&format!(
            r#"{{service_name="orders"}} | trace_id="{}""#,
            "1".repeat(32)
        ))
        .await
        .is_empty()
    );
    assert_eq!(
        lines(r#"{service_name="orders"} |= "payment""#).await,
        ["payment failed"]
    );
    assert_eq!(
        lines(r#"{service_name="orders"} != "payment""#).await,
        ["order loaded"]
    );
    assert_eq!(
        lines(r#"{service_name="orders"} | severity_text="INFO""#).await,
        ["order loaded"]
    );
    assert_eq!(
        lines(r#"{service_name="orders"} | order_id!="""#).await,
        ["order loaded"]
    );
    assert!(
        lines(r#"{service_name!="orders", deployment_environment_name="dev"}"#)
            .await
            .is_empty()
    );
    let forward = format!(
        "{}&direction=forward",
        loki_query(&loki, r#"{service_name="orders"}"#)
    );
    let (_, body) = get_json(&forward).await;
    assert_eq!(body["data"]["result"][0]["values"][0][1], "order loaded");

    let (_, labels) = get_json(&format!("{}/loki/api/v1/labels", loki.url())).await;
    assert_eq!(
        labels,
        json!({ "status": "success", "data": ["deployment_environment_name", "service_name"] })
    );
    let (_, values) = get_json(&format!(
        "{}/loki/api/v1/label/service_name/values",
        loki.url()
    ))
    .await;
    assert_eq!(values["data"], json!(["orders"]));
}

#[tokio::test]
async fn loki_refuses_bad_logql_and_instant_log_queries_as_recorded() {
    let loki = loki_on_sample_day();
    let (status, body) = get(&loki_query(&loki, r#"{service_name="orders""#)).await;
    assert_eq!((status, body), recorded("loki_query_range_bad_query.txt"));
    let url = format!(
        "{}/loki/api/v1/query?query={}",
        loki.url(),
        percent_encode(r#"{service_name="orders"}"#)
    );
    assert_eq!(get(&url).await, recorded("loki_instant_log_query.txt"));
    let (status, body) = get(&loki_query(&loki, r#"{service_name=~".*"}"#)).await;
    assert_eq!(status, 400);
    assert!(
        body.contains("at least one regexp or equality matcher"),
        "{body}"
    );
    let (status, _) = get(&loki_query(&loki, r#"{service_name="orders"} | json"#)).await;
    assert_eq!(status, 400, "outside the modelled subset");
}

#[tokio::test]
async fn loki_takes_pushes_without_service_name_and_refuses_malformed_ones() {
    let loki = loki_on_sample_day();
    let json = sample("request_otlp_logs.json").replace(r#""service.name""#, r#""not.service""#);
    let answer = push_logs(&loki, "application/json", json.into_bytes()).await;
    assert_eq!(answer, recorded("loki_otlp_push_no_service_name.txt"));
    let (_, body) = get_json(&loki_query(&loki, r#"{service_name="unknown_service"}"#)).await;
    assert_eq!(body["data"]["result"][0]["stream"]["not_service"], "orders");

    let (status, _) = push_logs(&loki, "application/json", b"{not json".to_vec()).await;
    assert_eq!(status, recorded("loki_otlp_push_malformed.txt").0);
    let response = client()
        .post(format!("{}/v1/logs", loki.otlp_endpoint()))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(content_type.starts_with("text/plain"), "{content_type}");
    let old = sample("request_otlp_logs.json").replace("17953542212", "15953542212");
    let (status, body) = push_logs(&loki, "application/json", old.into_bytes()).await;
    assert_eq!(status, 400);
    assert!(body.contains("timestamp too old"), "{body}");
}

#[tokio::test]
async fn loki_is_not_ready_then_ready_and_shows_logs_after_its_lag() {
    let loki = loki_on_sample_day();
    loki.not_ready_for(1);
    let ready = format!("{}/ready", loki.url());
    let (status, body) = get(&ready).await;
    assert_eq!(
        (status, body.as_str()),
        (
            503,
            "Ingester not ready: waiting for 15s after being ready\n"
        )
    );
    assert_eq!(get(&ready).await, recorded("loki_ready.txt"));

    loki.visible_after(Duration::from_millis(300));
    let sent = Instant::now();
    assert_eq!(
        push_logs(
            &loki,
            "application/x-protobuf",
            logs_request().encode_to_vec()
        )
        .await
        .0,
        204
    );
    let url = loki_query(
        &loki,
        &format!(r#"{{service_name="orders"}} | trace_id="{TRACE_ID}""#),
    );
    assert_eq!(get_json(&url).await.1["data"]["result"], json!([]));
    eventually("the logs in Loki", async || {
        let (_, body) = get_json(&url).await;
        (body["data"]["result"].as_array()?.len() == 2).then_some(())
    })
    .await;
    assert!(sent.elapsed() >= Duration::from_millis(300));
    loki.set_down();
    assert!(client().get(&ready).send().await.is_err());
    loki.set_up();
    eventually("Loki back up", async || {
        client().get(&ready).send().await.ok()
    })
    .await;
}

/// Tempo's recorded trace with Jaeger's encoding: hex ids, numeric enums.
fn jaeger_expected(base64_ids: bool) -> Value {
    fn convert(v: &mut Value, base64_ids: bool) {
        match v {
            Value::Object(map) => {
                for (key, value) in map.iter_mut() {
                    match (key.as_str(), value.as_str()) {
                        ("traceId" | "spanId" | "parentSpanId", Some(b64)) if !base64_ids => {
                            let bytes = base64::engine::general_purpose::STANDARD
                                .decode(b64)
                                .unwrap();
                            *value =
                                json!(bytes.iter().map(|b| format!("{b:02x}")).collect::<String>());
                        }
                        ("kind", Some(kind)) => {
                            *value = json!(
                                [
                                    "SPAN_KIND_UNSPECIFIED",
                                    "SPAN_KIND_INTERNAL",
                                    "SPAN_KIND_SERVER",
                                    "SPAN_KIND_CLIENT"
                                ]
                                .iter()
                                .position(|k| *k == kind)
                                .unwrap()
                            );
                        }
                        ("code", Some("STATUS_CODE_ERROR")) => *value = json!(2),
                        _ => convert(value, base64_ids),
                    }
                }
            }
            Value::Array(items) => items.iter_mut().for_each(|i| convert(i, base64_ids)),
            _ => {}
        }
    }
    let mut spans = sample_json("tempo_v2_trace_found.json")["trace"].clone();
    convert(&mut spans, base64_ids);
    json!({ "result": spans })
}

#[tokio::test]
async fn jaeger_answers_v3_with_hex_ids_and_numeric_kinds_and_404_when_missing() {
    let jaeger = JaegerDouble::start().unwrap();
    assert_eq!(export_traces_http(&jaeger.otlp_http_endpoint()).await, 200);
    let url = format!("{}/api/v3/traces/{TRACE_ID}", jaeger.url());
    let body = eventually("the trace in Jaeger", async || {
        let (status, body) = get_json(&url).await;
        (status == 200).then_some(body)
    })
    .await;
    assert_eq!(body, jaeger_expected(false));
    assert_eq!(
        body["result"]["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["traceId"],
        TRACE_ID
    );
    let stripped = get_json(&format!("{}/api/v3/traces/{STRIPPED}", jaeger.url())).await;
    assert_eq!(stripped, (200, body));
    jaeger.set_base64_ids(true);
    assert_eq!(get_json(&url).await.1, jaeger_expected(true));

    let (status, body) = get(&format!(
        "{}/api/v3/traces/{}",
        jaeger.url(),
        "1".repeat(32)
    ))
    .await;
    assert_eq!(status, 404);
    let expected = json!({ "error": { "httpCode": 404, "message": "trace not found" } });
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap(), expected);
    let (status, body) = get_json(&format!("{}/api/v3/traces/xyz", jaeger.url())).await;
    assert_eq!((status, &body["error"]["httpCode"]), (400, &json!(400)));
    let services = get_json(&format!("{}/api/v3/services", jaeger.url())).await;
    assert_eq!(
        services,
        (200, json!({ "services": ["gateway", "orders"] }))
    );
}

#[tokio::test]
async fn jaeger_answers_the_legacy_api_and_its_health_check() {
    let jaeger = JaegerDouble::start().unwrap();
    jaeger.not_ready_for(1);
    let status_url = format!("{}/status", jaeger.health_url());
    let (code, body) = get_json(&status_url).await;
    assert_eq!(
        (code, body["status"].as_str()),
        (503, Some("StatusStarting"))
    );
    let (code, body) = get_json(&status_url).await;
    assert_eq!(
        (code, body["status"].as_str(), body["healthy"].as_bool()),
        (200, Some("StatusOK"), Some(true))
    );

    export_traces_grpc(jaeger.otlp_grpc_endpoint()).await;
    let url = format!("{}/api/traces/{TRACE_ID}", jaeger.url());
    let body = eventually("the legacy trace", async || {
        let (status, body) = get_json(&url).await;
        (status == 200).then_some(body)
    })
    .await;
    let trace = &body["data"][0];
    assert_eq!(
        trace["traceID"], STRIPPED,
        "TraceID.String() drops leading zeros"
    );
    let spans = trace["spans"].as_array().unwrap();
    assert_eq!(spans.len(), 3);
    let orders = spans
        .iter()
        .find(|s| s["spanID"] == "3333333333333333")
        .unwrap();
    let reference =
        json!([{ "refType": "CHILD_OF", "traceID": STRIPPED, "spanID": "2222222222222222" }]);
    assert_eq!(orders["references"], reference);
    assert_eq!(
        (orders["startTime"].as_u64(), orders["duration"].as_u64()),
        (Some(1_795_354_221_249_579), Some(5000))
    );
    let process = &trace["processes"][orders["processID"].as_str().unwrap()];
    assert_eq!(process["serviceName"], "orders");
    assert!(
        orders["tags"]
            .as_array()
            .unwrap()
            .contains(&json!({ "key": "error", "type": "bool", "value": true }))
    );
    let (status, body) = get_json(&format!("{}/api/traces/{}", jaeger.url(), "1".repeat(32))).await;
    assert_eq!((status, &body["errors"][0]["code"]), (404, &json!(404)));

    jaeger.set_down();
    assert!(client().get(&status_url).send().await.is_err());
    assert!(client().get(&url).send().await.is_err());
}

#[tokio::test]
async fn the_collector_feeds_every_store_from_one_otlp_intake() {
    let (tempo, jaeger, loki) = (
        TempoDouble::start().unwrap(),
        JaegerDouble::start().unwrap(),
        loki_on_sample_day(),
    );
    let collector = CollectorDouble::start(Some(&tempo), Some(&jaeger), Some(&loki)).unwrap();
    export_traces_grpc(collector.grpc_endpoint()).await;
    let mut logs = LogsServiceClient::connect(collector.grpc_endpoint())
        .await
        .unwrap();
    logs.export(logs_request()).await.unwrap();

    let tempo_url = format!("{}/api/v2/traces/{STRIPPED}", tempo.url());
    let jaeger_url = format!("{}/api/v3/traces/{TRACE_ID}", jaeger.url());
    let loki_url = loki_query(
        &loki,
        &format!(r#"{{service_name="orders"}} | trace_id="{TRACE_ID}""#),
    );
    eventually("the data in every store", async || {
        let tempo = get_json(&tempo_url).await.1;
        let jaeger = get_json(&jaeger_url).await.1;
        let loki = get_json(&loki_url).await.1;
        let all = tempo["trace"].get("resourceSpans").is_some()
            && jaeger.get("result").is_some()
            && loki["data"]["result"]
                .as_array()
                .is_some_and(|r| r.len() == 2);
        all.then_some(())
    })
    .await;
    assert_eq!(
        get_json(&tempo_url).await.1,
        sample_json("tempo_v2_trace_found.json")
    );
    assert_eq!(get_json(&jaeger_url).await.1, jaeger_expected(false));
    let recorded = sample_json("loki_query_range_by_trace_id.json");
    assert_eq!(
        get_json(&loki_url).await.1["data"]["result"],
        recorded["data"]["result"]
    );
    assert_eq!(
        (
            tempo.spans().len(),
            jaeger.spans().len(),
            loki.records().len()
        ),
        (3, 3, 2)
    );
    assert_eq!(collector.snapshot().spans.len(), 3);
}

/// (status, content type, body) of a GET.
async fn get_typed(url: &str) -> (u16, String, String) {
    let response = client().get(url).send().await.expect("the double answers");
    let status = response.status().as_u16();
    let content_type = response.headers()[reqwest::header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .to_owned();
    (status, content_type, response.text().await.unwrap())
}

#[tokio::test]
async fn tempo_answers_400_in_plain_text_to_searches_it_does_not_understand() {
    // Tempo's `pkg/api/http.go` writes a parameter or TraceQL error with `http.Error`: 400,
    // `text/plain; charset=utf-8`, the message and a newline.
    let tempo = TempoDouble::start().unwrap();
    let base = format!("{}/api/search", tempo.url());
    let q = percent_encode(r#"{ .foo = "bar" }"#);
    let cases = [
        (
            format!("{base}?q={q}&spss=0"),
            "invalid spss: must be a positive number\n".to_owned(),
        ),
        (
            format!("{base}?q={q}&tags=service.name%3Dfoo"),
            "invalid request: can't specify tags and q in the same query\n".to_owned(),
        ),
        (
            format!("{base}?tags=service.name%3Dfoo"),
            "not modelled by the Tempo double (search by tags): use q\n".to_owned(),
        ),
        (
            format!("{base}?q={q}&minDuration=1s"),
            "not modelled by the Tempo double (search by minDuration): use q\n".to_owned(),
        ),
        (
            format!(
                "{base}?q={}",
                percent_encode(r#"{ .a = "b" } | count() > 1"#)
            ),
            format!(
                "invalid TraceQL query: not modelled by the Tempo double (one spanset only): {}\n",
                r#"{ .a = "b" } | count() > 1"#
            ),
        ),
        (
            format!(
                "{base}?q={}",
                percent_encode(r#"{ .a = "b" } >> { .c = "d" }"#)
            ),
            format!(
                "invalid TraceQL query: not modelled by the Tempo double (one spanset only): {}\n",
                r#"{ .a = "b" } >> { .c = "d" }"#
            ),
        ),
        (
            format!("{base}?q={q}&start=20&end=10"),
            "http parameter start must be before end. received start=20 end=10\n".to_owned(),
        ),
        (
            format!("{base}?q={q}&start=yesterday"),
            "invalid start: strconv.ParseInt: parsing \"yesterday\": invalid syntax\n".to_owned(),
        ),
        (
            format!("{}/api/v2/traces/xyz", tempo.url()),
            "trace IDs can only contain hex characters: invalid character 'x' at position 1\n"
                .to_owned(),
        ),
    ];
    for (url, expected) in cases {
        let answer = get_typed(&url).await;
        let plain = "text/plain; charset=utf-8".to_owned();
        assert_eq!(answer, (400, plain, expected), "{url}");
    }
}

#[tokio::test]
async fn loki_answers_400_in_plain_text_to_queries_it_does_not_understand() {
    let loki = loki_on_sample_day();
    let plain = "text/plain; charset=utf-8".to_owned();
    for (query, expected) in [
        (
            r#"{service_name="orders"} | json"#,
            r#"not modelled by the Loki double (pipeline stage `json`): {service_name="orders"} | json"#,
        ),
        (
            r#"rate({service_name="orders"}[5m])"#,
            r#"not modelled by the Loki double (metric queries): rate({service_name="orders"}[5m])"#,
        ),
        (
            r#"{service_name="orders"} ? "x""#,
            "parse error at line 1, col 25: syntax error: unexpected ?",
        ),
        (
            r#"{service_name="orders"} |= "x"#,
            "parse error at line 1, col 28: literal not terminated",
        ),
    ] {
        let answer = get_typed(&loki_query(&loki, query)).await;
        assert_eq!(answer, (400, plain.clone(), expected.to_owned()), "{query}");
    }
    let q = percent_encode(r#"{service_name="orders"}"#);
    let base = format!("{}/loki/api/v1/query_range?query={q}", loki.url());
    let (status, content_type, body) = get_typed(&format!("{base}&start=20&end=10")).await;
    assert_eq!(
        (status, content_type, body.as_str()),
        (
            400,
            plain.clone(),
            "end timestamp must not be before or equal to start time"
        )
    );
    let (status, _, body) = get_typed(&format!("{base}&start=yesterday")).await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("yesterday"), "names the bad value: {body}");
}

#[tokio::test]
async fn jaeger_answers_400_in_its_error_shapes_to_malformed_trace_ids() {
    let jaeger = JaegerDouble::start().unwrap();
    let (status, body) = get_json(&format!("{}/api/v3/traces/xyz", jaeger.url())).await;
    let message =
        "malformed parameter trace_id: strconv.ParseUint: parsing \"xyz\": invalid syntax";
    let expected = json!({ "error": { "httpCode": 400, "message": message } });
    assert_eq!((status, body), (400, expected));
    let long = "1".repeat(33);
    let (status, body) = get_json(&format!("{}/api/traces/{long}", jaeger.url())).await;
    let msg = format!("TraceID cannot be longer than 32 hex characters: {long}");
    assert_eq!(status, 400);
    assert_eq!(body["errors"], json!([{ "code": 400, "msg": msg }]));
    assert_eq!(body["data"], Value::Null);
}
