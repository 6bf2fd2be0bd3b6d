//! The viewer's side of the control socket, blocking: connect and handshake, then a reader
//! thread queues what the trainer sends while the caller sends controls and lease requests.

use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::Context;

use super::protocol::{read_msg, write_msg, ClientMsg, ServerMsg, Who};
use crate::run::dir::RunDir;
use crate::run::event::{Control, PROTOCOL_VERSION};

/// How long the trainer has to answer the hello.
const HANDSHAKE: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// Nothing answers on the socket: the run is not live (finished, crashed, never served).
    #[error("{0}")]
    NotLive(String),
    /// The trainer answered and refused (another protocol version, another user).
    #[error("{0}")]
    Refused(String),
    #[error("{0:#}")]
    Failed(#[from] anyhow::Error),
}

/// What came from the trainer.
#[derive(Debug, Clone, PartialEq)]
pub enum Incoming {
    Msg(ServerMsg),
    /// The connection ended; why.
    Closed(String),
}

pub struct Client {
    stream: UnixStream,
    incoming: Receiver<Incoming>,
    /// The trainer's process id, from its welcome.
    pub trainer_pid: u32,
    reader: Option<JoinHandle<()>>,
}

impl Client {
    /// Attaches to the run in `dir`, having every event up to `last_seq` already.
    pub fn connect(dir: &Path, last_seq: u64) -> Result<Self, ConnectError> {
        Self::connect_with(dir, &ClientMsg::Hello { protocol: PROTOCOL_VERSION, last_seq, who: Who::me() })
    }

    /// `connect` with the given first message (tests speak other versions with it).
    pub fn connect_with(dir: &Path, hello: &ClientMsg) -> Result<Self, ConnectError> {
        let path = RunDir::at(dir).socket();
        let mut stream = match UnixStream::connect(&path) {
            Ok(s) => s,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
                ) =>
            {
                return Err(ConnectError::NotLive(format!("nothing answers on {} ({e})", path.display())))
            }
            Err(e) => {
                return Err(anyhow::Error::new(e)
                    .context(format!("cannot connect to {}", path.display()))
                    .into())
            }
        };
        stream.set_read_timeout(Some(HANDSHAKE)).context("cannot set a socket timeout")?;
        write_msg(&mut stream, hello)?;
        // read loosely: a trainer of another version may shape its welcome differently
        let first: serde_json::Value = read_msg(&mut stream)
            .context("no answer to the hello")?
            .ok_or_else(|| anyhow::anyhow!("the trainer closed the connection during the handshake"))?;
        let text = |k: &str| first.get(k).and_then(|t| t.as_str()).unwrap_or("").to_string();
        let trainer_pid = match first.get("msg").and_then(|m| m.as_str()) {
            Some("refused") => return Err(ConnectError::Refused(text("text"))),
            Some("welcome") => {
                let theirs = first.get("protocol").and_then(|p| p.as_u64());
                if theirs != Some(PROTOCOL_VERSION as u64) {
                    return Err(ConnectError::Refused(format!(
                        "protocol mismatch: the trainer speaks control protocol version {} and this polaris-tui \
                         speaks version {PROTOCOL_VERSION}; attach with the same polaris-tui build as the trainer",
                        theirs.map_or("?".into(), |v| v.to_string())
                    )));
                }
                first.get("pid").and_then(|p| p.as_u64()).unwrap_or(0) as u32
            }
            _ => return Err(anyhow::anyhow!("the trainer's first answer is not a welcome: {first}").into()),
        };
        stream.set_read_timeout(None).context("cannot clear a socket timeout")?;
        let mut rd = stream.try_clone().context("cannot share the socket")?;
        let (tx, incoming) = mpsc::channel();
        let reader = std::thread::Builder::new()
            .name("attach-reader".into())
            .spawn(move || loop {
                let got = match read_msg::<ServerMsg>(&mut rd) {
                    Ok(Some(m)) => Incoming::Msg(m),
                    Ok(None) => Incoming::Closed("the trainer closed the connection".into()),
                    Err(e) => Incoming::Closed(format!("{e:#}")),
                };
                let closed = matches!(got, Incoming::Closed(_));
                if tx.send(got).is_err() || closed {
                    return;
                }
            })
            .context("cannot start the socket reader")?;
        Ok(Self { stream, incoming, trainer_pid, reader: Some(reader) })
    }

    pub fn send(&mut self, msg: &ClientMsg) -> anyhow::Result<()> {
        write_msg(&mut self.stream, msg)
    }

    pub fn control(&mut self, control: Control) -> anyhow::Result<()> {
        self.send(&ClientMsg::Control { control })
    }

    pub fn request_lease(&mut self, take_over: bool) -> anyhow::Result<()> {
        self.send(&ClientMsg::RequestLease { take_over })
    }

    /// The next thing from the trainer, waiting at most `wait`.
    pub fn recv_timeout(&self, wait: Duration) -> Option<Incoming> {
        match self.incoming.recv_timeout(wait) {
            Ok(m) => Some(m),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => Some(Incoming::Closed("the connection has ended".into())),
        }
    }

    /// What has arrived, without waiting.
    pub fn try_recv(&self) -> Option<Incoming> {
        self.incoming.try_recv().ok()
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        // ends the reader's blocking read
        let _ = self.stream.shutdown(std::net::Shutdown::Both);
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
    }
}
