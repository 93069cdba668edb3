//! SQL made safe to record: literals replaced by `?`, comments dropped, whitespace collapsed,
//! and the low-cardinality summary of the semantic conventions (`SELECT orders`,
//! `INSERT shipping_details SELECT orders`) with the operation and the collection it names.
//!
//! A small lexer, not a parser: it knows the literal forms of PostgreSQL and standard SQL
//! (`'…'` with `''`, `E'…'` with backslash escapes, `B'…'`/`X'…'`/`N'…'`, `$tag$…$tag$`,
//! numbers) and keeps what is not a literal (keywords, identifiers, `"quoted"` identifiers,
//! `$1` placeholders, operators). An unterminated literal hides the rest of the query. Input
//! is bounded: only the first [`MAX_QUERY_BYTES`] are read, and the summary is at most
//! [`MAX_SUMMARY_BYTES`].

/// The longest query read; the rest is replaced by `…`.
pub const MAX_QUERY_BYTES: usize = 16 * 1024;
/// The longest summary kept.
pub const MAX_SUMMARY_BYTES: usize = 255;

/// What a query may be recorded as.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SanitizedSql {
    /// The query with every literal replaced by `?` (`db.query.text`).
    pub text: String,
    /// Operations and their targets in order (`db.query.summary`), empty when none is known.
    pub summary: String,
    /// The first operation (`db.operation.name`), upper case.
    pub operation: Option<String>,
    /// The collection when the query names exactly one (`db.collection.name`).
    pub collection: Option<String>,
}

/// Operation keywords that start a summary entry.
const OPERATIONS: &[&str] = &[
    "SELECT", "INSERT", "UPDATE", "DELETE", "MERGE", "UPSERT", "CREATE", "ALTER", "DROP",
    "TRUNCATE", "CALL", "EXEC", "EXECUTE", "BEGIN", "COMMIT", "ROLLBACK", "SET", "SHOW", "COPY",
    "GRANT", "REVOKE", "EXPLAIN", "VACUUM", "ANALYZE", "LISTEN", "NOTIFY", "PREPARE",
];
/// Keywords after which the next identifier is a target (a table).
const TARGET_BEFORE: &[&str] = &["FROM", "INTO", "JOIN", "UPDATE", "TABLE"];
/// Keywords that are never a target name.
const NOT_TARGETS: &[&str] = &[
    "SELECT",
    "ONLY",
    "LATERAL",
    "IF",
    "NOT",
    "EXISTS",
    "TEMP",
    "TEMPORARY",
    "UNLOGGED",
    "WHERE",
    "SET",
    "VALUES",
    "DEFAULT",
];

