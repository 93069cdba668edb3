//! Exit codes: one enum owns them, and renders the table each command's `--help` shows.

use std::fmt::Write as _;

/// How an `obs` command ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum ExitCode {
    /// Everything succeeded.
    Ok = 0,
    /// At least one object or check failed; the output says which and why.
    Failed = 1,
    /// Bad usage or configuration: a flag, an environment variable, or a file.
    Usage = 2,
    /// Grafana did not become healthy before the `--wait` deadline.
    NotReady = 3,
    /// Grafana, or a store `verify` reads, refused the credentials or the tenant (401/403,
    /// "no org id").
    Auth = 4,
}

/// The commands, for their exit-code tables.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CommandKind {
    /// `obs provision`.
    Provision,
    /// `obs verify`.
    Verify,
    /// `obs sidecar`.
    Sidecar,
    /// `obs health`.
    Health,
}

impl ExitCode {
    /// The process exit status.
    pub fn code(self) -> u8 {
        self as u8
    }

    /// What this code means for `command`, or `None` when the command never ends with it.
    pub fn meaning(self, command: CommandKind) -> Option<&'static str> {
        use CommandKind::*;
        use ExitCode::*;
        Some(match (self, command) {
            (Ok, Provision) => {
                "everything provisioned (created, updated, unchanged or managed by file provisioning)"
            }
            (Ok, Verify) => "every check that ran passed",
            (Ok, Sidecar) => "stopped cleanly (SIGTERM or Ctrl-C)",
            (Ok, Health) => "the sidecar answered ready",
            (Failed, Provision) => {
                "at least one datasource, folder or dashboard failed (each failure is explained)"
            }
            (Failed, Verify) => "a check failed (the report says which, and why in plain words)",
            (Failed, Sidecar) => "could not start its telemetry or keep serving",
            (Failed, Health) => "the sidecar is not ready, or did not answer",
            (Usage, Provision) => {
                "usage or configuration error (flag, environment variable, YAML or JSON file; with --check, any invalid file)"
            }
            (Usage, Verify) => {
                "usage or configuration error (a malformed URL, no store given, a missing --datasources directory, conflicting or unreadable connection settings)"
            }
            (Usage, Sidecar) => {
                "usage or configuration error (a flag, a provisioning file, a --listen or --probe-metrics-listen address it cannot bind)"
            }
            (Usage, Health) => "usage error (a malformed --listen)",
            (NotReady, Provision) => "Grafana was not healthy before --wait ran out",
            (Auth, Provision) => "Grafana refused the credentials (401 or 403)",
            (Auth, Verify) => {
                "a store refused obs (401, 403, or \"no org id\"): the report names the setting to fix (reason unauthorized, forbidden or no_tenant)"
            }
            _ => return None,
        })
    }

    /// The `Exit codes:` table of `command`'s `--help`.
    pub fn help(command: CommandKind) -> String {
        let mut table = String::from("Exit codes:");
        for code in [
            ExitCode::Ok,
            ExitCode::Failed,
            ExitCode::Usage,
            ExitCode::NotReady,
            ExitCode::Auth,
        ] {
            if let Some(meaning) = code.meaning(command) {
                let _ = write!(table, "\n  {}  {meaning}", code.code());
            }
        }
        table
    }
}

impl From<ExitCode> for std::process::ExitCode {
    fn from(code: ExitCode) -> Self {
        std::process::ExitCode::from(code.code())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_command_documents_success_failure_and_usage() {
        for command in [
            CommandKind::Provision,
            CommandKind::Verify,
            CommandKind::Sidecar,
            CommandKind::Health,
        ] {
            let help = ExitCode::help(command);
            for code in ["0", "1", "2"] {
                assert!(
                    help.contains(&format!("\n  {code}  ")),
                    "{command:?}: {help}"
                );
            }
        }
        assert!(ExitCode::help(CommandKind::Provision).contains("\n  4  "));
        assert!(ExitCode::help(CommandKind::Verify).contains("\n  4  "));
        assert!(!ExitCode::help(CommandKind::Health).contains("\n  4  "));
    }
}
