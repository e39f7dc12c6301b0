//! A private 3-node MariaDB Galera cluster on loopback (galera-4 from Debian), built from
//! `PrivateServer`s: node 1 bootstraps, the others join by rsync state transfer. Nodes can be
//! SIGKILLed and restarted (they rejoin by incremental state transfer from the gcache).

use crate::private_server::{find_binary, free_ports, install_datadir, is_root, temp_dir, PrivateServer};
use std::process::Command;
use std::time::{Duration, Instant};

/// The cache of replicated write-sets each node keeps so a rejoining node gets the missed
/// ones (IST) instead of a full copy (SST): big enough for every test write of a run.
const GCACHE_SIZE: &str = "256M";

/// One node: the server and its Galera ports.
pub struct GaleraNode {
    pub server: PrivateServer,
    /// Group communication (gmcast) port.
    pub galera_port: u16,
}

/// A running cluster; dropping it kills every node and removes their directories.
pub struct GaleraCluster {
    pub nodes: Vec<GaleraNode>,
}

impl GaleraCluster {
    /// Starts `size` nodes and waits until every one is Synced in a cluster of `size`.
    pub fn start(label: &str, size: usize, extra_args: &[&str]) -> Result<GaleraCluster, String> {
        let provider = galera_provider()?;
        let ports = free_ports(size * 4)?;
        let address: Vec<String> = (0..size).map(|i| format!("127.0.0.1:{}", ports[i * 4 + 1])).collect();
        let cluster_address = format!("gcomm://{}", address.join(","));
        let cluster_name = format!("ezdb-{label}-{}", std::process::id());
        let mut nodes = Vec::new();
        for i in 0..size {
            let (sql, galera, ist, sst) = (ports[i * 4], ports[i * 4 + 1], ports[i * 4 + 2], ports[i * 4 + 3]);
            let dir = temp_dir(&format!("{label}-n{}", i + 1))?;
            let datadir = dir.join("data");
            if i == 0 {
                install_datadir(&datadir, &dir.join("tmp"))?;
            } else {
                // Filled by the state transfer. The rsync daemon of a server running as root
                // writes as `nobody`: the joiner's datadir must belong to it.
                std::fs::create_dir_all(&datadir).map_err(|e| format!("cannot create {}: {e}", datadir.display()))?;
                if is_root() {
                    let chown = Command::new("chown").arg("nobody").arg(&datadir).status();
                    if !chown.is_ok_and(|s| s.success()) {
                        return Err(format!("cannot chown {} to nobody", datadir.display()));
                    }
                }
            }
            let options = format!(
                "gmcast.listen_addr=tcp://127.0.0.1:{galera}; ist.recv_addr=127.0.0.1:{ist}; \
                 gcache.size={GCACHE_SIZE}; evs.suspect_timeout=PT3S; evs.inactive_timeout=PT6S; \
                 evs.install_timeout=PT4S; pc.wait_prim_timeout=PT10S"
            );
            let mut args: Vec<String> = vec![
                "--wsrep-on=ON".into(),
                format!("--wsrep-provider={provider}"),
                format!("--wsrep-cluster-name={cluster_name}"),
                format!("--wsrep-cluster-address={cluster_address}"),
                format!("--wsrep-node-address=127.0.0.1:{galera}"),
                format!("--wsrep-node-incoming-address=127.0.0.1:{sql}"),
                format!("--wsrep-node-name=node{}", i + 1),
                format!("--wsrep-provider-options={options}"),
                "--wsrep-sst-method=rsync".into(),
                format!("--wsrep-sst-receive-address=127.0.0.1:{sst}"),
                "--binlog-format=ROW".into(),
                "--innodb-autoinc-lock-mode=2".into(),
                "--default-storage-engine=InnoDB".into(),
                // Far below the 2 GiB default: a file larger than this must still store,
                // replace and purge (ezdb replicates large transactions in fragments).
                "--wsrep-max-ws-size=8388608".into(),
                "--max-allowed-packet=64M".into(),
            ];
            if i == 0 {
                args.push("--wsrep-new-cluster".into());
            }
            args.extend(extra_args.iter().map(|s| s.to_string()));
            let arg_refs: Vec<&str> = args.iter().map(String::as_str).collect();
            let mut server = PrivateServer::prepare(&format!("{label} node{}", i + 1), dir, sql, &arg_refs)?;
            server.launch()?;
            // One node at a time: a joiner needs a Synced donor.
            wait_synced(&mut server, START_DEADLINE_PER_NODE)?;
            if i == 0 {
                server.drop_arg("--wsrep-new-cluster"); // a restart joins, never bootstraps anew
            }
            nodes.push(GaleraNode {
                server,
                galera_port: galera,
            });
        }
        let cluster = GaleraCluster { nodes };
        for i in 0..size {
            cluster.wait_cluster_size(i, size, Duration::from_secs(30))?;
        }
        Ok(cluster)
    }

    /// `mysql://root@127.0.0.1:PORT` of node `i`.
    pub fn url(&self, i: usize) -> String {
        self.nodes[i].server.url()
    }

