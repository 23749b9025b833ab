//! Several gateways (replicas) on one test database, for what only more
//! than one instance shows, such as a revocation reaching every replica.

use crate::{ADMIN_TOKEN, DEFAULT_CONFIG, MockProvider};
use secrecy::SecretString;
use std::path::Path;
use tokio::sync::oneshot;

/// One gateway instance serving on its own port; stopped on drop.
pub struct Replica {
    pub base_url: String,
    shutdown: Option<oneshot::Sender<()>>,
}

impl Replica {
    /// Starts a gateway on `database_url` with [`DEFAULT_CONFIG`] pointing at
    /// `mock` (the config file is written into `dir`), the test admin token
    /// and `master_key`, which every replica of one database must share.
    pub async fn start(
        dir: &Path,
        database_url: &str,
        mock: &MockProvider,
        master_key: &SecretString,
    ) -> Replica {
        Self::start_with(dir, database_url, mock, master_key, |_| {}).await
    }

    /// As [`Replica::start`], with the settings changed by `tweak` (such as
    /// a shared `REDIS_URL`).
    pub async fn start_with(
        dir: &Path,
        database_url: &str,
        mock: &MockProvider,
        master_key: &SecretString,
        tweak: impl FnOnce(&mut tollgate_api::Settings),
    ) -> Replica {
        let config_path = dir.join("tollgate.yaml");
        std::fs::write(
            &config_path,
            DEFAULT_CONFIG.replace("{MOCK}", &mock.base_url()),
        )
        .unwrap();
        let mut settings = tollgate_api::Settings::for_database(database_url);
        settings.config = Some(config_path);
        settings.admin_token = Some(SecretString::from(ADMIN_TOKEN));
        settings.master_key = Some(master_key.clone());
        // Each replica its own journal: replicas of one test share `dir`.
        settings.data_dir = Some(dir.join(format!("replica-{}", uuid::Uuid::new_v4())));
        tweak(&mut settings);
        let gateway = tollgate_api::start(&settings)
            .await
            .expect("replica starts");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = oneshot::channel::<()>();
        tokio::spawn(async move {
            let _ = gateway
                .serve(listener, async {
                    let _ = rx.await;
                })
                .await;
        });
        Replica {
            base_url: format!("http://{addr}"),
            shutdown: Some(tx),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}
