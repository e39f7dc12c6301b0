//! A private primary with one asynchronous replica (`ReplicatedPair`) for tests that are not
//! Rust (the PHP tests), driven over stdin/stdout, one line each:
//! - on start it prints `primary <server URL>` and `replica <server URL>`, then `ready`; or
//!   `error <why>` and exits 1 when the pair cannot be started;
//! - `delay <seconds>` makes the replica apply events that late (`ok`, or `error <why>`);
//! - `kill-replica` kills the replica (`ok`);
//! - `stop`, or the end of stdin (the test process is gone), stops both servers, removes their
//!   directories and exits 0.

use ezdb_testdb::ReplicatedPair;
use std::io::{BufRead, Write};

fn main() {
    let mut pair = match ReplicatedPair::start("replicated-pair") {
        Ok(pair) => pair,
        Err(e) => {
            let why = e.replace('\n', " ");
            println!("error cannot start a private primary with a replica: {why}");
            eprintln!("ezdb-replicated-pair: cannot start a private primary with a replica: {e}");
            std::process::exit(1);
        }
    };
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "primary {}", pair.primary.url());
    let _ = writeln!(out, "replica {}", pair.replica.url());
    let _ = writeln!(out, "ready");
    let _ = out.flush();
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        let reply = match line.split_whitespace().collect::<Vec<_>>().as_slice() {
            ["stop"] => break,
            ["delay", seconds] => match seconds.parse::<u32>() {
                Ok(seconds) => pair.set_delay(seconds).map(|()| "ok".to_owned()),
                Err(e) => Err(format!("delay takes whole seconds, not {seconds:?}: {e}")),
            },
            ["kill-replica"] => {
                pair.replica.kill();
                Ok("ok".to_owned())
            }
            _ => Err(format!("unknown command {line:?}; known: delay N, kill-replica, stop")),
        };
        let reply = reply.unwrap_or_else(|e| format!("error {}", e.replace('\n', " ")));
        let _ = writeln!(out, "{reply}");
        let _ = out.flush();
    }
    drop(pair);
}
