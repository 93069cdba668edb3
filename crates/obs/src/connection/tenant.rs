//! Tenant ids as Tempo, Loki and Mimir accept them (Mimir's "About tenant IDs": at most 150
//! bytes of `0-9 a-z A-Z ! - _ . * ' ( )`, and neither `.` nor `..`). A federated query names
//! several, separated by `|` (`team-a|team-b`), as the stores' tenant federation reads them.

/// The longest tenant id the stores accept.
pub const MAX_TENANT_LEN: usize = 150;

/// The most tenants one federated query may name.
pub const MAX_TENANTS: usize = 32;

/// Why `id` is not a tenant the stores accept, in words that say the fix; `Ok` when it is.
pub fn validate(id: &str) -> Result<(), String> {
    let rule = "a tenant id is at most 150 characters of letters, digits and ! - _ . * ' ( ), \
                several separated by | for a federated query";
    let parts: Vec<&str> = id.split('|').collect();
    if parts.len() > MAX_TENANTS {
        return Err(format!(
            "names {} tenants; at most {MAX_TENANTS} are accepted",
            parts.len()
        ));
    }
    for part in parts {
        if part.is_empty() {
            return Err(format!("has an empty tenant id; {rule}"));
        }
        if part.len() > MAX_TENANT_LEN {
            return Err(format!(
                "has a tenant id of {} characters; {rule}",
                part.len()
            ));
        }
        if part == "." || part == ".." {
            return Err(format!("{part:?} is not a valid tenant id; {rule}"));
        }
        if let Some(bad) = part
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || "!-_.*'()".contains(*c)))
        {
            return Err(format!("contains {bad:?}; {rule}"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_stores_tenant_rules() {
        for ok in [
            "1",
            "team-a",
            "Team_A.prod",
            "a|b",
            "x!*'()",
            &"a".repeat(150),
        ] {
            assert_eq!(validate(ok), Ok(()), "{ok}");
        }
        for bad in [
            "",
            ".",
            "..",
            "a b",
            "a/b",
            "a||b",
            "ü",
            &"a".repeat(151),
            "a|",
        ] {
            assert!(validate(bad).is_err(), "{bad:?}");
        }
    }

    proptest! {
        /// Whatever the input, validation answers (never panics), and what it accepts can be
        /// sent as an HTTP header value.
        #[test]
        fn accepted_tenants_are_valid_header_values(id in "\\PC{0,200}") {
            if validate(&id).is_ok() {
                prop_assert!(reqwest::header::HeaderValue::from_str(&id).is_ok());
                prop_assert!(id.len() <= MAX_TENANT_LEN * MAX_TENANTS + MAX_TENANTS);
            }
        }
    }
}
