//! A TCP proxy the test controls, between the real binary and PostgreSQL
//! or Redis, to cut, blackhole or slow the connection: the faults of a
//! failing network or data centre, for the chaos tests.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::AbortHandle;

/// What the proxy does with traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Forward both ways.
    Pass,
    /// Refuse: open connections are closed, new ones closed at once.
    Cut,
    /// Accept and swallow: nothing is forwarded and nothing answers, as
    /// when packets are dropped on the way.
    Blackhole,
    /// Forward, each chunk after this delay.
    Slow(Duration),
}

struct Shared {
    mode: Mutex<Mode>,
    connections: Mutex<Vec<AbortHandle>>,
    /// Armed by [`ChaosProxy::lose_settlement_commit_reply`] and
    /// [`ChaosProxy::lose_top_up_commit_reply`]: the SQL text that marks the
    /// transaction whose `COMMIT` reply is lost.
    lose_commit_reply: Mutex<Option<&'static [u8]>>,
}

/// A proxy listening on a local port, forwarding to `upstream`; stopped on drop.
pub struct ChaosProxy {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    accept: AbortHandle,
}

impl ChaosProxy {
    pub async fn start(upstream: SocketAddr) -> ChaosProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Shared {
            mode: Mutex::new(Mode::Pass),
            connections: Mutex::new(Vec::new()),
            lose_commit_reply: Mutex::new(None),
        });
        let accept = {
            let shared = shared.clone();
            tokio::spawn(async move {
                while let Ok((client, _)) = listener.accept().await {
                    let mode = *shared.mode.lock().unwrap();
                    if mode == Mode::Cut {
                        drop(client);
                        continue;
                    }
                    let task = tokio::spawn(relay(client, upstream, shared.clone()));
                    shared.connections.lock().unwrap().push(task.abort_handle());
                }
            })
            .abort_handle()
        };
        ChaosProxy {
            addr,
            shared,
            accept,
        }
    }

    /// Switches the mode. Cutting closes the open connections; going back
    /// to `Pass` closes the blackholed ones too (a healed network finds
    /// the old connections dead, as after a database restart).
    pub fn set(&self, mode: Mode) {
        *self.shared.mode.lock().unwrap() = mode;
        if matches!(mode, Mode::Cut | Mode::Pass) {
            for c in self.shared.connections.lock().unwrap().drain(..) {
                c.abort();
            }
        }
    }
}

impl ChaosProxy {
    /// Arms a lost reply (PostgreSQL only): the next `COMMIT` of a
    /// transaction that inserted usage records (a settlement batch) reaches
    /// the database, which commits it, but its connection is closed before
    /// the reply gets back, so the gateway cannot know the outcome.
    /// The transaction must be the first of its connection to prepare that
    /// insert (its SQL text is only sent then): arm it before any call.
    pub fn lose_settlement_commit_reply(&self) {
        *self.shared.lose_commit_reply.lock().unwrap() = Some(b"INSERT INTO usage_records");
    }

    /// Arms a lost reply as [`ChaosProxy::lose_settlement_commit_reply`]
    /// does, of the next lease top-up (a transaction that writes a credit
    /// lease) instead.
    pub fn lose_top_up_commit_reply(&self) {
        *self.shared.lose_commit_reply.lock().unwrap() = Some(b"INSERT INTO credit_leases");
    }

    /// Whether an armed lost reply is still to happen.
    pub fn commit_reply_armed(&self) -> bool {
        self.shared.lose_commit_reply.lock().unwrap().is_some()
    }
}

impl Drop for ChaosProxy {
    fn drop(&mut self) {
        self.accept.abort();
        for c in self.shared.connections.lock().unwrap().drain(..) {
            c.abort();
        }
    }
}

async fn relay(client: TcpStream, upstream: SocketAddr, shared: Arc<Shared>) {
    let Ok(server) = TcpStream::connect(upstream).await else {
        return;
    };
    let (cr, cw) = client.into_split();
    let (sr, sw) = server.into_split();
    let lost = Arc::new(AtomicBool::new(false));
    let upward = pump(cr, sw, shared.clone(), Direction::ToServer(lost.clone()));
    let downward = pump(sr, cw, shared.clone(), Direction::ToClient(lost));
    // One direction ending ends the connection (both sockets are dropped).
    tokio::select! {
        () = upward => {}
        () = downward => {}
    }
}

enum Direction {
    /// Client to server; sets the flag once it let the armed COMMIT through.
    ToServer(Arc<AtomicBool>),
    /// Server to client; drops everything once the flag is set.
    ToClient(Arc<AtomicBool>),
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    shared: Arc<Shared>,
    direction: Direction,
) {
    let mut buf = vec![0u8; 16 * 1024];
    // Whether this connection's transaction sent the armed SQL text.
    let mut marked = false;
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        let mode = *shared.mode.lock().unwrap();
        match mode {
            Mode::Pass => {}
            Mode::Slow(delay) => tokio::time::sleep(delay).await,
            Mode::Blackhole => continue,
            Mode::Cut => return,
        }
        let chunk = &buf[..n];
        match &direction {
            Direction::ToClient(lost) if lost.load(Ordering::SeqCst) => continue,
            Direction::ToServer(lost) => {
                let armed = *shared.lose_commit_reply.lock().unwrap();
                marked |= armed.is_some_and(|text| contains(chunk, text));
                if marked
                    && contains(chunk, b"COMMIT\0")
                    && shared.lose_commit_reply.lock().unwrap().take().is_some()
                {
                    lost.store(true, Ordering::SeqCst);
                    let _ = to.write_all(chunk).await;
                    // Time for the database to commit, then the connection goes.
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    return;
                }
                if contains(chunk, b"COMMIT\0") {
                    marked = false;
                }
            }
            Direction::ToClient(_) => {}
        }
        if to.write_all(chunk).await.is_err() {
            return;
        }
    }
}
