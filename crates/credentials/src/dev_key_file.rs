//! The development-only master key file (`tollgate.master.key`): generated
//! once with mode 0600 so that a developer needs no `TOLLGATE_MASTER_KEY`.
//! Production must set the variable; the caller enforces that.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
#[cfg(unix)]
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use secrecy::ExposeSecret;
use zeroize::Zeroizing;

use crate::error::{CredentialError, Result};
use crate::master_key::{MasterKey, decode_raw_key};

/// Longest key file accepted: a base64 key is 44 characters, plus a newline.
const MAX_KEY_FILE_LEN: usize = 128;

/// Reads the master key from the development key file at `path`, or creates
/// the file with a fresh key if it does not exist. Returns the key and
/// whether the file was created (the caller should then warn that a
/// development key is in use).
///
/// The file holds the key as base64 and a newline. It is created with mode
/// 0600 atomically (`O_CREAT | O_EXCL` with the mode), never loosened later.
/// An existing file that group or others may access is refused rather than
/// fixed: someone may already have read it, and the operator should know.
///
/// # Errors
///
/// [`CredentialError::InsecureKeyFile`] for a file accessible by group or
/// others (unix), [`CredentialError::MalformedKeyFile`] for a file that does
/// not hold a base64 32-byte key, [`CredentialError::KeyFileIo`] when the
/// file cannot be created, written or read (e.g. a missing directory).
pub fn load_or_create_dev_key_file(path: &Path) -> Result<(MasterKey, bool)> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    options.mode(0o600);

    match options.open(path) {
        Ok(file) => write_new_key(file, path).map(|key| (key, true)),
        Err(err) if err.kind() == io::ErrorKind::AlreadyExists => {
            read_key(path).map(|key| (key, false))
        }
        Err(source) => Err(io_error("create", path, source)),
    }
}

fn write_new_key(mut file: File, path: &Path) -> Result<MasterKey> {
    let key = MasterKey::generate();
    let encoded = key.to_base64();
    let written = file
        .write_all(encoded.expose_secret().as_bytes())
        .and_then(|()| file.write_all(b"\n"))
        .and_then(|()| file.sync_all());
    if let Err(source) = written {
        drop(file);
        // A half-written file would fail the next start as malformed; better
        // to leave none. Nothing was encrypted under this key yet.
        let _ = std::fs::remove_file(path);
        return Err(io_error("write", path, source));
    }
    Ok(key)
}

fn read_key(path: &Path) -> Result<MasterKey> {
    let mut file = File::open(path).map_err(|source| io_error("open", path, source))?;

    // Check the opened file, not the path, so nothing can swap it in between.
    #[cfg(unix)]
    {
        let metadata = file
            .metadata()
            .map_err(|source| io_error("read", path, source))?;
        let mode = metadata.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(CredentialError::InsecureKeyFile {
                path: path.to_owned(),
                mode,
            });
        }
    }

    // A fixed buffer: a growing one would leave copies of the key behind.
    let mut buffer = Zeroizing::new([0u8; MAX_KEY_FILE_LEN]);
    let mut filled = 0;
    while filled < MAX_KEY_FILE_LEN {
        match file.read(&mut buffer[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(source) => return Err(io_error("read", path, source)),
        }
    }
    let malformed = || CredentialError::MalformedKeyFile {
        path: path.to_owned(),
    };
    if filled == MAX_KEY_FILE_LEN {
        return Err(malformed());
    }
    let text = std::str::from_utf8(&buffer[..filled]).map_err(|_| malformed())?;
    decode_raw_key(text.trim()).ok_or_else(malformed)
}

fn io_error(action: &'static str, path: &Path, source: io::Error) -> CredentialError {
    CredentialError::KeyFileIo {
        action,
        path: path.to_owned(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    /// A fresh directory under the system temp dir, removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new() -> Self {
            let path = std::env::temp_dir().join(format!(
                "tollgate-credentials-{:016x}",
                rand::random::<u64>()
            ));
            std::fs::create_dir(&path).unwrap();
            Self(path)
        }

        fn file(&self) -> PathBuf {
            self.0.join("tollgate.master.key")
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[cfg(unix)]
    fn write_with_mode(path: &Path, contents: &str, mode: u32) {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(path)
            .unwrap();
        file.write_all(contents.as_bytes()).unwrap();
        // The umask may have cleared bits; set exactly what the test wants.
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    #[test]
    fn missing_file_is_created_with_a_base64_key_and_a_newline() {
        let dir = TempDir::new();
        let path = dir.file();

        let (key, created) = load_or_create_dev_key_file(&path).unwrap();

        assert!(created);
        let contents = std::fs::read_to_string(&path).unwrap();
        assert_eq!(contents, format!("{}\n", key.to_base64().expose_secret()));
    }

    #[cfg(unix)]
    #[test]
    fn created_file_has_mode_0600() {
        let dir = TempDir::new();
        let path = dir.file();

        load_or_create_dev_key_file(&path).unwrap();

        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn existing_file_is_reused_with_the_same_key() {
        let dir = TempDir::new();
        let path = dir.file();
        let (first, _) = load_or_create_dev_key_file(&path).unwrap();

        let (second, created) = load_or_create_dev_key_file(&path).unwrap();

        assert!(!created);
        assert_eq!(first.bytes(), second.bytes());
    }

    #[cfg(unix)]
    #[test]
    fn file_readable_by_group_or_others_is_refused() {
        let dir = TempDir::new();
        let path = dir.file();
        let key = MasterKey::generate();
        let encoded = key.to_base64();
        write_with_mode(&path, encoded.expose_secret(), 0o644);

        let err = load_or_create_dev_key_file(&path).unwrap_err();

        assert!(matches!(
            err,
            CredentialError::InsecureKeyFile { mode: 0o644, .. }
        ));
        let message = err.to_string();
        assert!(message.contains("chmod 600"), "{message}");
        assert!(message.contains(&*path.to_string_lossy()), "{message}");
        assert!(!message.contains(encoded.expose_secret()), "{message}");
        assert!(!format!("{err:?}").contains(encoded.expose_secret()));
    }

    #[cfg(unix)]
    #[test]
    fn file_without_a_base64_key_is_malformed() {
        let dir = TempDir::new();
        let path = dir.file();
        write_with_mode(&path, "my passphrase\n", 0o600);

        let err = load_or_create_dev_key_file(&path).unwrap_err();

        assert!(matches!(err, CredentialError::MalformedKeyFile { .. }));
        assert!(!err.to_string().contains("my passphrase"));
    }

    #[cfg(unix)]
    #[test]
    fn empty_or_oversized_file_is_malformed() {
        for contents in [String::new(), "A".repeat(MAX_KEY_FILE_LEN * 2)] {
            let dir = TempDir::new();
            let path = dir.file();
            write_with_mode(&path, &contents, 0o600);

            let err = load_or_create_dev_key_file(&path).unwrap_err();

            assert!(matches!(err, CredentialError::MalformedKeyFile { .. }));
        }
    }

    #[test]
    fn missing_directory_is_an_io_error_naming_the_path() {
        let dir = TempDir::new();
        let path = dir.0.join("missing").join("tollgate.master.key");

        let err = load_or_create_dev_key_file(&path).unwrap_err();

        assert!(matches!(
            err,
            CredentialError::KeyFileIo {
                action: "create",
                ..
            }
        ));
        assert!(err.to_string().contains(&*path.to_string_lossy()));
    }
}
