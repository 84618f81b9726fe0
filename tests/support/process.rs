//! Child processes that cannot outlive the test, and commands that cannot hang it.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// A spawned child that is killed and reaped when dropped, so a failing assertion never
/// leaves a server or peer running.
pub struct ChildGuard {
    child: Child,
    name: String,
    log: PathBuf,
}

impl ChildGuard {
    /// Spawns `cmd` with stdout and stderr both appended to `log`.
    pub fn spawn(name: &str, cmd: &mut Command, log: &Path) -> std::io::Result<Self> {
        let out = File::create(log)?;
        let err = out.try_clone()?;
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .spawn()?;
        Ok(ChildGuard {
            child,
            name: name.to_string(),
            log: log.to_path_buf(),
        })
    }

    /// `Some(status)` if the child has already exited.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Everything the child printed so far.
    pub fn log(&self) -> String {
        read_lossy(&self.log)
    }

    /// The last `lines` lines of the log, for failure messages.
    pub fn log_tail(&self, lines: usize) -> String {
        tail(&self.log(), lines)
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!(
                "---- {} (pid {}) log tail ----\n{}",
                self.name,
                self.child.id(),
                self.log_tail(40)
            );
        }
    }
}

/// Outcome of [`run_bounded`].
#[derive(Debug)]
pub struct Finished {
    /// `None` when the command was killed at the deadline.
    pub status: Option<ExitStatus>,
    /// stdout and stderr, interleaved as written.
    pub output: String,
    pub elapsed: Duration,
}

impl Finished {
    pub fn timed_out(&self) -> bool {
        self.status.is_none()
    }

    pub fn success(&self) -> bool {
        self.status.is_some_and(|s| s.success())
    }
}

/// Runs `cmd` to completion, killing it after `timeout`. Output goes through `log` (a file,
/// so a chatty child can never block on a full pipe).
pub fn run_bounded(cmd: &mut Command, timeout: Duration, log: &Path) -> Finished {
    let started = Instant::now();
    let mut guard = match ChildGuard::spawn("command", cmd, log) {
        Ok(g) => g,
        Err(e) => panic!("cannot spawn {cmd:?}: {e}"),
    };
    let status = loop {
        if let Some(status) = guard.exited() {
            break Some(status);
        }
        if started.elapsed() >= timeout {
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    drop(guard);
    Finished {
        status,
        output: read_lossy(log),
        elapsed: started.elapsed(),
    }
}

pub fn read_lossy(p: &Path) -> String {
    std::fs::read(p)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}

pub fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