#[derive(Debug, PartialEq)]
enum Token<'a> {
    /// A keyword or identifier, possibly dotted or quoted.
    Word(&'a str),
    /// Anything else that is kept as it is (operators, punctuation, placeholders).
    Other(&'a str),
    /// A literal, recorded as `?`.
    Literal,
}

/// Cuts `text` to at most `max` bytes on a character boundary.
pub(super) fn cut(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

struct Lexer<'a> {
    src: &'a str,
    at: usize,
}

impl<'a> Lexer<'a> {
    fn peek(&self) -> Option<char> {
        self.src[self.at..].chars().next()
    }
    fn peek_at(&self, offset: usize) -> Option<char> {
        self.src.get(self.at + offset..)?.chars().next()
    }
    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.at += c.len_utf8();
        Some(c)
    }

    /// Skips a quoted literal whose opening quote is at `self.at`; `backslash` says whether `\`
    /// escapes (E'…'). Unterminated: to the end.
    fn skip_quoted(&mut self, backslash: bool) {
        self.bump();
        while let Some(c) = self.bump() {
            match c {
                '\\' if backslash => {
                    self.bump();
                }
                '\'' if self.peek() == Some('\'') => {
                    self.bump();
                }
                '\'' => return,
                _ => {}
            }
        }
    }

    /// A `$tag$` opening at `self.at`, if there is one: its length.
    fn dollar_tag(&self) -> Option<usize> {
        let rest = &self.src[self.at + 1..];
        let end = rest.find(|c: char| !(c.is_alphanumeric() || c == '_'))?;
        let tag = &rest[..end];
        (rest[end..].starts_with('$') && !tag.starts_with(|c: char| c.is_ascii_digit()))
            .then_some(end + 2)
    }

    fn next_token(&mut self) -> Option<Token<'a>> {
        loop {
            let c = self.peek()?;
            if c.is_whitespace() {
                self.bump();
                continue;
            }
            if c == '-' && self.peek_at(1) == Some('-') {
                while let Some(c) = self.bump() {
                    if c == '\n' {
                        break;
                    }
                }
                continue;
            }
            if c == '/' && self.peek_at(1) == Some('*') {
                self.at += 2;
                let mut depth = 1_u32;
                while depth > 0 {
                    match self.bump() {
                        None => break,
                        Some('*') if self.peek() == Some('/') => {
                            self.bump();
                            depth -= 1;
                        }
                        Some('/') if self.peek() == Some('*') => {
                            self.bump();
                            depth = depth.saturating_add(1);
                        }
                        Some(_) => {}
                    }
                }
                continue;
            }
            break;
        }
        let start = self.at;
        let c = self.peek()?;
        // Prefixed string literals: E'…', B'…', X'…', N'…', U&'…'.
        if matches!(c, 'e' | 'E' | 'b' | 'B' | 'x' | 'X' | 'n' | 'N')
            && self.peek_at(1) == Some('\'')
        {
            self.bump();
            self.skip_quoted(matches!(c, 'e' | 'E'));
            return Some(Token::Literal);
        }
        if c == '\'' {
            self.skip_quoted(false);
            return Some(Token::Literal);
        }
        if c == '$' {
            if let Some(len) = self.dollar_tag() {
                let tag = &self.src[self.at..self.at + len];
                let body = self.at + len;
                match self.src[body..].find(tag) {
                    Some(end) => self.at = body + end + len,
                    None => self.at = self.src.len(),
                }
                return Some(Token::Literal);
            }
            // $1: a placeholder, kept.
            self.bump();
            while self.peek().is_some_and(|c| c.is_ascii_digit()) {
                self.bump();
            }
            return Some(Token::Other(&self.src[start..self.at]));
        }
        if c.is_ascii_digit() || (c == '.' && self.peek_at(1).is_some_and(|d| d.is_ascii_digit())) {
            while self
                .peek()
                .is_some_and(|c| c.is_ascii_alphanumeric() || c == '.' || c == '_')
            {
                let c = self.bump();
                // An exponent's sign: 1e-5.
                if matches!(c, Some('e' | 'E')) && matches!(self.peek(), Some('+' | '-')) {
                    self.bump();
                }
            }
            return Some(Token::Literal);
        }
        if c.is_alphabetic() || c == '_' || c == '"' {
            // A word, possibly dotted: schema.table, "Quoted"."Name".
            loop {
                if self.peek() == Some('"') {
                    self.bump();
                    while let Some(c) = self.bump() {
                        if c == '"' {
                            if self.peek() == Some('"') {
                                self.bump();
                            } else {
                                break;
                            }
                        }
                    }
                } else {
                    while self
                        .peek()
                        .is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '$')
                    {
                        self.bump();
                    }
                }
                if self.peek() == Some('.')
                    && self
                        .peek_at(1)
                        .is_some_and(|c| c.is_alphabetic() || c == '_' || c == '"')
                {
                    self.bump();
                    continue;
                }
                break;
            }
            return Some(Token::Word(&self.src[start..self.at]));
        }
        self.bump();
        Some(Token::Other(&self.src[start..self.at]))
    }
}

/// Sanitizes `query`: see the module documentation.
///
/// ```
/// use platform_telemetry::db::sanitize_sql;
///
/// let sql = sanitize_sql("SELECT id, total FROM orders WHERE email = 'a@b.c' AND total > 10.5");
/// assert_eq!(sql.text, "SELECT id, total FROM orders WHERE email = ? AND total > ?");
/// assert_eq!(sql.summary, "SELECT orders");
/// assert_eq!(sql.operation.as_deref(), Some("SELECT"));
/// assert_eq!(sql.collection.as_deref(), Some("orders"));
/// ```
pub fn sanitize_sql(query: &str) -> SanitizedSql {
    let truncated = query.len() > MAX_QUERY_BYTES;
    let mut lexer = Lexer {
        src: cut(query, MAX_QUERY_BYTES),
        at: 0,
    };
    let mut text = String::with_capacity(lexer.src.len().min(1024));
    let mut summary = String::new();
    let mut operation = None;
    let mut targets: Vec<&str> = Vec::new();
    let mut expect_target = false;
    let mut previous_word = false;
    while let Some(token) = lexer.next_token() {
        let (piece, word) = match token {
            Token::Word(w) => (w, true),
            Token::Other(o) => (o, false),
            Token::Literal => ("?", false),
        };
        // One space between tokens, none before `,` `)` `.` `;` or after `(`.
        let glue = text.is_empty()
            || matches!(piece, "," | ")" | ";" | "::")
            || text.ends_with('(')
            || (text.ends_with("::") && word);
        if !glue {
            text.push(' ');
        }
        text.push_str(piece);
        if let Token::Word(w) = token {
            let upper = w.to_ascii_uppercase();
            let filler = NOT_TARGETS.contains(&upper.as_str());
            if expect_target && filler && !OPERATIONS.contains(&upper.as_str()) {
                // CREATE TABLE IF NOT EXISTS t, FROM ONLY t: the target is still to come.
                previous_word = true;
                continue;
            }
            if expect_target && !filler {
                expect_target = false;
                if targets.len() < 32 {
                    targets.push(w);
                }
                push_summary(&mut summary, w);
                continue;
            }
            if OPERATIONS.contains(&upper.as_str()) && !(upper == "SET" && previous_word) {
                if operation.is_none() {
                    operation = Some(upper.clone());
                }
                push_summary(&mut summary, &upper);
            }
            expect_target = TARGET_BEFORE.contains(&upper.as_str());
        } else if piece == "(" {
            expect_target = false;
        }
        previous_word = word;
    }
    if truncated {
        text.push_str(" …");
    }
    targets.sort_unstable();
    targets.dedup();
    let collection = match targets.as_slice() {
        [one] => Some((*one).to_string()),
        _ => None,
    };
    SanitizedSql {
        text,
        summary,
        operation,
        collection,
    }
}

