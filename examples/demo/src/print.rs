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
        SelfParent,
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
                Some(&p) if p == n => Parent::SelfParent,
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
            Parent::SelfParent => "  (its own parent)".to_string(),
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
