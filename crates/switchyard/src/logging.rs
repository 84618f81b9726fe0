//! Logging setup: stdout by default (what containers want), an append-only file that
//! `SIGHUP` reopens (for logrotate, as coturn does), or the local syslog daemon.

use std::cell::RefCell;
use std::fs::{File, OpenOptions};
use std::io::{self, IsTerminal, Write};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use tracing::{Level, Metadata};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

/// The syslog daemon's socket.
pub(crate) const SYSLOG_SOCKET: &str = "/dev/log";

/// Where log lines go.
pub(crate) enum LogTarget<'a> {
    Stdout,
    File(&'a Path),
    /// RFC 3164 datagrams to a local syslog socket, with this facility code (LOG_USER = 1).
    Syslog {
        socket: &'a Path,
        facility: u8,
    },
}

/// What `SIGHUP` needs to reopen the log file.
#[derive(Clone, Default)]
pub(crate) struct LogHandle {
    file: Option<Arc<LogFile>>,
}

impl LogHandle {
    /// Reopens the log file (after logrotate moved it); a no-op for stdout and syslog.
    pub(crate) fn reopen(&self) -> io::Result<()> {
        match &self.file {
            Some(f) => f.reopen(),
            None => Ok(()),
        }
    }
}

/// Installs the global subscriber. `RUST_LOG` overrides `default_level`.
pub(crate) fn init(target: LogTarget<'_>, default_level: &str) -> Result<LogHandle, String> {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false);
    match target {
        LogTarget::Stdout => {
            let _ = SINK.set(Box::new(|lines| {
                let _ = io::stdout().lock().write_all(lines);
            }));
            // Colour only on a terminal: container runtimes and journald store escape codes
            // verbatim.
            builder
                .with_ansi(io::stdout().is_terminal())
                .with_writer(Batching(io::stdout))
                .init();
            Ok(LogHandle::default())
        }
        LogTarget::File(path) => {
            let file = Arc::new(LogFile::open(path)?);
            let sink = file.clone();
            let _ = SINK.set(Box::new(move |lines| {
                let _ = sink.make_writer().write_all(lines);
            }));
            builder
                .with_ansi(false)
                .with_writer(Batching(SharedLogFile(file.clone())))
                .init();
            Ok(LogHandle { file: Some(file) })
        }
        LogTarget::Syslog { socket, facility } => {
            let sink = Syslog::connect(socket, facility)
                .map_err(|e| format!("syslog {}: {e}", socket.display()))?;
            // The daemon stamps time and host; the line carries level and message.
            builder
                .with_ansi(false)
                .without_time()
                .with_writer(sink)
                .init();
            Ok(LogHandle::default())
        }
    }
}

/// Where a batch of lines goes at the end of [`batched`]: the same stdout or log file the
/// subscriber writes to (syslog keeps one datagram per line and never batches).
type Sink = Box<dyn Fn(&[u8]) + Send + Sync>;
static SINK: OnceLock<Sink> = OnceLock::new();

/// A batch longer than this is written out at once rather than held to the end.
const BATCH_MAX: usize = 64 * 1024;

#[derive(Default)]
struct Batch {
    active: bool,
    lines: Vec<u8>,
}

thread_local! {
    static BATCH: RefCell<Batch> = RefCell::new(Batch::default());
}

/// Runs `f` with this thread's log lines held and written with one `write` at its end.
///
/// A worker logs allocation lifecycles (created, freed, refused) from here: a burst of
/// allocations then costs one syscall per event-loop round instead of one per line, which
/// is a tenth of the relay's CPU per allocation. Lines are delayed by microseconds and
/// keep their order; a panic inside `f` still writes them.
pub(crate) fn batched<R>(f: impl FnOnce() -> R) -> R {
    match SINK.get() {
        Some(sink) => batched_into(sink.as_ref(), f),
        None => f(),
    }
}

fn batched_into<R>(sink: &(dyn Fn(&[u8]) + Send + Sync), f: impl FnOnce() -> R) -> R {
    let nested = BATCH.with(|b| std::mem::replace(&mut b.borrow_mut().active, true));
    if nested {
        return f();
    }
    struct Flush<'s>(&'s (dyn Fn(&[u8]) + Send + Sync));
    impl Drop for Flush<'_> {
        fn drop(&mut self) {
            BATCH.with(|b| {
                let mut b = b.borrow_mut();
                b.active = false;
                if !b.lines.is_empty() {
                    (self.0)(&b.lines);
                    b.lines.clear();
                }
            });
        }
    }
    let _flush = Flush(sink);
    f()
}

