//! What the suites that run real Tessera processes share: the gateway's
//! integration tests (`gateway/tests/common`) and the chaos runner
//! (`jepsen-tests`). A [`Process`] is one service process and its log
//! file; [`free_port`] hands out loopback ports for the services of a
//! cluster on loopback.
//!
//! Test support only: nothing here is linked into a service binary.

use std::fs::OpenOptions;
use std::io;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long [`Process::stop`] waits for a clean exit before `SIGKILL`.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// One service process: what to run, where its output goes, and the
/// running child if it was started. Killed when dropped, so a failing test
/// leaves no process behind.
#[derive(Debug)]
pub struct Process {
    pub name: String,
    program: PathBuf,
    args: Vec<String>,
    /// The command the program is run through (e.g. `ip netns exec <ns>`);
    /// empty: the program is run directly.
    launcher: Vec<String>,
    log: PathBuf,
    child: Option<Child>,
    paused: bool,
}

impl Process {
    /// A process that is not started yet; stdout and stderr are appended to `log`.
    pub fn new(
        name: impl Into<String>,
        program: impl Into<PathBuf>,
        args: Vec<String>,
        log: impl Into<PathBuf>,
    ) -> Self {
        Process {
            name: name.into(),
            program: program.into(),
            args,
            launcher: Vec::new(),
            log: log.into(),
            child: None,
            paused: false,
        }
    }

    /// Runs the program through `launcher` (a command and its arguments,
    /// the program's path and arguments follow).
    pub fn launched_by(mut self, launcher: Vec<String>) -> Self {
        self.launcher = launcher;
        self
    }

