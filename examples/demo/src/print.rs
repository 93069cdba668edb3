//! How the demo prints what the receiver got: a trace as an indented tree, log records as lines.
//!
//! Everything here reads data any program on the machine can send to the receiver, so it is
//! written for hostile input: no recursion (the tree is walked with an explicit stack and a
//! visited set, so a 20,000-deep parent chain costs no stack), time linear in the spans (the
//! child index is built once), every span printed exactly once (in the tree, or listed as a
//! duplicate id, or under the cycle it belongs to), and control characters in anything a sender
//! chose (service and span names, severities, log bodies) escaped, so a name cannot move the
//! cursor, clear the screen or forge a line of the report.

use std::collections::HashMap;
use std::fmt::Write as _;

use otlp_receiver::opentelemetry_proto::tonic::common::v1::AnyValue;
use otlp_receiver::opentelemetry_proto::tonic::common::v1::any_value::Value;
use otlp_receiver::{ReceivedLogRecord, ReceivedSpan, hex};

/// Indentation stops growing at this depth; deeper spans say their depth instead.
pub const MAX_INDENT: usize = 24;
/// A log body is cut after this many characters (before escaping).
pub const MAX_BODY_CHARS: usize = 300;

/// `text` with control characters (C0, DEL, C1) and bidirectional-override and zero-width
/// characters written as escapes (`\n`, `\t`, `\u{1b}`, `\u{202e}`), everything else as is.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if is_hostile(c) => {
                let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out
}

/// Characters a terminal acts on or that reorder or hide text.
pub fn is_hostile(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
        || c == '\u{feff}'
}

