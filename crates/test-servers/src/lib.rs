//! Real servers for tests: Debian's `postgresql`, `redis-server` and `nats-server`, each started
//! on a free loopback port in a fresh state and killed when its [`Process`] is dropped. Not
//! doubles: the programs the services talk to in production. A test that needs one fails (never
//! skips) when it is not installed; `scripts/test.sh` installs them.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Stdio;
use std::time::{Duration, Instant};

/// A free loopback port (bound, then released).
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

/// A child process killed when dropped; its output is kept for failure messages.
pub struct Process {
    /// What the process is, for failure messages.
    pub name: String,
    child: std::process::Child,
    log: std::path::PathBuf,
}

impl std::fmt::Debug for Process {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Process({} pid {})", self.name, self.child.id())
    }
}

impl Process {
    /// The operating system's id of the process.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What the process wrote so far (stdout and stderr).
    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log);
    }
}

/// Starts `program args` with `env` (plus PATH) and output captured to a temp file.
pub fn spawn(name: &str, program: &str, args: &[&str], env: &[(&str, &str)]) -> Process {
    let log = std::env::temp_dir().join(format!(
        "pt-{name}-{}-{}.log",
        std::process::id(),
        free_port()
    ));
    let file = std::fs::File::create(&log).expect("log file");
    let child = std::process::Command::new(program)
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(file.try_clone().expect("log file"))
        .stderr(file)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {program} ({name}): {e}"));
    Process {
        name: name.to_string(),
        child,
        log,
    }
}

/// Polls until a TCP connection to `127.0.0.1:port` succeeds.
pub async fn wait_tcp(port: u16, process: &Process) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut delay = Duration::from_millis(20);
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        assert!(
            Instant::now() < deadline,
            "{} never listened on {port}; its output:\n{}",
            process.name,
            process.output()
        );
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_millis(500));
    }
}

/// A real nats-server on a free loopback port. Fails (never skips) when it is not installed.
pub async fn start_nats() -> (Process, String) {
    assert!(
        std::process::Command::new("nats-server")
            .arg("--version")
            .output()
            .is_ok(),
        "nats-server is not installed: run scripts/test.sh (apt-get install nats-server)"
    );
    let port = free_port();
    let port_text = port.to_string();
    let nats = spawn(
        "nats-server",
        "nats-server",
        &["-a", "127.0.0.1", "-p", &port_text],
        &[],
    );
    wait_tcp(port, &nats).await;
    (nats, format!("nats://127.0.0.1:{port}"))
}

/// The directory of the newest installed PostgreSQL's server programs (`initdb`, `postgres`).
fn postgres_bin() -> std::path::PathBuf {
    let mut versions: Vec<std::path::PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|dir| {
            dir.filter_map(|e| e.ok())
                .map(|e| e.path().join("bin"))
                .collect()
        })
        .unwrap_or_default();
    versions.retain(|bin| bin.join("initdb").is_file());
    versions.sort();
    versions.pop().unwrap_or_else(|| {
        panic!("PostgreSQL is not installed: run scripts/test.sh (apt-get install postgresql)")
    })
}

/// A real PostgreSQL (Debian's package) on a free loopback port, trusting local connections,
/// in a fresh data directory. As root it runs as the `postgres` user (the server refuses root),
/// through `setpriv`, which becomes the server (where `runuser` would stay its parent, and
/// killing it would leave the server running).
/// Fails (never skips) when it is not installed. Keep the directory alive as long as the server.
pub async fn start_postgres() -> (Process, String, tempfile::TempDir) {
    let bin = postgres_bin();
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    let root = std::process::Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    let as_postgres = |program: &std::path::Path| -> Vec<String> {
        let program = program.display().to_string();
        if root {
            vec![
                "setpriv".into(),
                "--reuid=postgres".into(),
                "--regid=postgres".into(),
                "--clear-groups".into(),
                "--".into(),
                program,
            ]
        } else {
            vec![program]
        }
    };
    if root {
        let status = std::process::Command::new("chown")
            .args(["postgres:postgres", &dir.path().display().to_string()])
            .status()
            .expect("chown");
        assert!(
            status.success(),
            "cannot give the data directory to postgres"
        );
    }
    let initdb = as_postgres(&bin.join("initdb"));
    let out = std::process::Command::new(&initdb[0])
        .args(&initdb[1..])
        .args([
            "-D",
            &data.display().to_string(),
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
        ])
        .output()
        .expect("initdb");
    assert!(
        out.status.success(),
        "initdb failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let port = free_port();
    let server = as_postgres(&bin.join("postgres"));
    let mut args: Vec<String> = server[1..].to_vec();
    args.extend([
        "-D".into(),
        data.display().to_string(),
        "-p".into(),
        port.to_string(),
        "-k".into(),
        dir.path().display().to_string(),
        "-c".into(),
        "listen_addresses=127.0.0.1".into(),
        "-c".into(),
        "fsync=off".into(),
    ]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let process = spawn("postgres", &server[0], &args, &[]);
    wait_tcp(port, &process).await;
    (
        process,
        format!("postgres://postgres@127.0.0.1:{port}/postgres"),
        dir,
    )
}

/// A real redis-server (Debian's package) on a free loopback port, persisting nothing. Fails
/// (never skips) when it is not installed.
pub async fn start_redis() -> (Process, String) {
    assert!(
        std::process::Command::new("redis-server")
            .arg("--version")
            .output()
            .is_ok(),
        "redis-server is not installed: run scripts/test.sh (apt-get install redis-server)"
    );
    let port = free_port();
    let port_text = port.to_string();
    let redis = spawn(
        "redis-server",
        "redis-server",
        &[
            "--port",
            &port_text,
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ],
        &[],
    );
    wait_tcp(port, &redis).await;
    (redis, format!("redis://127.0.0.1:{port}"))
}
