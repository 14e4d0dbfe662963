//! The cluster under test: real `tessera-*` processes, each on its own host
//! of the [`Network`], with mutual TLS, an admin account and a token.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde_json::Value;
use tessera_testkit::{free_port, Process};

use crate::topology::{Host, Network};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Controller,
    Datanode,
    Gateway,
}

/// One service of the cluster: its process, the host it runs on and the
/// address its gRPC or HTTP server listens on.
pub struct Proc {
    pub host: Host,
    /// host:port of its gRPC or HTTP server.
    pub addr: String,
    process: Process,
}

impl std::ops::Deref for Proc {
    type Target = Process;
    fn deref(&self) -> &Process {
        &self.process
    }
}

impl std::ops::DerefMut for Proc {
    fn deref_mut(&mut self) -> &mut Process {
        &mut self.process
    }
}

pub struct Options {
    pub datanodes: usize,
    pub gateways: usize,
    pub chunk_size: u64,
}

pub struct Cluster {
    pub net: Network,
    pub dir: PathBuf,
    bin: PathBuf,
    tls_dir: PathBuf,
    pub controllers: Vec<Proc>,
    pub datanodes: Vec<Proc>,
    pub gateways: Vec<Proc>,
    pub token: String,
    pub http: reqwest::Client,
    /// Data nodes an operator decommissioned during the run.
    pub decommissioned: std::collections::HashSet<String>,
    small_disk: bool,
    next_host: u32,
    chunk_size: u64,
}

/// A log line without its terminal colour codes (`ESC [ ... m`). The
/// services log without colour to a file (`init_tracing`); this keeps a
/// crash report readable whatever wrote the log.
fn without_colours(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

pub fn bin_dir() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(Path::to_path_buf))
        .unwrap_or_else(|| PathBuf::from("target/release"))
}

