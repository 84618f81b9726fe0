//! TCP and TLS client connections, with STUN/ChannelData framing.
//!
//! coturn recognises TLS on its plain port and plain TCP on its TLS port, so a connection
//! starts in [`Mode::Detect`] and picks its mode from the first byte (0x16 is a TLS
//! handshake record; STUN starts with 0b00 and ChannelData with 0b01).

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::sync::Arc;

use mio::net::TcpStream;

/// Bytes of client output a connection may hold before relayed data is dropped: a client
/// that stops reading must not grow our memory (relayed media is loss-tolerant anyway).
pub const MAX_PENDING_OUTPUT: usize = 1 << 20;
/// Largest frame accepted from a client: a STUN message or ChannelData is at most 64 KiB.
pub const MAX_FRAME: usize = 65_536 + 4 + 20;

/// How the next frame in a byte stream is delimited; the caller's framer knows STUN.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framed {
    /// More bytes are needed.
    Incomplete,
    /// A whole frame of this many bytes (padding included) is at the front.
    Complete(usize),
    /// The stream does not hold STUN or ChannelData; the connection must close.
    Invalid,
}

/// The byte stream is not STUN or ChannelData framing; the connection must close.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("stream is not STUN/ChannelData framed")]
pub struct InvalidStream;

/// Wire mode of a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Nothing read yet.
    Detect,
    /// Plain TCP.
    Plain,
    /// TLS (rustls).
    Tls,
}

/// What reading did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadStatus {
    /// Still open.
    Open,
    /// The peer closed, or the stream broke; the connection should be dropped.
    Closed,
}

/// A client connection owned by one worker.
pub struct StreamConn {
    stream: TcpStream,
    tls_config: Option<Arc<rustls::ServerConfig>>,
    tls: Option<rustls::ServerConnection>,
    mode: Mode,
    input: Vec<u8>,
    output: Vec<u8>,
    remote: SocketAddr,
    local: SocketAddr,
    opened: std::time::Instant,
}

impl StreamConn {
    /// Wraps an accepted stream. `tls_config` is `None` when TLS is not configured, in which
    /// case a TLS ClientHello closes the connection.
    pub fn new(
        stream: TcpStream,
        remote: SocketAddr,
        local: SocketAddr,
        tls_config: Option<Arc<rustls::ServerConfig>>,
    ) -> Self {
        let _ = stream.set_nodelay(true);
        Self {
            stream,
            tls_config,
            tls: None,
            mode: Mode::Detect,
            input: Vec::with_capacity(4096),
            output: Vec::new(),
            remote,
            local,
            opened: std::time::Instant::now(),
        }
    }

    /// A plain TCP connection that is never TLS whatever its first byte (RFC 6062 peer
    /// connections carry arbitrary bytes).
    pub fn plain(stream: TcpStream, remote: SocketAddr, local: SocketAddr) -> Self {
        let mut conn = Self::new(stream, remote, local, None);
        conn.mode = Mode::Plain;
        conn
    }

    /// Bytes read and not yet consumed (for raw relaying instead of [`Self::take_frame`]).
    pub fn input(&self) -> &[u8] {
        &self.input
    }

    /// Drops the first `n` bytes of [`Self::input`].
    pub fn consume(&mut self, n: usize) {
        self.input.drain(..n.min(self.input.len()));
    }

    /// Output bytes queued and not yet written to the socket (plain connections; a TLS
    /// connection's queue is inside rustls and counts as 0).
    pub fn pending_output(&self) -> usize {
        self.output.len()
    }

    /// When the connection was accepted.
    pub fn opened(&self) -> std::time::Instant {
        self.opened
    }

    /// The mio source, for registration.
    pub fn source(&mut self) -> &mut TcpStream {
        &mut self.stream
    }

    /// The client's address.
    pub fn remote(&self) -> SocketAddr {
        self.remote
    }

    /// Our address on this connection.
    pub fn local(&self) -> SocketAddr {
        self.local
    }

