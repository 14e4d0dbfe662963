//! Test harness: starts a real local cluster (controllers, data nodes,
//! gateway) as separate processes on free loopback ports, from the release
//! binaries next to the test executable, and tears it down on drop.
//! Readiness is always polled with a deadline, never slept for.

#![allow(dead_code)]

use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
pub use tessera_testkit::{free_port, Process as Proc};

pub const MIB: usize = 1024 * 1024;

#[derive(Clone)]
pub struct ClusterOptions {
    pub controllers: usize,
    pub datanodes: usize,
    pub replication: u32,
    pub chunk_size: u64,
    pub heartbeat_ms: u64,
    pub dead_after_ms: u64,
    /// Capacity each data node offers (equal for all, so placement does
    /// not depend on the test machine's disk).
    pub datanode_capacity: u64,
    /// Extra flags for every controller / data node.
    pub controller_args: Vec<String>,
    pub datanode_args: Vec<String>,
    pub gateway_args: Vec<String>,
    /// Mutual TLS between the services (the default); off: `--insecure`.
    pub tls: bool,
}

pub const ADMIN_PASSWORD: &str = "admin-password-for-tests";

impl Default for ClusterOptions {
    fn default() -> Self {
        Self {
            controllers: 3,
            datanodes: 4,
            replication: 3,
            chunk_size: 4 * MIB as u64,
            heartbeat_ms: 300,
            dead_after_ms: 3000,
            datanode_capacity: 64 << 30,
            controller_args: Vec::new(),
            datanode_args: Vec::new(),
            gateway_args: Vec::new(),
            tls: true,
        }
    }
}

pub struct Cluster {
    pub ctl_addrs: Vec<String>,
    pub dir: PathBuf,
    pub opts: ClusterOptions,
    pub controllers: Vec<Proc>,
    pub datanodes: Vec<Proc>,
    pub gateway: Proc,
    pub http: String,
    /// Sends the admin's bearer token with every request.
    pub client: reqwest::Client,
    /// The admin's API token.
    pub admin_token: String,
}

/// One cluster CA and certificate set per test process (the process-wide
/// client TLS can be installed once), made by `tessera-admin certs`.
pub fn tls_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = bin_dir().join("test-clusters").join(format!("tls-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let out = Command::new(bin_dir().join("tessera-admin"))
            .arg("certs")
            .arg(format!("--out={}", dir.display()))
            .output()
            .expect("run tessera-admin certs");
        assert!(out.status.success(), "tessera-admin certs: {}", String::from_utf8_lossy(&out.stderr));
        // This test process talks gRPC to the services too, as an admin.
        let tls = tessera_proto::tls::ClusterTls::load(&dir, "admin").expect("admin certificate");
        tessera_proto::tls::install(Some(&tls));
        dir
    })
}

fn tls_args(opts: &ClusterOptions) -> Vec<String> {
    if opts.tls {
        vec![format!("--tls-dir={}", tls_dir().display())]
    } else {
        vec!["--insecure".to_string()]
    }
}

/// Runs `tessera-admin` against the cluster; retried until it succeeds
/// (the controllers may still be electing), returns its standard output.
pub async fn admin_cli(ctl_addrs: &[String], opts: &ClusterOptions, args: &[&str], stdin: Option<&str>) -> String {
    let mut last_error = String::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        let mut command = tokio::process::Command::new(bin_dir().join("tessera-admin"));
        command
            .arg(format!("--controllers={}", ctl_addrs.join(",")))
            .args(tls_args(opts))
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().expect("run tessera-admin");
        if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
            use tokio::io::AsyncWriteExt;
            let _ = pipe.write_all(format!("{text}\n").as_bytes()).await;
        }
        let out = child.wait_with_output().await.expect("tessera-admin output");
        if out.status.success() {
            return String::from_utf8_lossy(&out.stdout).to_string();
        }
        last_error = String::from_utf8_lossy(&out.stderr).to_string();
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("tessera-admin {args:?} kept failing: {last_error}");
}

pub fn bearer_client(token: &str) -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        reqwest::header::HeaderValue::from_str(&format!("Bearer {token}")).expect("header"),
    );
    reqwest::Client::builder().timeout(Duration::from_secs(120)).default_headers(headers).build().expect("client")
}