fn push_summary(summary: &mut String, piece: &str) {
    let needed = piece.len() + usize::from(!summary.is_empty());
    if summary.len() + needed > MAX_SUMMARY_BYTES {
        return;
    }
    if !summary.is_empty() {
        summary.push(' ');
    }
    summary.push_str(piece);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(q: &str) -> String {
        sanitize_sql(q).text
    }

    #[test]
    fn literals_of_every_form_become_placeholders() {
        assert_eq!(
            text("SELECT * FROM t WHERE a = 'it''s' AND b = E'x\\'y' AND c = 42 AND d = 1.5e-3"),
            "SELECT * FROM t WHERE a = ? AND b = ? AND c = ? AND d = ?"
        );
        assert_eq!(
            text("INSERT INTO t (a, b) VALUES ($1, $$body 'x'$$), (X'ff', $tag$s$tag$)"),
            "INSERT INTO t (a, b) VALUES ($1, ?), (?, ?)"
        );
        assert_eq!(text("SELECT 'unterminated secret"), "SELECT ?");
        assert_eq!(text("SELECT t1.c2 FROM t1"), "SELECT t1.c2 FROM t1");
    }

    #[test]
    fn a_backslash_escapes_only_in_e_strings() {
        // Standard strings: '\' is a whole literal, so 'secret' after it is another literal.
        let sql = text("SELECT '\\', 'secret'");
        assert_eq!(sql, "SELECT ?, ?");
    }

    #[test]
    fn comments_go_and_whitespace_collapses() {
        assert_eq!(
            text("SELECT a -- the email is x@y\n FROM /* nested /* pw=1 */ */ t"),
            "SELECT a FROM t"
        );
    }

    #[test]
    fn the_summary_lists_operations_and_their_targets() {
        let s =
            sanitize_sql("INSERT INTO shipping_details SELECT * FROM orders JOIN items ON x = y");
        assert_eq!(s.summary, "INSERT shipping_details SELECT orders items");
        assert_eq!(s.operation.as_deref(), Some("INSERT"));
        assert_eq!(s.collection, None, "three collections: none is named");
        let s = sanitize_sql("UPDATE public.orders SET status = 'paid' WHERE id = $1");
        assert_eq!(s.summary, "UPDATE public.orders");
        assert_eq!(s.collection.as_deref(), Some("public.orders"));
        let s = sanitize_sql("select * from (select 1) as x");
        assert_eq!(s.summary, "SELECT SELECT");
        let s = sanitize_sql("CREATE TABLE IF NOT EXISTS orders (id bigint)");
        assert_eq!(s.summary, "CREATE orders");
    }

    #[test]
    fn input_and_summary_are_bounded() {
        let long = format!("SELECT {} FROM t", "a, ".repeat(20_000));
        let s = sanitize_sql(&long);
        assert!(s.text.len() <= MAX_QUERY_BYTES + 8);
        assert!(s.text.ends_with(" …"));
        let many = "SELECT * FROM t1 JOIN t2 ".repeat(100);
        assert!(sanitize_sql(&many).summary.len() <= MAX_SUMMARY_BYTES);
    }

    mod properties {
        use super::super::*;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn never_panics_and_stays_bounded(query in "\\PC{0,400}") {
                let s = sanitize_sql(&query);
                prop_assert!(s.text.len() <= query.len() * 2 + 8);
                prop_assert!(s.summary.len() <= MAX_SUMMARY_BYTES);
            }

            #[test]
            fn no_literal_value_survives(
                value in "[A-Za-z0-9._-]{2,12}@[A-Za-z0-9 ._-]{2,12}",
                number in 100_000u64..,
                quote_form in 0usize..4,
            ) {
                let literal = match quote_form {
                    0 => format!("'{value}'"),
                    1 => format!("E'{value}'"),
                    2 => format!("$$ {value} $$"),
                    _ => format!("'{}'", value.replace('a', "''")),
                };
                let query = format!("SELECT id FROM users WHERE email = {literal} AND n = {number}");
                let s = sanitize_sql(&query);
                prop_assert!(!s.text.contains('@'), "{}", s.text);
                prop_assert!(!s.text.contains(&number.to_string()), "{}", s.text);
                prop_assert_eq!(s.summary, "SELECT users");
            }
        }
    }
}