    /// Starts the process; does nothing if it was started and not killed
    /// or stopped since. Services log at `info` (openraft at `warn`).
    pub fn start(&mut self) -> io::Result<()> {
        if self.child.is_some() {
            return Ok(());
        }
        let log = OpenOptions::new().create(true).append(true).open(&self.log)?;
        let mut command = match self.launcher.split_first() {
            Some((launcher, launcher_args)) => {
                let mut c = Command::new(launcher);
                c.args(launcher_args).arg(&self.program);
                c
            }
            None => Command::new(&self.program),
        };
        let child = command
            .args(&self.args)
            .env("RUST_LOG", "info,openraft=warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .map_err(|e| {
                io::Error::new(e.kind(), format!("starting {} ({}): {e}", self.name, self.program.display()))
            })?;
        self.child = Some(child);
        self.paused = false;
        Ok(())
    }

    /// `SIGKILL` (after `SIGCONT` if paused, so the kill is not held up),
    /// and reaps it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            if self.paused {
                signal(&child, libc::SIGCONT);
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        self.paused = false;
    }

    /// `SIGTERM` and waits for a clean exit; `SIGKILL` after 10 s.
    pub fn stop(&mut self) {
        if self.paused {
            self.resume();
        }
        if let Some(mut child) = self.child.take() {
            signal(&child, libc::SIGTERM);
            let deadline = Instant::now() + STOP_GRACE;
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// `SIGSTOP`: the process stays, frozen (a long GC pause, a stuck VM).
    pub fn pause(&mut self) {
        if let Some(child) = &self.child {
            signal(child, libc::SIGSTOP);
            self.paused = true;
        }
    }

    /// `SIGCONT` after [`Self::pause`].
    pub fn resume(&mut self) {
        if let Some(child) = &self.child {
            signal(child, libc::SIGCONT);
        }
        self.paused = false;
    }

    pub fn is_paused(&self) -> bool {
        self.paused
    }

    /// The running child's process id.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Started and not killed or stopped since (it may have exited on its own).
    pub fn is_started(&self) -> bool {
        self.child.is_some()
    }

    /// How it ended, if it was started and has exited on its own since (a
    /// crash, or a start-up error): [`Self::kill`] and [`Self::stop`] forget
    /// the process, so their exits are never reported here.
    pub fn exited_on_its_own(&mut self) -> Option<ExitStatus> {
        self.child.as_mut().and_then(|child| child.try_wait().ok().flatten())
    }

    /// Started and still alive.
    pub fn is_running(&mut self) -> bool {
        match &mut self.child {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}

fn signal(child: &Child, signal: i32) {
    if let Ok(pid) = i32::try_from(child.id()) {
        // SAFETY: kill(2) on a child this process has not reaped yet (the
        // `Child` is still held), so the pid cannot belong to another process.
        unsafe {
            libc::kill(pid, signal);
        }
    }
}

/// A loopback port free now, never handed out before by this process, and
/// below the kernel's ephemeral range (32768 on). Asking the kernel for
/// port 0 could give the same port to two services of one cluster started
/// in a row (seen: a data node could not bind the port another had just
/// taken, and its cluster never became ready), or one that an outgoing
/// connection takes before the service binds it.
pub fn free_port() -> u16 {
    static HANDED_OUT: Mutex<Vec<u16>> = Mutex::new(Vec::new());
    let mut handed_out = HANDED_OUT.lock().unwrap_or_else(|p| p.into_inner());
    for _ in 0..10_000 {
        let port = rand::Rng::gen_range(&mut rand::thread_rng(), 10_000..32_000u16);
        if !handed_out.contains(&port) && TcpListener::bind(("127.0.0.1", port)).is_ok() {
            handed_out.push(port);
            return port;
        }
    }
    panic!("no free loopback port below the ephemeral range");
}

/// Kills what earlier, interrupted test runs left behind under
/// `clusters_dir`, whose entries are named `<anything>-<pid of the test
/// process that made it>`: a test process killed before its clusters were
/// dropped (Ctrl-C, a timeout, a pipe into `head`) leaves their services
/// running, heartbeating and taking CPU from later runs and benchmarks.
/// For every entry whose test process is gone, each process whose command
/// line names a path inside the entry gets `SIGKILL`. Entries of live test
/// processes (this one, or another suite running at the same time) are
/// left alone, and so are the directories themselves (their logs may be
/// wanted). Returns the processes killed.
pub fn kill_leftovers(clusters_dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(clusters_dir) else {
        return 0;
    };
    let orphaned: Vec<String> = entries
        .flatten()
        .filter(|entry| {
            let name = entry.file_name();
            let owner = name.to_str().and_then(|n| n.rsplit_once('-')).and_then(|(_, pid)| pid.parse::<u32>().ok());
            matches!(owner, Some(pid) if !Path::new(&format!("/proc/{pid}")).exists())
        })
        .map(|entry| entry.path().display().to_string())
        .collect();
    // An argument names a path inside a directory if it holds the directory
    // followed by `/`, or ends with it (`--data-root=<dir>`); a sibling whose
    // name merely starts the same (`<dir>0`) does not count.
    let names = |arg: &str, dir: &str| arg.ends_with(dir) || arg.contains(&format!("{dir}/"));
    if orphaned.is_empty() {
        return 0;
    }
    let mut killed = 0;
    for proc_entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = proc_entry.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(proc_entry.path().join("cmdline")) else {
            continue;
        };
        let names_orphan = cmdline
            .split(|b| *b == 0)
            .filter_map(|arg| std::str::from_utf8(arg).ok())
            .any(|arg| orphaned.iter().any(|dir| names(arg, dir)));
        if names_orphan {
            // SAFETY: kill(2) with a pid read from /proc just now; at worst
            // the process has exited and the call fails.
            if unsafe { libc::kill(pid, libc::SIGKILL) } == 0 {
                killed += 1;
            }
        }
    }
    killed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_ports_are_distinct_and_bindable() {
        let ports: Vec<u16> = (0..50).map(|_| free_port()).collect();
        let mut unique = ports.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), ports.len(), "a port was handed out twice: {ports:?}");
        for port in ports {
            assert!((10_000..32_000).contains(&port));
            assert!(TcpListener::bind(("127.0.0.1", port)).is_ok(), "port {port} is taken");
        }
    }

    fn sleeper(dir: &std::path::Path) -> Process {
        Process::new("sleeper", "/bin/sleep", vec!["30".into()], dir.join("sleeper.log"))
    }

    #[test]
    fn a_process_starts_pauses_resumes_and_stops() {
        let dir = std::env::temp_dir().join(format!("testkit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let mut p = sleeper(&dir);
        assert!(!p.is_started());
        p.start().expect("start");
        assert!(p.is_running());
        p.pause();
        assert!(p.is_paused() && p.is_running());
        p.resume();
        assert!(!p.is_paused());
        p.stop();
        assert!(!p.is_started() && !p.is_running());
        // A launcher runs the program: `env` execs it.
        let mut launched = sleeper(&dir).launched_by(vec!["/usr/bin/env".into()]);
        launched.start().expect("start through a launcher");
        assert!(launched.is_running());
        launched.kill();
        assert!(!launched.is_running());
        assert!(launched.exited_on_its_own().is_none(), "a kill is not an exit on its own");
        // One that ends by itself says how.
        let mut failing = Process::new("false", "/bin/false", Vec::new(), dir.join("false.log"));
        failing.start().expect("start");
        let deadline = Instant::now() + Duration::from_secs(10);
        let status = loop {
            if let Some(status) = failing.exited_on_its_own() {
                break status;
            }
            assert!(Instant::now() < deadline, "/bin/false did not exit");
            std::thread::sleep(Duration::from_millis(10));
        };
        assert!(!status.success());
        assert!(failing.is_started() && !failing.is_running());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_missing_program_is_a_named_error() {
        let dir = std::env::temp_dir();
        let mut p = Process::new("ghost", "/nonexistent/tessera-ghost", Vec::new(), dir.join("ghost.log"));
        let err = p.start().expect_err("no such program");
        assert!(err.to_string().contains("ghost"), "{err}");
        assert!(!p.is_started());
    }

    #[test]
    fn leftovers_of_a_dead_test_process_are_killed_and_a_live_ones_are_not() {
        let clusters = std::env::temp_dir().join(format!("testkit-leftovers-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&clusters);
        // A pid that was a process and is no more.
        let mut gone = Command::new("/bin/true").spawn().expect("spawn true");
        let dead_pid = gone.id();
        gone.wait().expect("reap true");
        let dead_dir = clusters.join(format!("some-test-{dead_pid}"));
        let live_dir = clusters.join(format!("some-test-{}", std::process::id()));
        std::fs::create_dir_all(&dead_dir).expect("cluster dir");
        std::fs::create_dir_all(&live_dir).expect("cluster dir");
        // Stand-ins for services: `tail` following /dev/null, its command
        // line carrying the argument a service would (a file it cannot
        // open, which it reports and goes on), once it has exec'd.
        let stand_in = |name: &str, arg: String| {
            let mut p = Process::new(
                name,
                "/usr/bin/tail",
                vec!["-f".into(), "/dev/null".into(), "--".into(), arg.clone()],
                clusters.join(format!("{name}.log")),
            );
            p.start().expect("start a stand-in service");
            let cmdline = format!("/proc/{}/cmdline", p.pid().expect("pid"));
            let deadline = Instant::now() + Duration::from_secs(10);
            while !std::fs::read(&cmdline).is_ok_and(|c| c.windows(arg.len()).any(|w| w == arg.as_bytes())) {
                assert!(Instant::now() < deadline, "{name} never ran tail");
                std::thread::sleep(Duration::from_millis(5));
            }
            p
        };
        let mut in_dead = stand_in("in-dead", format!("--data-dir={}/controller-1", dead_dir.display()));
        let mut is_dead = stand_in("is-dead", format!("--data-root={}", dead_dir.display()));
        let mut sibling = stand_in("sibling", format!("--data-root={}0", dead_dir.display()));
        let mut in_live = stand_in("in-live", format!("--data-dir={}/controller-1", live_dir.display()));

        assert_eq!(kill_leftovers(&clusters), 2);
        let deadline = Instant::now() + Duration::from_secs(10);
        while in_dead.is_running() || is_dead.is_running() {
            assert!(Instant::now() < deadline, "a dead test's service still runs");
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(sibling.is_running(), "a process outside the leftover's directory was killed");
        assert!(in_live.is_running(), "the live test's service was killed");
        assert!(dead_dir.exists(), "the leftover's logs were removed");
        assert_eq!(kill_leftovers(&clusters), 0);
        drop((in_dead, is_dead, sibling, in_live));
        let _ = std::fs::remove_dir_all(&clusters);
    }
}
