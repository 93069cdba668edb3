//! The credential of a store: a bearer token or basic auth, each secret from a value or a
//! file (never both), checked and registered for redaction.

use std::path::PathBuf;

use super::{
    ConnectionError, Credential, RawConnection, Setting, Store, files, given, given_path, headers,
};
use crate::redact;

fn secret(
    store: Store,
    value: &Option<String>,
    file: &Option<PathBuf>,
    value_setting: Setting,
    file_setting: Setting,
) -> Result<Option<(String, String)>, ConnectionError> {
    match (given(value), given_path(file)) {
        (Some(_), Some(_)) => Err(ConnectionError::Conflict {
            first: store.setting(value_setting),
            second: store.setting(file_setting),
            why: "keep one (the file is safer: a flag shows in `ps`)",
        }),
        // A value is taken as given (a password may end in a space); a file loses its newline.
        (Some(v), None) => Ok(Some((v.to_string(), store.setting(value_setting)))),
        (None, Some(path)) => Ok(Some((
            files::read_secret(store, file_setting, path)?,
            format!("{} {}", store.setting(file_setting), path.display()),
        ))),
        (None, None) => Ok(None),
    }
}

pub(super) fn credential(store: Store, raw: &RawConnection) -> Result<Credential, ConnectionError> {
    let token = secret(
        store,
        &raw.token,
        &raw.token_file,
        Setting::Token,
        Setting::TokenFile,
    )?;
    let password = secret(
        store,
        &raw.password,
        &raw.password_file,
        Setting::Password,
        Setting::PasswordFile,
    )?;
    let user = given(&raw.user).map(str::trim);
    let token_setting = || {
        if given(&raw.token).is_some() {
            store.setting(Setting::Token)
        } else {
            store.setting(Setting::TokenFile)
        }
    };
    let credential = match (token, user, password) {
        (Some(_), Some(_), _) => {
            return Err(ConnectionError::Conflict {
                first: token_setting(),
                second: store.setting(Setting::User),
                why: "a store takes a bearer token or basic auth, not both: keep one",
            });
        }
        (Some(_), None, Some((_, source))) => {
            return Err(ConnectionError::Conflict {
                first: token_setting(),
                second: source,
                why: "a store takes a bearer token or basic auth, not both: keep one",
            });
        }
        (Some((token, source)), None, None) => Credential::Bearer { token, source },
        (None, Some(user), Some((password, source))) => Credential::Basic {
            user: user.to_string(),
            password,
            source,
        },
        (None, Some(_), None) => {
            return Err(ConnectionError::Missing {
                given: store.setting(Setting::User),
                needed: format!(
                    "{} or {}",
                    store.setting(Setting::Password),
                    store.setting(Setting::PasswordFile)
                ),
            });
        }
        (None, None, Some((_, source))) => {
            return Err(ConnectionError::Missing {
                given: source,
                needed: store.setting(Setting::User),
            });
        }
        (None, None, None) => Credential::None,
    };
    match &credential {
        Credential::Bearer { token, .. } => {
            headers::check_value(token).map_err(|why| ConnectionError::Value {
                setting: token_setting(),
                why,
            })?;
            redact::register_secret(token);
        }
        Credential::Basic { user, password, .. } => {
            if user.contains(':') {
                return Err(ConnectionError::Value {
                    setting: store.setting(Setting::User),
                    why: "a basic-auth user cannot contain ':'".to_string(),
                });
            }
            redact::register_secret(password);
        }
        Credential::None => {}
    }
    Ok(credential)
}
