//! The LogQL subset the Loki double answers `query_range` with.
//!
//! Modelled: a stream selector `{name="v", name!="v", name=~"re", name!~"re", …}` (at least one
//! matcher that does not match the empty string, as Loki requires), then any number of line
//! filters (`|= "text"`, `!= "text"`, `|~ "re"`, `!~ "re"`) and label filters
//! (`| name="v"`, `!=`, `=~`, `!~`) over index labels and structured metadata (a missing name
//! reads as `""`). Strings are `"…"` (with escapes) or `` `…` ``. Label matchers' regular
//! expressions are fully anchored, line filters' are not, as in Loki. Syntax errors answer as
//! Loki's parser does (`parse error at line 1, col N: syntax error: unexpected X, expecting Y`);
//! valid LogQL outside the subset (parsers such as `| json`, `line_format`, metric queries) is
//! refused with a 400 saying it is not modelled.

use regex::Regex;

use crate::lexer::{self, Syntax, Token, parse_error as at};

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    Open,
    Close,
    Comma,
    Pipe,
    Op(&'static str),
    Ident(String),
    Str(String),
}

fn describe(tok: Option<&Tok>) -> String {
    match tok {
        None => "$end".into(),
        Some(Tok::Open) => "{".into(),
        Some(Tok::Close) => "}".into(),
        Some(Tok::Comma) => ",".into(),
        Some(Tok::Pipe) => "|".into(),
        Some(Tok::Op(op)) => (*op).into(),
        Some(Tok::Ident(_)) => "IDENTIFIER".into(),
        Some(Tok::Str(_)) => "STRING".into(),
    }
}

const SYNTAX: Syntax = Syntax {
    symbols: &["|=", "|~", "!=", "!~", "=~", "==", "{", "}", ",", "|", "="],
    word_start: |c| c.is_alphanumeric() || c == '_',
    word_continue: |c| c.is_alphanumeric() || c == '_' || c == '.',
};

/// Tokenizes `q` with the shared lexer, as LogQL's lexer classifies tokens.
fn lex(q: &str) -> Result<Vec<(usize, Tok)>, String> {
    let tokens = lexer::lex(q, &SYNTAX).map_err(|e| e.message())?;
    let classify = |token| match token {
        Token::Symbol("{") => Tok::Open,
        Token::Symbol("}") => Tok::Close,
        Token::Symbol(",") => Tok::Comma,
        Token::Symbol("|") => Tok::Pipe,
        Token::Symbol(op) => Tok::Op(op),
        Token::Word(word) => Tok::Ident(word),
        Token::Str(text) => Tok::Str(text),
    };
    Ok(tokens
        .into_iter()
        .map(|(col, t)| (col, classify(t)))
        .collect())
}

#[derive(Debug)]
struct Matcher {
    name: String,
    op: &'static str,
    value: String,
    regex: Option<Regex>,
}

impl Matcher {
    fn matches(&self, actual: &str) -> bool {
        match (self.op, &self.regex) {
            ("=" | "==", _) => actual == self.value,
            ("!=", _) => actual != self.value,
            ("=~", Some(re)) => re.is_match(actual),
            ("!~", Some(re)) => !re.is_match(actual),
            _ => false,
        }
    }
}

#[derive(Debug)]
enum Stage {
    Line {
        op: &'static str,
        text: String,
        regex: Option<Regex>,
    },
    Label(Matcher),
}

/// A parsed log query.
#[derive(Debug)]
pub(crate) struct LogQuery {
    selector: Vec<Matcher>,
    stages: Vec<Stage>,
}

struct Parser {
    toks: Vec<(usize, Tok)>,
    pos: usize,
    end_col: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos).map(|(_, t)| t)
    }
    fn error(&self, expecting: &str) -> String {
        let col = self.toks.get(self.pos).map_or(self.end_col, |(c, _)| *c);
        let found = describe(self.peek());
        let expecting = if expecting.is_empty() {
            String::new()
        } else {
            format!(", expecting {expecting}")
        };
        at(col, &format!("syntax error: unexpected {found}{expecting}"))
    }
    fn string(&mut self) -> Result<String, String> {
        match self.peek() {
            Some(Tok::Str(s)) => {
                let s = s.clone();
                self.pos += 1;
                Ok(s)
            }
            _ => Err(self.error("STRING")),
        }
    }
    fn matcher(&mut self, name_col_ok: bool) -> Result<Matcher, String> {
        let Some(Tok::Ident(name)) = self.peek().cloned() else {
            return Err(self.error(if name_col_ok { "IDENTIFIER" } else { "" }));
        };
        self.pos += 1;
        let op = match self.peek() {
            Some(Tok::Op(op @ ("=" | "!=" | "=~" | "!~"))) => *op,
            Some(Tok::Op("==")) if !name_col_ok => "==",
            _ => return Err(self.error("= or != or =~ or !~")),
        };
        self.pos += 1;
        let value = self.string()?;
        let regex = if matches!(op, "=~" | "!~") {
            let col = self.toks.get(self.pos - 1).map_or(0, |(c, _)| *c);
            let re = Regex::new(&format!("^(?:{value})$"));
            Some(re.map_err(|e| at(col, &format!("error parsing regexp: {e}")))?)
        } else {
            None
        };
        Ok(Matcher {
            name,
            op,
            value,
            regex,
        })
    }
}

