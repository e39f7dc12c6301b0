//! A throwaway `mariadbd` the test starts itself: its own temp directory (datadir, tmpdir,
//! socket, error log), a free loopback port, root without a password. Killed and removed on
//! `stop` or drop; a watchdog shell kills it too when the test process dies without dropping it.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How long a starting server may take before the start is reported as failed.
pub const START_DEADLINE: Duration = Duration::from_secs(90);

/// Options every private server gets: loopback only, small InnoDB files (fast install and
/// start), no durability against an OS crash (the data is thrown away anyway).
const BASE_OPTIONS: [&str; 6] = [
    "--bind-address=127.0.0.1",
    "--skip-name-resolve",
    "--innodb-buffer-pool-size=32M",
    "--innodb-log-file-size=8M",
    "--innodb-flush-log-at-trx-commit=2",
    "--max-connections=300",
];

/// A running private server; see the module comment.
pub struct PrivateServer {
    label: String,
    dir: PathBuf,
    port: u16,
    binary: PathBuf,
    args: Vec<String>,
    process: Option<Running>,
}

/// The watchdog shell and the server it started.
struct Running {
    /// `sh` waiting on the server; it exits with the server.
    shell: Child,
    /// Closing it makes the watchdog SIGKILL the server (also when this process dies).
    watchdog: Option<ChildStdin>,
    server_pid: u32,
}