impl Cluster {
    pub async fn start(dir: PathBuf, opts: Options, force_loopback: bool) -> anyhow::Result<Cluster> {
        let bin = bin_dir();
        // A run that was killed (a CI timeout, ^C) never unmounted its small
        // disk: detach it, or the directory cannot be removed and reused.
        unmount_leftovers(&dir);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("logs"))?;
        let tls_dir = dir.join("tls");
        let out = std::process::Command::new(bin.join("tessera-admin"))
            .arg("certs")
            .arg(format!("--out={}", tls_dir.display()))
            .output()
            .context("tessera-admin certs")?;
        if !out.status.success() {
            bail!("tessera-admin certs: {}", String::from_utf8_lossy(&out.stderr));
        }
        let net = Network::new(std::process::id(), force_loopback);
        let mut cluster = Cluster {
            net,
            dir,
            bin,
            tls_dir,
            controllers: Vec::new(),
            datanodes: Vec::new(),
            gateways: Vec::new(),
            token: String::new(),
            http: reqwest::Client::new(),
            decommissioned: Default::default(),
            small_disk: false,
            next_host: 1,
            chunk_size: opts.chunk_size,
        };
        let mut ctl_hosts = Vec::new();
        for i in 1..=3 {
            let host = cluster.new_host(&format!("c{i}"))?;
            let port = if cluster.net.namespaces { 7001 } else { free_port() };
            ctl_hosts.push((host, format!("{}:{port}", "HOST")));
        }
        let ctl_addrs: Vec<String> = ctl_hosts.iter().map(|(h, a)| a.replace("HOST", &h.ip)).collect();
        let peers: Vec<String> = ctl_addrs.iter().enumerate().map(|(i, a)| format!("{}={a}", i + 1)).collect();
        for (i, (host, _)) in ctl_hosts.into_iter().enumerate() {
            let id = i + 1;
            let addr = ctl_addrs[i].clone();
            let args = vec![
                format!("--id={id}"),
                format!("--listen={addr}"),
                format!("--peers={}", peers.join(",")),
                format!("--data-dir={}", cluster.dir.join(format!("controller-{id}")).display()),
                format!("--chunk-size={}", opts.chunk_size),
                "--heartbeat-interval-ms=500".into(),
                "--dead-after-ms=4000".into(),
                "--snapshot-every=2000".into(),
                "--upload-grace-ms=20000".into(),
            ];
            cluster.controllers.push(cluster.proc(&format!("controller-{id}"), host, addr, "tessera-controller", args));
        }
        if cluster.net.namespaces {
            cluster.mount_small_disk();
        }
        for _ in 0..opts.datanodes {
            cluster.new_datanode()?;
        }
        for i in 1..=opts.gateways {
            let host = cluster.new_host(&format!("g{i}"))?;
            let port = if cluster.net.namespaces { 8080 } else { free_port() };
            let addr = format!("{}:{port}", host.ip);
            let args = vec![
                format!("--listen={addr}"),
                format!("--controllers={}", cluster.controller_addrs().join(",")),
                format!("--static-dir={}", cluster.dir.join("none").display()),
                "--login-attempts-per-minute=1000".into(),
            ];
            cluster.gateways.push(cluster.proc(&format!("gateway-{i}"), host, addr, "tessera-gateway", args));
        }
        for p in cluster.procs_mut() {
            p.start()?;
        }
        cluster.bootstrap_admin().await?;
        cluster.wait_ready(Duration::from_secs(90)).await?;
        Ok(cluster)
    }

    fn new_host(&mut self, name: &str) -> anyhow::Result<Host> {
        let n = self.next_host;
        self.next_host += 1;
        self.net.add_host(name, n)
    }

    fn proc(&self, name: &str, host: Host, addr: String, program: &str, mut args: Vec<String>) -> Proc {
        args.push(format!("--tls-dir={}", self.tls_dir.display()));
        let process =
            Process::new(name, self.bin.join(program), args, self.dir.join("logs").join(format!("{name}.log")))
                .launched_by(host.launcher());
        Proc { host, addr, process }
    }

    /// Every service: controllers, data nodes, gateways.
    pub fn procs_mut(&mut self) -> impl Iterator<Item = &mut Proc> {
        self.controllers.iter_mut().chain(self.datanodes.iter_mut()).chain(self.gateways.iter_mut())
    }

    /// Services that exited on their own (a crash, or a failed restart:
    /// the nemesis only ever kills or pauses), each with how it ended and
    /// the last lines of its log. They are reaped, so each is reported
    /// once, and stay down until the nemesis or the healing starts them.
    pub fn reap_crashed(&mut self) -> Vec<Value> {
        let logs = self.dir.join("logs");
        let mut crashed = Vec::new();
        for p in self.procs_mut() {
            let Some(status) = p.exited_on_its_own() else { continue };
            p.kill();
            let log = std::fs::read_to_string(logs.join(format!("{}.log", p.name))).unwrap_or_default();
            let mut tail: Vec<String> = log.lines().rev().take(5).map(without_colours).collect();
            tail.reverse();
            crashed.push(serde_json::json!({ "target": p.name, "status": status.to_string(), "log_tail": tail }));
        }
        crashed
    }

    pub fn controller_addrs(&self) -> Vec<String> {
        self.controllers.iter().map(|c| c.addr.clone()).collect()
    }

    /// How often a data node sends its whole inventory (short, so that a
    /// chunk file the disk nemesis deleted is noticed within a run).
    pub const INVENTORY_INTERVAL: Duration = Duration::from_secs(10);
    /// How long after a deletion behind its back the cluster may take to
    /// notice it: files younger than the controller's settle window (30 s,
    /// `INVENTORY_SETTLE_MS` in control-plane/src/nodes.rs) are not checked
    /// against an inventory, then the next inventory comes, then repair.
    pub const DISK_LOSS_NOTICED_WITHIN: Duration = Duration::from_secs(30 + 10 + 20);

    /// The data node whose disk is a small filesystem of its own, so that
    /// the disk nemesis can fill it without filling the test machine's.
    pub const SMALL_DISK_NODE: &'static str = "dn1";
    const SMALL_DISK_BYTES: u64 = 384 << 20;

    fn small_disk_dir(&self) -> PathBuf {
        self.dir.join("data").join(Self::SMALL_DISK_NODE)
    }

    /// Mounts a tmpfs as dn1's directory (root only); returns whether it did.
    fn mount_small_disk(&mut self) -> bool {
        if unsafe { libc::geteuid() } != 0 {
            return false;
        }
        let dir = self.small_disk_dir();
        if std::fs::create_dir_all(&dir).is_err() {
            return false;
        }
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={}", Self::SMALL_DISK_BYTES), "tessera-jepsen"])
            .arg(&dir)
            .status()
            .is_ok_and(|s| s.success());
        self.small_disk = ok;
        ok
    }

    pub fn has_small_disk(&self) -> bool {
        self.small_disk
    }

    /// Fills dn1's disk to the last byte; returns the filler's path.
    pub fn fill_small_disk(&self) -> anyhow::Result<PathBuf> {
        use std::io::Write;
        let path = self.small_disk_dir().join("filler.bin");
        let mut file = std::fs::File::create(&path)?;
        let block = vec![0u8; 1 << 20];
        loop {
            match file.write(&block) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
        let _ = file.sync_all();
        Ok(path)
    }

    /// Adds a data node process (started by the caller or by `start`).
    pub fn new_datanode(&mut self) -> anyhow::Result<usize> {
        let i = self.datanodes.len() + 1;
        let host = self.new_host(&format!("d{i}"))?;
        let port = if self.net.namespaces { 7101 } else { free_port() };
        let addr = format!("{}:{port}", host.ip);
        let args = vec![
            format!("--node-id=dn{i}"),
            format!("--data-root={}", self.dir.join("data").display()),
            format!("--listen={addr}"),
            format!("--advertise-host={}", host.ip),
            format!("--controllers={}", self.controller_addrs().join(",")),
            "--heartbeat-interval-ms=500".into(),
            format!("--capacity-bytes={}", 8u64 << 30),
            "--scrub-interval-ms=5000".into(),
            "--scrub-bytes-per-sec=67108864".into(),
            format!("--inventory-interval-ms={}", Self::INVENTORY_INTERVAL.as_millis()),
        ];
        let proc = self.proc(&format!("dn{i}"), host, addr, "tessera-datanode", args);
        self.datanodes.push(proc);
        Ok(self.datanodes.len() - 1)
    }

    async fn admin_cli(&self, args: &[&str], stdin: Option<&str>) -> anyhow::Result<String> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let mut child = tokio::process::Command::new(self.bin.join("tessera-admin"))
                .arg(format!("--controllers={}", self.controller_addrs().join(",")))
                .arg(format!("--tls-dir={}", self.tls_dir.display()))
                .args(args)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()?;
            if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
                use tokio::io::AsyncWriteExt;
                pipe.write_all(format!("{text}\n").as_bytes()).await?;
            }
            let out = child.wait_with_output().await?;
            if out.status.success() {
                return Ok(String::from_utf8_lossy(&out.stdout).trim().to_string());
            }
            if Instant::now() > deadline {
                bail!("tessera-admin {args:?}: {}", String::from_utf8_lossy(&out.stderr));
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    async fn bootstrap_admin(&mut self) -> anyhow::Result<()> {
        self.admin_cli(
            &["users", "create", "admin", "--role=admin", "--password-file=-", "--if-missing"],
            Some("jepsen-admin-password"),
        )
        .await?;
        self.token = self.admin_cli(&["tokens", "create", "admin", "--label=jepsen"], None).await?;
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(reqwest::header::AUTHORIZATION, format!("Bearer {}", self.token).parse()?);
        self.http = reqwest::Client::builder().default_headers(headers).timeout(Duration::from_secs(15)).build()?;
        Ok(())
    }

    pub fn gateway_urls(&self) -> Vec<String> {
        self.gateways.iter().map(|g| format!("http://{}", g.addr)).collect()
    }

    /// Any gateway that answers.
    pub async fn admin_json(&self, path: &str) -> Option<Value> {
        for url in self.gateway_urls() {
            if let Ok(r) = self.http.get(format!("{url}{path}")).send().await {
                if r.status().is_success() {
                    if let Ok(v) = r.json().await {
                        return Some(v);
                    }
                }
            }
        }
        None
    }

    pub async fn wait_ready(&self, timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        let want = self.datanodes.iter().filter(|d| d.is_started()).count();
        while Instant::now() < deadline {
            if let Some(nodes) = self.admin_json("/admin/nodes").await {
                let healthy =
                    nodes["nodes"].as_array().map_or(0, |n| n.iter().filter(|n| n["health"] == "healthy").count());
                if healthy >= want.min(3) {
                    return Ok(());
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        bail!("the cluster was not ready within {timeout:?}; logs in {}", self.dir.join("logs").display())
    }

    /// The leader's index in `controllers`, from the summary.
    pub async fn leader(&self) -> Option<usize> {
        let summary = self.admin_json("/admin/summary").await?;
        let id = summary["leader"].as_u64()? as usize;
        (1..=self.controllers.len()).contains(&id).then(|| id - 1)
    }

    /// Every chunk file on a node's disk.
    pub fn chunk_files(&self, node: &str) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for dir in std::fs::read_dir(self.dir.join("data").join(node)).into_iter().flatten().flatten() {
            for f in std::fs::read_dir(dir.path()).into_iter().flatten().flatten() {
                if f.path().extension().is_some_and(|e| e == "chk") {
                    out.push(f.path());
                }
            }
        }
        out
    }

    pub fn chunk_path(&self, node: &str, file_id: &str, index: u64) -> PathBuf {
        self.dir.join("data").join(node).join(file_id).join(format!("{index}.chk"))
    }

    pub fn chunk_size(&self) -> u64 {
        self.chunk_size
    }

    pub fn shutdown(&mut self) {
        for p in self.gateways.iter_mut().chain(self.datanodes.iter_mut()).chain(self.controllers.iter_mut()) {
            p.kill();
        }
        if self.small_disk {
            unmount_leftovers(&self.small_disk_dir());
            self.small_disk = false;
        }
        self.net.teardown();
    }
}

/// The mount points at or under `dir`, deepest first, from `mounts` in
/// the format of `/proc/self/mounts` (spaces in paths escaped as `\040`).
fn mounts_under(mounts: &str, dir: &Path) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = mounts
        .lines()
        .filter_map(|line| line.split_whitespace().nth(1))
        .map(|target| PathBuf::from(target.replace("\\040", " ")))
        .filter(|target| target.starts_with(dir))
        .collect();
    found.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    found
}

/// Unmounts every file system mounted at or under `dir`. Lazily: a process
/// killed a moment ago may still hold a file open there, and the mount
/// must not outlive the test either way.
fn unmount_leftovers(dir: &Path) {
    let Ok(dir) = dir.canonicalize() else { return };
    let Ok(mounts) = std::fs::read_to_string("/proc/self/mounts") else { return };
    for target in mounts_under(&mounts, &dir) {
        let _ = std::process::Command::new("umount").arg("-l").arg(&target).status();
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.shutdown();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mounts_under_a_directory_deepest_first() {
        let mounts = "/dev/vda / ext4 rw 0 0\n\
                      tessera-jepsen /w/run/data/dn1 tmpfs rw 0 0\n\
                      other /w/run/data/dn1/inner tmpfs rw 0 0\n\
                      x /w/run2 tmpfs rw 0 0\n\
                      y /w/run/with\\040space tmpfs rw 0 0\n";
        assert_eq!(
            mounts_under(mounts, Path::new("/w/run")),
            vec![
                PathBuf::from("/w/run/data/dn1/inner"),
                PathBuf::from("/w/run/data/dn1"),
                PathBuf::from("/w/run/with space"),
            ]
        );
        assert!(mounts_under(mounts, Path::new("/elsewhere")).is_empty());
    }

    /// A small disk left mounted by a killed run is gone after the sweep
    /// (root only: mounting needs it).
    #[test]
    fn leftover_mounts_are_detached() {
        if unsafe { libc::geteuid() } != 0 {
            return;
        }
        let dir = std::env::temp_dir().join(format!("tessera-jepsen-mount-{}", std::process::id()));
        let disk = dir.join("data").join("dn1");
        std::fs::create_dir_all(&disk).expect("test directory");
        let mounted = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=1m", "tessera-jepsen-test"])
            .arg(&disk)
            .status()
            .is_ok_and(|s| s.success());
        if !mounted {
            // No mount permission here (a container without CAP_SYS_ADMIN).
            let _ = std::fs::remove_dir_all(&dir);
            return;
        }
        let listed = || {
            let mounts = std::fs::read_to_string("/proc/self/mounts").expect("mounts");
            !mounts_under(&mounts, &dir.canonicalize().expect("dir")).is_empty()
        };
        assert!(listed());
        unmount_leftovers(&dir);
        assert!(!listed(), "the tmpfs under {} is still mounted", dir.display());
        std::fs::remove_dir_all(&dir).expect("the directory can be removed");
    }

    #[test]
    fn log_lines_lose_their_colour_codes() {
        let line = "\u{1b}[2m2026-11-27T21:11:49Z\u{1b}[0m \u{1b}[32m INFO\u{1b}[0m data node serving";
        assert_eq!(without_colours(line), "2026-11-27T21:11:49Z  INFO data node serving");
        assert_eq!(without_colours("plain"), "plain");
    }
}
