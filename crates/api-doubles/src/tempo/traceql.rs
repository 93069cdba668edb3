//! The TraceQL subset the Tempo double searches with, and `/api/search`'s answer.
//!
//! Modelled: one spanset `{ … }` (empty matches every span) of comparisons joined by `&&`, `||`
//! and parentheses; fields `resource.<attr>`, `span.<attr>`, `.<attr>` (span, then resource),
//! and the intrinsics `name`, `status`, `kind`, `duration`, `statusMessage`; operators
//! `= != =~ !~ > >= < <=`; values: strings (`"…"` or `` `…` ``), integers, floats, durations
//! (`100ms`), `true`/`false`, status (`error ok unset`) and kind (`server client …`) names.
//! Regular expressions are fully anchored. A comparison with an attribute the span lacks is
//! false, `!=` included. Syntax errors answer as Tempo's parser does (`parse error at line 1,
//! col N: syntax error: unexpected X`, `… literal not terminated`); valid TraceQL outside the
//! subset (pipelines, several spansets, `select`, structural operators) is refused with 400 too,
//! saying it is not modelled.

use std::collections::BTreeMap;

use opentelemetry_proto::tonic::common::v1::AnyValue;
use opentelemetry_proto::tonic::common::v1::any_value::Value as Any;
use otlp_receiver::{ReceivedSpan, hex};
use regex::Regex;
use serde_json::{Map, Value, json};

use crate::lexer::{self, Syntax, Token, parse_error};
use crate::otlp_json::{any_value, find};

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    Open,
    Close,
    OpenParen,
    CloseParen,
    Op(&'static str),
    And,
    Or,
    Pipe,
    Ident(String),
    Str(String),
    Num(f64),
    Dur(u64),
}

fn token_name(tok: Option<&Tok>) -> &'static str {
    match tok {
        None => "$end",
        Some(Tok::Open) => "OPEN_BRACE",
        Some(Tok::Close) => "CLOSE_BRACE",
        Some(Tok::OpenParen) => "OPEN_PARENS",
        Some(Tok::CloseParen) => "CLOSE_PARENS",
        Some(Tok::Op(op)) => match *op {
            "=" => "EQ",
            "!=" => "NEQ",
            "=~" => "RE",
            "!~" => "NRE",
            ">" => "GT",
            ">=" => "GTE",
            "<" => "LT",
            _ => "LTE",
        },
        Some(Tok::And) => "AND",
        Some(Tok::Or) => "OR",
        Some(Tok::Pipe) => "PIPE",
        Some(Tok::Ident(_)) => "IDENTIFIER",
        Some(Tok::Str(_)) => "STRING",
        Some(Tok::Num(n)) if n.fract() == 0.0 => "INTEGER",
        Some(Tok::Num(_)) => "FLOAT",
        Some(Tok::Dur(_)) => "DURATION",
    }
}

fn err_at(col: usize, what: &str) -> String {
    format!("invalid TraceQL query: {}", parse_error(col, what))
}

const SYNTAX: Syntax = Syntax {
    symbols: &[
        "&&", "||", "!=", "=~", "!~", ">=", "<=", "=", ">", "<", "{", "}", "(", ")", "|",
    ],
    word_start: |c| !stops_word(c),
    word_continue: |c| !stops_word(c),
};

fn stops_word(c: char) -> bool {
    c.is_whitespace() || "{}()=!<>&|~\"`,".contains(c)
}

/// Tokenizes `q` with the shared lexer, as TraceQL's lexer classifies tokens.
fn lex(q: &str) -> Result<Vec<(usize, Tok)>, String> {
    let tokens =
        lexer::lex(q, &SYNTAX).map_err(|e| format!("invalid TraceQL query: {}", e.message()))?;
    tokens
        .into_iter()
        .map(|(col, token)| {
            let tok = match token {
                Token::Symbol("{") => Tok::Open,
                Token::Symbol("}") => Tok::Close,
                Token::Symbol("(") => Tok::OpenParen,
                Token::Symbol(")") => Tok::CloseParen,
                Token::Symbol("&&") => Tok::And,
                Token::Symbol("||") => Tok::Or,
                Token::Symbol("|") => Tok::Pipe,
                Token::Symbol(op) => Tok::Op(op),
                Token::Str(text) => Tok::Str(text),
                Token::Word(word) => {
                    word_token(&word).ok_or_else(|| err_at(col, "syntax error: unexpected $unk"))?
                }
            };
            Ok((col, tok))
        })
        .collect()
}

