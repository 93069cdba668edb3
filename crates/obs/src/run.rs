//! Runs a parsed command and maps outcomes to exit codes.

use std::path::Path;

use anyhow::Context as _;

use crate::cli::{Command, Format, GrafanaArgs, ProvisionArgs, SidecarArgs, VerifyArgs, exit};
use crate::grafana::client::{Auth, GrafanaClient};
use crate::grafana::provision::{self, Desired, Options, ProvisionError};
use crate::grafana::{files, store_connections};

/// Runs `command`, printing its report to stdout and problems to stderr; returns the exit code.
pub async fn run(command: Command) -> u8 {
    match command {
        Command::Provision(args) => provision_command(args).await,
        Command::Verify(args) => verify_command(args).await,
        Command::Sidecar(args) => sidecar_command(*args).await,
        Command::Health(args) => {
            if crate::sidecar::health(args.listen).await {
                exit::OK
            } else {
                eprintln!("obs health: the sidecar at {} is not ready", args.listen);
                exit::FAILED
            }
        }
    }
}

fn read_secret(path: &Path, flag: &str) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read {flag} {}", path.display()))?;
    let secret = text.trim().to_string();
    anyhow::ensure!(!secret.is_empty(), "{flag} {} is empty", path.display());
    Ok(secret)
}

/// Where URL userinfo credentials are said to come from.
const URL_USERINFO: &str = "the user:password in --grafana-url (OBS_GRAFANA_URL)";

/// Resolves the credentials from flags, environment, files and the URL's userinfo
/// (`http://user:password@grafana:3000`, taken as basic auth).
pub fn auth(args: &GrafanaArgs) -> anyhow::Result<Auth> {
    let auth = resolve_auth(args)?;
    match &auth {
        Auth::Token { token, .. } => crate::redact::register_secret(token),
        Auth::Basic { password, .. } => crate::redact::register_secret(password),
        Auth::None => {}
    }
    Ok(auth)
}

fn resolve_auth(args: &GrafanaArgs) -> anyhow::Result<Auth> {
    let userinfo = reqwest::Url::parse(&args.grafana_url)
        .ok()
        .filter(crate::redact::has_userinfo)
        .map(|url| {
            // Url keeps userinfo percent-encoded; the credential is the decoded text.
            let decode = |s: &str| {
                percent_encoding::percent_decode_str(s)
                    .decode_utf8_lossy()
                    .into_owned()
            };
            (
                decode(url.username()),
                url.password().map(decode).unwrap_or_default(),
            )
        });
    let explicit = args.grafana_token.is_some()
        || args.grafana_token_file.is_some()
        || args.grafana_user.is_some()
        || args.grafana_password.is_some()
        || args.grafana_password_file.is_some();
    if let Some((user, password)) = userinfo {
        anyhow::ensure!(
            !explicit,
            "--grafana-url (OBS_GRAFANA_URL) carries a user:password and a token or user is set too; keep one"
        );
        return Ok(Auth::Basic {
            user,
            password,
            source: URL_USERINFO.to_string(),
        });
    }
    let token = match (&args.grafana_token, &args.grafana_token_file) {
        (Some(_), Some(_)) => anyhow::bail!(
            "both --grafana-token (OBS_GRAFANA_TOKEN) and --grafana-token-file (OBS_GRAFANA_TOKEN_FILE) are set; keep one"
        ),
        (Some(token), None) => Some((
            token.clone(),
            "--grafana-token / OBS_GRAFANA_TOKEN".to_string(),
        )),
        (None, Some(path)) => Some((
            read_secret(path, "--grafana-token-file")?,
            format!("the file {}", path.display()),
        )),
        (None, None) => None,
    };
    let password = match (&args.grafana_password, &args.grafana_password_file) {
        (Some(_), Some(_)) => {
            anyhow::bail!("both --grafana-password and --grafana-password-file are set; keep one")
        }
        (Some(p), None) => Some((
            p.clone(),
            "--grafana-password / OBS_GRAFANA_PASSWORD".to_string(),
        )),
        (None, Some(path)) => Some((
            read_secret(path, "--grafana-password-file")?,
            format!("the file {}", path.display()),
        )),
        (None, None) => None,
    };
    Ok(match (token, &args.grafana_user, password) {
        (Some(_), Some(_), _) => anyhow::bail!(
            "a token and a basic-auth user are both set; use a service-account token (OBS_GRAFANA_TOKEN[_FILE]) or user and password, not both"
        ),
        (Some((token, source)), None, _) => Auth::Token { token, source },
        (None, Some(user), Some((password, source))) => Auth::Basic {
            user: user.clone(),
            password,
            source,
        },
        (None, Some(user), None) => anyhow::bail!(
            "--grafana-user {user:?} is set without a password: set OBS_GRAFANA_PASSWORD or OBS_GRAFANA_PASSWORD_FILE"
        ),
        (None, None, Some(_)) => {
            anyhow::bail!("a Grafana password is set without --grafana-user (OBS_GRAFANA_USER)")
        }
        (None, None, None) => Auth::None,
    })
}

