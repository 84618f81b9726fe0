//! The TURN server under test, started on loopback from a generated `turnserver.conf`.
//!
//! `SWITCHYARD_TEST_SERVER` picks it:
//! * unset or `switchyard`: the `switchyard` binary of this cargo build, found next to the
//!   test executable (`target/<profile>/deps/<test>` → `target/<profile>/switchyard`), run as
//!   `switchyard turn -c <conf>`. `cargo test` does not build another package's binary by
//!   itself, so build it first with the same profile (`cargo build -p switchyard --profile ci`,
//!   which `tests/run.sh` does); a stale or missing binary is reported by path.
//! * `coturn`: `/usr/bin/turnserver -c <conf>` (Debian coturn 4.6.1), the reference the
//!   harness was validated against. `coturn:/path/to/turnserver` picks another coturn build.
//! * any other value: a path to a switchyard binary, run as `<path> turn -c <conf>`.
//!
//! The generated config uses only keys coturn 4.6.1 and switchyard both accept; everything
//! binds 127.0.0.1 and relays only to 127.0.0.1 (`allow-loopback-peers` is needed on top of
//! `allowed-peer-ip` because coturn rejects loopback before reading the allow list).

use crate::ports::{self, PortBlock};
use crate::process::ChildGuard;
use crate::skip::{Need, Skip, find_binary, is_executable};
use crate::stun;
use crate::tempdir::TempDir;
use std::fmt::Write as _;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// How long a server may take to answer its first Binding request.
pub const READY_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone)]
pub enum ServerKind {
    Switchyard(PathBuf),
    Coturn(PathBuf),
}

impl ServerKind {
    pub fn from_env() -> Need<Self> {
        let v = std::env::var("SWITCHYARD_TEST_SERVER").unwrap_or_default();
        match v.as_str() {
            "" | "switchyard" => locate_switchyard().map(ServerKind::Switchyard),
            "coturn" => find_binary("turnserver").map(ServerKind::Coturn),
            other => {
                if let Some(path) = other.strip_prefix("coturn:") {
                    let p = PathBuf::from(path);
                    if is_executable(&p) {
                        Ok(ServerKind::Coturn(p))
                    } else {
                        Err(Skip::new(format!("coturn binary {path} is not executable")))
                    }
                } else {
                    let p = PathBuf::from(other);
                    if is_executable(&p) {
                        Ok(ServerKind::Switchyard(p))
                    } else {
                        Err(Skip::new(format!(
                            "SWITCHYARD_TEST_SERVER={other} is not an executable file"
                        )))
                    }
                }
            }
        }
    }

    pub fn is_coturn(&self) -> bool {
        matches!(self, ServerKind::Coturn(_))
    }

    pub fn name(&self) -> &'static str {
        match self {
            ServerKind::Switchyard(_) => "switchyard",
            ServerKind::Coturn(_) => "coturn",
        }
    }

    fn command(&self, conf: &Path, run_as: Option<&str>) -> Command {
        let (program, args): (&Path, &[&str]) = match self {
            ServerKind::Switchyard(bin) => (bin, &["turn", "-c"]),
            ServerKind::Coturn(bin) => (bin, &["-c"]),
        };
        let mut c = match run_as.and_then(|ug| ug.split_once(':')) {
            Some((user, group)) => {
                let mut c = Command::new("setpriv");
                c.args(["--reuid", user, "--regid", group, "--clear-groups", "--"]);
                c.arg(program);
                c
            }
            None => Command::new(program),
        };
        c.args(args).arg(conf);
        c
    }
}

/// `target/<profile>/deps/<test-exe>` → `target/<profile>/switchyard`.
pub fn locate_switchyard() -> Need<PathBuf> {
    let exe = std::env::current_exe().map_err(|e| Skip::new(format!("current_exe: {e}")))?;
    let mut tried = Vec::new();
    for dir in exe.ancestors().skip(1).take(3) {
        let candidate = dir.join("switchyard");
        if is_executable(&candidate) {
            return Ok(candidate);
        }
        tried.push(candidate.display().to_string());
    }
    Err(Skip::new(format!(
        "switchyard binary not built (looked for {}); run `cargo build -p switchyard` with the \
         same profile first, or set SWITCHYARD_TEST_SERVER=coturn",
        tried.join(", ")
    )))
}

