//! The store against a real database (SQLite, or PostgreSQL with
//! `TOLLGATE_TEST_DATABASE=postgres`): encryption at rest, the binding of
//! each ciphertext to its row, rotation, the cache.

use std::path::PathBuf;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use sqlx::Row;
use tollgate_core::Backend;
use tollgate_core::testing::TestDatabase;

use super::*;
use crate::master_key::MasterKey;
use crate::root::{passphrase_salt, rotate, unlock};

const KEY_A: &str = "sk-org-a-SECRET-1f3b5d7a9c";
const KEY_B: &str = "sk-org-b-SECRET-2e4c6e8b0d";

/// A fresh database (SQLite in a fresh directory, or PostgreSQL as
/// `TOLLGATE_TEST_DATABASE` says), migrated, with organizations
/// `org_a`, `org_b` and `org_c`, and the master key it is set up with; the
/// directory is removed on drop.
struct TestDb {
    db: Db,
    dir: PathBuf,
    master: MasterKey,
    _database: TestDatabase,
}

impl TestDb {
    async fn new() -> Self {
        let dir = std::env::temp_dir().join(format!(
            "tollgate-credentials-store-{}",
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let database = TestDatabase::create(&dir).await;
        let db = Db::connect(&database.url, 1).await.unwrap();
        db.migrate().await.unwrap();
        for org in ["org_a", "org_b", "org_c"] {
            sqlx::query(
                "INSERT INTO organizations (id, name, billing_mode, created_at, updated_at) \
                 VALUES ($1, $1, 'usd', 0, 0)",
            )
            .bind(org)
            .execute(db.pool())
            .await
            .unwrap();
        }
        Self {
            db,
            dir,
            master: MasterKey::generate(),
            _database: database,
        }
    }

    /// A store on the test master key, with an empty cache (as another
    /// replica, or this one after a restart).
    async fn store(&self) -> CredentialStore {
        CredentialStore::new(
            self.db.clone(),
            unlock(&self.db, copy(&self.master)).await.unwrap(),
        )
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The same master key again (tests need two handles on one key).
fn copy(key: &MasterKey) -> MasterKey {
    MasterKey::from_setting(key.to_base64().expose_secret(), &[]).unwrap()
}

async fn add(
    store: &CredentialStore,
    org: &str,
    provider: &str,
    key: &str,
    active: bool,
) -> Result<Credential> {
    store
        .create(
            NewCredential {
                organization_id: org,
                provider,
                name: "main",
                api_key: &SecretString::from(key),
                active,
            },
            &Actor::PlatformAdmin,
        )
        .await
}

async fn active(store: &CredentialStore, org: &str, provider: &str) -> Option<String> {
    store
        .active_key(org, provider)
        .await
        .unwrap()
        .map(|k| k.expose_secret().to_owned())
}

async fn sealed_key_of(db: &Db, id: &str) -> Option<Vec<u8>> {
    sqlx::query("SELECT encrypted_key FROM provider_credentials WHERE id = $1")
        .bind(id)
        .fetch_one(db.pool())
        .await
        .unwrap()
        .try_get("encrypted_key")
        .unwrap()
}

async fn set_sealed_key(db: &Db, id: &str, sealed: &[u8]) {
    sqlx::query("UPDATE provider_credentials SET encrypted_key = $1 WHERE id = $2")
        .bind(sealed)
        .bind(id)
        .execute(db.pool())
        .await
        .unwrap();
}

/// Every way the key could appear in stored bytes.
fn encodings(key: &str) -> Vec<Vec<u8>> {
    let bytes = key.as_bytes();
    let mut out = vec![bytes.to_vec()];
    for engine in [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD] {
        out.push(engine.encode(bytes).into_bytes());
    }
    out.push(
        bytes
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
            .into_bytes(),
    );
    out
}

/// Everything the database holds: on SQLite its file and write-ahead log,
/// byte for byte (after closing it); on PostgreSQL every row of every table
/// as text (`bytea` in hex).
async fn stored_bytes(test: &TestDb) -> Vec<u8> {
    let mut stored = Vec::new();
    match test.db.backend() {
        Backend::Sqlite => {
            test.db.close().await;
            for entry in std::fs::read_dir(&test.dir).unwrap() {
                stored.extend(std::fs::read(entry.unwrap().path()).unwrap());
            }
        }
        Backend::Postgres => {
            let tables: Vec<String> = sqlx::query_scalar(
                "SELECT table_name::text FROM information_schema.tables WHERE table_schema = 'public'",
            )
            .fetch_all(test.db.pool())
            .await
            .unwrap();
            for table in tables {
                let rows: Vec<String> =
                    sqlx::query_scalar(&format!("SELECT t::text FROM \"{table}\" t"))
                        .fetch_all(test.db.pool())
                        .await
                        .unwrap();
                for row in rows {
                    stored.extend(row.into_bytes());
                }
            }
        }
    }
    stored
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test]
async fn created_credential_is_the_organizations_active_key() {
    let test = TestDb::new().await;
    let store = test.store().await;

    let credential = add(&store, "org_a", "openai", KEY_A, true).await.unwrap();

    assert_eq!(credential.key_hint, "7a9c");
    assert_eq!(
        active(&store, "org_a", "openai").await.as_deref(),
        Some(KEY_A)
    );
    assert_eq!(active(&store, "org_a", "anthropic").await, None);
    assert_eq!(active(&store, "org_b", "openai").await, None);
}

#[tokio::test]
async fn key_hint_is_the_last_four_characters_of_the_trimmed_key() {
    let test = TestDb::new().await;
    let store = test.store().await;

    let credential = add(&store, "org_a", "openai", "  sk-abcdWXYZ\n", true)
        .await
        .unwrap();

    assert_eq!(credential.key_hint, "WXYZ");
    assert_eq!(
        active(&store, "org_a", "openai").await.as_deref(),
        Some("sk-abcdWXYZ")
    );
}

#[tokio::test]
async fn database_file_holds_no_plaintext_and_no_encoding_of_it() {
    let test = TestDb::new().await;
    let store = test.store().await;
    add(&store, "org_a", "openai", KEY_A, true).await.unwrap();
    let credential = add(&store, "org_b", "openai", KEY_B, true).await.unwrap();
    store
        .update(
            "org_b",
            &credential.id,
            CredentialChange {
                name: Some("renamed"),
                ..CredentialChange::default()
            },
            &Actor::PlatformAdmin,
        )
        .await
        .unwrap();
    let stored = stored_bytes(&test).await;

    assert!(contains(&stored, b"renamed"), "the scan sees the data");
    for key in [KEY_A, KEY_B] {
        for needle in encodings(key) {
            assert!(
                !contains(&stored, &needle),
                "the database holds {}",
                String::from_utf8_lossy(&needle)
            );
        }
        // Not even most of it.
        assert!(!contains(&stored, &key.as_bytes()[..key.len() - 4]));
    }
}

#[tokio::test]
async fn ciphertext_swapped_between_organizations_does_not_open() {
    let test = TestDb::new().await;
    let store = test.store().await;
    let a = add(&store, "org_a", "openai", KEY_A, true).await.unwrap();
    let b = add(&store, "org_b", "openai", KEY_B, true).await.unwrap();
    let sealed_a = sealed_key_of(&test.db, &a.id).await.unwrap();
    let sealed_b = sealed_key_of(&test.db, &b.id).await.unwrap();

    set_sealed_key(&test.db, &a.id, &sealed_b).await;
    set_sealed_key(&test.db, &b.id, &sealed_a).await;
    store.invalidate("org_a");
    store.invalidate("org_b");

    for org in ["org_a", "org_b"] {
        let err = store.active_key(org, "openai").await.unwrap_err();
        assert!(
            matches!(err.unshared(), CredentialError::DecryptionFailed),
            "{org}: {err:?}"
        );
    }
}

#[tokio::test]
async fn ciphertext_moved_to_another_provider_of_the_same_organization_does_not_open() {
    let test = TestDb::new().await;
    let store = test.store().await;
    let openai = add(&store, "org_a", "openai", KEY_A, true).await.unwrap();
    let anthropic = add(&store, "org_a", "anthropic", KEY_B, true)
        .await
        .unwrap();

    let sealed = sealed_key_of(&test.db, &openai.id).await.unwrap();
    set_sealed_key(&test.db, &anthropic.id, &sealed).await;
    store.invalidate("org_a");

    let err = store.active_key("org_a", "anthropic").await.unwrap_err();
    assert!(
        matches!(err.unshared(), CredentialError::DecryptionFailed),
        "{err:?}"
    );
    assert_eq!(
        active(&store, "org_a", "openai").await.as_deref(),
        Some(KEY_A)
    );
}

#[tokio::test]
async fn data_key_copied_to_another_organization_does_not_open() {
    let test = TestDb::new().await;
    let store = test.store().await;
    add(&store, "org_a", "openai", KEY_A, true).await.unwrap();
    add(&store, "org_b", "openai", KEY_B, true).await.unwrap();

    sqlx::query(
        "UPDATE organization_data_keys SET wrapped_key = \
         (SELECT wrapped_key FROM organization_data_keys WHERE organization_id = 'org_a') \
         WHERE organization_id = 'org_b'",
    )
    .execute(test.db.pool())
    .await
    .unwrap();
    let restarted = test.store().await;

    let err = restarted.active_key("org_b", "openai").await.unwrap_err();
    assert!(
        matches!(err.unshared(), CredentialError::DecryptionFailed),
        "{err:?}"
    );
    assert_eq!(
        active(&restarted, "org_a", "openai").await.as_deref(),
        Some(KEY_A)
    );
}

#[tokio::test]
async fn organizations_have_different_data_keys() {
    let test = TestDb::new().await;
    let store = test.store().await;
    add(&store, "org_a", "openai", KEY_A, true).await.unwrap();
    add(&store, "org_b", "openai", KEY_A, true).await.unwrap();

    let rows = sqlx::query("SELECT wrapped_key FROM organization_data_keys")
        .fetch_all(test.db.pool())
        .await
        .unwrap();

    assert_eq!(rows.len(), 2);
    let first: Vec<u8> = rows[0].get("wrapped_key");
    let second: Vec<u8> = rows[1].get("wrapped_key");
    assert_ne!(first, second);
}

#[tokio::test]
async fn second_active_credential_for_a_provider_conflicts() {
    let test = TestDb::new().await;
    let store = test.store().await;
    let first = add(&store, "org_a", "openai", KEY_A, true).await.unwrap();

    let err = add(&store, "org_a", "openai", KEY_B, true)
        .await
        .unwrap_err();
    let spare = add(&store, "org_a", "openai", KEY_B, false).await.unwrap();
    let err_on_activate = store
        .set_active("org_a", &spare.id, true, &Actor::PlatformAdmin)
        .await
        .unwrap_err();
    // Another organization, or another provider, is no conflict.
    add(&store, "org_b", "openai", KEY_B, true).await.unwrap();
    add(&store, "org_a", "anthropic", KEY_B, true)
        .await
        .unwrap();

    assert!(
        matches!(&err, CredentialError::ActiveConflict { provider } if provider == "openai"),
        "{err:?}"
    );
    assert!(
        matches!(err_on_activate, CredentialError::ActiveConflict { .. }),
        "{err_on_activate:?}"
    );
    assert_eq!(
        active(&store, "org_a", "openai").await.as_deref(),
        Some(KEY_A)
    );
    store
        .set_active("org_a", &first.id, false, &Actor::PlatformAdmin)
        .await
        .unwrap();
    store
        .set_active("org_a", &spare.id, true, &Actor::PlatformAdmin)
        .await
        .unwrap();
    assert_eq!(
        active(&store, "org_a", "openai").await.as_deref(),
        Some(KEY_B)
    );
}

#[tokio::test]
async fn update_replaces_the_key_and_its_hint() {
    let test = TestDb::new().await;
    let store = test.store().await;
    let credential = add(&store, "org_a", "openai", KEY_A, true).await.unwrap();
    assert_eq!(
        active(&store, "org_a", "openai").await.as_deref(),
        Some(KEY_A)
    );

    let updated = store
        .update(
            "org_a",
            &credential.id,
            CredentialChange {
                api_key: Some(&SecretString::from(KEY_B)),
                name: None,
            },
            &Actor::ApiKey("key_1".into()),
        )
        .await
        .unwrap();

    assert_eq!(updated.key_hint, "8b0d");
    assert_eq!(updated.credential_name, "main");
    assert_eq!(
        active(&store, "org_a", "openai").await.as_deref(),
        Some(KEY_B)
    );
}

#[tokio::test]
async fn changes_of_another_organizations_credential_are_not_found() {
    let test = TestDb::new().await;
    let store = test.store().await;
    let b = add(&store, "org_b", "openai", KEY_B, true).await.unwrap();
    let actor = Actor::ApiKey("key_of_a".into());

    let update = store
        .update(
            "org_a",
            &b.id,
            CredentialChange {
                name: Some("mine now"),
                api_key: Some(&SecretString::from(KEY_A)),
            },
            &actor,
        )
        .await;
    let deactivate = store.set_active("org_a", &b.id, false, &actor).await;
    let delete = store.delete("org_a", &b.id, &actor).await;

    assert!(matches!(update, Err(CredentialError::NotFound)));
    assert!(matches!(deactivate, Err(CredentialError::NotFound)));
    assert!(matches!(delete, Err(CredentialError::NotFound)));
    assert_eq!(store.get(&b.id).await.unwrap(), b);
    assert_eq!(
        active(&store, "org_b", "openai").await.as_deref(),
        Some(KEY_B)
    );
}

#[tokio::test]
async fn delete_destroys_the_sealed_key() {
    let test = TestDb::new().await;
    let store = test.store().await;
    let credential = add(&store, "org_a", "openai", KEY_A, true).await.unwrap();
    assert!(active(&store, "org_a", "openai").await.is_some());

    store
        .delete("org_a", &credential.id, &Actor::PlatformAdmin)
        .await
        .unwrap();

    assert_eq!(sealed_key_of(&test.db, &credential.id).await, None);
    assert_eq!(active(&store, "org_a", "openai").await, None);
    assert!(matches!(
        store.get(&credential.id).await,
        Err(CredentialError::NotFound)
    ));
    // The slot is free again.
    add(&store, "org_a", "openai", KEY_B, true).await.unwrap();
}

#[tokio::test]
async fn audit_log_records_who_did_what_without_the_key() {
    let test = TestDb::new().await;
    let store = test.store().await;
    let credential = add(&store, "org_a", "openai", KEY_A, true).await.unwrap();
    let key_admin = Actor::ApiKey("key_123".into());
    store
        .update(
            "org_a",
            &credential.id,
            CredentialChange {
                name: Some("renamed"),
                api_key: Some(&SecretString::from(KEY_B)),
            },
            &key_admin,
        )
        .await
        .unwrap();
    store
        .set_active("org_a", &credential.id, false, &key_admin)
        .await
        .unwrap();
    store
        .delete("org_a", &credential.id, &Actor::PlatformAdmin)
        .await
        .unwrap();

    let entries = store
        .audit(&AuditFilter {
            organization_id: Some("org_a"),
            credential_id: None,
            before: None,
            limit: 100,
        })
        .await
        .unwrap();

    let actions: Vec<_> = entries.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(actions, ["delete", "deactivate", "update", "create"]);
    assert_eq!(entries[2].actor.kind, "api_key");
    assert_eq!(entries[2].actor.id.as_deref(), Some("key_123"));
    assert_eq!(entries[2].changes, ["api_key", "credential_name"]);
    assert_eq!(entries[2].key_hint, "8b0d");
    assert_eq!(entries[3].actor.kind, "platform_admin");
    assert_eq!(entries[3].actor.id, None);
    let text = format!("{entries:?}");
    assert!(!text.contains(KEY_A) && !text.contains(KEY_B), "{text}");
}

#[tokio::test]
async fn invalid_values_are_refused_without_repeating_the_key() {
    let test = TestDb::new().await;
    let store = test.store().await;

    let spaced = add(&store, "org_a", "openai", "sk-has a-SPACE-secret", true)
        .await
        .unwrap_err();
    let empty = add(&store, "org_a", "openai", "   ", true)
        .await
        .unwrap_err();
    let long = add(&store, "org_a", "openai", &"k".repeat(5000), true)
        .await
        .unwrap_err();

    for err in [&spaced, &empty, &long] {
        assert!(
            matches!(
                err,
                CredentialError::Invalid {
                    field: "api_key",
                    ..
                }
            ),
            "{err:?}"
        );
    }
    assert!(!spaced.to_string().contains("SPACE-secret"));
}

#[tokio::test]
async fn cached_key_is_served_without_the_database() {
    let test = TestDb::new().await;
    let store = test.store().await;
    add(&store, "org_a", "openai", KEY_A, true).await.unwrap();
    assert_eq!(
        active(&store, "org_a", "openai").await.as_deref(),
        Some(KEY_A)
    );
    assert_eq!(active(&store, "org_b", "openai").await, None);

    test.db.close().await;

    assert_eq!(
        active(&store, "org_a", "openai").await.as_deref(),
        Some(KEY_A)
    );
    assert_eq!(active(&store, "org_b", "openai").await, None);
    assert!(store.active_key("org_c", "openai").await.is_err());
}

#[tokio::test]
async fn requests_missing_one_key_together_read_it_once() {
    let test = TestDb::new().await;
    add(&test.store().await, "org_a", "openai", KEY_A, true)
        .await
        .unwrap();
    // A replica that has not read it yet, whose one database connection
    // the test holds while the requests arrive.
    let store = test.store().await;
    let held = test.db.pool().acquire().await.unwrap();

    let requests = futures::future::join_all((0..32).map(|_| store.active_key("org_a", "openai")));
    let release = async {
        tokio::time::sleep(Duration::from_millis(50)).await;
        drop(held);
    };
    let (keys, ()) = tokio::join!(requests, release);

    for key in keys {
        assert_eq!(key.unwrap().unwrap().expose_secret(), KEY_A);
    }
    assert_eq!(store.active_key_reads(), 1);
    assert_eq!(
        active(&store, "org_a", "openai").await.as_deref(),
        Some(KEY_A)
    );
    assert_eq!(store.active_key_reads(), 1, "then served from the cache");
}

#[tokio::test]
async fn another_replica_drops_a_changed_key_within_a_second() {
    let test = TestDb::new().await;
    let writer = test.store().await;
    let reader = test.store().await;
    let watcher = tokio::spawn(reader.clone().watch_changes(Duration::from_millis(250)));
    let credential = add(&writer, "org_a", "openai", KEY_A, true).await.unwrap();
    assert_eq!(
        active(&reader, "org_a", "openai").await.as_deref(),
        Some(KEY_A)
    );

    writer
        .set_active("org_a", &credential.id, false, &Actor::PlatformAdmin)
        .await
        .unwrap();
    let changed = std::time::Instant::now();
    while active(&reader, "org_a", "openai").await.is_some() {
        assert!(
            changed.elapsed() < Duration::from_secs(1),
            "the other replica still uses the deactivated key"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    watcher.abort();
}

#[tokio::test]
async fn a_credential_changed_on_another_replica_is_read_again_once_though_every_poll_sees_it() {
    let test = TestDb::new().await;
    let writer = test.store().await;
    let reader = test.store().await;
    let mut poll = ChangePoll::new(time::now_millis());
    let credential = add(&writer, "org_a", "openai", KEY_A, true).await.unwrap();
    reader.poll_changes(&mut poll).await.unwrap();
    assert_eq!(
        active(&reader, "org_a", "openai").await.as_deref(),
        Some(KEY_A)
    );
    assert_eq!(reader.active_key_reads(), 1);

    writer
        .set_active("org_a", &credential.id, false, &Actor::PlatformAdmin)
        .await
        .unwrap();
    // Every poll of the next two seconds returns the change.
    for _ in 0..3 {
        reader.poll_changes(&mut poll).await.unwrap();
        assert_eq!(active(&reader, "org_a", "openai").await, None);
    }
    assert_eq!(
        reader.active_key_reads(),
        2,
        "read again once, not at each poll"
    );
}

#[tokio::test]
async fn every_change_moves_a_credentials_updated_at_forward_even_past_the_clock() {
    let test = TestDb::new().await;
    let store = test.store().await;
    let credential = add(&store, "org_a", "openai", KEY_A, true).await.unwrap();
    let ahead = time::now_millis() + 60_000;
    let updated_at = || async {
        sqlx::query("SELECT updated_at FROM provider_credentials WHERE id = $1")
            .bind(&credential.id)
            .fetch_one(test.db.pool())
            .await
            .unwrap()
            .get::<i64, _>("updated_at")
    };
    sqlx::query("UPDATE provider_credentials SET updated_at = $1 WHERE id = $2")
        .bind(ahead)
        .bind(&credential.id)
        .execute(test.db.pool())
        .await
        .unwrap();

    store
        .set_active("org_a", &credential.id, false, &Actor::PlatformAdmin)
        .await
        .unwrap();
    assert_eq!(updated_at().await, ahead + 1);
    store
        .delete("org_a", &credential.id, &Actor::PlatformAdmin)
        .await
        .unwrap();
    assert_eq!(updated_at().await, ahead + 2);
}

#[tokio::test]
async fn rotation_keeps_every_credential_usable_under_the_new_master_key() {
    let test = TestDb::new().await;
    let store = test.store().await;
    add(&store, "org_a", "openai", KEY_A, true).await.unwrap();
    add(&store, "org_b", "openai", KEY_B, true).await.unwrap();
    let old_root = unlock(&test.db, copy(&test.master)).await.unwrap();
    let new_master = MasterKey::generate();

    let rotation = rotate(&test.db, &old_root, &new_master, None)
        .await
        .unwrap();

    assert_eq!(
        rotation,
        crate::root::Rotation {
            data_keys: 2,
            version: 2
        }
    );
    let restarted = CredentialStore::new(
        test.db.clone(),
        unlock(&test.db, copy(&new_master)).await.unwrap(),
    );
    assert_eq!(restarted.master_key_version(), 2);
    assert_eq!(
        active(&restarted, "org_a", "openai").await.as_deref(),
        Some(KEY_A)
    );
    assert_eq!(
        active(&restarted, "org_b", "openai").await.as_deref(),
        Some(KEY_B)
    );
    // New credentials work too, for old and new organizations.
    add(&restarted, "org_a", "anthropic", KEY_B, true)
        .await
        .unwrap();
    add(&restarted, "org_c", "openai", KEY_A, true)
        .await
        .unwrap();
    let again = CredentialStore::new(
        test.db.clone(),
        unlock(&test.db, copy(&new_master)).await.unwrap(),
    );
    assert_eq!(
        active(&again, "org_a", "anthropic").await.as_deref(),
        Some(KEY_B)
    );
    assert_eq!(
        active(&again, "org_c", "openai").await.as_deref(),
        Some(KEY_A)
    );
    // The old master key is refused from now on.
    assert!(matches!(
        unlock(&test.db, copy(&test.master)).await,
        Err(CredentialError::WrongMasterKey)
    ));
}

#[tokio::test]
async fn a_gateway_on_the_previous_master_key_keeps_reading_after_a_rotation() {
    let test = TestDb::new().await;
    let running = test.store().await;
    let credential = add(&running, "org_a", "openai", KEY_A, true).await.unwrap();
    let root = unlock(&test.db, copy(&test.master)).await.unwrap();

    rotate(&test.db, &root, &MasterKey::generate(), None)
        .await
        .unwrap();

    // Its cache is dropped (a change), so it reads the database again.
    running.invalidate("org_a");
    assert_eq!(
        active(&running, "org_a", "openai").await.as_deref(),
        Some(KEY_A)
    );
    running
        .update(
            "org_a",
            &credential.id,
            CredentialChange {
                api_key: Some(&SecretString::from(KEY_B)),
                name: None,
            },
            &Actor::PlatformAdmin,
        )
        .await
        .unwrap();
    assert_eq!(
        active(&running, "org_a", "openai").await.as_deref(),
        Some(KEY_B)
    );
    // But it may not make a data key that the new master key cannot open.
    let err = add(&running, "org_c", "openai", KEY_A, true)
        .await
        .unwrap_err();
    assert!(matches!(err, CredentialError::MasterKeyRotated), "{err:?}");
}

#[tokio::test]
async fn a_second_rotation_from_a_stale_master_key_is_refused() {
    let test = TestDb::new().await;
    let store = test.store().await;
    add(&store, "org_a", "openai", KEY_A, true).await.unwrap();
    let root = unlock(&test.db, copy(&test.master)).await.unwrap();
    rotate(&test.db, &root, &MasterKey::generate(), None)
        .await
        .unwrap();

    let err = rotate(&test.db, &root, &MasterKey::generate(), None)
        .await
        .unwrap_err();

    assert!(matches!(err, CredentialError::MasterKeyRotated), "{err:?}");
}

#[tokio::test]
async fn rotation_to_a_passphrase_stores_a_new_salt() {
    let test = TestDb::new().await;
    let store = test.store().await;
    add(&store, "org_a", "openai", KEY_A, true).await.unwrap();
    let root = unlock(&test.db, copy(&test.master)).await.unwrap();
    let salt = crate::generate_salt();
    let passphrase = "a new passphrase for the master key";
    let new = MasterKey::from_setting(passphrase, &salt).unwrap();

    rotate(&test.db, &root, &new, Some(&salt)).await.unwrap();

    let stored_salt = passphrase_salt(&test.db).await.unwrap();
    assert_eq!(stored_salt, salt);
    let derived = MasterKey::from_setting(passphrase, &stored_salt).unwrap();
    let restarted = CredentialStore::new(test.db.clone(), unlock(&test.db, derived).await.unwrap());
    assert_eq!(
        active(&restarted, "org_a", "openai").await.as_deref(),
        Some(KEY_A)
    );
}

#[tokio::test]
async fn rotation_keeps_only_the_previous_generation_of_wrapped_keys() {
    let test = TestDb::new().await;
    let store = test.store().await;
    add(&store, "org_a", "openai", KEY_A, true).await.unwrap();
    let first = unlock(&test.db, copy(&test.master)).await.unwrap();
    let second_key = MasterKey::generate();
    rotate(&test.db, &first, &second_key, None).await.unwrap();
    let second = unlock(&test.db, copy(&second_key)).await.unwrap();

    rotate(&test.db, &second, &MasterKey::generate(), None)
        .await
        .unwrap();

    let generations: Vec<i64> = sqlx::query(
        "SELECT master_key_version FROM organization_data_keys ORDER BY master_key_version",
    )
    .fetch_all(test.db.pool())
    .await
    .unwrap()
    .iter()
    .map(|r| r.get("master_key_version"))
    .collect();
    assert_eq!(generations, [2, 3]);
}
