//! Frames and messages on the control socket. A frame is a u32 big-endian byte length, then
//! that many bytes of JSON (one message). The handshake is the client's `Hello` and the
//! server's `Welcome` (or `Refused`, after which the server closes); these three keep their
//! shape across protocol versions so that a mismatch can always be told in words.

use std::io::{Read, Write};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::run::event::{Control, Event};

/// The largest frame either side accepts (a `Started` event carries the whole resolved
/// configuration, a few KiB; anything near this is not a polaris peer).
pub const MAX_FRAME: usize = 16 << 20;

/// Who a viewer is, for lease messages: `user@host pid N`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Who {
    pub user: String,
    pub host: String,
    pub pid: u32,
}

impl Who {
    /// This process: `$USER` (or `uid N`), the host name, the pid.
    pub fn me() -> Self {
        let user = std::env::var("USER").ok().filter(|u| !u.is_empty()).unwrap_or_else(|| {
            use std::os::unix::fs::MetadataExt;
            std::fs::metadata("/proc/self").map_or_else(|_| "unknown".into(), |m| format!("uid {}", m.uid()))
        });
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .or_else(|| std::env::var("HOSTNAME").ok())
            .map(|h| h.trim().to_string())
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "localhost".into());
        Self { user, host, pid: std::process::id() }
    }
}

impl std::fmt::Display for Who {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}@{} pid {}", self.user, self.host, self.pid)
    }
}

/// The viewer holding the controller lease, and since when (unix seconds).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Holder {
    pub who: Who,
    pub since: f64,
}

impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = self.since.max(0.0) as u64 % 86_400;
        write!(f, "{} (since {:02}:{:02}:{:02} UTC)", self.who, s / 3600, s / 60 % 60, s % 60)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "msg", rename_all = "snake_case")]
pub enum ClientMsg {
    /// The first frame: the client's protocol, the last event seq it has (0: none), who.
    Hello {
        protocol: u32,
        last_seq: u64,
        who: Who,
    },
    /// Asks for the controller lease; `take_over` takes it from its holder.
    RequestLease {
        take_over: bool,
    },
    ReleaseLease,
    Control {
        control: Control,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "msg", rename_all = "snake_case")]
pub enum ServerMsg {
    /// The handshake succeeded: the trainer's protocol and pid. Events follow.
    Welcome {
        protocol: u32,
        pid: u32,
    },
    /// The handshake failed (wrong version, another user); the server closes.
    Refused {
        text: String,
    },
    Event {
        event: Event,
    },
    /// The lease as it now stands; sent after the welcome and whenever it changes.
    Lease {
        holder: Option<Holder>,
        yours: bool,
    },
    /// You held the lease and `to` took it over.
    LeaseLost {
        to: Holder,
    },
    /// A request refused (a control without the lease, the lease asked for while held).
    Denied {
        text: String,
    },
    /// A control was passed to the trainer (it acts on it between steps).
    Accepted {
        control: Control,
    },
    /// Something about this connection (it fell behind and was resynchronised, ...).
    Notice {
        text: String,
    },
    /// The server is closing the connection (the run ended).
    Bye {
        text: String,
    },
}

/// One message as a frame: length, then JSON.
pub fn encode<T: Serialize>(msg: &T) -> Result<Vec<u8>> {
    let body = serde_json::to_vec(msg)?;
    if body.len() > MAX_FRAME {
        bail!("a {} byte message is over the {} byte frame limit", body.len(), MAX_FRAME);
    }
    let mut frame = Vec::with_capacity(4 + body.len());
    frame.extend_from_slice(&(body.len() as u32).to_be_bytes());
    frame.extend_from_slice(&body);
    Ok(frame)
}

fn check_len(len: u32) -> Result<usize> {
    let len = len as usize;
    if len > MAX_FRAME {
        bail!(
            "the peer sent a {len} byte frame, over the {MAX_FRAME} byte limit: it does not speak the \
             polaris control protocol (or the stream is out of step)"
        );
    }
    Ok(len)
}

fn parse<T: for<'de> Deserialize<'de>>(body: &[u8]) -> Result<T> {
    serde_json::from_slice(body).context("the peer sent a frame that is not a message of this protocol")
}

/// The next message, or None at a clean end of stream (between frames).
pub fn read_msg<T: for<'de> Deserialize<'de>>(r: &mut impl Read) -> Result<Option<T>> {
    let mut len = [0u8; 4];
    match r.read_exact(&mut len) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e).context("cannot read from the control socket"),
    }
    let mut body = vec![0u8; check_len(u32::from_be_bytes(len))?];
    r.read_exact(&mut body).context("the control socket closed in the middle of a frame")?;
    parse(&body).map(Some)
}

pub fn write_msg<T: Serialize>(w: &mut impl Write, msg: &T) -> Result<()> {
    w.write_all(&encode(msg)?).context("cannot write to the control socket")?;
    w.flush()?;
    Ok(())
}

/// `read_msg` for the server's async streams.
pub async fn read_msg_async<T: for<'de> Deserialize<'de>>(
    r: &mut (impl AsyncRead + Unpin),
) -> Result<Option<T>> {
    let mut len = [0u8; 4];
    match r.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e).context("cannot read from the control socket"),
    }
    let mut body = vec![0u8; check_len(u32::from_be_bytes(len))?];
    r.read_exact(&mut body).await.context("the control socket closed in the middle of a frame")?;
    parse(&body).map(Some)
}

pub async fn write_msg_async<T: Serialize>(w: &mut (impl AsyncWrite + Unpin), msg: &T) -> Result<()> {
    w.write_all(&encode(msg)?).await.context("cannot write to the control socket")?;
    w.flush().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_oversized_ones_are_refused() {
        let msg = ClientMsg::RequestLease { take_over: true };
        let frame = encode(&msg).unwrap();
        assert_eq!(u32::from_be_bytes(frame[..4].try_into().unwrap()) as usize, frame.len() - 4);
        let back: ClientMsg = read_msg(&mut &frame[..]).unwrap().unwrap();
        assert_eq!(back, msg);
        // a clean end between frames is None, not an error
        assert!(read_msg::<ClientMsg>(&mut &[][..]).unwrap().is_none());
        let huge = ((MAX_FRAME + 1) as u32).to_be_bytes();
        let err = read_msg::<ClientMsg>(&mut &huge[..]).unwrap_err().to_string();
        assert!(err.contains("byte limit"), "{err}");
        // a frame cut short is an error, not a message
        assert!(read_msg::<ClientMsg>(&mut &frame[..frame.len() - 1]).is_err());
    }
}