fn check_url(url: &str) -> anyhow::Result<()> {
    let ok = (url.starts_with("http://") || url.starts_with("https://"))
        && reqwest::Url::parse(url).is_ok_and(|u| u.host_str().is_some());
    anyhow::ensure!(
        ok,
        "--grafana-url (OBS_GRAFANA_URL) {:?} is not an http(s) URL; write it like http://grafana:3000",
        crate::redact::url(url)
    );
    Ok(())
}

async fn provision_command(args: ProvisionArgs) -> u8 {
    if args.check {
        return check_command(&args);
    }
    let prepared = (|| -> anyhow::Result<(GrafanaClient, Desired, store_connections::Applied)> {
        check_url(&args.grafana.grafana_url)?;
        let auth = auth(&args.grafana)?;
        let transport = args.grafana.transport.resolve()?;
        let connections = args.connections.resolve()?;
        let lookup = |name: &str| std::env::var(name).ok();
        let mut datasources = files::load_datasources(&args.datasources, &lookup)?;
        files::check_correlations(&datasources)?;
        let applied = store_connections::apply(&mut datasources, &connections);
        let dashboards = files::load_dashboards(&args.dashboards, &datasources)?;
        let client = GrafanaClient::with_transport(
            &args.grafana.grafana_url,
            auth,
            args.http_timeout,
            &transport,
        )?;
        Ok((
            client,
            Desired {
                datasources,
                dashboards,
            },
            applied,
        ))
    })();
    let (client, desired, applied) = match prepared {
        Ok(p) => p,
        Err(e) => {
            eprintln!("obs provision: {}", crate::redact::error(&e));
            return exit::USAGE;
        }
    };
    let waited = match provision::wait_healthy(&client, args.wait).await {
        Ok(waited) => waited,
        Err(e) => {
            eprintln!("obs provision: {e}");
            return exit::NOT_READY;
        }
    };
    let options = Options {
        dry_run: args.dry_run,
        prune: args.prune,
        skip_health_check: args.skip_health_check,
    };
    println!(
        "{} {} ({})",
        if args.dry_run {
            "Dry run against"
        } else {
            "Provisioning"
        },
        client.base(),
        client.auth().describe()
    );
    for (uid, what) in &applied.datasources {
        println!("  datasource {uid} gets the store's connection settings: {what}");
    }
    match provision::provision(&client, &desired, options, waited).await {
        Ok(report) => {
            print!("{report}");
            if report.succeeded() {
                exit::OK
            } else {
                exit::FAILED
            }
        }
        Err(ProvisionError::Auth(e)) => {
            eprintln!("obs provision: {e}");
            exit::AUTH
        }
        Err(e) => {
            eprintln!("obs provision: {e}");
            exit::FAILED
        }
    }
}

/// `obs provision --check`: every datasource and dashboard file validated offline, every
/// problem reported.
fn check_command(args: &ProvisionArgs) -> u8 {
    let lookup = |name: &str| std::env::var(name).ok();
    let checked = files::check(&args.datasources, &args.dashboards, &lookup);
    if checked.problems.is_empty() {
        println!(
            "All provisioning files are valid: {} datasources from {}, {} dashboards from {} (Grafana not contacted)",
            checked.datasources,
            args.datasources.display(),
            checked.dashboards,
            args.dashboards.display()
        );
        return exit::OK;
    }
    for problem in &checked.problems {
        eprintln!("obs provision --check: {}", crate::redact::text(problem));
    }
    eprintln!(
        "obs provision --check: {} problem(s) in the provisioning files",
        checked.problems.len()
    );
    exit::USAGE
}

