//! Serves one run over its control socket, on a thread and tokio runtime of its own so the
//! trainer never waits on a viewer: the trainer's side is a broadcast send (never blocks)
//! and a control channel send (unbounded).
//!
//! Each viewer: its uid is checked, then its `Hello` (protocol version, last seq it has);
//! it subscribes to the live events *before* the log is read, gets every event after its
//! seq from `events.jsonl`, then the live ones, skipping any seq already sent (no gap, no
//! duplicate). Slow viewers: a viewer's queue is its place in the log's broadcast ring
//! (1024 events) plus 64 replies. One that falls further behind (`Lagged`) is
//! **resynchronised from the log**, from the last seq it was sent, and told so in a
//! `Notice`; one whose socket accepts nothing for `WRITE_STALL` is **dropped** (its
//! connection closed, and the trainer's stderr says why); it can re-attach and catch up.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use tokio::net::unix::OwnedWriteHalf;
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{broadcast, mpsc, watch};
use tokio::task::JoinSet;

use super::lease::{Asked, Lease, ViewerId};
use super::protocol::{read_msg_async, write_msg_async, ClientMsg, ServerMsg, Who};
use super::socket::{self, check_peer};
use crate::run::dir::RunDir;
use crate::run::event::{Control, Event, PROTOCOL_VERSION};

/// How long a viewer has to say hello.
const HANDSHAKE: Duration = Duration::from_secs(10);
/// A viewer whose socket takes nothing for this long is dropped.
pub const WRITE_STALL: Duration = Duration::from_secs(30);
/// Replies and lease news waiting for one viewer.
const REPLIES: usize = 64;
/// How long the last events and goodbyes may take when the run ends.
const FAREWELL: Duration = Duration::from_secs(2);

/// The socket being served; dropping it says goodbye to every viewer (after the events
/// already logged) and removes the socket file.
pub struct Serving {
    path: PathBuf,
    stop: Option<watch::Sender<bool>>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for Serving {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(true);
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

struct Viewer {
    who: Who,
    replies: mpsc::Sender<ServerMsg>,
}

#[derive(Default)]
struct Hub {
    lease: Lease,
    viewers: HashMap<ViewerId, Viewer>,
}

struct Ctx {
    hub: Mutex<Hub>,
    owner: u32,
    events: PathBuf,
    live: broadcast::Sender<Event>,
    controls: Sender<Control>,
}

/// Serves the run directory `dir`: its `events.jsonl`, the log's live broadcast `live`, and
/// the driver's `controls`. `new_run`: the directory holds no run yet (its mode may be
/// tightened rather than refused).
pub fn serve(
    dir: &Path,
    live: broadcast::Sender<Event>,
    controls: Sender<Control>,
    new_run: bool,
) -> Result<Serving> {
    socket::check_dir(dir, new_run)?;
    let (listener, owner) = socket::bind(dir)?;
    let path = RunDir::at(dir).socket();
    let started = (|| {
        listener.set_nonblocking(true)?;
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let (stop_tx, stop) = watch::channel(false);
        let ctx = Arc::new(Ctx {
            hub: Mutex::new(Hub::default()),
            owner,
            events: RunDir::at(dir).events(),
            live,
            controls,
        });
        let thread = std::thread::Builder::new()
            .name("control-socket".into())
            .spawn(move || rt.block_on(accept(listener, ctx, stop)))?;
        anyhow::Ok((stop_tx, thread))
    })();
    match started {
        Ok((stop, thread)) => Ok(Serving { path, stop: Some(stop), thread: Some(thread) }),
        Err(e) => {
            let _ = std::fs::remove_file(&path);
            Err(e).with_context(|| format!("cannot serve {}", path.display()))
        }
    }
}

async fn accept(listener: std::os::unix::net::UnixListener, ctx: Arc<Ctx>, mut stop: watch::Receiver<bool>) {
    let listener = match UnixListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => return eprintln!("control.sock: cannot listen: {e}"),
    };
    let mut sessions = JoinSet::new();
    let mut next: ViewerId = 0;
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    next += 1;
                    sessions.spawn(session(next, stream, ctx.clone(), stop.clone()));
                }
                Err(e) => {
                    eprintln!("control.sock: accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            Some(_) = sessions.join_next(), if !sessions.is_empty() => {}
        }
    }
    drop(listener);
    let _ = tokio::time::timeout(FAREWELL, async { while sessions.join_next().await.is_some() {} }).await;
}

