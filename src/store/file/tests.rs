use std::sync::atomic::{AtomicUsize, Ordering};

use super::*;
use crate::token::TokenResponse;

/// A fresh directory under the system's temporary one, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!(
            "tower-bearer-auth-file-store-{}-{n}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        Self(dir)
    }

    fn store(&self) -> FileStore {
        FileStore::new(self.0.join("token.json"))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn token(version: u64) -> StoredToken {
    let response = TokenResponse::new(format!("access-{version}"))
        .with_refresh_token(format!("s3cr3t-refresh-{version}"));
    StoredToken::new(version, response)
}

fn kind(error: &BoxError) -> FileStoreErrorKind {
    error
        .downcast_ref::<FileStoreError>()
        .expect("a FileStoreError")
        .kind()
}

#[tokio::test]
async fn an_empty_store_has_no_token_and_no_files() {
    let dir = TempDir::new();
    let store = dir.store();
    assert!(store.load().await.unwrap().is_none());
    assert!(!dir.0.exists(), "a load created the directory");
}

#[tokio::test]
async fn keeps_the_newest_version() {
    let dir = TempDir::new();
    let store = dir.store();
    assert!(store.save(&token(2)).await.unwrap());
    assert!(!store.save(&token(1)).await.unwrap(), "an older version");
    assert!(!store.save(&token(2)).await.unwrap(), "the same version");
    let stored = store.load().await.unwrap().unwrap();
    assert_eq!(stored.version(), 2);
    assert_eq!(stored.token().unwrap().access_token(), "access-2");

    // A revoked record is saved like any version, and the versions go on from it.
    assert!(store.save(&StoredToken::revoked(3)).await.unwrap());
    let stored = store.load().await.unwrap().unwrap();
    assert!(stored.is_revoked());
    assert_eq!(stored.version(), 3);
    assert!(!store.save(&token(3)).await.unwrap());
    assert!(store.save(&token(4)).await.unwrap());
    assert_eq!(store.load().await.unwrap().unwrap().version(), 4);
}

#[tokio::test]
async fn two_handles_on_one_file_share_the_version_rule() {
    let dir = TempDir::new();
    let (a, b) = (dir.store(), dir.store());
    assert!(a.save(&token(5)).await.unwrap());
    assert!(!b.save(&token(4)).await.unwrap());
    assert_eq!(b.load().await.unwrap().unwrap().version(), 5);
}

#[tokio::test]
async fn concurrent_saves_keep_the_greatest_version() {
    let dir = TempDir::new();
    let store = dir.store();
    let saves: Vec<_> = (1..=16)
        .map(|v| {
            let store = store.clone();
            tokio::spawn(async move { store.save(&token(v)).await.unwrap() })
        })
        .collect();
    for save in saves {
        save.await.unwrap();
    }
    assert_eq!(store.load().await.unwrap().unwrap().version(), 16);
    // Only the token file and the lock file are left: no temporary file.
    let mut names: Vec<_> = std::fs::read_dir(&dir.0)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["token.json", "token.json.save-lock"]);
}

#[tokio::test]
async fn the_file_has_a_format_version_and_the_record() {
    let dir = TempDir::new();
    let store = dir.store();
    store.save(&token(7)).await.unwrap();
    let text = std::fs::read_to_string(store.path()).unwrap();
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(json["format"], 1);
    assert_eq!(json["record"]["version"], 7);
    assert_eq!(json["record"]["access_token"], "access-7");
}

#[cfg(unix)]
#[tokio::test]
async fn files_are_created_0600_in_a_0700_directory() {
    use std::os::unix::fs::PermissionsExt;

    let dir = TempDir::new();
    let store = FileStore::new(dir.0.join("sub").join("token.json"));
    store.save(&token(1)).await.unwrap();
    let lock = store.try_lock().await.unwrap().unwrap();
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode(store.path()), 0o600);
    assert_eq!(mode(store.lock_path()), 0o600);
    assert_eq!(mode(&dir.0.join("sub")), 0o700);
    drop(lock);
}