async fn verify_command(args: VerifyArgs) -> u8 {
    // The CLI has no telemetry of its own: listen for the exporter's partial-success warnings.
    let _ = crate::verify::exporter_warnings::install();
    let (settings, format) = match crate::verify::Settings::from_args(&args) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("obs verify: {}", crate::redact::text(&e.to_string()));
            return exit::USAGE;
        }
    };
    match crate::verify::verify(&settings).await {
        Ok(report) => {
            match format {
                Format::Text => print!("{report}"),
                Format::Json => match serde_json::to_string_pretty(&report) {
                    Ok(json) => println!("{json}"),
                    Err(e) => {
                        eprintln!("obs verify: cannot render the report: {e}");
                        return exit::FAILED;
                    }
                },
            }
            verify_exit(&report)
        }
        Err(e) => {
            eprintln!("obs verify: {}", crate::redact::error(&e));
            exit::FAILED
        }
    }
}

/// 0 when it passed; 4 when a store refused obs (401, 403, no tenant: a setting fixes it,
/// whatever else failed); 1 otherwise.
pub fn verify_exit(report: &crate::verify::Report) -> u8 {
    let denied = report.checks.iter().any(|c| {
        c.status == crate::verify::Status::Fail && c.reason.is_some_and(|r| r.is_denial())
    });
    if report.passed {
        exit::OK
    } else if denied {
        exit::AUTH
    } else {
        exit::FAILED
    }
}

async fn sidecar_command(args: SidecarArgs) -> u8 {
    let telemetry = match platform_telemetry::builder()
        .service_name("obs")
        .service_version(env!("CARGO_PKG_VERSION"))
        .init()
    {
        Ok(guard) => guard,
        Err(e) => {
            eprintln!("obs sidecar: cannot start telemetry: {e}");
            return exit::FAILED;
        }
    };
    let prepared = (|| -> anyhow::Result<_> {
        let http_timeout = args.verify.http_timeout;
        let provision = if args.no_provision {
            None
        } else {
            check_url(&args.grafana.grafana_url)?;
            let auth = auth(&args.grafana)?;
            let transport = args.grafana.transport.resolve()?;
            let connections = args.verify.connections.resolve()?;
            let lookup = |name: &str| std::env::var(name).ok();
            let mut datasources = files::load_datasources(&args.verify.datasources_dir(), &lookup)?;
            files::check_correlations(&datasources)?;
            for (uid, what) in store_connections::apply(&mut datasources, &connections).datasources
            {
                tracing::info!(datasource = %uid, settings = %what, "datasource gets the store's connection settings");
            }
            let dashboards = files::load_dashboards(&args.dashboards, &datasources)?;
            let client = GrafanaClient::with_transport(
                &args.grafana.grafana_url,
                auth,
                http_timeout.max(std::time::Duration::from_secs(10)),
                &transport,
            )?;
            Some((
                client,
                Desired {
                    datasources,
                    dashboards,
                },
            ))
        };
        // Without a store the sidecar provisions and serves, and says it does not verify.
        let verify = match crate::verify::Settings::from_args(&args.verify) {
            Ok((verify, _)) => Some(verify),
            Err(crate::verify::UsageError::NoStore) => None,
            Err(e) => return Err(e.into()),
        };
        Ok(crate::sidecar::SidecarConfig {
            provision,
            grafana_wait: args.wait,
            verify,
            interval: args.interval,
        })
    })();
    let config = match prepared {
        Ok(c) => c,
        Err(e) => {
            let e = crate::redact::error(&e);
            tracing::error!(error = %e, "obs sidecar: bad configuration");
            eprintln!("obs sidecar: {e}");
            return exit::USAGE;
        }
    };
    let listener = match tokio::net::TcpListener::bind(args.listen).await {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!(
                "obs sidecar: --listen (OBS_LISTEN) {}: cannot listen there ({e}); give a local address and a free port, e.g. 0.0.0.0:9464",
                args.listen
            );
            return exit::USAGE;
        }
    };
    let result = crate::sidecar::run(listener, config, telemetry.telemetry().clone()).await;
    drop(telemetry);
    match result {
        Ok(()) => exit::OK,
        Err(e) => {
            eprintln!("obs sidecar: {}", crate::redact::error(&e));
            exit::FAILED
        }
    }
}