/// What to start.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// Also listen for TLS on `ports.tls` with a fresh self-signed certificate.
    pub tls: bool,
    pub secret: String,
    pub realm: String,
    /// Extra config lines appended verbatim.
    pub extra: Vec<String>,
    /// Switchyard only: `prometheus` on 127.0.0.1 at the block's TLS port (so not with
    /// `tls`); see [`TestServer::metrics_addr`].
    pub prometheus: bool,
    /// Start the server as this `user:group` (through `setpriv`, so never as root): the
    /// unprivileged start an operator gets with systemd `User=` or `docker --user`.
    pub run_as: Option<&'static str>,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            tls: false,
            secret: "interop-test-secret".to_string(),
            realm: "switchyard.test".to_string(),
            extra: Vec::new(),
            prometheus: false,
            run_as: None,
        }
    }
}

/// Held for a server's lifetime: servers in one test binary run one at a time.
///
/// Each test has its own ports, so this is not needed for correctness; it keeps a 2-core CI
/// machine from running several servers, clients and browsers at once, where a loaded CPU
/// rather than the server could drop datagrams and make the zero-loss assertions flaky.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// A running server; killed on drop. Fields drop in order: the process first, then its
/// directory, then the serialisation lock.
pub struct TestServer {
    guard: ChildGuard,
    pub kind: ServerKind,
    pub ports: PortBlock,
    pub options: ServerOptions,
    pub conf: PathBuf,
    pub dir: TempDir,
    _serial: MutexGuard<'static, ()>,
}

impl TestServer {
    /// Starts the server `SWITCHYARD_TEST_SERVER` names.
    pub fn start(options: ServerOptions) -> Need<Self> {
        Self::start_kind(ServerKind::from_env()?, options)
    }

    /// Starts `kind`, for tests that run the same thing against both servers.
    pub fn start_kind(kind: ServerKind, options: ServerOptions) -> Need<Self> {
        let serial = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
        let dir = TempDir::new(kind.name()).expect("create temp dir");
        let ports = ports::allocate();
        let mut conf = String::new();
        let mut line = |s: String| {
            conf.push_str(&s);
            conf.push('\n');
        };
        line("# generated by switchyard-tests (valid for coturn 4.6.1 and switchyard)".into());
        line("listening-ip=127.0.0.1".into());
        line(format!("listening-port={}", ports.listen));
        line("relay-ip=127.0.0.1".into());
        line(format!("min-port={}", ports.relay_min));
        line(format!("max-port={}", ports.relay_max));
        line(format!("realm={}", options.realm));
        line("use-auth-secret".into());
        line(format!("static-auth-secret={}", options.secret));
        line("allow-loopback-peers".into());
        line("allowed-peer-ip=127.0.0.1".into());
        line("no-cli".into());
        line("no-dtls".into());
        line("log-file=stdout".into());
        line("verbose".into());
        line(format!("pidfile={}", dir.join("turnserver.pid").display()));
        line(format!("userdb={}", dir.join("turndb").display()));
        if options.tls {
            let (cert, key) = self_signed_cert(dir.path())?;
            line(format!("tls-listening-port={}", ports.tls));
            line(format!("cert={}", cert.display()));
            line(format!("pkey={}", key.display()));
        } else {
            line("no-tls".into());
        }
        if options.prometheus {
            assert!(
                !options.tls,
                "the metrics endpoint takes the TLS port of the block"
            );
            line("prometheus".into());
            line("prometheus-address=127.0.0.1".into());
            line(format!("prometheus-port={}", ports.tls));
        }
        for l in &options.extra {
            line(l.clone());
        }
        let conf_path = dir.join("turnserver.conf");
        std::fs::write(&conf_path, &conf).expect("write turnserver.conf");

        if options.run_as.is_some() {
            // The unprivileged server reads its config (and certificates) from here.
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
                .expect("chmod temp dir");
        }
        let mut cmd = kind.command(&conf_path, options.run_as);
        cmd.current_dir(dir.path());
        let guard = ChildGuard::spawn(kind.name(), &mut cmd, &dir.join("server.log"))
            .unwrap_or_else(|e| panic!("cannot start {kind:?}: {e}"));
        let mut server = TestServer {
            guard,
            kind,
            ports,
            options,
            conf: conf_path,
            dir,
            _serial: serial,
        };
        server.wait_ready();
        Ok(server)
    }

