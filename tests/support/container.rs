//! The switchyard-turn image (docker/turn.Dockerfile, built by docker/build.sh) run with
//! podman the way compose stacks run coturn: host networking, non-root, read-only root,
//! the config mounted at coturn's path.
//!
//! The image is named by `SWITCHYARD_TEST_IMAGE` (default [`DEFAULT_IMAGE`]); `cargo test`
//! does not build it (a nested cargo build would wait on the lock `cargo test` holds), so
//! `tests/run.sh` runs `docker/build.sh` first. A missing podman, runc or image is a skip,
//! or a failure under `SWITCHYARD_INTEROP=1`.
//!
//! podman needs two flags on the CI machines (`shared/reference/containers.md`): `--runtime
//! runc` (crun fails on their cgroup setup) and explicit `--ulimit` values.

use crate::process::{Finished, run_bounded};
use crate::skip::{Need, Skip, find_binary};
use crate::tempdir::TempDir;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

/// What `docker/build.sh` tags by default (podman prefixes local names with `localhost/`).
pub const DEFAULT_IMAGE: &str = "localhost/switchyard-turn:latest";
/// What `FLAVOUR=livekit docker/build.sh` tags.
pub const LIVEKIT_IMAGE: &str = "localhost/switchyard-livekit:latest";

/// The UID/GID the image declares and the tests run it as.
pub const USER: &str = "65532:65532";

/// How long one podman command (run, inspect, stop, rm) may take.
const PODMAN_TIMEOUT: Duration = Duration::from_secs(60);

/// Containers in one test binary run one at a time, for the reason `server.rs` gives for
/// its servers: zero-loss assertions must not depend on a loaded 2-core machine.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// podman plus the image under test.
#[derive(Debug, Clone)]
pub struct Podman {
    bin: PathBuf,
    pub image: String,
}

impl Podman {
    /// Finds podman and runc and checks that the image exists.
    pub fn find() -> Need<Self> {
        let image =
            std::env::var("SWITCHYARD_TEST_IMAGE").unwrap_or_else(|_| DEFAULT_IMAGE.to_string());
        Self::find_image(&image)
    }

    /// The switchyard-livekit image (`FLAVOUR=livekit bash docker/build.sh`), or the one
    /// `SWITCHYARD_TEST_LIVEKIT_IMAGE` names.
    pub fn find_livekit() -> Need<Self> {
        let image = std::env::var("SWITCHYARD_TEST_LIVEKIT_IMAGE")
            .unwrap_or_else(|_| LIVEKIT_IMAGE.to_string());
        Self::find_image(&image)
    }

    /// Finds podman and runc and checks that `image` exists.
    pub fn find_image(image: &str) -> Need<Self> {
        let bin = find_binary("podman")?;
        find_binary("runc")?;
        let podman = Podman {
            bin,
            image: image.to_string(),
        };
        let exists = Command::new(&podman.bin)
            .args(["image", "exists", &podman.image])
            .status()
            .map_err(|e| Skip::new(format!("cannot run podman: {e}")))?;
        if !exists.success() {
            return Err(Skip::new(format!(
                "image {} not found: build it with `bash docker/build.sh` (tests/run.sh does)",
                podman.image
            )));
        }
        Ok(podman)
    }

    /// A podman command with the global flags these machines need.
    pub fn command(&self) -> Command {
        let mut c = Command::new(&self.bin);
        c.args(["--runtime", "runc"]);
        c
    }

    /// Runs `podman ARGS` to completion (bounded), logging into `dir/podman-<label>.log`.
    pub fn run(&self, dir: &TempDir, label: &str, args: &[&str]) -> Finished {
        let mut c = self.command();
        c.args(args);
        run_bounded(
            &mut c,
            PODMAN_TIMEOUT,
            &dir.join(&format!("podman-{label}.log")),
        )
    }

    /// `podman image inspect --format FORMAT IMAGE`, trimmed; panics if podman fails.
    pub fn inspect_image(&self, dir: &TempDir, format: &str) -> String {
        let done = self.run(
            dir,
            "image-inspect",
            &["image", "inspect", "--format", format, &self.image],
        );
        assert!(
            done.success(),
            "podman image inspect failed: {}",
            done.output
        );
        done.output.trim().to_string()
    }
}

/// `podman-compose` (PyPI; tests/install-peers.sh puts it in `tests/.venv`), or on `PATH`.
pub fn find_podman_compose() -> Need<PathBuf> {
    let venv = crate::package_dir().join(".venv/bin/podman-compose");
    if crate::skip::is_executable(&venv) {
        return Ok(venv);
    }
    find_binary("podman-compose")
}

/// The repository's `docker/compose/` directory (the overlays under test).
pub fn compose_dir() -> PathBuf {
    crate::package_dir().join("../docker/compose")
}

/// A file or directory mounted into the container, read-only.
#[derive(Debug, Clone)]
pub struct Mount {
    pub host: PathBuf,
    pub container: String,
}

impl Mount {
    pub fn new(host: &Path, container: &str) -> Self {
        Mount {
            host: host.to_path_buf(),
            container: container.to_string(),
        }
    }
}