fn datanode_proc(bin: &Path, dir: &Path, opts: &ClusterOptions, ctl_addrs: &[String], i: usize) -> Proc {
    let port = free_port();
    Proc::new(
        format!("dn{i}"),
        bin.join("tessera-datanode"),
        vec![
            format!("--node-id=dn{i}"),
            format!("--data-root={}", dir.display()),
            format!("--listen=127.0.0.1:{port}"),
            format!("--controllers={}", ctl_addrs.join(",")),
            format!("--heartbeat-interval-ms={}", opts.heartbeat_ms),
            format!("--capacity-bytes={}", opts.datanode_capacity),
        ]
        .into_iter()
        .chain(tls_args(opts))
        .chain(opts.datanode_args.iter().cloned())
        .collect(),
        dir.join("logs").join(format!("dn{i}.log")),
    )
}

pub fn bin_dir() -> PathBuf {
    // target/release/deps/<test> -> target/release
    let exe = std::env::current_exe().expect("current exe");
    exe.parent().and_then(Path::parent).expect("target dir").to_path_buf()
}

impl Cluster {
    pub async fn start(name: &str, opts: ClusterOptions) -> Cluster {
        let bin = bin_dir();
        let clusters = bin.join("test-clusters");
        let leftovers = tessera_testkit::kill_leftovers(&clusters);
        if leftovers > 0 {
            eprintln!("killed {leftovers} service processes left behind by an interrupted earlier test run");
        }
        let dir = clusters.join(format!("{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("logs")).expect("mkdir");

        let ctl_ports: Vec<u16> = (0..opts.controllers).map(|_| free_port()).collect();
        let peers: Vec<String> =
            ctl_ports.iter().enumerate().map(|(i, p)| format!("{}=127.0.0.1:{p}", i + 1)).collect();
        let ctl_addrs: Vec<String> = ctl_ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();

        let mut controllers = Vec::new();
        for (i, port) in ctl_ports.iter().enumerate() {
            let id = i + 1;
            controllers.push(Proc::new(
                format!("controller-{id}"),
                bin.join("tessera-controller"),
                vec![
                    format!("--id={id}"),
                    format!("--listen=127.0.0.1:{port}"),
                    format!("--peers={}", peers.join(",")),
                    format!("--data-dir={}", dir.join(format!("controller-{id}")).display()),
                    format!("--replication={}", opts.replication),
                    format!("--chunk-size={}", opts.chunk_size),
                    format!("--heartbeat-interval-ms={}", opts.heartbeat_ms),
                    format!("--dead-after-ms={}", opts.dead_after_ms),
                ]
                .into_iter()
                .chain(tls_args(&opts))
                .chain(opts.controller_args.iter().cloned())
                .collect(),
                dir.join("logs").join(format!("controller-{id}.log")),
            ));
        }
        let datanodes = (1..=opts.datanodes).map(|i| datanode_proc(&bin, &dir, &opts, &ctl_addrs, i)).collect();
        let http_port = free_port();
        let gateway = Proc::new(
            "gateway",
            bin.join("tessera-gateway"),
            vec![
                format!("--listen=127.0.0.1:{http_port}"),
                format!("--controllers={}", ctl_addrs.join(",")),
                format!("--static-dir={}", dir.join("no-dashboards").display()),
            ]
            .into_iter()
            .chain(tls_args(&opts))
            .chain(opts.gateway_args.iter().cloned())
            .collect(),
            dir.join("logs").join("gateway.log"),
        );
        let mut cluster = Cluster {
            ctl_addrs,
            dir,
            opts,
            controllers,
            datanodes,
            gateway,
            http: format!("http://127.0.0.1:{http_port}"),
            client: reqwest::Client::new(),
            admin_token: String::new(),
        };
        for p in cluster.controllers.iter_mut().chain(cluster.datanodes.iter_mut()) {
            p.start().expect("start a service process");
        }
        cluster.gateway.start().expect("start a service process");
        // The first admin, as an operator makes one: with the CLI.
        admin_cli(
            &cluster.ctl_addrs,
            &cluster.opts,
            &["users", "create", "admin", "--role=admin", "--password-file=-", "--if-missing"],
            Some(ADMIN_PASSWORD),
        )
        .await;
        let token = admin_cli(&cluster.ctl_addrs, &cluster.opts, &["tokens", "create", "admin", "--label=tests"], None)
            .await
            .trim()
            .to_string();
        cluster.client = bearer_client(&token);
        cluster.admin_token = token;
        cluster.wait_ready().await;
        cluster
    }

    /// Creates a user (through the HTTP API, as the admin) and returns a
    /// client that sends a fresh API token of theirs.
    pub async fn user_client(&self, username: &str, quota_bytes: u64) -> reqwest::Client {
        let password = format!("{username}-password");
        let response = self
            .client
            .post(self.url("/admin/users"))
            .json(&serde_json::json!({ "username": username, "password": password, "quota_bytes": quota_bytes }))
            .send()
            .await
            .expect("create user");
        assert_eq!(response.status(), 201, "create user {username}: {:?}", response.text().await);
        bearer_client(&self.login_token(username).await)
    }

    /// A fresh session token of a user made by [`Cluster::user_client`].
    pub async fn login_token(&self, username: &str) -> String {
        let password = format!("{username}-password");
        let login: serde_json::Value = reqwest::Client::new()
            .post(self.url("/api/auth/login"))
            .json(&serde_json::json!({ "username": username, "password": password }))
            .send()
            .await
            .expect("login")
            .json()
            .await
            .expect("login body");
        login["token"].as_str().expect("session token").to_string()
    }

    /// The id (1-based) of the controller the summary names as leader.
    pub async fn leader_id(&self) -> usize {
        eventually(Duration::from_secs(30), "a controller leader", || async {
            let (status, s) = self.get_json("/admin/summary").await;
            if status != 200 {
                return None;
            }
            s["leader"].as_u64().map(|id| id as usize)
        })
        .await
    }

    /// Starts a controller that belongs to no cluster yet (no --peers), to
    /// be added with `POST /admin/controllers`; returns its id and address.
    pub fn start_spare_controller(&mut self) -> (usize, String) {
        let id = self.controllers.len() + 1;
        let port = free_port();
        let addr = format!("127.0.0.1:{port}");
        let mut proc = Proc::new(
            format!("controller-{id}"),
            bin_dir().join("tessera-controller"),
            vec![
                format!("--id={id}"),
                format!("--listen={addr}"),
                format!("--data-dir={}", self.dir.join(format!("controller-{id}")).display()),
                format!("--replication={}", self.opts.replication),
                format!("--chunk-size={}", self.opts.chunk_size),
                format!("--heartbeat-interval-ms={}", self.opts.heartbeat_ms),
                format!("--dead-after-ms={}", self.opts.dead_after_ms),
            ]
            .into_iter()
            .chain(tls_args(&self.opts))
            .chain(self.opts.controller_args.iter().cloned())
            .collect(),
            self.dir.join("logs").join(format!("controller-{id}.log")),
        );
        proc.start().expect("start a service process");
        self.controllers.push(proc);
        (id, addr)
    }

    pub fn log_of(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.join("logs").join(format!("{name}.log"))).unwrap_or_default()
    }

    /// Starts one more data node (dn<N+1>) and returns its id.
    pub fn add_datanode(&mut self) -> String {
        let i = self.datanodes.len() + 1;
        let mut proc = datanode_proc(&bin_dir(), &self.dir, &self.opts, &self.ctl_addrs, i);
        proc.start().expect("start a service process");
        let name = proc.name.clone();
        self.datanodes.push(proc);
        name
    }

    pub async fn summary(&self) -> serde_json::Value {
        let (status, body) = self.get_json("/admin/summary").await;
        assert_eq!(status, 200, "{body}");
        body
    }

    /// Chunk files (`*.chk`) on a node's disk.
    pub fn chunk_files(&self, node_id: &str) -> Vec<PathBuf> {
        let mut files = Vec::new();
        for dir in std::fs::read_dir(self.dir.join(node_id)).into_iter().flatten().flatten() {
            for entry in std::fs::read_dir(dir.path()).into_iter().flatten().flatten() {
                if entry.path().extension().is_some_and(|e| e == "chk") {
                    files.push(entry.path());
                }
            }
        }
        files
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.http)
    }

