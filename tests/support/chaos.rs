//! A TCP proxy the test controls, between the real binary and PostgreSQL
//! or Redis, to cut, blackhole or slow the connection: the faults of a
//! failing network or data centre, for the chaos tests.

use std::net::SocketAddr;
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
    tokio::join!(pump(cr, sw, shared.clone()), pump(sr, cw, shared.clone()));
}

async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    shared: Arc<Shared>,
) {
    let mut buf = vec![0u8; 16 * 1024];
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
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}