fn word_token(word: &str) -> Option<Tok> {
    if word.starts_with(|c: char| c.is_ascii_digit() || c == '-') {
        if let Ok(n) = word.parse::<f64>() {
            return Some(Tok::Num(n));
        }
        let split = word.find(|c: char| c.is_alphabetic() || c == 'µ')?;
        let (n, unit) = word.split_at(split);
        let n: f64 = n.parse().ok()?;
        let factor = match unit {
            "ns" => 1.0,
            "us" | "µs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        return Some(Tok::Dur((n * factor) as u64));
    }
    Some(Tok::Ident(word.to_owned()))
}

/// Where a compared value comes from.
#[derive(Clone, Debug, PartialEq)]
enum Field {
    Span(String),
    Resource(String),
    Any(String),
    Name,
    Status,
    Kind,
    Duration,
    StatusMessage,
}

#[derive(Clone, Debug, PartialEq)]
enum Lit {
    Str(String),
    Num(f64),
    Dur(u64),
    Bool(bool),
    Status(i32),
    Kind(i32),
}

#[derive(Debug)]
enum Expr {
    Cmp(Field, &'static str, Lit, Option<Regex>),
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    All,
}

/// A parsed query.
#[derive(Debug)]
pub(crate) struct Query(Expr);

struct Parser {
    toks: Vec<(usize, Tok)>,
    pos: usize,
    end_col: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos).map(|(_, t)| t)
    }
    fn unexpected(&self) -> String {
        let col = self.toks.get(self.pos).map_or(self.end_col, |(c, _)| *c);
        err_at(
            col,
            &format!("syntax error: unexpected {}", token_name(self.peek())),
        )
    }
    fn eat(&mut self, tok: &Tok) -> Result<(), String> {
        if self.peek() == Some(tok) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.unexpected())
        }
    }
    fn or(&mut self) -> Result<Expr, String> {
        let mut left = self.and()?;
        while self.peek() == Some(&Tok::Or) {
            self.pos += 1;
            left = Expr::Or(Box::new(left), Box::new(self.and()?));
        }
        Ok(left)
    }
    fn and(&mut self) -> Result<Expr, String> {
        let mut left = self.primary()?;
        while self.peek() == Some(&Tok::And) {
            self.pos += 1;
            left = Expr::And(Box::new(left), Box::new(self.primary()?));
        }
        Ok(left)
    }
    fn primary(&mut self) -> Result<Expr, String> {
        if self.peek() == Some(&Tok::OpenParen) {
            self.pos += 1;
            let inner = self.or()?;
            self.eat(&Tok::CloseParen)?;
            return Ok(inner);
        }
        let field = match self.peek() {
            Some(Tok::Ident(word)) => field(word).ok_or_else(|| self.unexpected())?,
            _ => return Err(self.unexpected()),
        };
        self.pos += 1;
        let Some(Tok::Op(op)) = self.peek().cloned() else {
            return Err(self.unexpected());
        };
        self.pos += 1;
        let lit = match self.peek() {
            Some(Tok::Str(s)) => Lit::Str(s.clone()),
            Some(Tok::Num(n)) => Lit::Num(*n),
            Some(Tok::Dur(d)) => Lit::Dur(*d),
            Some(Tok::Ident(word)) => literal(word).ok_or_else(|| self.unexpected())?,
            _ => return Err(self.unexpected()),
        };
        self.pos += 1;
        let regex = match (&lit, op) {
            (Lit::Str(pattern), "=~" | "!~") => Some(
                Regex::new(&format!("^(?:{pattern})$"))
                    .map_err(|e| format!("invalid TraceQL query: error parsing regexp: {e}"))?,
            ),
            _ => None,
        };
        Ok(Expr::Cmp(field, op, lit, regex))
    }
}

fn field(word: &str) -> Option<Field> {
    let attr = |rest: &str| (!rest.is_empty()).then(|| rest.to_owned());
    if let Some(rest) = word.strip_prefix("resource.") {
        return attr(rest).map(Field::Resource);
    }
    if let Some(rest) = word.strip_prefix("span.") {
        return attr(rest).map(Field::Span);
    }
    if let Some(rest) = word.strip_prefix('.') {
        return attr(rest).map(Field::Any);
    }
    Some(match word.trim_start_matches("span:") {
        "name" => Field::Name,
        "status" => Field::Status,
        "kind" => Field::Kind,
        "duration" => Field::Duration,
        "statusMessage" => Field::StatusMessage,
        _ => return None,
    })
}