    /// Waits until the gateway reports ready and every running data node is healthy.
    pub async fn wait_ready(&self) {
        let want = self.datanodes.iter().filter(|d| d.is_started()).count();
        eventually(Duration::from_secs(60), "cluster ready", || async {
            let ready = self.client.get(self.url("/readyz")).send().await.ok()?;
            if !ready.status().is_success() {
                return None;
            }
            let healthy = self.healthy_nodes().await?;
            (healthy.len() >= want).then_some(())
        })
        .await;
    }

    pub async fn healthy_nodes(&self) -> Option<Vec<String>> {
        let nodes: serde_json::Value =
            self.client.get(self.url("/admin/nodes")).send().await.ok()?.json().await.ok()?;
        Some(
            nodes["nodes"]
                .as_array()?
                .iter()
                .filter(|n| n["health"] == "healthy")
                .filter_map(|n| n["node_id"].as_str().map(str::to_string))
                .collect(),
        )
    }

    pub fn datanode(&mut self, node_id: &str) -> &mut Proc {
        self.datanodes.iter_mut().find(|d| d.name == node_id).expect("no such data node")
    }

    pub fn chunk_path(&self, node_id: &str, file_id: &str, index: u64) -> PathBuf {
        self.dir.join(node_id).join(file_id).join(format!("{index}.chk"))
    }