    /// Polls with Binding requests (UDP), then TCP connects, until the server answers; fails
    /// the test with the server's log if it exits or stays silent for [`READY_TIMEOUT`].
    fn wait_ready(&mut self) {
        let deadline = Instant::now() + READY_TIMEOUT;
        let udp = self.udp_addr();
        loop {
            if let Some(status) = self.guard.exited() {
                panic!(
                    "{} exited during startup ({status}); config:\n{}\nlog:\n{}",
                    self.kind.name(),
                    std::fs::read_to_string(&self.conf).unwrap_or_default(),
                    self.guard.log_tail(40)
                );
            }
            if stun::binding(
                udp,
                (Instant::now() + Duration::from_millis(300)).min(deadline),
            )
            .is_some()
            {
                break;
            }
            if Instant::now() >= deadline {
                panic!(
                    "{} did not answer a STUN Binding on {udp} within {READY_TIMEOUT:?}; log:\n{}",
                    self.kind.name(),
                    self.guard.log_tail(40)
                );
            }
        }
        let mut tcp_ports = vec![self.ports.listen];
        if self.options.tls {
            tcp_ports.push(self.ports.tls);
        }
        for port in tcp_ports {
            let addr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, port));
            while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
                if Instant::now() >= deadline {
                    panic!(
                        "{} is not accepting TCP on {addr} within {READY_TIMEOUT:?}; log:\n{}",
                        self.kind.name(),
                        self.guard.log_tail(40)
                    );
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }

    pub fn udp_addr(&self) -> SocketAddr {
        SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, self.ports.listen))
    }

    /// The metrics endpoint (with [`ServerOptions::prometheus`]).
    pub fn metrics_addr(&self) -> SocketAddr {
        SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, self.ports.tls))
    }

    /// The server's process id (for signals).
    pub fn pid(&self) -> u32 {
        self.guard.id()
    }

    /// The whole server log so far.
    pub fn log(&self) -> String {
        self.guard.log()
    }

    pub fn secret(&self) -> &str {
        &self.options.secret
    }

    /// Fails the test (with the log) if the server died, e.g. crashed under a peer's traffic.
    pub fn assert_alive(&mut self) {
        if let Some(status) = self.guard.exited() {
            panic!(
                "{} exited ({status}); log:\n{}",
                self.kind.name(),
                self.guard.log_tail(60)
            );
        }
    }

    pub fn log_tail(&self, lines: usize) -> String {
        self.guard.log_tail(lines)
    }

    /// A one-paragraph description for assertion messages.
    pub fn describe(&self) -> String {
        let mut s = String::new();
        let _ = write!(
            s,
            "{} on 127.0.0.1:{} (relay {}-{})",
            self.kind.name(),
            self.ports.listen,
            self.ports.relay_min,
            self.ports.relay_max
        );
        s
    }
}

/// A P-256 self-signed certificate for CN=localhost, valid one day.
pub fn self_signed_cert(dir: &Path) -> Need<(PathBuf, PathBuf)> {
    let openssl = find_binary("openssl")?;
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    let out = Command::new(openssl)
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
            "-keyout",
        ])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "openssl req failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok((cert, key))
}

/// The SHA-256 fingerprint (`openssl x509 -fingerprint` form) of the certificate a server on
/// loopback `port` presents to `openssl s_client` with `mode` (`-dtls1_2` for DTLS, empty
/// for TLS); the PEM is written under `dir` on the way.
pub fn served_cert_fingerprint(openssl: &Path, mode: &[&str], dir: &Path, port: u16) -> String {
    let out = Command::new(openssl)
        .arg("s_client")
        .args(mode)
        .args([
            "-connect",
            &format!("127.0.0.1:{port}"),
            "-servername",
            "localhost",
        ])
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output()
        .expect("run openssl s_client");
    let text = String::from_utf8_lossy(&out.stdout);
    let (Some(begin), Some(end)) = (
        text.find("-----BEGIN CERTIFICATE-----"),
        text.find("-----END CERTIFICATE-----"),
    ) else {
        panic!("no certificate from s_client {mode:?}: {text}");
    };
    let pem = dir.join("served.pem");
    std::fs::write(&pem, &text[begin..end + "-----END CERTIFICATE-----".len()]).unwrap();
    let out = Command::new(openssl)
        .args(["x509", "-noout", "-fingerprint", "-sha256", "-in"])
        .arg(&pem)
        .output()
        .expect("run openssl x509");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}
