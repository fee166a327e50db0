//! A PostgreSQL server for the tests: the one `MDM_TEST_POSTGRES` names
//! (`postgres://USER@HOST:PORT/DB`), else a throwaway cluster started from
//! Debian's `postgresql` binaries on 127.0.0.1 (as the `postgres` system user
//! when run as root: the server refuses root) and stopped when dropped.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A server to connect to; a started cluster stops on drop.
pub struct Server {
    url: String,
    cluster: Option<(PathBuf, PathBuf, tempfile::TempDir)>,
}

/// Schemas made by this test process (unique across its servers, which may
/// be one shared server).
static SCHEMAS: AtomicUsize = AtomicUsize::new(0);

fn bin_dir() -> PathBuf {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL binaries: apt-get install postgresql, or set MDM_TEST_POSTGRES")
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|d| d.join("initdb").is_file())
        .collect();
    dirs.sort();
    dirs.pop().expect("no /usr/lib/postgresql/*/bin/initdb")
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status").is_ok_and(|s| {
        s.lines()
            .find(|l| l.starts_with("Uid:"))
            .and_then(|l| l.split_whitespace().nth(1))
            == Some("0")
    })
}

/// `program args…`, as the `postgres` user when we are root.
fn run(program: PathBuf, args: &[&str]) {
    let mut cmd = if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(&program);
        c
    } else {
        Command::new(&program)
    };
    let out = cmd.args(args).output().expect("run a PostgreSQL program");
    assert!(
        out.status.success(),
        "{} {args:?}: {}{}",
        program.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

impl Server {
    /// The configured server, or a fresh throwaway cluster.
    pub fn start() -> Self {
        if let Ok(url) = std::env::var("MDM_TEST_POSTGRES") {
            return Self { url, cluster: None };
        }
        let bin = bin_dir();
        let dir = tempfile::Builder::new()
            .prefix("mdm-pg-")
            .tempdir()
            .expect("tempdir");
        let data = dir.path().join("data");
        let sockets = dir.path().join("sockets");
        std::fs::create_dir(&sockets).expect("socket dir");
        if is_root() {
            let status = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(dir.path())
                .status()
                .expect("chown");
            assert!(status.success());
        }
        let port = free_port();
        run(
            bin.join("initdb"),
            &[
                "-D",
                data.to_str().unwrap(),
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
            ],
        );
        let options = format!(
            "-k {} -h 127.0.0.1 -p {port} -c fsync=off -c max_connections=200",
            sockets.display()
        );
        let log = dir.path().join("log");
        run(
            bin.join("pg_ctl"),
            &[
                "-D",
                data.to_str().unwrap(),
                "-o",
                &options,
                "-l",
                log.to_str().unwrap(),
                "-w",
                "start",
            ],
        );
        Self {
            url: format!("postgres://postgres@127.0.0.1:{port}/postgres"),
            cluster: Some((bin, data, dir)),
        }
    }

    /// The server's URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The URL of a fresh, empty schema (its own `search_path`), so that
    /// every store the tests open starts empty.
    pub fn fresh(&self) -> String {
        let n = SCHEMAS.fetch_add(1, Ordering::Relaxed);
        let schema = format!("t{}_{n}", std::process::id());
        let mut client =
            postgres::Client::connect(&self.url, postgres::NoTls).expect("connect to PostgreSQL");
        client
            .batch_execute(&format!(
                "DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}"
            ))
            .expect("create schema");
        let sep = if self.url.contains('?') { '&' } else { '?' };
        format!("{}{sep}options=-c%20search_path%3D{schema}", self.url)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some((bin, data, _dir)) = &self.cluster {
            run(
                bin.join("pg_ctl"),
                &["-D", data.to_str().unwrap(), "-m", "immediate", "stop"],
            );
        }
    }
}