/// Whether `q` starts like a metric query (an aggregation or range function, not a selector).
pub(crate) fn is_metric_query(q: &str) -> bool {
    let q = q.trim_start();
    !q.is_empty() && !q.starts_with('{')
}

const NOT_MODELLED: &str = "not modelled by the Loki double";

/// Parses a log query, or answers Loki's 400 message.
pub(crate) fn parse(q: &str) -> Result<LogQuery, String> {
    // An aggregation or range function (`rate(…)`, `sum by (…) (…)`): valid LogQL whose tokens
    // (parentheses, `[5m]`) the subset's lexer does not know, so it must not read as a typo.
    if q.trim_start()
        .starts_with(|c: char| c.is_ascii_alphabetic())
    {
        return Err(format!("{NOT_MODELLED} (metric queries): {q}"));
    }
    let toks = lex(q)?;
    let end_col = q.chars().count() + 1;
    let mut p = Parser {
        toks,
        pos: 0,
        end_col,
    };
    match p.peek() {
        Some(Tok::Open) => p.pos += 1,
        Some(Tok::Ident(_)) => return Err(format!("{NOT_MODELLED} (metric queries): {q}")),
        _ => return Err(p.error("")),
    }
    let mut selector = vec![p.matcher(true)?];
    loop {
        match p.peek() {
            Some(Tok::Comma) => {
                p.pos += 1;
                selector.push(p.matcher(true)?);
            }
            Some(Tok::Close) => {
                p.pos += 1;
                break;
            }
            _ => return Err(p.error("} or ,")),
        }
    }
    if selector.iter().all(|m| m.matches("")) {
        return Err(
            "parse error : queries require at least one regexp or equality matcher that \
                    does not have an empty-compatible value. For instance, app=~\".*\" does not \
                    meet this requirement, but app=~\".+\" will"
                .into(),
        );
    }
    let mut stages = Vec::new();
    while let Some(tok) = p.peek().cloned() {
        match tok {
            Tok::Op(op @ ("|=" | "!=" | "|~" | "!~")) => {
                p.pos += 1;
                let col = p.toks.get(p.pos).map_or(end_col, |(c, _)| *c);
                let text = p.string()?;
                let regex = if op.ends_with('~') {
                    let re = Regex::new(&text);
                    Some(re.map_err(|e| at(col, &format!("error parsing regexp: {e}")))?)
                } else {
                    None
                };
                stages.push(Stage::Line { op, text, regex });
            }
            Tok::Pipe => {
                p.pos += 1;
                let is_filter = matches!(p.toks.get(p.pos + 1), Some((_, Tok::Op(_))));
                match p.peek() {
                    Some(Tok::Ident(_)) if is_filter => {
                        stages.push(Stage::Label(p.matcher(false)?))
                    }
                    Some(Tok::Ident(stage)) => {
                        return Err(format!("{NOT_MODELLED} (pipeline stage `{stage}`): {q}"));
                    }
                    _ => return Err(p.error("")),
                }
            }
            _ => return Err(p.error("")),
        }
    }
    Ok(LogQuery { selector, stages })
}

impl LogQuery {
    /// Whether an entry with index `labels`, structured `metadata` and `line` is selected.
    pub(crate) fn matches(
        &self,
        labels: &[(String, String)],
        metadata: &[(String, String)],
        line: &str,
    ) -> bool {
        let get = |list: &[(String, String)], name: &str| {
            list.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
        };
        let selected = self
            .selector
            .iter()
            .all(|m| m.matches(&get(labels, &m.name).unwrap_or_default()));
        selected
            && self.stages.iter().all(|stage| match stage {
                Stage::Line { op, text, regex } => match (*op, regex) {
                    ("|=", _) => line.contains(text.as_str()),
                    ("!=", _) => !line.contains(text.as_str()),
                    ("|~", Some(re)) => re.is_match(line),
                    ("!~", Some(re)) => !re.is_match(line),
                    _ => false,
                },
                Stage::Label(m) => {
                    let value = get(labels, &m.name).or_else(|| get(metadata, &m.name));
                    m.matches(&value.unwrap_or_default())
                }
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_read_like_lokis() {
        let e = parse(r#"{service_name="orders""#).err();
        let expected =
            "parse error at line 1, col 23: syntax error: unexpected $end, expecting } or ,";
        assert_eq!(e.as_deref(), Some(expected));
        assert!(parse(r#"{a=~".*"}"#).is_err());
        assert!(parse(r#"{a="b} |= "x""#).is_err());
        let q = parse(r#"{a="b"} |= "x" != "y" | trace_id="t" | k=~"v.*""#);
        let q = q.unwrap_or_else(|e| panic!("{e}"));
        let labels = [("a".to_owned(), "b".to_owned())];
        let meta = [
            ("trace_id".to_owned(), "t".to_owned()),
            ("k".to_owned(), "vv".to_owned()),
        ];
        assert!(q.matches(&labels, &meta, "x marks"));
        assert!(!q.matches(&labels, &meta, "x and y"));
        assert!(parse(r#"{a="b"} | json"#).is_err());
    }
}