    /// A server URL naming every node: `mysql://root@127.0.0.1:P1,127.0.0.1:P2,...`.
    pub fn multi_host_url(&self) -> String {
        let hosts: Vec<String> = self
            .nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.server.port()))
            .collect();
        format!("mysql://root@{}", hosts.join(","))
    }

    /// SIGKILLs node `i` (its datadir stays, for `restart`).
    pub fn kill(&mut self, i: usize) {
        self.nodes[i].server.kill();
    }

    /// Restarts a killed node and waits until it is Synced again. As a service manager does
    /// (galera_recovery), it first recovers the node's last committed position from InnoDB, so
    /// the node catches up by IST from a donor's gcache instead of a full state transfer.
    pub fn restart(&mut self, i: usize) -> Result<(), String> {
        let server = &mut self.nodes[i].server;
        let datadir = server.dir().join("data");
        if is_root() {
            // Files the root server created since the join must stay writable by a state
            // transfer's rsync daemon, which writes as nobody.
            let _ = Command::new("chown").arg("-R").arg("nobody").arg(&datadir).status();
        }
        let log = server.run_once(&["--wsrep-recover"], "recover.log")?;
        let position = log
            .lines()
            .filter_map(|line| line.split("WSREP: Recovered position: ").nth(1))
            .next_back()
            .map(|p| p.trim().to_owned())
            .ok_or_else(|| format!("--wsrep-recover named no position:\n{log}"))?;
        server.set_arg("--wsrep-start-position=", format!("--wsrep-start-position={position}"));
        server.launch()?;
        wait_synced(server, START_DEADLINE_PER_NODE)
    }

    /// Waits until node `i` sees a primary component of `size` nodes.
    pub fn wait_cluster_size(&self, i: usize, size: usize, deadline: Duration) -> Result<(), String> {
        let url = self.url(i);
        let until = Instant::now() + deadline;
        loop {
            let seen = crate::block_on(status_values(
                url.clone(),
                vec!["wsrep_cluster_size", "wsrep_cluster_status"],
            ));
            if let Ok(values) = &seen {
                if values[0] == size.to_string() && values[1] == "Primary" {
                    return Ok(());
                }
            }
            if Instant::now() > until {
                return Err(self.nodes[i].server.failure(&format!(
                    "did not see a primary cluster of {size} nodes within {} s (last: {seen:?})",
                    deadline.as_secs()
                )));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

/// A node's first start includes a state transfer; allow for a loaded machine.
const START_DEADLINE_PER_NODE: Duration = Duration::from_secs(120);

/// Waits until the server answers and reports `wsrep_local_state_comment = Synced`.
fn wait_synced(server: &mut PrivateServer, deadline: Duration) -> Result<(), String> {
    let until = Instant::now() + deadline;
    server.wait_until_answering(deadline)?;
    let url = server.url();
    loop {
        let state = crate::block_on(status_values(
            url.clone(),
            vec!["wsrep_local_state_comment", "wsrep_ready"],
        ));
        if matches!(&state, Ok(v) if v[0] == "Synced" && v[1] == "ON") {
            return Ok(());
        }
        if !server.is_running() {
            return Err(server.failure("exited while joining the cluster"));
        }
        if Instant::now() > until {
            return Err(server.failure(&format!(
                "was not Synced within {} s (last: {state:?})",
                deadline.as_secs()
            )));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The values of global status variables `names`, in order ("" when absent).
async fn status_values(url: String, names: Vec<&'static str>) -> Result<Vec<String>, String> {
    use sqlx::{Connection, Row};
    let connecting = sqlx::mysql::MySqlConnection::connect(&url);
    let mut conn = tokio::time::timeout(Duration::from_secs(5), connecting)
        .await
        .map_err(|_| "connect timed out".to_owned())?
        .map_err(|e| e.to_string())?;
    let rows = sqlx::query("SHOW GLOBAL STATUS LIKE 'wsrep%'")
        .fetch_all(&mut conn)
        .await
        .map_err(|e| e.to_string())?;
    let _ = conn.close().await;
    Ok(names
        .iter()
        .map(|name| {
            rows.iter()
                .find(|r| r.get::<String, _>(0) == *name)
                .map(|r| r.get::<String, _>(1))
                .unwrap_or_default()
        })
        .collect())
}

/// The galera-4 provider library, installed from Debian when missing.
fn galera_provider() -> Result<String, String> {
    const CANDIDATES: [&str; 3] = [
        "/usr/lib/galera/libgalera_smm.so",
        "/usr/lib/libgalera_smm.so",
        "/usr/lib/x86_64-linux-gnu/galera/libgalera_smm.so",
    ];
    let found = || CANDIDATES.iter().find(|p| std::path::Path::new(p).is_file());
    if found().is_none() && is_root() {
        let _ = Command::new("apt-get").args(["update", "-q"]).status();
        let _ = Command::new("apt-get")
            .args(["install", "-y", "-q", "galera-4", "rsync"])
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status();
    }
    if find_binary(&["rsync"], &[]).is_none() {
        return Err("no rsync on PATH (the state transfer of a joining node needs it): apt-get install rsync".into());
    }
    found()
        .map(|p| p.to_string())
        .ok_or_else(|| "no Galera provider (libgalera_smm.so): install the Debian package galera-4".to_owned())
}
