//! Settings that may hold a credential: `NAME` or `NAME_FILE` (a file holding the value, as a
//! mounted Kubernetes Secret gives it; never shown by `ps` or `kubectl describe`).

/// The most a `*_FILE` may hold: a URL, not a file read by mistake.
const MAX_FILE_BYTES: u64 = 4096;

/// The value of `name`, or the content of the file `{name}_FILE` names (trimmed), or `None`
/// when neither is set. Both set is an error, as is an unreadable, empty or oversized file.
pub fn credential_setting(
    name: &str,
    var: impl Fn(&str) -> Option<String>,
) -> anyhow::Result<Option<String>> {
    use std::io::Read as _;

    let file_var = format!("{name}_FILE");
    match (var(name), var(&file_var)) {
        (Some(_), Some(_)) => anyhow::bail!("set {name} or {file_var}, not both"),
        (Some(value), None) => Ok(Some(value)),
        (None, None) => Ok(None),
        (None, Some(path)) => {
            let file = std::fs::File::open(&path)
                .map_err(|e| anyhow::anyhow!("{file_var}={path:?}: cannot open: {e}"))?;
            let mut text = String::new();
            file.take(MAX_FILE_BYTES + 1)
                .read_to_string(&mut text)
                .map_err(|e| anyhow::anyhow!("{file_var}={path:?}: cannot read: {e}"))?;
            anyhow::ensure!(
                text.len() as u64 <= MAX_FILE_BYTES,
                "{file_var}={path:?}: larger than {MAX_FILE_BYTES} bytes; it should hold only the {name}"
            );
            let value = text.trim();
            anyhow::ensure!(!value.is_empty(), "{file_var}={path:?}: the file is empty");
            Ok(Some(value.to_string()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, String)]) -> impl Fn(&str) -> Option<String> {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect();
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        }
    }

    #[test]
    fn the_value_comes_from_the_variable_or_from_the_file_it_names() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("database-url");
        std::fs::write(&file, "postgres://u:p@db/orders\n").unwrap();
        let path = file.display().to_string();

        let direct = credential_setting("DATABASE_URL", vars(&[("DATABASE_URL", "x".into())]));
        assert_eq!(direct.unwrap().as_deref(), Some("x"));
        let from_file =
            credential_setting("DATABASE_URL", vars(&[("DATABASE_URL_FILE", path.clone())]));
        assert_eq!(
            from_file.unwrap().as_deref(),
            Some("postgres://u:p@db/orders")
        );
        assert_eq!(credential_setting("DATABASE_URL", vars(&[])).unwrap(), None);

        let both = credential_setting(
            "DATABASE_URL",
            vars(&[("DATABASE_URL", "x".into()), ("DATABASE_URL_FILE", path)]),
        );
        assert!(both.unwrap_err().to_string().contains("not both"));
    }

    #[test]
    fn a_missing_empty_or_oversized_file_is_refused_naming_the_variable() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty");
        std::fs::write(&empty, " \n").unwrap();
        let big = dir.path().join("big");
        std::fs::write(&big, "x".repeat(5000)).unwrap();
        for (path, says) in [
            (dir.path().join("absent"), "cannot open"),
            (empty, "empty"),
            (big, "larger than"),
        ] {
            let error = credential_setting(
                "DATABASE_URL",
                vars(&[("DATABASE_URL_FILE", path.display().to_string())]),
            )
            .unwrap_err()
            .to_string();
            assert!(
                error.contains("DATABASE_URL_FILE") && error.contains(says),
                "{error}"
            );
        }
    }
}