    /// The mode picked so far.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// Reads everything the socket has into the frame buffer (decrypting TLS).
    pub fn read(&mut self) -> ReadStatus {
        let mut chunk = [0u8; 16 * 1024];
        loop {
            if self.input.len() > 2 * MAX_FRAME {
                // The caller has not consumed frames; stop reading until it does.
                return ReadStatus::Open;
            }
            match self.mode {
                Mode::Detect => {
                    let mut first = [0u8; 1];
                    match self.stream.peek(&mut first) {
                        Ok(0) => return ReadStatus::Closed,
                        Ok(_) => {
                            if first[0] == 0x16 {
                                let Some(config) = self.tls_config.clone() else {
                                    return ReadStatus::Closed;
                                };
                                match rustls::ServerConnection::new(config) {
                                    Ok(conn) => self.tls = Some(conn),
                                    Err(_) => return ReadStatus::Closed,
                                }
                                self.mode = Mode::Tls;
                            } else {
                                self.mode = Mode::Plain;
                            }
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                            return ReadStatus::Open;
                        }
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(_) => return ReadStatus::Closed,
                    }
                }
                Mode::Plain => match self.stream.read(&mut chunk) {
                    Ok(0) => return ReadStatus::Closed,
                    Ok(n) => self.input.extend_from_slice(&chunk[..n]),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return ReadStatus::Open,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(_) => return ReadStatus::Closed,
                },
                Mode::Tls => return self.read_tls(&mut chunk),
            }
        }
    }

    fn read_tls(&mut self, chunk: &mut [u8]) -> ReadStatus {
        let Some(tls) = self.tls.as_mut() else {
            return ReadStatus::Closed;
        };
        let mut closed = false;
        loop {
            match tls.read_tls(&mut self.stream) {
                Ok(0) => {
                    closed = true;
                    break;
                }
                Ok(_) => {
                    if tls.process_new_packets().is_err() {
                        // Send the alert rustls queued, then give up on the connection.
                        let _ = tls.write_tls(&mut self.stream);
                        return ReadStatus::Closed;
                    }
                    loop {
                        match tls.reader().read(chunk) {
                            Ok(0) => break,
                            Ok(n) => self.input.extend_from_slice(&chunk[..n]),
                            Err(_) => break,
                        }
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return ReadStatus::Closed,
            }
            if self.input.len() > 2 * MAX_FRAME {
                break;
            }
        }
        // Handshake messages rustls wants to send.
        if self.flush().is_err() {
            return ReadStatus::Closed;
        }
        if closed {
            ReadStatus::Closed
        } else {
            ReadStatus::Open
        }
    }

    /// Moves the next complete frame into `scratch` and returns its length; `Ok(None)` when no
    /// whole frame is buffered; `Err(InvalidStream)` when the stream holds garbage.
    pub fn take_frame(
        &mut self,
        framer: impl Fn(&[u8]) -> Framed,
        scratch: &mut [u8],
    ) -> Result<Option<usize>, InvalidStream> {
        if self.input.is_empty() {
            return Ok(None);
        }
        match framer(&self.input) {
            Framed::Incomplete => Ok(None),
            Framed::Invalid => Err(InvalidStream),
            Framed::Complete(n) if n > self.input.len() || n > scratch.len() || n == 0 => {
                Err(InvalidStream)
            }
            Framed::Complete(n) => {
                scratch[..n].copy_from_slice(&self.input[..n]);
                self.input.drain(..n);
                Ok(Some(n))
            }
        }
    }

    /// Queues bytes for the client. Returns false (and drops them) when the client has not
    /// been reading and too much is pending.
    pub fn send(&mut self, data: &[u8]) -> bool {
        match self.mode {
            Mode::Tls => {
                let Some(tls) = self.tls.as_mut() else {
                    return false;
                };
                if tls.wants_write() && self.output.len() + data.len() > MAX_PENDING_OUTPUT {
                    return false;
                }
                tls.writer().write_all(data).is_ok()
            }
            _ => {
                if self.output.len() + data.len() > MAX_PENDING_OUTPUT {
                    return false;
                }
                self.output.extend_from_slice(data);
                true
            }
        }
    }

    /// Queues as much of `data` as fits (a byte stream being relayed, RFC 6062) and
    /// returns how many bytes were taken; the rest stays with the caller, so nothing is
    /// lost or sent twice when the client reads slowly.
    pub fn send_partial(&mut self, data: &[u8]) -> usize {
        match self.mode {
            Mode::Tls => match self.tls.as_mut() {
                // rustls takes what fits under its own buffer limit.
                Some(tls) => tls.writer().write(data).unwrap_or(0),
                None => 0,
            },
            _ => {
                let n = data
                    .len()
                    .min(MAX_PENDING_OUTPUT.saturating_sub(self.output.len()));
                self.output.extend_from_slice(&data[..n]);
                n
            }
        }
    }

    /// Writes as much pending output as the socket takes.
    pub fn flush(&mut self) -> io::Result<()> {
        if let Some(tls) = self.tls.as_mut() {
            while tls.wants_write() {
                match tls.write_tls(&mut self.stream) {
                    Ok(_) => {}
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
            return Ok(());
        }
        while !self.output.is_empty() {
            match self.stream.write(&self.output) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    self.output.drain(..n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}
