//! Test support: real components for tests, never mocks.
//!
//! [`RedisServer`] starts `redis-server` on a free loopback port with nothing persisted, in
//! its own temporary directory, and kills it when dropped. It can be stopped and started
//! again on the same port, which is how tests check that clients survive a Redis restart.
//! Panics here are test failures with a message, which is what a test harness should do.
//!
//! [`RedisCluster`] starts three such servers with cluster mode on and joins them into one
//! cluster of three masters with `redis-cli --cluster create`.
//!
//! [`fuzz`] generates and mutates inputs for property tests: parsers and decoders must never
//! panic, whatever they are fed. [`golden`] compares case folders with their `expected.txt`.
#![allow(clippy::expect_used, clippy::unwrap_used)]

pub mod fuzz;
pub mod golden;

/// Copies the repository's demo definitions (`feature_defs/`) into `project_dir/feature_defs`
/// and returns that path.
pub fn copy_demo_defs(project_dir: &std::path::Path) -> std::path::PathBuf {
    let source = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../feature_defs");
    let target = project_dir.join("feature_defs");
    std::fs::create_dir_all(&target).expect("creating the definitions directory");
    for entry in std::fs::read_dir(&source).expect("reading the demo definitions") {
        let path = entry.expect("a demo definitions entry").path();
        std::fs::copy(&path, target.join(path.file_name().expect("a file name"))).expect("copying a definition");
    }
    target
}

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[derive(Debug)]
pub struct RedisServer {
    port: u16,
    tls: bool,
    extra: Vec<String>,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free loopback port")
}

impl RedisServer {
    /// A plain server on a free port.
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// A server with extra command-line options, e.g. `["--requirepass", "s3cret"]`.
    pub fn start_with(extra: &[&str]) -> Self {
        Self::start_inner(extra, false)
    }

    /// A server that speaks only TLS, with a self-signed certificate made by `openssl`.
    /// Its [`url`](Self::url) is `rediss://127.0.0.1:PORT/#insecure` (no verification).
    pub fn start_tls() -> Self {
        Self::start_inner(&[], true)
    }

    fn start_inner(extra: &[&str], tls: bool) -> Self {
        let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        // A port found free can be taken before the server binds it: try a few.
        for _ in 0..5 {
            let mut server = RedisServer {
                port: free_port(),
                tls,
                extra: extra.clone(),
                dir: tempfile::tempdir().expect("temp dir for redis-server"),
                child: None,
            };
            if server.spawn() {
                return server;
            }
        }
        panic!("redis-server did not start on a free port after 5 tries");
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:PORT`, or for a TLS server `rediss://127.0.0.1:PORT/#insecure`.
    pub fn url(&self) -> String {
        if self.tls {
            format!("rediss://127.0.0.1:{}/#insecure", self.port)
        } else {
            format!("redis://127.0.0.1:{}", self.port)
        }
    }

    /// The port options: plain, or TLS only with a certificate made on first use.
    fn port_options(&self) -> Vec<String> {
        let port = self.port.to_string();
        if !self.tls {
            return vec!["--port".into(), port];
        }
        let (key, cert) = (self.dir.path().join("key.pem"), self.dir.path().join("cert.pem"));
        if !cert.exists() {
            let made = Command::new("openssl")
                .args([
                    "req",
                    "-x509",
                    "-newkey",
                    "rsa:2048",
                    "-nodes",
                    "-days",
                    "2",
                    "-subj",
                    "/CN=localhost",
                ])
                .arg("-keyout")
                .arg(&key)
                .arg("-out")
                .arg(&cert)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .expect("openssl not found: it makes the test certificate");
            assert!(made.success(), "openssl could not make a test certificate");
        }
        let (key, cert) = (key.to_string_lossy().into_owned(), cert.to_string_lossy().into_owned());
        vec![
            "--port".into(),
            "0".into(),
            "--tls-port".into(),
            port,
            "--tls-cert-file".into(),
            cert.clone(),
            "--tls-key-file".into(),
            key,
            "--tls-ca-cert-file".into(),
            cert,
            "--tls-auth-clients".into(),
            "no".into(),
        ]
    }

    /// Kills the server (it keeps nothing: data is gone).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port.
    pub fn restart(&mut self) {
        self.stop();
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.spawn() {
            assert!(
                Instant::now() < deadline,
                "redis-server did not restart on port {}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Starts the process and waits until it answers; false if it exited (port taken).
    fn spawn(&mut self) -> bool {
        let mut child = Command::new("redis-server")
            .args(self.port_options())
            .args([
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--protected-mode",
                "no",
            ])
            .arg("--dir")
            .arg(self.dir.path())
            .args(&self.extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server not found on PATH: run `make redis` (or apt-get install redis-server)");
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return false;
            }
            // A TLS port does not answer plain text: an accepted connection is enough.
            let ready = if self.tls {
                TcpStream::connect(("127.0.0.1", self.port)).is_ok()
            } else {
                answers(self.port)
            };
            if ready {
                self.child = Some(child);
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        false
    }
}

/// Whether something on the port speaks RESP (any reply to PING, even an AUTH error).
fn answers(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
    let mut reply = [0u8; 1];
    stream.write_all(b"PING\r\n").is_ok() && stream.read_exact(&mut reply).is_ok() && matches!(reply[0], b'+' | b'-')
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A Redis Cluster of three masters (no replicas) on free loopback ports, each node a
/// [`RedisServer`] with its own cluster bus port; killed when dropped.
#[derive(Debug)]
pub struct RedisCluster {
    nodes: Vec<RedisServer>,
}

impl RedisCluster {
    pub fn start() -> Self {
        let nodes: Vec<RedisServer> = (0..3)
            .map(|_| {
                let bus = free_port().to_string();
                RedisServer::start_with(&["--cluster-enabled", "yes", "--cluster-port", &bus])
            })
            .collect();
        let addrs: Vec<String> = nodes.iter().map(|n| format!("127.0.0.1:{}", n.port)).collect();
        let created = Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(&addrs)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("redis-cli not found on PATH: run `make redis` (or apt-get install redis-tools)");
        assert!(created.success(), "redis-cli --cluster create failed for {addrs:?}");
        let cluster = RedisCluster { nodes };
        // Every node must see every slot served before clients may rely on it.
        let deadline = Instant::now() + Duration::from_secs(20);
        while !cluster.nodes.iter().all(|n| cluster_ok(n.port)) {
            assert!(Instant::now() < deadline, "the cluster on {addrs:?} did not become ok");
            std::thread::sleep(Duration::from_millis(50));
        }
        cluster
    }

    /// `redis+cluster://127.0.0.1:P1,127.0.0.1:P2,127.0.0.1:P3`.
    pub fn url(&self) -> String {
        let addrs: Vec<String> = self.nodes.iter().map(|n| format!("127.0.0.1:{}", n.port)).collect();
        format!("redis+cluster://{}", addrs.join(","))
    }

    /// The nodes' ports.
    pub fn ports(&self) -> Vec<u16> {
        self.nodes.iter().map(|n| n.port).collect()
    }
}

/// Whether the node on `port` reports `cluster_state:ok`.
fn cluster_ok(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
    let mut reply = [0u8; 4096];
    if stream.write_all(b"CLUSTER INFO\r\n").is_err() {
        return false;
    }
    let n = stream.read(&mut reply).unwrap_or(0);
    String::from_utf8_lossy(&reply[..n]).contains("cluster_state:ok")
}
