//! How a database operation failed, as the span and the metric record it.

use std::borrow::Cow;

/// The longest `error.type` or `db.response.status_code` recorded (a class, not a message).
const MAX_CLASS_BYTES: usize = 64;

/// How a database operation failed: `error.type`, and `db.response.status_code` when the
/// database answered with a code (a PostgreSQL SQLSTATE, a Redis error prefix). Low-cardinality
/// classes only, never a message: each is cut at 64 bytes.
///
/// A string converts into one (`error.type` only), so a classifier may return either.
///
/// ```
/// use platform_telemetry::db::DbFailure;
///
/// // What sqlx's error says, as the semantic conventions want it for PostgreSQL.
/// fn classify(sqlstate: Option<&str>) -> DbFailure {
///     match sqlstate {
///         Some(code) => DbFailure::status_code(code.to_string()),
///         None => DbFailure::from("pool_timed_out"),
///     }
/// }
/// assert_eq!(classify(Some("42P01")).error_type(), "42P01");
/// assert_eq!(classify(Some("42P01")).code(), Some("42P01"));
/// assert_eq!(classify(None).code(), None);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DbFailure {
    error_type: Cow<'static, str>,
    status_code: Option<Cow<'static, str>>,
}

fn bounded(class: Cow<'static, str>) -> Cow<'static, str> {
    if class.len() <= MAX_CLASS_BYTES {
        return class;
    }
    Cow::Owned(super::sql::cut(&class, MAX_CLASS_BYTES).to_string())
}

impl DbFailure {
    /// A failure of this class (`error.type`), without a database status code.
    pub fn new(error_type: impl Into<Cow<'static, str>>) -> Self {
        Self {
            error_type: bounded(error_type.into()),
            status_code: None,
        }
    }

    /// A failure the database answered with `code`: `db.response.status_code`, and
    /// `error.type` too, as the semantic conventions advise.
    pub fn status_code(code: impl Into<Cow<'static, str>>) -> Self {
        let code = bounded(code.into());
        Self {
            error_type: code.clone(),
            status_code: Some(code),
        }
    }

    /// `error.type`.
    pub fn error_type(&self) -> &str {
        &self.error_type
    }

    /// `db.response.status_code`, when the database gave one.
    pub fn code(&self) -> Option<&str> {
        self.status_code.as_deref()
    }

    pub(super) fn into_parts(self) -> (Cow<'static, str>, Option<Cow<'static, str>>) {
        (self.error_type, self.status_code)
    }
}

impl From<Cow<'static, str>> for DbFailure {
    fn from(error_type: Cow<'static, str>) -> Self {
        Self::new(error_type)
    }
}

impl From<&'static str> for DbFailure {
    fn from(error_type: &'static str) -> Self {
        Self::new(error_type)
    }
}

impl From<String> for DbFailure {
    fn from(error_type: String) -> Self {
        Self::new(error_type)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_are_cut_at_64_bytes_on_a_character_boundary() {
        let long = "é".repeat(40);
        let failure = DbFailure::status_code(long);
        assert!(failure.error_type().len() <= MAX_CLASS_BYTES);
        assert_eq!(failure.code(), Some(failure.error_type()));
        assert!(failure.error_type().chars().all(|c| c == 'é'));
    }
}