async fn session(id: ViewerId, stream: UnixStream, ctx: Arc<Ctx>, stop: watch::Receiver<bool>) {
    let result = serve_viewer(id, stream, &ctx, stop).await;
    let who = {
        let mut hub = ctx.hub.lock().expect("hub lock");
        let gone = hub.viewers.remove(&id);
        if hub.lease.release(id) {
            announce(&hub);
        }
        gone.map(|v| v.who.to_string())
    };
    if let Err(e) = result {
        eprintln!("control.sock: viewer {}: {e:#}", who.unwrap_or_else(|| format!("#{id}")));
    }
}

/// Writes one message, or fails if the viewer's socket takes nothing for `WRITE_STALL`.
async fn send(w: &mut OwnedWriteHalf, msg: &ServerMsg) -> Result<()> {
    tokio::time::timeout(WRITE_STALL, write_msg_async(w, msg)).await.map_err(|_| {
        anyhow!("its socket took nothing for {} s: dropped (it can re-attach)", WRITE_STALL.as_secs())
    })?
}

async fn serve_viewer(
    id: ViewerId,
    stream: UnixStream,
    ctx: &Arc<Ctx>,
    mut stop: watch::Receiver<bool>,
) -> Result<()> {
    let uid = stream.peer_cred().context("cannot read the peer's credentials")?.uid();
    let (mut rd, mut w) = stream.into_split();
    if let Err(text) = check_peer(uid, ctx.owner) {
        eprintln!("control.sock: {text}");
        return send(&mut w, &ServerMsg::Refused { text }).await;
    }
    // the hello is read loosely first: a viewer of another version may shape it differently
    let hello = match tokio::time::timeout(HANDSHAKE, read_msg_async::<serde_json::Value>(&mut rd)).await {
        Err(_) => {
            let text = format!("no hello within {} s", HANDSHAKE.as_secs());
            return send(&mut w, &ServerMsg::Refused { text }).await;
        }
        // connected and left without a word: a liveness probe
        Ok(Ok(None)) => return Ok(()),
        Ok(Ok(Some(hello))) => hello,
        Ok(Err(e)) => return Err(e),
    };
    let theirs = hello.get("protocol").and_then(|p| p.as_u64());
    if theirs != Some(PROTOCOL_VERSION as u64) {
        let theirs = theirs.map_or("an unknown version".to_string(), |v| format!("version {v}"));
        let text = format!(
            "protocol mismatch: this trainer (pid {}) speaks control protocol version {PROTOCOL_VERSION} and \
             the viewer speaks {theirs}; attach with the same polaris-tui build as the trainer (upgrade the older one)",
            std::process::id()
        );
        eprintln!("control.sock: refused a viewer: {text}");
        return send(&mut w, &ServerMsg::Refused { text }).await;
    }
    let Ok(ClientMsg::Hello { last_seq, who, .. }) = serde_json::from_value::<ClientMsg>(hello) else {
        let text = "the first message must be a hello".to_string();
        return send(&mut w, &ServerMsg::Refused { text }).await;
    };

    // subscribe before reading the log: an event appended meanwhile is in one or both
    let mut live = ctx.live.subscribe();
    let (tx, mut replies) = mpsc::channel(REPLIES);
    let holder = {
        let mut hub = ctx.hub.lock().expect("hub lock");
        hub.viewers.insert(id, Viewer { who, replies: tx });
        hub.lease.holder().cloned()
    };
    send(&mut w, &ServerMsg::Welcome { protocol: PROTOCOL_VERSION, pid: std::process::id() }).await?;
    send(&mut w, &ServerMsg::Lease { holder, yours: false }).await?;
    let reader_ctx = ctx.clone();
    let mut reader = tokio::spawn(async move {
        loop {
            match read_msg_async::<ClientMsg>(&mut rd).await {
                Ok(Some(msg)) => obey(id, &reader_ctx, msg),
                Ok(None) => return Ok(()),
                Err(e) => return Err(e),
            }
        }
    });
    let ended = async {
        let mut last = replay(&mut w, &ctx.events, last_seq).await?;
        loop {
            tokio::select! {
                biased;
                ev = live.recv() => match ev {
                    Ok(ev) if ev.seq <= last => {}
                    Ok(ev) => {
                        last = ev.seq;
                        send(&mut w, &ServerMsg::Event { event: ev }).await?;
                    }
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        let text = format!("this viewer fell {n} events behind; resynchronised from the run log");
                        send(&mut w, &ServerMsg::Notice { text }).await?;
                        last = replay(&mut w, &ctx.events, last).await?;
                    }
                    Err(broadcast::error::RecvError::Closed) => return Ok(()),
                },
                Some(msg) = replies.recv() => send(&mut w, &msg).await?,
                done = &mut reader => {
                    // the viewer left (or spoke out of turn)
                    return done.map_err(|e| anyhow!("{e}"))?;
                }
                _ = stop.changed() => {
                    let text = "the run has ended; the trainer closed the connection".to_string();
                    return send(&mut w, &ServerMsg::Bye { text }).await;
                }
            }
        }
    }
    .await;
    reader.abort();
    ended
}