    /// Raw-body upload; returns the status and the JSON body.
    pub async fn upload_raw(&self, name: &str, data: Vec<u8>) -> (u16, serde_json::Value) {
        let response = self
            .client
            .post(self.url("/api/files"))
            .query(&[("name", name)])
            .body(data)
            .send()
            .await
            .expect("upload request");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(serde_json::Value::Null))
    }

    pub async fn upload_multipart(&self, files: Vec<(&str, Vec<u8>)>) -> (u16, serde_json::Value) {
        let mut form = reqwest::multipart::Form::new();
        for (name, data) in files {
            form = form.part("file", reqwest::multipart::Part::bytes(data).file_name(name.to_string()));
        }
        let response =
            self.client.post(self.url("/api/files")).multipart(form).send().await.expect("multipart request");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(serde_json::Value::Null))
    }

    pub async fn download(&self, id: &str) -> (u16, Vec<u8>) {
        let response = self.client.get(self.url(&format!("/api/files/{id}/content"))).send().await.expect("download");
        let status = response.status().as_u16();
        (status, response.bytes().await.map(|b| b.to_vec()).unwrap_or_default())
    }

    pub async fn get_json(&self, path: &str) -> (u16, serde_json::Value) {
        let response = self.client.get(self.url(path)).send().await.expect("get");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(serde_json::Value::Null))
    }

    pub async fn list_names(&self) -> Vec<String> {
        let (status, body) = self.get_json("/api/files?limit=1000").await;
        assert_eq!(status, 200, "list: {body}");
        body["files"].as_array().expect("files").iter().map(|f| f["name"].as_str().unwrap_or("").to_string()).collect()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for p in self.controllers.iter_mut().chain(self.datanodes.iter_mut()) {
            p.kill();
        }
        self.gateway.kill();
        if std::thread::panicking() {
            eprintln!("cluster logs kept in {}", self.dir.display());
            for entry in std::fs::read_dir(self.dir.join("logs")).into_iter().flatten().flatten() {
                let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
                let tail: Vec<&str> = text.lines().rev().take(15).collect();
                eprintln!("--- {} (last lines)", entry.path().display());
                for line in tail.iter().rev() {
                    eprintln!("{line}");
                }
            }
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// Polls `check` until it returns `Some`, panicking after `timeout`.
pub async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        if Instant::now() > deadline {
            panic!("timed out after {timeout:?} waiting for: {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub fn sha256(data: &[u8]) -> String {
    hex_string(&Sha256::digest(data))
}

fn hex_string(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    use rand::{RngCore, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut data = vec![0u8; len];
    rng.fill_bytes(&mut data);
    data
}