#[tokio::test]
async fn a_corrupt_file_is_an_error_and_the_next_save_replaces_it() {
    let dir = TempDir::new();
    let store = dir.store();
    store.save(&token(3)).await.unwrap();
    let text = std::fs::read_to_string(store.path()).unwrap();
    // Truncated mid-write, as a careless writer would leave it.
    write_private(store.path(), &text[..text.len() / 2]);
    let error = store.load().await.unwrap_err();
    assert_eq!(kind(&error), FileStoreErrorKind::Corrupt);
    let message = error.to_string();
    assert!(message.contains("truncated"), "{message}");
    assert!(!message.contains("s3cr3t"), "{message}");

    for junk in [
        "",
        "not json",
        "[]",
        r#"{"format":1}"#,
        r#"{"format":1,"record":{}}"#,
    ] {
        write_private(store.path(), junk);
        let error = store.load().await.unwrap_err();
        assert_eq!(
            kind(&error),
            FileStoreErrorKind::Corrupt,
            "{junk:?}: {error}"
        );
    }
    let secret = r#"{"format":1,"record":{"version":1,"access_token":7,"refresh_token":"s3cr3t"}}"#;
    write_private(store.path(), secret);
    let error = store.load().await.unwrap_err();
    assert!(!error.to_string().contains("s3cr3t"), "{error}");

    assert!(store.save(&token(1)).await.unwrap());
    assert_eq!(store.load().await.unwrap().unwrap().version(), 1);
}

#[tokio::test]
async fn a_file_of_an_unknown_format_is_neither_read_nor_replaced() {
    let dir = TempDir::new();
    let store = dir.store();
    write_private(store.path(), r#"{"format":2,"anything":"else"}"#);
    let error = store.load().await.unwrap_err();
    assert_eq!(kind(&error), FileStoreErrorKind::UnknownFormat);
    let error = store.save(&token(1)).await.unwrap_err();
    assert_eq!(kind(&error), FileStoreErrorKind::UnknownFormat);
}

#[cfg(unix)]
#[tokio::test]
async fn a_file_open_to_group_or_others_is_refused() {
    use std::os::unix::fs::PermissionsExt;

    let dir = TempDir::new();
    let store = dir.store();
    store.save(&token(1)).await.unwrap();
    for mode in [0o640, 0o604, 0o620, 0o644] {
        std::fs::set_permissions(store.path(), std::fs::Permissions::from_mode(mode)).unwrap();
        let error = store.load().await.unwrap_err();
        assert_eq!(kind(&error), FileStoreErrorKind::Permissions, "{mode:o}");
        assert!(
            error.to_string().contains(&format!("{mode:04o}")),
            "{error}"
        );
        let error = store.save(&token(2)).await.unwrap_err();
        assert_eq!(kind(&error), FileStoreErrorKind::Permissions, "{mode:o}");
    }
    // Stricter than 0600 is fine.
    std::fs::set_permissions(store.path(), std::fs::Permissions::from_mode(0o400)).unwrap();
    assert_eq!(store.load().await.unwrap().unwrap().version(), 1);
}

#[cfg(unix)]
#[tokio::test]
async fn a_file_of_another_user_is_refused() {
    use std::os::unix::fs::MetadataExt;

    if rustix::process::geteuid().as_raw() != 0 {
        eprintln!("skipped: only root can give a file to another user");
        return;
    }
    let dir = TempDir::new();
    let store = dir.store();
    store.save(&token(1)).await.unwrap();
    std::os::unix::fs::chown(store.path(), Some(65534), None).unwrap();
    assert_eq!(std::fs::metadata(store.path()).unwrap().uid(), 65534);
    let error = store.load().await.unwrap_err();
    assert_eq!(kind(&error), FileStoreErrorKind::Owner);
    let error = store.save(&token(2)).await.unwrap_err();
    assert_eq!(kind(&error), FileStoreErrorKind::Owner);
}

#[tokio::test]
async fn the_lock_excludes_other_handles_until_dropped() {
    let dir = TempDir::new();
    let (a, b) = (dir.store(), dir.store());
    let held = a.try_lock().await.unwrap().expect("a free lock");
    assert_eq!(held.lease(), None, "an OS lock is not a lease");
    // Another open file, even in this process and through the same handle, is refused.
    assert!(b.try_lock().await.unwrap().is_none());
    assert!(a.try_lock().await.unwrap().is_none());
    let waiting = tokio::spawn(async move { b.lock().await.map(drop).is_ok() });
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!waiting.is_finished());
    drop(held);
    assert!(waiting.await.unwrap());
    // Saving does not need the lock, nor wait for it.
    let _held = a.try_lock().await.unwrap().unwrap();
    assert!(a.save(&token(1)).await.unwrap());
}

#[test]
fn debug_and_errors_hold_no_secret() {
    let store = FileStore::new("/var/lib/app/token.json");
    let debug = format!("{store:?}");
    assert!(debug.contains("token.json.lock"), "{debug}");
    let error = FileStoreError::corrupt("/x", "not JSON (at line 1, column 2)");
    assert_eq!(
        error.to_string(),
        "token file /x is corrupt: not JSON (at line 1, column 2)"
    );
}

/// Writes `text` to `path` with mode 0600, as a hand edit would leave it.
fn write_private(path: &Path, text: &str) {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::io::Write::write_all(&mut options.open(path).unwrap(), text.as_bytes()).unwrap();
}
