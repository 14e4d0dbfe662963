//! Where the processes live. With root and `ip netns`, every process gets
//! its own network namespace and address, connected by veth pairs to a
//! bridge, so partitions are real: a partition moves some hosts' links to a
//! second bridge that nothing else is on. Without them, everything runs on
//! loopback and the faults that need a network cut are skipped (and the
//! output says so).

use std::process::Command;

use anyhow::{bail, Context};

/// One host of the topology.
#[derive(Debug, Clone)]
pub struct Host {
    pub name: String,
    /// The address its services bind and advertise.
    pub ip: String,
    /// Network namespace, if any.
    pub netns: Option<String>,
    /// Host side of its veth pair, if any.
    pub link: Option<String>,
}

impl Host {
    /// The command a program on this host is run through: `ip netns exec
    /// <ns>` in its namespace, nothing on loopback.
    pub fn launcher(&self) -> Vec<String> {
        match &self.netns {
            Some(ns) => vec!["ip".into(), "netns".into(), "exec".into(), ns.clone()],
            None => Vec::new(),
        }
    }
}

pub struct Network {
    pub namespaces: bool,
    tag: String,
    subnet: String,
    main_bridge: String,
    cut_bridge: String,
    hosts: Vec<Host>,
}

fn run(args: &[&str]) -> anyhow::Result<()> {
    let out = Command::new(args[0]).args(&args[1..]).output().with_context(|| format!("running {args:?}"))?;
    if !out.status.success() {
        bail!("{args:?}: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(())
}

impl Network {
    /// Namespaces if this process may make them, else loopback.
    pub fn new(tag: u32, force_loopback: bool) -> Self {
        let tag = format!("{:04}", tag % 10_000);
        let octet = 20 + (tag.parse::<u32>().unwrap_or(0) % 200);
        let mut net = Network {
            namespaces: false,
            subnet: format!("10.77.{octet}"),
            main_bridge: format!("tja{tag}"),
            cut_bridge: format!("tjb{tag}"),
            tag,
            hosts: Vec::new(),
        };
        if !force_loopback && unsafe { libc::geteuid() } == 0 {
            match net.make_bridges() {
                Ok(()) => net.namespaces = true,
                Err(e) => {
                    eprintln!("network namespaces unavailable ({e}); falling back to loopback");
                    net.teardown();
                }
            }
        }
        net
    }

    fn make_bridges(&self) -> anyhow::Result<()> {
        run(&["ip", "link", "add", &self.main_bridge, "type", "bridge"])?;
        run(&["ip", "addr", "add", &format!("{}.1/24", self.subnet), "dev", &self.main_bridge])?;
        run(&["ip", "link", "set", &self.main_bridge, "up"])?;
        run(&["ip", "link", "add", &self.cut_bridge, "type", "bridge"])?;
        run(&["ip", "link", "set", &self.cut_bridge, "up"])?;
        Ok(())
    }

    /// Adds a host; `n` is unique per host (1..=200).
    pub fn add_host(&mut self, name: &str, n: u32) -> anyhow::Result<Host> {
        if !self.namespaces {
            let host = Host { name: name.into(), ip: "127.0.0.1".into(), netns: None, link: None };
            self.hosts.push(host.clone());
            return Ok(host);
        }
        let ns = format!("tj{}-{name}", self.tag);
        let link = format!("tj{}h{n}", self.tag);
        let ip = format!("{}.{}", self.subnet, 10 + n);
        run(&["ip", "netns", "add", &ns])?;
        run(&["ip", "link", "add", &link, "type", "veth", "peer", "name", "eth0", "netns", &ns])?;
        run(&["ip", "link", "set", &link, "master", &self.main_bridge])?;
        run(&["ip", "link", "set", &link, "up"])?;
        run(&["ip", "netns", "exec", &ns, "ip", "link", "set", "lo", "up"])?;
        run(&["ip", "netns", "exec", &ns, "ip", "addr", "add", &format!("{ip}/24"), "dev", "eth0"])?;
        run(&["ip", "netns", "exec", &ns, "ip", "link", "set", "eth0", "up"])?;
        let host = Host { name: name.into(), ip, netns: Some(ns), link: Some(link) };
        self.hosts.push(host.clone());
        Ok(host)
    }

    /// Cuts `hosts` off from everyone else (they can still talk among
    /// themselves). Needs namespaces.
    pub fn partition(&self, hosts: &[&Host]) -> anyhow::Result<()> {
        for h in hosts {
            if let Some(link) = &h.link {
                run(&["ip", "link", "set", link, "master", &self.cut_bridge])?;
            }
        }
        Ok(())
    }

    pub fn heal(&self) -> anyhow::Result<()> {
        for h in &self.hosts {
            if let Some(link) = &h.link {
                run(&["ip", "link", "set", link, "master", &self.main_bridge])?;
                let _ = run(&[
                    "ip",
                    "netns",
                    "exec",
                    h.netns.as_deref().unwrap_or(""),
                    "tc",
                    "qdisc",
                    "del",
                    "dev",
                    "eth0",
                    "root",
                ]);
            }
        }
        Ok(())
    }

    /// Slows a host's link to a trickle with a token bucket (this kernel has
    /// no netem, so loss and fixed delay are not available; a rate limit
    /// delays and queues packets instead).
    pub fn slow(&self, host: &Host) -> anyhow::Result<()> {
        let Some(ns) = &host.netns else { bail!("slow links need namespaces") };
        run(&[
            "ip", "netns", "exec", ns, "tc", "qdisc", "replace", "dev", "eth0", "root", "tbf", "rate", "2mbit",
            "burst", "16kbit", "latency", "300ms",
        ])
    }

    pub fn teardown(&mut self) {
        for h in self.hosts.drain(..) {
            if let Some(ns) = h.netns {
                let _ = run(&["ip", "netns", "del", &ns]);
            }
        }
        let _ = run(&["ip", "link", "del", &self.main_bridge]);
        let _ = run(&["ip", "link", "del", &self.cut_bridge]);
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        if self.namespaces {
            self.teardown();
        }
    }
}
