//! Reading the files the connection settings name, bounded: a token or password file holds at
//! most [`MAX_SECRET_BYTES`], a PEM file at most [`MAX_PEM_BYTES`]; only regular files are read
//! (a FIFO or a device is refused before it is opened, so a read never blocks).

use std::io::Read as _;
use std::path::Path;

use super::{ConnectionError, Setting, Store};

/// The largest token or password file.
pub const MAX_SECRET_BYTES: u64 = 64 * 1024;
/// The largest CA, certificate or key file.
pub const MAX_PEM_BYTES: u64 = 1024 * 1024;

/// What a PEM file must hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PemKind {
    /// At least one `CERTIFICATE`.
    Certificate,
    /// A private key.
    PrivateKey,
}

fn read_bounded(
    store: Store,
    setting: Setting,
    path: &Path,
    max: u64,
) -> Result<Vec<u8>, ConnectionError> {
    let problem = |why: String| ConnectionError::File {
        setting: store.setting(setting),
        path: path.display().to_string(),
        why,
    };
    let meta =
        std::fs::metadata(path).map_err(|e| problem(format!("cannot read the file: {e}")))?;
    if !meta.is_file() {
        return Err(problem(
            "not a regular file (a directory, pipe or device is never read)".to_string(),
        ));
    }
    if meta.len() > max {
        return Err(problem(format!(
            "{} bytes, more than the {max} obs reads from it",
            meta.len()
        )));
    }
    let file =
        std::fs::File::open(path).map_err(|e| problem(format!("cannot read the file: {e}")))?;
    let mut bytes = Vec::new();
    file.take(max + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| problem(format!("cannot read the file: {e}")))?;
    if bytes.len() as u64 > max {
        return Err(problem(format!(
            "more than the {max} bytes obs reads from it"
        )));
    }
    Ok(bytes)
}

/// A token or password: the file's text, trimmed; empty is an error.
pub fn read_secret(store: Store, setting: Setting, path: &Path) -> Result<String, ConnectionError> {
    let bytes = read_bounded(store, setting, path, MAX_SECRET_BYTES)?;
    let problem = |why: &str| ConnectionError::File {
        setting: store.setting(setting),
        path: path.display().to_string(),
        why: why.to_string(),
    };
    let text = String::from_utf8(bytes).map_err(|_| problem("not UTF-8 text"))?;
    let secret = text.trim();
    if secret.is_empty() {
        return Err(problem("the file is empty; write the secret into it"));
    }
    Ok(secret.to_string())
}

/// A PEM file holding `kind`.
pub fn read_pem(
    store: Store,
    setting: Setting,
    path: &Path,
    kind: PemKind,
) -> Result<super::PemFile, ConnectionError> {
    let pem = read_bounded(store, setting, path, MAX_PEM_BYTES)?;
    let text = String::from_utf8_lossy(&pem);
    let holds = match kind {
        PemKind::Certificate => text.contains("-----BEGIN CERTIFICATE-----"),
        PemKind::PrivateKey => {
            text.contains("-----BEGIN PRIVATE KEY-----")
                || text.contains("-----BEGIN RSA PRIVATE KEY-----")
                || text.contains("-----BEGIN EC PRIVATE KEY-----")
        }
    };
    if !holds {
        return Err(ConnectionError::File {
            setting: store.setting(setting),
            path: path.display().to_string(),
            why: match kind {
                PemKind::Certificate => "holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
                PemKind::PrivateKey => "holds no PEM private key (-----BEGIN PRIVATE KEY-----)",
            }
            .to_string(),
        });
    }
    Ok(super::PemFile {
        path: path.to_path_buf(),
        pem,
    })
}
