//! Noticing a changed secret. Grafana never returns `secureJsonData` (only `secureJsonFields`,
//! which says a secret is set, not what it is), so obs keeps a digest of the secrets it wrote in
//! the datasource's `jsonData` under [`DIGEST_KEY`] and writes the secrets again when the files'
//! digest differs.
//!
//! `jsonData` is readable by everyone who may query the datasource, so the digest is not a bare
//! hash a password list could be run against: it is PBKDF2-HMAC-SHA256 with a random salt and
//! [`ITERATIONS`] rounds (ring, already in the build for TLS), written as
//! `pbkdf2-sha256$<iterations>$<salt>$<hash>` (unpadded base64). A stored digest with another
//! iteration count, or one obs cannot read, counts as different (so a hostile value cannot make
//! obs spin).

use std::collections::BTreeMap;
use std::num::NonZeroU32;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD_NO_PAD as B64;
use ring::pbkdf2;

/// The `jsonData` key holding the digest.
pub const DIGEST_KEY: &str = "obsSecureJsonDigest";

/// PBKDF2 rounds: about 20–60 ms per datasource with secrets, per run.
pub const ITERATIONS: u32 = 100_000;

const SCHEME: &str = "pbkdf2-sha256";
const ALGORITHM: pbkdf2::Algorithm = pbkdf2::PBKDF2_HMAC_SHA256;

/// The secrets in one unambiguous byte string: each key and value length-prefixed, keys sorted.
fn canonical(secure: &BTreeMap<String, String>) -> Vec<u8> {
    let mut out = Vec::new();
    for (key, value) in secure {
        for part in [key, value] {
            out.extend_from_slice(&(part.len() as u64).to_le_bytes());
            out.extend_from_slice(part.as_bytes());
        }
    }
    out
}

fn iterations() -> NonZeroU32 {
    NonZeroU32::new(ITERATIONS).unwrap_or(NonZeroU32::MIN)
}

/// A fresh digest of `secure`, with a new random salt.
pub fn digest(secure: &BTreeMap<String, String>) -> String {
    let salt: [u8; 16] = rand::random();
    let mut hash = [0_u8; 32];
    pbkdf2::derive(
        ALGORITHM,
        iterations(),
        &salt,
        &canonical(secure),
        &mut hash,
    );
    format!(
        "{SCHEME}${ITERATIONS}${}${}",
        B64.encode(salt),
        B64.encode(hash)
    )
}

/// True when `stored` (a [`digest`]) was made from exactly `secure`.
pub fn matches(stored: &str, secure: &BTreeMap<String, String>) -> bool {
    let mut parts = stored.split('$');
    let (Some(SCHEME), Some(rounds), Some(salt), Some(hash), None) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return false;
    };
    if rounds != ITERATIONS.to_string() {
        return false;
    }
    let (Ok(salt), Ok(hash)) = (B64.decode(salt), B64.decode(hash)) else {
        return false;
    };
    pbkdf2::verify(ALGORITHM, iterations(), &salt, &canonical(secure), &hash).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secrets(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn a_digest_matches_its_secrets_only_and_never_shows_them() {
        let one = secrets(&[("basicAuthPassword", "hunter2-long")]);
        let stored = digest(&one);
        assert!(!stored.contains("hunter2"));
        assert!(matches(&stored, &one));
        assert!(!matches(
            &stored,
            &secrets(&[("basicAuthPassword", "hunter3-long")])
        ));
        assert!(!matches(&stored, &secrets(&[("otherKey", "hunter2-long")])));
        // Length prefixes: moving bytes between key and value changes the digest.
        let a = secrets(&[("ab", "c")]);
        assert!(!matches(&digest(&a), &secrets(&[("a", "bc")])));
        assert_ne!(
            digest(&one),
            stored,
            "salted: two digests of one secret differ"
        );
    }

    #[test]
    fn an_unreadable_or_foreign_digest_counts_as_different() {
        let one = secrets(&[("k", "v")]);
        for stored in [
            "",
            "sha256$abc",
            "pbkdf2-sha256$999999999$AAAA$AAAA",
            "pbkdf2-sha256$100000$!!$!!",
        ] {
            assert!(!matches(stored, &one), "{stored}");
        }
    }
}
