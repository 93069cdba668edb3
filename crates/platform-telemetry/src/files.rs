//! Reading the files configuration names (certificates and keys), bounded in size and time.
//!
//! A path from the environment may name anything: a FIFO that never gets a writer, a device
//! that never ends (`/dev/zero`), a directory, a multi-gigabyte file. Only a regular file is
//! read, it is opened without blocking, and at most [`MAX_FILE_BYTES`] are read from it.

use std::fmt;
use std::io::Read as _;
use std::path::Path;

pub(crate) use crate::config::bounds::MAX_FILE_BYTES;

/// Why a configured file was not used.
#[derive(Debug)]
pub(crate) enum FileProblem {
    /// Missing, unreadable, or failing to read.
    Io(std::io::Error),
    /// A directory, FIFO, socket or device.
    NotARegularFile,
    /// Larger than the bound.
    TooLarge(u64),
}

impl fmt::Display for FileProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FileProblem::Io(e) => write!(f, "cannot read the file: {e}"),
            FileProblem::NotARegularFile => f.write_str(
                "not a regular file (a directory, pipe, socket or device is never read)",
            ),
            FileProblem::TooLarge(n) => write!(
                f,
                "the file has {n} bytes, more than the {MAX_FILE_BYTES} a certificate or key may have"
            ),
        }
    }
}

/// The whole content of the regular file at `path`, if it has at most [`MAX_FILE_BYTES`].
pub(crate) fn read_bounded(path: &Path) -> Result<Vec<u8>, FileProblem> {
    // Checked before opening: opening a FIFO for reading blocks until a writer appears.
    let meta = std::fs::metadata(path).map_err(FileProblem::Io)?;
    if !meta.is_file() {
        return Err(FileProblem::NotARegularFile);
    }
    if meta.len() > MAX_FILE_BYTES {
        return Err(FileProblem::TooLarge(meta.len()));
    }
    let file = open_nonblocking(path).map_err(FileProblem::Io)?;
    // The path may have been swapped for something else between the two checks.
    if !file.metadata().map_err(FileProblem::Io)?.is_file() {
        return Err(FileProblem::NotARegularFile);
    }
    let mut content = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut content)
        .map_err(FileProblem::Io)?;
    if content.len() as u64 > MAX_FILE_BYTES {
        return Err(FileProblem::TooLarge(content.len() as u64));
    }
    Ok(content)
}

#[cfg(unix)]
fn open_nonblocking(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt as _;
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
}

#[cfg(not(unix))]
fn open_nonblocking(path: &Path) -> std::io::Result<std::fs::File> {
    std::fs::File::open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_regular_file_is_read_whole() {
        let dir = std::env::temp_dir().join(format!("pt-files-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("ca.pem");
        std::fs::write(&path, b"-----BEGIN CERTIFICATE-----\n").unwrap();
        assert_eq!(
            read_bounded(&path).unwrap(),
            b"-----BEGIN CERTIFICATE-----\n"
        );
        let big = dir.join("big.pem");
        std::fs::write(&big, vec![b'a'; MAX_FILE_BYTES as usize + 1]).unwrap();
        assert!(matches!(read_bounded(&big), Err(FileProblem::TooLarge(_))));
        assert!(matches!(
            read_bounded(&dir),
            Err(FileProblem::NotARegularFile)
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn devices_are_never_read() {
        for special in ["/dev/zero", "/dev/null", "/dev/stdin", "/dev/urandom"] {
            assert!(
                matches!(
                    read_bounded(Path::new(special)),
                    Err(FileProblem::NotARegularFile | FileProblem::Io(_))
                ),
                "{special}"
            );
        }
    }
}
