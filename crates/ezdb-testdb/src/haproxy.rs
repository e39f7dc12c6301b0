//! HAProxy on loopback in front of a [`GaleraCluster`], run from the shipped deploy example
//! (`deploy/haproxy.cfg` and `deploy/galera-check.sh`) exactly as a site installs it: only the
//! addresses, given by the environment as the file expects, are the test's. Killed and its
//! directory removed on drop.

use crate::private_server::{find_binary, free_ports, is_root, temp_dir};
use crate::GaleraCluster;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const SHIPPED_CONFIG: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../deploy/haproxy.cfg");
const SHIPPED_CHECK: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../deploy/galera-check.sh");

/// A running HAProxy; `url()` is where clients connect.
pub struct Haproxy {
    child: Child,
    dir: PathBuf,
    port: u16,
    stats_port: u16,
}

impl Haproxy {
    /// Starts HAProxy with the shipped configuration in front of `nodes` of `cluster`, in that
    /// order (the first is the active server, the others its backups). The health check logs in
    /// as `check_user` / `check_password` (a user the caller created on the cluster).
    pub fn start(
        cluster: &GaleraCluster,
        nodes: [usize; 3],
        check_user: &str,
        check_password: &str,
    ) -> Result<Haproxy, String> {
        let binary = haproxy_binary()?;
        let dir = temp_dir("haproxy")?;
        let check = dir.join("galera-check.sh");
        std::fs::copy(SHIPPED_CHECK, &check).map_err(|e| format!("cannot copy {SHIPPED_CHECK}: {e}"))?;
        std::fs::write(
            dir.join("galera-check.cnf"),
            format!("[client]\nuser={check_user}\npassword={check_password}\n"),
        )
        .map_err(|e| format!("cannot write galera-check.cnf: {e}"))?;
        // The check runs as the `haproxy` user when HAProxy starts as root: it must reach the
        // copied script and its credentials (a test password) in this directory.
        set_mode(&dir, 0o755)?;
        set_mode(&check, 0o755)?;
        set_mode(&dir.join("galera-check.cnf"), 0o644)?;
        let mut config = std::fs::read_to_string(SHIPPED_CONFIG)
            .map_err(|e| format!("cannot read the shipped {SHIPPED_CONFIG}: {e}"))?;
        if !is_root() {
            // Only root may switch to the haproxy user; everything else stays as shipped.
            config = config
                .lines()
                .filter(|l| !matches!(l.split_whitespace().next(), Some("user" | "group")))
                .map(|l| format!("{l}\n"))
                .collect();
        }
        let config_path = dir.join("haproxy.cfg");
        std::fs::write(&config_path, config).map_err(|e| format!("cannot write haproxy.cfg: {e}"))?;
        let ports = free_ports(2)?;
        let (port, stats_port) = (ports[0], ports[1]);
        let node = |i: usize| format!("127.0.0.1:{}", cluster.nodes[nodes[i]].server.port());
        let log =
            std::fs::File::create(dir.join("haproxy.log")).map_err(|e| format!("cannot create haproxy.log: {e}"))?;
        let log2 = log.try_clone().map_err(|e| e.to_string())?;
        let child = Command::new(&binary)
            .arg("-db")
            .arg("-f")
            .arg(&config_path)
            .env("EZDB_DB_LISTEN", format!("127.0.0.1:{port}"))
            .env("EZDB_DB_STATS", format!("127.0.0.1:{stats_port}"))
            .env("GALERA_NODE1", node(0))
            .env("GALERA_NODE2", node(1))
            .env("GALERA_NODE3", node(2))
            .env("GALERA_CHECK", &check)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2)
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", binary.display()))?;
        let mut haproxy = Haproxy {
            child,
            dir,
            port,
            stats_port,
        };
        haproxy.wait_for(Duration::from_secs(20), |states| {
            states.len() == 3 && states.iter().all(|(_, s)| s == "UP")
        })?;
        Ok(haproxy)
    }

    /// `mysql://root@127.0.0.1:PORT`: the cluster through the balancer.
    pub fn url(&self) -> String {
        format!("mysql://root@127.0.0.1:{}", self.port)
    }

    /// (server name, status) of each Galera server, from the stats page (`UP`, `DOWN`, ...).
    pub fn server_states(&self) -> Result<Vec<(String, String)>, String> {
        let mut stream =
            std::net::TcpStream::connect(("127.0.0.1", self.stats_port)).map_err(|e| format!("stats page: {e}"))?;
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .map_err(|e| e.to_string())?;
        stream
            .write_all(b"GET /;csv HTTP/1.0\r\nHost: localhost\r\n\r\n")
            .map_err(|e| format!("stats page: {e}"))?;
        let mut response = String::new();
        stream
            .read_to_string(&mut response)
            .map_err(|e| format!("stats page: {e}"))?;
        // CSV columns: pxname, svname, ..., status (18th).
        Ok(response
            .lines()
            .map(|l| l.split(',').collect::<Vec<_>>())
            .filter(|f| f.len() > 17 && f[0] == "galera" && f[1].starts_with("node"))
            .map(|f| (f[1].to_owned(), f[17].to_owned()))
            .collect())
    }

    /// Waits until the server states satisfy `done`; the error shows the last states and log.
    pub fn wait_for(
        &mut self,
        deadline: Duration,
        done: impl Fn(&[(String, String)]) -> bool,
    ) -> Result<Vec<(String, String)>, String> {
        let until = Instant::now() + deadline;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("haproxy exited ({status}):\n{}", self.log()));
            }
            let states = self.server_states();
            if let Ok(states) = &states {
                if done(states) {
                    return Ok(states.clone());
                }
            }
            if Instant::now() > until {
                return Err(format!(
                    "haproxy: servers not as expected within {} s (last: {states:?}); log:\n{}",
                    deadline.as_secs(),
                    self.log()
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// HAProxy's own log (its stdout and stderr).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("haproxy.log")).unwrap_or_default()
    }
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn set_mode(path: &Path, mode: u32) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(|e| format!("cannot chmod {}: {e}", path.display()))
}

/// The haproxy program (Debian: /usr/sbin/haproxy), installed from Debian when missing and
/// root; the health check also needs the mariadb client.
fn haproxy_binary() -> Result<PathBuf, String> {
    let find = || find_binary(&["haproxy"], &["/usr/sbin", "/usr/local/sbin"]);
    if find().is_none() && is_root() {
        let _ = Command::new("apt-get")
            .args(["install", "-y", "-q", "haproxy"])
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status();
    }
    let binary = find().ok_or_else(|| {
        "no haproxy program (the balancer of the HAProxy deploy example): run the tests through \
         scripts/test.sh, which installs it, or apt-get install haproxy"
            .to_owned()
    })?;
    if find_binary(&["mariadb"], &[]).is_none() {
        return Err(
            "no mariadb client on PATH (deploy/galera-check.sh runs it): apt-get install mariadb-client".into(),
        );
    }
    Ok(binary)
}