/// The subscriber's writer: straight to the sink, or into this thread's batch inside
/// [`batched`].
struct Batching<M>(M);

enum BatchLine<W> {
    Held(&'static (dyn Fn(&[u8]) + Send + Sync)),
    Direct(W),
}

impl<'a, M: MakeWriter<'a>> MakeWriter<'a> for Batching<M> {
    type Writer = BatchLine<M::Writer>;
    fn make_writer(&'a self) -> Self::Writer {
        match SINK.get() {
            Some(sink) if BATCH.with(|b| b.borrow().active) => BatchLine::Held(sink.as_ref()),
            _ => BatchLine::Direct(self.0.make_writer()),
        }
    }
}

impl<W: Write> Write for BatchLine<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            BatchLine::Held(sink) => {
                BATCH.with(|b| {
                    let mut b = b.borrow_mut();
                    b.lines.extend_from_slice(buf);
                    if b.lines.len() >= BATCH_MAX {
                        sink(&b.lines);
                        b.lines.clear();
                    }
                });
                Ok(buf.len())
            }
            BatchLine::Direct(w) => w.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            BatchLine::Held(_) => Ok(()),
            BatchLine::Direct(w) => w.flush(),
        }
    }
}

/// coturn's `syslog-facility` names to facility codes (RFC 5424 §6.2.1).
pub(crate) fn syslog_facility(name: Option<&str>) -> u8 {
    match name.map(str::to_ascii_lowercase).as_deref() {
        Some("kern") => 0,
        Some("mail") => 2,
        Some("daemon") => 3,
        Some("auth") => 4,
        Some("syslog") => 5,
        Some("local0") => 16,
        Some("local1") => 17,
        Some("local2") => 18,
        Some("local3") => 19,
        Some("local4") => 20,
        Some("local5") => 21,
        Some("local6") => 22,
        Some("local7") => 23,
        _ => 1, // user, syslog(3)'s default
    }
}

/// An append-only log file that can be reopened at the same path.
struct LogFile {
    path: PathBuf,
    file: Mutex<File>,
}

impl LogFile {
    fn open(path: &Path) -> Result<Self, String> {
        Ok(LogFile {
            path: path.to_owned(),
            file: Mutex::new(open_append(path).map_err(|e| format!("{}: {e}", path.display()))?),
        })
    }

    fn reopen(&self) -> io::Result<()> {
        let new = open_append(&self.path)?;
        *self.file.lock().unwrap_or_else(|e| e.into_inner()) = new;
        Ok(())
    }
}

fn open_append(path: &Path) -> io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

struct LogFileWriter<'a>(MutexGuard<'a, File>);

impl Write for LogFileWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