/// How to start the container. [`RunSpec::new`] gives the flags the CI machines need and a
/// locked-down runtime: host network, non-root, read-only root filesystem *without* the
/// tmpfs podman adds to a read-only container by default, no capabilities.
#[derive(Debug, Clone)]
pub struct RunSpec {
    pub mounts: Vec<Mount>,
    /// Extra `podman run` options (before the image name), e.g. `--tmpfs`.
    pub options: Vec<String>,
    /// `--entrypoint` override (podman then ignores the image's CMD).
    pub entrypoint: Option<String>,
    /// Arguments after the image name; empty means the image's CMD.
    pub args: Vec<String>,
}

impl RunSpec {
    pub fn new() -> Self {
        RunSpec {
            mounts: Vec::new(),
            options: Vec::new(),
            entrypoint: None,
            args: Vec::new(),
        }
    }
}

impl Default for RunSpec {
    fn default() -> Self {
        Self::new()
    }
}

/// A running container, removed (`podman rm -f`) when dropped — also when the test fails.
pub struct Container {
    podman: Podman,
    pub name: String,
    dir_log: PathBuf,
    _serial: MutexGuard<'static, ()>,
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

impl Container {
    /// `podman --runtime runc run -d …`; panics with podman's output if it cannot start.
    pub fn start(podman: &Podman, dir: &TempDir, spec: &RunSpec) -> Self {
        let serial = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
        let name = format!(
            "switchyard-test-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        // Take the guard before starting, so even a half-started container is removed.
        let container = Container {
            podman: podman.clone(),
            name: name.clone(),
            dir_log: dir.join(&format!("{name}.log")),
            _serial: serial,
        };
        let mut args: Vec<String> = [
            "run",
            "-d",
            "--name",
            &name,
            "--network",
            "host",
            "--ulimit",
            "nofile=20000:20000",
            "--ulimit",
            "nproc=4096:4096",
            "--read-only",
            "--read-only-tmpfs=false",
            "--cap-drop",
            "ALL",
            "--security-opt",
            "no-new-privileges",
            "--user",
            USER,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        for m in &spec.mounts {
            args.push("-v".into());
            args.push(format!("{}:{}:ro", m.host.display(), m.container));
        }
        args.extend(spec.options.iter().cloned());
        if let Some(ep) = &spec.entrypoint {
            args.push("--entrypoint".into());
            args.push(ep.clone());
        }
        args.push(podman.image.clone());
        args.extend(spec.args.iter().cloned());
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        let done = podman.run(dir, &format!("run-{name}"), &argv);
        assert!(
            done.success(),
            "podman run failed ({:?}): podman {}\n{}",
            done.status,
            argv.join(" "),
            done.output
        );
        container
    }

    /// Takes charge of a container something else (podman-compose) is about to start under
    /// `name`: serialised like [`Container::start`], and removed when dropped. Call it
    /// before starting, so a failed start is cleaned up too.
    pub fn adopt(podman: &Podman, dir: &TempDir, name: &str) -> Self {
        let serial = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
        Container {
            podman: podman.clone(),
            name: name.to_string(),
            dir_log: dir.join(&format!("{name}.log")),
            _serial: serial,
        }
    }

    /// `podman inspect --format FORMAT NAME`, trimmed.
    pub fn inspect(&self, format: &str) -> String {
        let mut c = self.podman.command();
        c.args(["inspect", "--format", format, &self.name]);
        let done = run_bounded(&mut c, PODMAN_TIMEOUT, &self.scratch("inspect"));
        assert!(done.success(), "podman inspect failed: {}", done.output);
        done.output.trim().to_string()
    }

    pub fn running(&self) -> bool {
        self.inspect("{{.State.Running}}") == "true"
    }

    /// The container's main process as the host sees it.
    pub fn host_pid(&self) -> u32 {
        let pid = self.inspect("{{.State.Pid}}");
        pid.parse()
            .unwrap_or_else(|_| panic!("no pid for {}: {pid:?}", self.name))
    }

    /// Everything the container wrote to stdout and stderr so far.
    pub fn logs(&self) -> String {
        let mut c = self.podman.command();
        c.args(["logs", &self.name]);
        run_bounded(&mut c, PODMAN_TIMEOUT, &self.dir_log).output
    }

    /// `podman stop` (SIGTERM, then SIGKILL after `grace`) and the exit code.
    pub fn stop(&self, grace: Duration) -> i32 {
        let mut c = self.podman.command();
        c.args(["stop", "-t", &grace.as_secs().to_string(), &self.name]);
        let done = run_bounded(&mut c, PODMAN_TIMEOUT, &self.scratch("stop"));
        assert!(done.success(), "podman stop failed: {}", done.output);
        let code = self.inspect("{{.State.ExitCode}}");
        code.parse()
            .unwrap_or_else(|_| panic!("exit code of {}: {code:?}", self.name))
    }

    fn scratch(&self, what: &str) -> PathBuf {
        self.dir_log.with_extension(format!("{what}.log"))
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "---- container {} logs ----\n{}",
                self.name,
                crate::process::tail(&self.logs(), 40)
            );
        }
        let mut c = self.podman.command();
        c.args(["rm", "-f", "-t", "0", &self.name]);
        let _ = run_bounded(&mut c, PODMAN_TIMEOUT, &self.scratch("rm"));
    }
}