impl PrivateServer {
    /// Installs a fresh datadir and starts a server with `extra_args` appended to the defaults
    /// (e.g. `&["--max-allowed-packet=1M"]`); returns once `SELECT 1` works as root.
    pub fn start(label: &str, extra_args: &[&str]) -> Result<PrivateServer, String> {
        let dir = temp_dir(label)?;
        let install = install_datadir(&dir.join("data"), &dir.join("tmp"));
        let mut last_error = String::new();
        if let Err(e) = install {
            let _ = std::fs::remove_dir_all(&dir);
            return Err(format!("private server '{label}': {e}"));
        }
        // A free port can be taken by another process before the server binds it: try again.
        for _ in 0..3 {
            let port = free_ports(1)?[0];
            let mut server = PrivateServer::prepare(label, dir.clone(), port, extra_args)?;
            match server
                .launch()
                .and_then(|()| server.wait_until_answering(START_DEADLINE))
            {
                Ok(()) => return Ok(server),
                Err(e) => {
                    let bind_failed = server.error_log_tail(40).contains("Bind on TCP/IP port");
                    server.kill();
                    std::mem::forget(server); // keep the datadir for the next try
                    last_error = e;
                    if !bind_failed {
                        break;
                    }
                }
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
        Err(last_error)
    }

    /// A server in `dir` (which holds or will hold `data/`, `tmp/`, the socket and the log)
    /// listening on `port`, not started yet. The Galera fixture uses this directly.
    pub(crate) fn prepare(label: &str, dir: PathBuf, port: u16, extra_args: &[&str]) -> Result<PrivateServer, String> {
        let binary = server_binary().ok_or_else(|| {
            "no mariadbd (or mysqld) on PATH nor in /usr/sbin: install the Debian package mariadb-server".to_owned()
        })?;
        std::fs::create_dir_all(dir.join("tmp")).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let mut args: Vec<String> = vec![
            "--no-defaults".into(),
            format!("--datadir={}", dir.join("data").display()),
            // Its own tmpdir: a starting server deletes every #sql* file in its tmpdir.
            format!("--tmpdir={}", dir.join("tmp").display()),
            format!("--socket={}", dir.join("mysqld.sock").display()),
            format!("--pid-file={}", dir.join("mysqld.pid").display()),
            format!("--log-error={}", dir.join("err.log").display()),
            format!("--port={port}"),
        ];
        if is_root() {
            args.push("--user=root".into());
        }
        args.extend(BASE_OPTIONS.iter().map(|s| s.to_string()));
        args.extend(extra_args.iter().map(|s| s.to_string()));
        Ok(PrivateServer {
            label: label.to_owned(),
            dir,
            port,
            binary,
            args,
            process: None,
        })
    }

    /// `mysql://root@127.0.0.1:PORT`: root, no password, may create databases.
    pub fn url(&self) -> String {
        format!("mysql://root@127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's directory (datadir in `data/`, error log `err.log`).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// True while the server process runs.
    pub fn is_running(&mut self) -> bool {
        match &mut self.process {
            Some(running) => matches!(running.shell.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Kills the server and removes its directory.
    pub fn stop(self) {
        drop(self);
    }

    /// SIGKILLs the server and waits until it is gone; the datadir stays, `launch` restarts it.
    pub fn kill(&mut self) {
        if let Some(mut running) = self.process.take() {
            drop(running.watchdog.take()); // EOF: the watchdog sends SIGKILL
            let deadline = Instant::now() + Duration::from_secs(30);
            while matches!(running.shell.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            if matches!(running.shell.try_wait(), Ok(None)) {
                let _ = Command::new("kill")
                    .args(["-9", &running.server_pid.to_string()])
                    .status();
                let _ = running.shell.kill();
                let _ = running.shell.wait();
            }
        }
    }

    /// Starts the server process on the prepared datadir (after `prepare` or `kill`) without
    /// waiting for it to answer.
    pub(crate) fn launch(&mut self) -> Result<(), String> {
        self.kill();
        // The server is started by a watchdog shell that holds our pipe on fd 3 and SIGKILLs
        // the server when the pipe closes: on `kill`, and when this process dies unannounced.
        let script = r#"exec 3<&0
"$@" </dev/null >/dev/null 2>&1 3<&- &
server=$!
echo "$server"
(read _ <&3; kill -9 "$server" 2>/dev/null) &
exec 3<&-
wait "$server""#;
        let mut shell = Command::new("sh")
            .arg("-c")
            .arg(script)
            .arg("ezdb-private-server")
            .arg(&self.binary)
            .args(&self.args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("private server '{}': cannot run sh: {e}", self.label))?;
        let mut first_line = String::new();
        let stdout = shell.stdout.take().expect("piped stdout");
        let _ = BufReader::new(stdout).read_line(&mut first_line);
        let server_pid = first_line.trim().parse().map_err(|_| {
            format!(
                "private server '{}': the watchdog shell did not report the server pid",
                self.label
            )
        })?;
        let watchdog = shell.stdin.take();
        self.process = Some(Running {
            shell,
            watchdog,
            server_pid,
        });
        Ok(())
    }

    /// Polls `SELECT 1` until it answers, the server exits, or `deadline` passes.
    pub(crate) fn wait_until_answering(&mut self, deadline: Duration) -> Result<(), String> {
        let url = self.url();
        let until = Instant::now() + deadline;
        loop {
            if !self.is_running() {
                return Err(self.failure("exited while starting"));
            }
            match crate::block_on(probe(url.clone())) {
                Ok(()) => return Ok(()),
                Err(e) if Instant::now() > until => {
                    return Err(self.failure(&format!("did not answer within {} s ({e})", deadline.as_secs())));
                }
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    }

    /// A message naming the server, what happened, and the end of its error log.
    pub(crate) fn failure(&self, what: &str) -> String {
        format!(
            "private server '{}' ({}, port {}) {what}; end of {}:\n{}",
            self.label,
            self.binary.display(),
            self.port,
            self.dir.join("err.log").display(),
            self.error_log_tail(20)
        )
    }

    /// The last `lines` lines of the server's error log.
    pub fn error_log_tail(&self, lines: usize) -> String {
        let log = std::fs::read_to_string(self.dir.join("err.log")).unwrap_or_default();
        let all: Vec<&str> = log.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

impl Drop for PrivateServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

async fn probe(url: String) -> Result<(), String> {
    use sqlx::Connection;
    let connecting = sqlx::mysql::MySqlConnection::connect(&url);
    let mut conn = tokio::time::timeout(Duration::from_secs(5), connecting)
        .await
        .map_err(|_| "connect timed out".to_owned())?
        .map_err(|e| e.to_string())?;
    sqlx::query("SELECT 1")
        .execute(&mut conn)
        .await
        .map_err(|e| e.to_string())?;
    let _ = conn.close().await;
    Ok(())
}

/// Runs `mariadb-install-db` into `datadir`: root with an empty password, no test database.
pub(crate) fn install_datadir(datadir: &Path, tmpdir: &Path) -> Result<(), String> {
    let install_db = find_binary(
        &["mariadb-install-db", "mysql_install_db"],
        &["/usr/bin", "/usr/local/bin"],
    )
    .ok_or_else(|| {
        "no mariadb-install-db (or mysql_install_db) on PATH: install the Debian package mariadb-server".to_owned()
    })?;
    std::fs::create_dir_all(tmpdir).map_err(|e| format!("cannot create {}: {e}", tmpdir.display()))?;
    let mut command = Command::new(&install_db);
    command
        .arg("--no-defaults")
        .arg(format!("--datadir={}", datadir.display()))
        .arg(format!("--tmpdir={}", tmpdir.display()))
        .args([
            "--auth-root-authentication-method=normal",
            "--skip-test-db",
            "--innodb-log-file-size=8M",
            "--innodb-buffer-pool-size=32M",
        ]);
    if is_root() {
        command.arg("--user=root");
    }
    let output = command
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {}: {e}", install_db.display()))?;
    if !output.status.success() {
        return Err(format!(
            "{} failed ({}):\n{}{}",
            install_db.display(),
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    Ok(())
}

/// A new empty directory `ezdb-<label>-<unique>` under the temp dir, short enough for a socket path.
pub(crate) fn temp_dir(label: &str) -> Result<PathBuf, String> {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let mut base = std::env::temp_dir();
    if base.as_os_str().len() > 50 {
        base = PathBuf::from("/tmp"); // a Unix socket path must stay under 108 bytes
    }
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let safe: String = label
        .chars()
        .take(20)
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    let dir = base.join(format!(
        "ezdb-{safe}-{}-{}-{nanos:x}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    Ok(dir)
}

/// `count` distinct TCP ports that were free on 127.0.0.1 a moment ago.
pub(crate) fn free_ports(count: usize) -> Result<Vec<u16>, String> {
    let listeners: Vec<TcpListener> = (0..count)
        .map(|_| TcpListener::bind("127.0.0.1:0"))
        .collect::<Result<_, _>>()
        .map_err(|e| format!("cannot find a free port on 127.0.0.1: {e}"))?;
    listeners
        .iter()
        .map(|l| l.local_addr().map(|a| a.port()))
        .collect::<Result<_, _>>()
        .map_err(|e| format!("cannot find a free port on 127.0.0.1: {e}"))
}

fn server_binary() -> Option<PathBuf> {
    find_binary(&["mariadbd", "mysqld"], &["/usr/sbin", "/usr/local/sbin"])
}

/// The first of `names` found on PATH or in `extra_dirs`.
pub(crate) fn find_binary(names: &[&str], extra_dirs: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let dirs: Vec<PathBuf> = std::env::split_paths(&path)
        .chain(extra_dirs.iter().map(PathBuf::from))
        .collect();
    names
        .iter()
        .flat_map(|name| dirs.iter().map(move |dir| dir.join(name)))
        .find(|candidate| candidate.is_file())
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}
