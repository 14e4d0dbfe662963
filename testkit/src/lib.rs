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
use std::path::PathBuf;
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
}