fn literal(word: &str) -> Option<Lit> {
    let kinds = [
        "unspecified",
        "internal",
        "server",
        "client",
        "producer",
        "consumer",
    ];
    Some(match word {
        "true" => Lit::Bool(true),
        "false" => Lit::Bool(false),
        "unset" => Lit::Status(0),
        "ok" => Lit::Status(1),
        "error" => Lit::Status(2),
        _ => Lit::Kind(i32::try_from(kinds.iter().position(|k| *k == word)?).ok()?),
    })
}

/// Parses `q` (empty: `{}`), or answers Tempo's 400 message.
pub(crate) fn parse(q: &str) -> Result<Query, String> {
    let toks = lex(q)?;
    let end_col = q.chars().count() + 1;
    if toks.is_empty() {
        return Ok(Query(Expr::All));
    }
    let mut p = Parser {
        toks,
        pos: 0,
        end_col,
    };
    p.eat(&Tok::Open)?;
    let expr = if p.peek() == Some(&Tok::Close) {
        Expr::All
    } else {
        p.or()?
    };
    p.eat(&Tok::Close)?;
    match p.peek() {
        None => Ok(Query(expr)),
        Some(Tok::Pipe | Tok::And | Tok::Or | Tok::Op(_)) => Err(format!(
            "invalid TraceQL query: not modelled by the Tempo double (one spanset only): {q}"
        )),
        Some(_) => Err(p.unexpected()),
    }
}

fn lookup<'a>(span: &'a ReceivedSpan, f: &Field) -> Option<(String, &'a AnyValue)> {
    let (span_attrs, resource_attrs) = (&span.span.attributes, &span.resource.attributes);
    match f {
        Field::Span(k) => find(span_attrs, k).map(|v| (k.clone(), v)),
        Field::Resource(k) => find(resource_attrs, k).map(|v| (k.clone(), v)),
        Field::Any(k) => find(span_attrs, k)
            .or_else(|| find(resource_attrs, k))
            .map(|v| (k.clone(), v)),
        _ => None,
    }
}

fn compare(op: &str, ord: Option<std::cmp::Ordering>) -> bool {
    use std::cmp::Ordering::{Equal, Greater, Less};
    matches!(
        (op, ord),
        ("=", Some(Equal))
            | ("!=", Some(Less | Greater))
            | (">", Some(Greater))
            | (">=", Some(Greater | Equal))
            | ("<", Some(Less))
            | ("<=", Some(Less | Equal))
    )
}

fn matches_cmp(span: &ReceivedSpan, f: &Field, op: &str, lit: &Lit, re: Option<&Regex>) -> bool {
    let s = &span.span;
    let status = s.status.as_ref().map_or(0, |st| st.code);
    let message = s
        .status
        .as_ref()
        .map(|st| st.message.as_str())
        .unwrap_or_default();
    let text = |value: &str| match (re, lit) {
        (Some(re), _) => re.is_match(value) == (op == "=~"),
        (None, Lit::Str(l)) => compare(op, Some(value.cmp(l.as_str()))),
        _ => false,
    };
    match (f, lit) {
        (Field::Name, _) => text(&s.name),
        (Field::StatusMessage, _) => text(message),
        (Field::Status, Lit::Status(l)) => compare(op, Some(status.cmp(l))),
        (Field::Kind, Lit::Kind(l)) => compare(op, Some(s.kind.cmp(l))),
        (Field::Duration, Lit::Dur(l)) => {
            let d = s.end_time_unix_nano.saturating_sub(s.start_time_unix_nano);
            compare(op, Some(d.cmp(l)))
        }
        _ => match (lookup(span, f).and_then(|(_, v)| v.value.as_ref()), lit) {
            (Some(Any::StringValue(v)), Lit::Str(_)) => text(v),
            (Some(Any::IntValue(v)), Lit::Num(l)) => compare(op, (*v as f64).partial_cmp(l)),
            (Some(Any::DoubleValue(v)), Lit::Num(l)) => compare(op, v.partial_cmp(l)),
            (Some(Any::BoolValue(v)), Lit::Bool(l)) => compare(op, Some(v.cmp(l))),
            _ => false,
        },
    }
}

impl Query {
    pub(crate) fn matches(&self, span: &ReceivedSpan) -> bool {
        fn eval(e: &Expr, span: &ReceivedSpan) -> bool {
            match e {
                Expr::All => true,
                Expr::And(a, b) => eval(a, span) && eval(b, span),
                Expr::Or(a, b) => eval(a, span) || eval(b, span),
                Expr::Cmp(f, op, lit, re) => matches_cmp(span, f, op, lit, re.as_ref()),
            }
        }
        eval(&self.0, span)
    }