/// Sends every logged event after `after`; returns the last seq sent (or `after`).
async fn replay(w: &mut OwnedWriteHalf, events: &Path, after: u64) -> Result<u64> {
    let path = events.to_path_buf();
    let log = tokio::task::spawn_blocking(move || crate::run::log::read(&path)).await??;
    let mut last = after;
    for event in log.events.into_iter().filter(|e| e.seq > after) {
        last = event.seq;
        send(w, &ServerMsg::Event { event }).await?;
    }
    Ok(last)
}

/// What a viewer asked for, answered on its reply queue (and the lease news to everyone).
fn obey(id: ViewerId, ctx: &Ctx, msg: ClientMsg) {
    let mut hub = ctx.hub.lock().expect("hub lock");
    let reply = |hub: &Hub, msg: ServerMsg| {
        if let Some(v) = hub.viewers.get(&id) {
            // a viewer with 64 replies unread is not reading: its writes stall and it is dropped
            let _ = v.replies.try_send(msg);
        }
    };
    match msg {
        ClientMsg::RequestLease { take_over } => {
            let Some(who) = hub.viewers.get(&id).map(|v| v.who.clone()) else { return };
            match hub.lease.ask(id, &who, take_over, now()) {
                Asked::Granted => announce(&hub),
                Asked::AlreadyYours => {
                    reply(&hub, ServerMsg::Lease { holder: hub.lease.holder().cloned(), yours: true })
                }
                Asked::HeldBy(h) => reply(
                    &hub,
                    ServerMsg::Denied {
                        text: format!("{h} holds the controller lease; take it over to steer the run"),
                    },
                ),
                Asked::TakenFrom(old, _) => {
                    if let (Some(v), Some(to)) = (hub.viewers.get(&old), hub.lease.holder()) {
                        let _ = v.replies.try_send(ServerMsg::LeaseLost { to: to.clone() });
                    }
                    announce(&hub);
                }
            }
        }
        ClientMsg::ReleaseLease => {
            if hub.lease.release(id) {
                announce(&hub);
            }
        }
        ClientMsg::Control { control } => {
            let msg = match hub.lease.check(id, &format!("{control:?}")) {
                Ok(()) => match ctx.controls.send(control) {
                    Ok(()) => ServerMsg::Accepted { control },
                    Err(_) => {
                        ServerMsg::Denied { text: format!("{control:?} not sent: the trainer is ending") }
                    }
                },
                Err(text) => ServerMsg::Denied { text },
            };
            reply(&hub, msg);
        }
        ClientMsg::Hello { .. } => reply(&hub, ServerMsg::Denied { text: "hello again? ignored".into() }),
    }
}

/// Tells every viewer the lease as it now stands.
fn announce(hub: &Hub) {
    let holder = hub.lease.holder().cloned();
    for (id, v) in &hub.viewers {
        let _ =
            v.replies.try_send(ServerMsg::Lease { holder: holder.clone(), yours: hub.lease.is_held_by(*id) });
    }
}

fn now() -> f64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
}
