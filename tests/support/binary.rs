//! Runs the real `tollgate` binary as a child process, for what only a
//! process shows: start-up defaults, migrations, signals.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The `tollgate` binary beside this test executable (`target/debug/tollgate`),
/// or `TOLLGATE_BIN`. `scripts/test` builds it before the tests run.
pub fn tollgate_bin() -> PathBuf {
    if let Ok(path) = std::env::var("TOLLGATE_BIN") {
        return PathBuf::from(path);
    }
    let exe = std::env::current_exe().unwrap();
    // target/debug/deps/api-… → target/debug/tollgate
    let path = exe
        .parent()
        .and_then(Path::parent)
        .unwrap()
        .join("tollgate");
    assert!(
        path.exists(),
        "{} is missing: build it with `cargo build -p tollgate-api --bin tollgate` (scripts/test does)",
        path.display()
    );
    path
}

/// A free local port (bound, then released for the child to take).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub struct GatewayProcess {
    pub child: Child,
    pub base_url: String,
}

impl GatewayProcess {
    /// Starts `tollgate serve` in `dir` with exactly these extra environment
    /// variables, and waits until `/health` answers.
    pub async fn serve(dir: &Path, envs: &[(&str, &str)]) -> GatewayProcess {
        let port = free_port();
        let child = command(dir, envs)
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .spawn()
            .unwrap();
        let process = GatewayProcess {
            child,
            base_url: format!("http://127.0.0.1:{port}"),
        };
        process.wait_healthy().await;
        process
    }

    async fn wait_healthy(&self) {
        let client = crate::client();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(r) = client.get(format!("{}/health", self.base_url)).send().await
                && r.status() == 200
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("tollgate did not become healthy at {}", self.base_url);
    }

    /// Sends SIGTERM and waits for the exit status.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        self.child.wait().unwrap()
    }
}

impl Drop for GatewayProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A `tollgate` command in `dir` with a clean environment plus `envs`.
pub fn command(dir: &Path, envs: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(tollgate_bin());
    cmd.current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd
}

/// A child's output (stderr, and stdout when piped), read on threads of its
/// own so that a chatty child (`RUST_LOG=debug`) never blocks on a full pipe.
/// Both streams go into one buffer: the binary logs to stdout and prints
/// fatal errors to stderr.
pub struct ProcessLog {
    text: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
    readers: Vec<std::thread::JoinHandle<()>>,
}

impl ProcessLog {
    /// Starts reading the child's piped stderr and stdout (taking them from the child).
    pub fn capture(child: &mut Child) -> ProcessLog {
        let text = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let mut readers = Vec::new();
        let streams: [Option<Box<dyn std::io::Read + Send>>; 2] = [
            child
                .stderr
                .take()
                .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
            child
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
        ];
        for mut stream in streams.into_iter().flatten() {
            let sink = std::sync::Arc::clone(&text);
            readers.push(std::thread::spawn(move || {
                let mut buf = [0u8; 8192];
                loop {
                    match stream.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => sink.lock().unwrap().extend_from_slice(&buf[..n]),
                    }
                }
            }));
        }
        ProcessLog { text, readers }
    }

    /// Everything read so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.text.lock().unwrap()).into_owned()
    }

    /// Waits for the end of the streams (the child has exited) and returns it all.
    pub fn finish(mut self) -> String {
        for reader in self.readers.drain(..) {
            reader.join().unwrap();
        }
        self.text()
    }
}

impl GatewayProcess {
    /// Like [`GatewayProcess::serve`], with the child's stdout and stderr
    /// captured from the start.
    pub async fn serve_capturing(
        dir: &Path,
        envs: &[(&str, &str)],
    ) -> (GatewayProcess, ProcessLog) {
        let port = free_port();
        let mut child = command(dir, envs)
            .stdout(Stdio::piped())
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .spawn()
            .unwrap();
        let log = ProcessLog::capture(&mut child);
        let process = GatewayProcess {
            child,
            base_url: format!("http://127.0.0.1:{port}"),
        };
        process.wait_healthy().await;
        (process, log)
    }
}

/// Runs `cmd` to its exit, its stdout and stderr captured, and returns the
/// status and that output. Panics, after killing the child, when it is still
/// running after `timeout`: a command that should have refused to start must
/// not hang the suite.
pub fn exit_within(cmd: &mut Command, timeout: Duration) -> (std::process::ExitStatus, String) {
    let mut child = cmd.stdout(Stdio::piped()).spawn().unwrap();
    let log = ProcessLog::capture(&mut child);
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return (status, log.finish());
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "tollgate was still running after {timeout:?}; output:\n{}",
                log.finish()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
