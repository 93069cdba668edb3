//! The tokenizer the LogQL (`loki/logql.rs`) and TraceQL (`tempo/traceql.rs`) subsets share.
//!
//! Both upstream parsers are goyacc grammars over a Go `text/scanner`-style lexer, so they agree
//! on what a token is: whitespace separates, strings are `"…"` (with Go escapes) or `` `…` ``
//! (raw), symbols are matched longest first, and positions are reported as
//! `parse error at line 1, col N: …` with 1-based columns counted in characters. Each language
//! says which symbols it has and what a word is ([`Syntax`]) and classifies the words itself
//! (identifiers, numbers, durations).

/// A token, with the language's own meaning left to its parser.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Token {
    /// One of the language's [`Syntax::symbols`].
    Symbol(&'static str),
    /// A run of word characters (an identifier, number, duration, keyword…).
    Word(String),
    /// A quoted string, escapes resolved.
    Str(String),
}

/// What a language's tokens look like.
pub(crate) struct Syntax {
    /// Operators and punctuation, longest first where one is a prefix of another.
    pub(crate) symbols: &'static [&'static str],
    /// Whether a character may start a word.
    pub(crate) word_start: fn(char) -> bool,
    /// Whether a character may continue a word.
    pub(crate) word_continue: fn(char) -> bool,
}

/// Why a query could not be tokenized.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum LexError {
    /// A string literal starting at this column has no closing quote.
    Unterminated(usize),
    /// A character no token starts with, at this column.
    Unexpected(usize, char),
}

impl LexError {
    /// The upstream parser's message for this error.
    pub(crate) fn message(&self) -> String {
        match self {
            Self::Unterminated(col) => parse_error(*col, "literal not terminated"),
            Self::Unexpected(col, c) => parse_error(*col, &format!("syntax error: unexpected {c}")),
        }
    }
}

/// `parse error at line 1, col N: what`, as both upstream parsers write positions.
pub(crate) fn parse_error(col: usize, what: &str) -> String {
    format!("parse error at line 1, col {col}: {what}")
}

/// Splits `q` into tokens with their 1-based columns.
pub(crate) fn lex(q: &str, syntax: &Syntax) -> Result<Vec<(usize, Token)>, LexError> {
    let chars: Vec<char> = q.chars().collect();
    let (mut i, mut out) = (0, Vec::new());
    while let Some(&c) = chars.get(i) {
        let col = i + 1;
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        let symbol = syntax.symbols.iter().find(|symbol| {
            symbol
                .chars()
                .enumerate()
                .all(|(k, s)| chars.get(i + k) == Some(&s))
        });
        let (token, len) = if let Some(symbol) = symbol {
            (Token::Symbol(symbol), symbol.chars().count())
        } else if c == '"' || c == '`' {
            let (text, len) = string(&chars[i..]).ok_or(LexError::Unterminated(col))?;
            (Token::Str(text), len)
        } else if (syntax.word_start)(c) {
            let len = 1 + chars[i + 1..]
                .iter()
                .take_while(|d| (syntax.word_continue)(**d))
                .count();
            (Token::Word(chars[i..i + len].iter().collect()), len)
        } else {
            return Err(LexError::Unexpected(col, c));
        };
        out.push((col, token));
        i += len;
    }
    Ok(out)
}

/// The string literal at the start of `chars` (its quote included) and its length in chars.
fn string(chars: &[char]) -> Option<(String, usize)> {
    let quote = *chars.first()?;
    let (mut j, mut text) = (1, String::new());
    loop {
        match chars.get(j)? {
            &d if d == quote => return Some((text, j + 1)),
            '\\' if quote == '"' => {
                text.push(match chars.get(j + 1)? {
                    'n' => '\n',
                    't' => '\t',
                    'r' => '\r',
                    other => *other,
                });
                j += 2;
            }
            &d => {
                text.push(d);
                j += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SYNTAX: Syntax = Syntax {
        symbols: &["!=", "=", "{", "}"],
        word_start: char::is_alphabetic,
        word_continue: char::is_alphanumeric,
    };

    #[test]
    fn tokens_carry_their_columns_and_strings_their_escapes() {
        let tokens = lex(r#"{a!="x\"y" b=`r\n`}"#, &SYNTAX);
        let expected = vec![
            (1, Token::Symbol("{")),
            (2, Token::Word("a".into())),
            (3, Token::Symbol("!=")),
            (5, Token::Str("x\"y".into())),
            (12, Token::Word("b".into())),
            (13, Token::Symbol("=")),
            (14, Token::Str("r\\n".into())),
            (19, Token::Symbol("}")),
        ];
        assert_eq!(tokens, Ok(expected));
    }

    #[test]
    fn errors_name_the_column_as_the_upstream_parsers_do() {
        let unterminated = lex(r#"{a="b}"#, &SYNTAX).map_err(|e| e.message());
        assert_eq!(
            unterminated,
            Err("parse error at line 1, col 4: literal not terminated".into())
        );
        let unexpected = lex("{a ? b}", &SYNTAX).map_err(|e| e.message());
        assert_eq!(
            unexpected,
            Err("parse error at line 1, col 4: syntax error: unexpected ?".into())
        );
    }
}