    /// A matched span as a spanset lists it: the fields the query compared, as Tempo shows them.
    fn span_json(&self, span: &ReceivedSpan) -> Value {
        let s = &span.span;
        let mut out = Map::new();
        out.insert("spanID".into(), json!(hex(&s.span_id)));
        let mut attributes = Vec::new();
        let mut fields = Vec::new();
        collect_fields(&self.0, &mut fields);
        for f in fields {
            let status_name = ["unset", "ok", "error"];
            let kinds = [
                "unspecified",
                "internal",
                "server",
                "client",
                "producer",
                "consumer",
            ];
            let named = |key: &str, list: &[&str], i: i32| {
                let name = usize::try_from(i).ok().and_then(|i| list.get(i).copied());
                json!({ "key": key, "value": { "stringValue": name.unwrap_or("unknown") } })
            };
            match f {
                Field::Name => {
                    out.insert("name".into(), json!(s.name));
                }
                Field::Status => {
                    let code = s.status.as_ref().map_or(0, |st| st.code);
                    attributes.push(named("status", &status_name, code));
                }
                Field::Kind => attributes.push(named("kind", &kinds, s.kind)),
                Field::Duration | Field::StatusMessage => {}
                other => {
                    if let Some((key, value)) = lookup(span, &other) {
                        attributes.push(json!({ "key": key, "value": any_value(value) }));
                    }
                }
            }
        }
        attributes.dedup();
        out.insert(
            "startTimeUnixNano".into(),
            json!(s.start_time_unix_nano.to_string()),
        );
        let duration = s.end_time_unix_nano.saturating_sub(s.start_time_unix_nano);
        out.insert("durationNanos".into(), json!(duration.to_string()));
        if !attributes.is_empty() {
            out.insert("attributes".into(), json!(attributes));
        }
        Value::Object(out)
    }
}

fn collect_fields(e: &Expr, out: &mut Vec<Field>) {
    match e {
        Expr::All => {}
        Expr::And(a, b) | Expr::Or(a, b) => {
            collect_fields(a, out);
            collect_fields(b, out);
        }
        Expr::Cmp(f, ..) => {
            if !out.contains(f) {
                out.push(f.clone());
            }
        }
    }
}

/// One trace of a search answer (`tempo_search_traceql.json`), or `None` when no span matched.
/// `spans` are the trace's searchable spans; at most `spss` matched spans are listed.
pub(crate) fn trace_result(query: &Query, spans: &[&ReceivedSpan], spss: usize) -> Option<Value> {
    let matched: Vec<&&ReceivedSpan> = spans.iter().filter(|s| query.matches(s)).collect();
    let first = matched.first()?;
    let start = spans
        .iter()
        .map(|s| s.span.start_time_unix_nano)
        .min()
        .unwrap_or_default();
    let end = spans
        .iter()
        .map(|s| s.span.end_time_unix_nano)
        .max()
        .unwrap_or_default();
    let mut out = Map::new();
    // Tempo writes trace ids without their leading zeros (util.TraceIDToHexString).
    let id = hex(&first.span.trace_id).trim_start_matches('0').to_owned();
    out.insert("traceID".into(), json!(id));
    match spans.iter().find(|s| s.span.parent_span_id.is_empty()) {
        Some(root) => {
            let service = root.service_name().unwrap_or_default();
            out.insert("rootServiceName".into(), json!(service));
            out.insert("rootTraceName".into(), json!(root.span.name));
        }
        None => {
            out.insert(
                "rootServiceName".into(),
                json!("<root span not yet received>"),
            );
        }
    }
    out.insert("startTimeUnixNano".into(), json!(start.to_string()));
    let duration_ms = end.saturating_sub(start) / 1_000_000;
    if duration_ms > 0 {
        out.insert("durationMs".into(), json!(duration_ms));
    }
    let listed: Vec<Value> = matched
        .iter()
        .take(spss)
        .map(|s| query.span_json(s))
        .collect();
    let spanset = json!({ "spans": listed, "matched": matched.len() });
    out.insert("spanSet".into(), spanset.clone());
    out.insert("spanSets".into(), json!([spanset]));
    let mut stats: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for s in spans {
        let entry = stats
            .entry(s.service_name().unwrap_or_default())
            .or_default();
        entry.0 += 1;
        entry.1 += u64::from(s.span.status.as_ref().is_some_and(|st| st.code == 2));
    }
    let stats: Map<String, Value> = stats
        .into_iter()
        .map(|(service, (spans, errors))| {
            let mut stat = json!({ "spanCount": spans });
            if errors > 0 {
                stat["errorCount"] = json!(errors);
            }
            (service, stat)
        })
        .collect();
    out.insert("serviceStats".into(), Value::Object(stats));
    Some(Value::Object(out))
}