/// A log body (any `AnyValue`, however deeply nested) as at most [`MAX_BODY_CHARS`]
/// characters, escaped. Iterative: nesting depth costs heap, not stack.
pub fn body_text(value: Option<&AnyValue>) -> String {
    enum Step<'a> {
        Value(&'a AnyValue),
        Text(&'static str),
        Key(&'a str),
    }
    let mut out = String::new();
    let mut stack: Vec<Step<'_>> = value.map(Step::Value).into_iter().collect();
    let mut truncated = false;
    while let Some(step) = stack.pop() {
        if out.chars().count() >= MAX_BODY_CHARS {
            truncated = true;
            break;
        }
        match step {
            Step::Text(t) => out.push_str(t),
            Step::Key(k) => {
                out.push_str(k);
                out.push_str(": ");
            }
            Step::Value(v) => match &v.value {
                None => {}
                Some(Value::StringValue(s)) => out.push_str(s),
                Some(Value::BoolValue(b)) => out.push_str(&b.to_string()),
                Some(Value::IntValue(i)) => out.push_str(&i.to_string()),
                Some(Value::DoubleValue(d)) => out.push_str(&d.to_string()),
                Some(Value::BytesValue(b)) => out.push_str(&hex(b)),
                Some(Value::StringValueStrindex(i)) => {
                    let _ = write!(out, "strindex:{i}");
                }
                Some(Value::ArrayValue(a)) => {
                    out.push('[');
                    stack.push(Step::Text("]"));
                    for (i, item) in a.values.iter().enumerate().rev() {
                        stack.push(Step::Value(item));
                        if i > 0 {
                            stack.push(Step::Text(", "));
                        }
                    }
                }
                Some(Value::KvlistValue(kvs)) => {
                    out.push('{');
                    stack.push(Step::Text("}"));
                    for (i, kv) in kvs.values.iter().enumerate().rev() {
                        if let Some(v) = &kv.value {
                            stack.push(Step::Value(v));
                        }
                        stack.push(Step::Key(&kv.key));
                        if i > 0 {
                            stack.push(Step::Text(", "));
                        }
                    }
                }
            },
        }
    }
    let mut text: String = out.chars().take(MAX_BODY_CHARS).collect();
    if truncated || out.chars().count() > MAX_BODY_CHARS {
        text.push('…');
    }
    escape(&text)
}

/// One span's line (without indentation): service, name, duration, status.
fn span_line(span: &ReceivedSpan) -> String {
    let ms = span
        .span
        .end_time_unix_nano
        .saturating_sub(span.span.start_time_unix_nano) as f64
        / 1e6;
    let status = match span.span.status.as_ref().map(|s| s.code) {
        Some(2) => "ERROR",
        Some(1) => "OK",
        _ => "unset",
    };
    format!(
        "{:<10} {:<28} {:>8.2} ms  {status}",
        escape(&span.service_name().unwrap_or_default()),
        escape(span.name()),
        ms
    )
}

fn indent(out: &mut String, depth: usize) {
    out.push_str("  ");
    for _ in 0..depth.min(MAX_INDENT) {
        out.push_str("  ");
    }
    if depth > MAX_INDENT {
        let _ = write!(out, "[depth {depth}] ");
    }
}

/// The spans of one trace as an indented tree, children under their parent in start order.
///
/// Every span is printed exactly once: in the tree; or, when its parent pointers go round in a
/// circle, in a tree rooted where the cycle is found (marked `(parent cycle)`); or, when it
/// repeats the span id of an earlier span, in a list of duplicates at the end. A span whose
/// parent was not received is a root marked `(parent … not received)`; a span that is its own
/// parent is a root marked `(its own parent)`.
pub fn render_tree(spans: &[&ReceivedSpan]) -> String {
    // Nodes are the first span of each id; later spans with the same id are duplicates.
    let mut index: HashMap<&[u8], usize> = HashMap::with_capacity(spans.len());
    let mut nodes: Vec<usize> = Vec::with_capacity(spans.len());
    let mut duplicates: Vec<usize> = Vec::new();
    for (i, span) in spans.iter().enumerate() {
        if index.contains_key(span.span.span_id.as_slice()) {
            duplicates.push(i);
        } else {
            index.insert(span.span.span_id.as_slice(), nodes.len());
            nodes.push(i);
        }
    }
    enum Parent {
        Root,
        Missing,
        OwnId,
        Node(usize),
    }
    let parents: Vec<Parent> = nodes
        .iter()
        .enumerate()
        .map(|(n, &i)| {
            let parent = spans[i].span.parent_span_id.as_slice();
            if parent.is_empty() {
                return Parent::Root;
            }
            match index.get(parent) {
                None => Parent::Missing,
                Some(&p) if p == n => Parent::OwnId,
                Some(&p) => Parent::Node(p),
            }
        })
        .collect();
    let start = |n: usize| spans[nodes[n]].span.start_time_unix_nano;
    let mut children: Vec<Vec<usize>> = vec![Vec::new(); nodes.len()];
    for (n, parent) in parents.iter().enumerate() {
        if let Parent::Node(p) = parent {
            children[*p].push(n);
        }
    }
    for list in &mut children {
        list.sort_by_key(|&n| start(n));
    }
    let mut visited = vec![false; nodes.len()];
    let mut out = String::new();
    let walk = |root: usize, note: &str, out: &mut String, visited: &mut Vec<bool>| {
        let mut stack = vec![(root, 0_usize)];
        while let Some((n, depth)) = stack.pop() {
            if std::mem::replace(&mut visited[n], true) {
                continue;
            }
            indent(out, depth);
            out.push_str(&span_line(spans[nodes[n]]));
            if n == root {
                out.push_str(note);
            }
            out.push('\n');
            // Reversed, so the earliest child is printed first.
            stack.extend(children[n].iter().rev().map(|&c| (c, depth + 1)));
        }
    };
    let mut roots: Vec<usize> = (0..nodes.len())
        .filter(|&n| !matches!(parents[n], Parent::Node(_)))
        .collect();
    roots.sort_by_key(|&n| start(n));
    for root in roots {
        let note = match &parents[root] {
            Parent::Missing => format!(
                "  (parent {} not received)",
                hex(&spans[nodes[root]].span.parent_span_id)
            ),
            Parent::OwnId => "  (its own parent)".to_string(),
            _ => String::new(),
        };
        walk(root, &note, &mut out, &mut visited);
    }
    // What is left hangs off a cycle. Walk up from it, stamping nodes, until a node of this
    // walk comes round again: that node is on the cycle; print the cycle's tree from it. Every
    // node is stamped at most once, so this stays linear.
    let mut stamp = vec![usize::MAX; nodes.len()];
    for first in 0..nodes.len() {
        if visited[first] {
            continue;
        }
        let mut n = first;
        while stamp[n] != first {
            stamp[n] = first;
            match parents[n] {
                Parent::Node(p) if !visited[p] => n = p,
                _ => break,
            }
        }
        walk(n, "  (parent cycle)", &mut out, &mut visited);
    }
    if !duplicates.is_empty() {
        let _ = writeln!(out, "  Duplicate span ids (not placed in the tree):");
        for i in duplicates {
            let _ = writeln!(
                out,
                "    {}  span_id={}",
                span_line(spans[i]),
                hex(&spans[i].span.span_id)
            );
        }
    }
    out
}

/// The spans of `trace_id` in `spans`, as [`render_tree`] prints them.
pub fn render_trace(spans: &[ReceivedSpan], trace_id: &[u8]) -> String {
    let of_trace: Vec<&ReceivedSpan> = spans
        .iter()
        .filter(|s| s.span.trace_id == trace_id)
        .collect();
    render_tree(&of_trace)
}

/// A log record as one line: service, severity, body, trace and span ids.
pub fn log_line(record: &ReceivedLogRecord) -> String {
    let severity = match record.record.severity_text.as_str() {
        "" => severity_name(record.record.severity_number).to_string(),
        text => escape(text),
    };
    let id = |bytes: &[u8]| {
        if bytes.is_empty() {
            "-".to_string()
        } else {
            hex(bytes)
        }
    };
    format!(
        "  {:<8} {:<5} {}  trace_id={} span_id={}",
        escape(&record.service_name().unwrap_or_default()),
        severity,
        body_text(record.record.body.as_ref()),
        id(&record.record.trace_id),
        id(&record.record.span_id),
    )
}

/// The OpenTelemetry short name of a severity number (1-24), `UNSET` otherwise.
fn severity_name(number: i32) -> &'static str {
    match number {
        1..=4 => "TRACE",
        5..=8 => "DEBUG",
        9..=12 => "INFO",
        13..=16 => "WARN",
        17..=20 => "ERROR",
        21..=24 => "FATAL",
        _ => "UNSET",
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::collections::HashMap;
    use std::time::Instant;

    use otlp_receiver::opentelemetry_proto::tonic::common::v1::{
        AnyValue, ArrayValue, KeyValue, KeyValueList, any_value::Value,
    };
    use otlp_receiver::opentelemetry_proto::tonic::logs::v1::LogRecord;
    use otlp_receiver::opentelemetry_proto::tonic::resource::v1::Resource;
    use otlp_receiver::opentelemetry_proto::tonic::trace::v1::Span;
    use otlp_receiver::{ReceivedLogRecord, ReceivedSpan, Transport};
    use proptest::prelude::*;

    use super::*;

    fn string(s: &str) -> AnyValue {
        AnyValue {
            value: Some(Value::StringValue(s.into())),
        }
    }

    fn kv(key: &str, value: AnyValue) -> KeyValue {
        KeyValue {
            key: key.into(),
            value: Some(value),
            ..KeyValue::default()
        }
    }

    fn resource(service: &str) -> Resource {
        Resource {
            attributes: vec![kv("service.name", string(service))],
            ..Resource::default()
        }
    }

    /// A span with id `id` (8 bytes), parent `parent` (`None`: a root), started at `start`.
    fn span(id: u64, parent: Option<u64>, name: &str, service: &str, start: u64) -> ReceivedSpan {
        ReceivedSpan {
            resource: resource(service).into(),
            scope: Default::default(),
            scope_schema_url: Default::default(),
            span: Span {
                trace_id: vec![7; 16],
                span_id: id.to_be_bytes().to_vec(),
                parent_span_id: parent.map(|p| p.to_be_bytes().to_vec()).unwrap_or_default(),
                name: name.into(),
                start_time_unix_nano: start,
                end_time_unix_nano: start + 1_500_000,
                ..Span::default()
            },
            transport: Transport::Http,
        }
    }

    fn render(spans: &[ReceivedSpan]) -> String {
        render_tree(&spans.iter().collect::<Vec<_>>())
    }

    /// The line holding the span named `name` (names in these tests are unique words).
    fn line_of<'a>(out: &'a str, name: &str) -> &'a str {
        let lines: Vec<&str> = out
            .lines()
            .filter(|l| l.split_whitespace().nth(1) == Some(name))
            .collect();
        assert_eq!(lines.len(), 1, "{name} once in:\n{out}");
        lines[0]
    }

    fn depth(line: &str) -> usize {
        (line.len() - line.trim_start().len()) / 2 - 1
    }

    fn assert_no_raw_controls(out: &str) {
        for line in out.lines() {
            assert!(!line.chars().any(is_hostile), "raw control in {line:?}");
        }
    }

    #[test]
    fn children_print_under_their_parent_in_start_order() {
        let out = render(&[
            span(3, Some(1), "second", "orders", 30),
            span(1, None, "root", "gateway", 10),
            span(2, Some(1), "first", "orders", 20),
            span(4, Some(2), "grandchild", "worker", 25),
        ]);
        let names: Vec<&str> = out
            .lines()
            .filter_map(|l| l.split_whitespace().nth(1))
            .collect();
        assert_eq!(names, ["root", "first", "grandchild", "second"], "{out}");
        assert_eq!(depth(line_of(&out, "root")), 0);
        assert_eq!(depth(line_of(&out, "first")), 1);
        assert_eq!(depth(line_of(&out, "grandchild")), 2);
        assert!(line_of(&out, "root").contains("1.50 ms  unset"), "{out}");
    }

    #[test]
    fn self_parents_cycles_missing_parents_and_duplicates_are_each_printed_once_and_named() {
        let out = render(&[
            span(1, Some(1), "selfish", "a", 1),
            // A three-span cycle with a tail hanging off it.
            span(10, Some(12), "c10", "b", 2),
            span(11, Some(10), "c11", "b", 3),
            span(12, Some(11), "c12", "b", 4),
            span(13, Some(11), "tail", "b", 5),
            span(20, Some(99), "orphan", "c", 6),
            span(30, None, "root", "d", 7),
            span(30, None, "twin", "d", 8),
        ]);
        assert!(
            line_of(&out, "selfish").ends_with("(its own parent)"),
            "{out}"
        );
        assert!(
            line_of(&out, "orphan").ends_with("(parent 0000000000000063 not received)"),
            "{out}"
        );
        let cycle_roots = out.matches("(parent cycle)").count();
        assert_eq!(cycle_roots, 1, "one cycle, entered once:\n{out}");
        for name in ["c10", "c11", "c12", "tail", "root"] {
            line_of(&out, name);
        }
        assert!(out.contains("Duplicate span ids"), "{out}");
        assert!(
            line_of(&out, "twin").contains("span_id=000000000000001e"),
            "{out}"
        );
        assert_eq!(
            out.lines().count(),
            9,
            "eight spans and the duplicates heading:\n{out}"
        );
    }

    #[test]
    fn control_characters_in_names_and_bodies_are_escaped() {
        let out = render(&[span(1, None, "x\u{1b}[2J\r\nFAKE\u{202e}", "svc\u{7}", 1)]);
        assert_no_raw_controls(&out);
        assert_eq!(out.lines().count(), 1, "{out}");
        assert!(out.contains("x\\u{1b}[2J\\r\\nFAKE\\u{202e}"), "{out}");
        assert!(out.contains("svc\\u{7}"), "{out}");

        let record = ReceivedLogRecord {
            resource: resource("w\u{0}rker").into(),
            scope: Default::default(),
            scope_schema_url: Default::default(),
            record: LogRecord {
                severity_text: "WARN\u{1b}".into(),
                body: Some(string("line one\nPASS trace forged\u{9b}")),
                trace_id: vec![0xab; 16],
                span_id: vec![0xcd; 8],
                ..LogRecord::default()
            },
            transport: Transport::Grpc,
        };
        let line = log_line(&record);
        assert_no_raw_controls(&line);
        assert!(!line.contains('\n'));
        assert_eq!(
            line,
            format!(
                "  w\\u{{0}}rker WARN\\u{{1b}} line one\\nPASS trace forged\\u{{9b}}  trace_id={} span_id={}",
                "ab".repeat(16),
                "cd".repeat(8)
            )
        );
    }

    #[test]
    fn a_log_record_without_severity_text_or_ids_names_its_severity_number() {
        let record = ReceivedLogRecord {
            resource: resource("quickstart").into(),
            scope: Default::default(),
            scope_schema_url: Default::default(),
            record: LogRecord {
                severity_number: 17,
                body: Some(string("boom")),
                ..LogRecord::default()
            },
            transport: Transport::Http,
        };
        assert_eq!(
            log_line(&record),
            "  quickstart ERROR boom  trace_id=- span_id=-"
        );
    }

    #[test]
    fn a_body_nested_ten_thousand_deep_is_cut_not_recursed() {
        let mut value = string("leaf");
        for i in 0..10_000 {
            value = if i % 2 == 0 {
                AnyValue {
                    value: Some(Value::ArrayValue(ArrayValue {
                        values: vec![value],
                    })),
                }
            } else {
                AnyValue {
                    value: Some(Value::KvlistValue(KeyValueList {
                        values: vec![kv("k", value)],
                    })),
                }
            };
        }
        let text = body_text(Some(&value));
        assert!(text.starts_with("{k: [{k: ["), "{text}");
        assert!(text.ends_with('…'), "{text}");
        assert_eq!(text.chars().count(), MAX_BODY_CHARS + 1);
        // Dropping it would recurse through the proto types' own Drop; that is not the code
        // under test.
        std::mem::forget(value);

        let int = AnyValue {
            value: Some(Value::IntValue(1)),
        };
        let boolean = AnyValue {
            value: Some(Value::BoolValue(true)),
        };
        let array = AnyValue {
            value: Some(Value::ArrayValue(ArrayValue {
                values: vec![int, boolean],
            })),
        };
        let small = AnyValue {
            value: Some(Value::KvlistValue(KeyValueList {
                values: vec![kv("a", string("x")), kv("b", array)],
            })),
        };
        assert_eq!(body_text(Some(&small)), "{a: x, b: [1, true]}");
    }

    #[test]
    fn a_parent_chain_twenty_thousand_deep_prints_every_span_without_overflow() {
        const DEPTH: u64 = 20_000;
        let spans: Vec<ReceivedSpan> = (0..DEPTH)
            .map(|i| {
                span(
                    i + 1,
                    i.checked_sub(0).filter(|&p| p > 0),
                    &format!("s{i}"),
                    "deep",
                    i,
                )
            })
            .collect();
        let started = Instant::now();
        let out = render(&spans);
        let took = started.elapsed();
        eprintln!("20,000-deep chain printed in {took:?}, {} bytes", out.len());
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), DEPTH as usize);
        assert_eq!(lines[0].split_whitespace().nth(1), Some("s0"));
        let last = lines[lines.len() - 1];
        assert!(last.contains("[depth 19999] deep"), "{last}");
        // Indentation is capped, so the output grows linearly with the spans.
        assert!(lines.iter().all(|l| l.len() < 160), "{last}");
        assert!(took.as_secs() < 5, "{took:?}");
    }

    /// Span graphs with random parent pointers: ids from a pool a little smaller than the
    /// span count (so ids repeat), parents anywhere in a larger pool (missing, self, cycles).
    fn graph() -> impl Strategy<Value = Vec<(u16, Option<u16>, String, String)>> {
        (1_usize..3000).prop_flat_map(|n| {
            let pool = (n as u16).saturating_add(n as u16 / 8).max(1);
            let junk = "[a-z \\x00-\\x1f\\x7f\\u{80}-\\u{9f}\\u{202e}\\u{200b}\\n]{0,6}";
            proptest::collection::vec(
                (0..pool, proptest::option::of(0..pool + 4), junk, junk),
                n..=n,
            )
        })
    }

    /// The span numbers in `text`: every `n<digits>#` (names are `n<i>#<junk>` and junk has
    /// neither digits nor `#`).
    fn markers(text: &str) -> Vec<usize> {
        let bytes = text.as_bytes();
        let mut found = Vec::new();
        for (at, &b) in bytes.iter().enumerate() {
            if b != b'n' {
                continue;
            }
            let digits = bytes[at + 1..]
                .iter()
                .take_while(|c| c.is_ascii_digit())
                .count();
            if digits > 0 && bytes.get(at + 1 + digits) == Some(&b'#') {
                found.push(text[at + 1..at + 1 + digits].parse().unwrap());
            }
        }
        found
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn any_span_graph_prints_every_span_exactly_once_and_no_raw_control(graph in graph()) {
            let spans: Vec<ReceivedSpan> = graph
                .iter()
                .enumerate()
                .map(|(i, (id, parent, junk, service))| {
                    let parent = parent.map(u64::from);
                    span(u64::from(*id), parent, &format!("n{i}#{junk}"), service, i as u64 % 7)
                })
                .collect();
            let out = render(&spans);
            let mut seen: HashMap<usize, usize> = HashMap::new();
            for i in markers(&out) {
                *seen.entry(i).or_default() += 1;
            }
            for i in 0..spans.len() {
                prop_assert_eq!(seen.get(&i).copied(), Some(1), "span {} in:\n{}", i, out);
            }
            prop_assert_eq!(seen.len(), spans.len());
            for line in out.lines() {
                prop_assert!(!line.chars().any(is_hostile), "raw control in {:?}", line);
            }
        }
    }
}