impl<'a> MakeWriter<'a> for LogFile {
    type Writer = LogFileWriter<'a>;
    fn make_writer(&'a self) -> Self::Writer {
        LogFileWriter(self.file.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

/// The subscriber's handle on the [`LogFile`] that [`LogHandle`] also holds.
struct SharedLogFile(Arc<LogFile>);

impl<'a> MakeWriter<'a> for SharedLogFile {
    type Writer = LogFileWriter<'a>;
    fn make_writer(&'a self) -> Self::Writer {
        self.0.make_writer()
    }
}

/// A connected datagram socket to the syslog daemon. Each log event becomes one datagram
/// `<PRI>switchyard[PID]: message`, the form syslog(3) sends.
pub(crate) struct Syslog {
    socket: UnixDatagram,
    facility: u8,
    pid: u32,
}

impl Syslog {
    pub(crate) fn connect(path: &Path, facility: u8) -> io::Result<Self> {
        let socket = UnixDatagram::unbound()?;
        socket.connect(path)?;
        Ok(Syslog {
            socket,
            facility,
            pid: std::process::id(),
        })
    }
}

/// Buffers one event and sends it as one datagram when dropped.
pub(crate) struct SyslogLine<'a> {
    sink: &'a Syslog,
    severity: u8,
    buf: Vec<u8>,
}

impl Write for SyslogLine<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for SyslogLine<'_> {
    fn drop(&mut self) {
        let text = String::from_utf8_lossy(&self.buf);
        let text = text.trim_end();
        if text.is_empty() {
            return;
        }
        let pri = u16::from(self.sink.facility) * 8 + u16::from(self.severity);
        let line = format!("<{pri}>switchyard[{}]: {text}", self.sink.pid);
        // A full or absent daemon must never block or stop the relay.
        let _ = self.sink.socket.send(line.as_bytes());
    }
}

fn severity(level: &Level) -> u8 {
    match *level {
        Level::ERROR => 3,
        Level::WARN => 4,
        Level::INFO => 6,
        _ => 7,
    }
}

impl<'a> MakeWriter<'a> for Syslog {
    type Writer = SyslogLine<'a>;
    fn make_writer(&'a self) -> Self::Writer {
        SyslogLine {
            sink: self,
            severity: 6,
            buf: Vec::new(),
        }
    }
    fn make_writer_for(&'a self, meta: &Metadata<'_>) -> Self::Writer {
        SyslogLine {
            sink: self,
            severity: severity(meta.level()),
            buf: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_is_one_write_in_order_even_after_a_panic() {
        static WRITES: Mutex<Vec<Vec<u8>>> = Mutex::new(Vec::new());
        let sink: &'static (dyn Fn(&[u8]) + Send + Sync) =
            Box::leak(Box::new(|b: &[u8]| WRITES.lock().unwrap().push(b.to_vec())));
        let line = |s: &str| {
            BatchLine::<io::Sink>::Held(sink)
                .write_all(s.as_bytes())
                .unwrap()
        };
        batched_into(sink, || {
            line("a\n");
            // Nested scopes join the outer batch.
            batched_into(sink, || line("b\n"));
            line("c\n");
            assert!(WRITES.lock().unwrap().is_empty(), "held until the end");
        });
        assert_eq!(*WRITES.lock().unwrap(), [b"a\nb\nc\n".to_vec()]);
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            batched_into(sink, || {
                line("d\n");
                panic!("worker bug");
            })
        }));
        assert!(caught.is_err());
        assert_eq!(WRITES.lock().unwrap().last().unwrap(), b"d\n");
        // Past BATCH_MAX the batch goes out early rather than growing.
        batched_into(sink, || {
            let long = "x".repeat(BATCH_MAX);
            line(&long);
            assert_eq!(WRITES.lock().unwrap().len(), 3);
        });
        assert!(!BATCH.with(|b| b.borrow().active));
    }

    #[test]
    fn syslog_datagrams_carry_priority_ident_and_pid() {
        let dir = std::env::temp_dir().join(format!("sy-syslog-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let path = dir.join("log.sock");
        let _ = std::fs::remove_file(&path);
        let daemon = UnixDatagram::bind(&path).unwrap();
        daemon
            .set_read_timeout(Some(std::time::Duration::from_secs(2)))
            .unwrap();
        let sink = Syslog::connect(&path, syslog_facility(Some("local3"))).unwrap();
        {
            let mut w = sink.make_writer();
            w.severity = severity(&Level::WARN);
            w.write_all(b" WARN reload failed: t.conf:3: realm: empty\n")
                .unwrap();
        }
        let mut buf = [0u8; 512];
        let n = daemon.recv(&mut buf).unwrap();
        let got = std::str::from_utf8(&buf[..n]).unwrap();
        // local3 (19) × 8 + warning (4) = 156.
        assert_eq!(
            got,
            format!(
                "<156>switchyard[{}]:  WARN reload failed: t.conf:3: realm: empty",
                std::process::id()
            )
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn log_file_reopens_after_rotation() {
        let dir = std::env::temp_dir().join(format!("sy-logfile-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let path = dir.join("turn.log");
        let log = LogFile::open(&path).unwrap();
        log.make_writer().write_all(b"one\n").unwrap();
        std::fs::rename(&path, dir.join("turn.log.1")).unwrap();
        log.reopen().unwrap();
        log.make_writer().write_all(b"two\n").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "two\n");
        assert_eq!(
            std::fs::read_to_string(dir.join("turn.log.1")).unwrap(),
            "one\n"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
