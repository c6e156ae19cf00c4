//! [`FileStore`]: a token store in a file (feature `file-store`).

use std::{
    fmt,
    fs::File,
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use super::{TokenStore, lock::StoreLock, record::StoredToken};
use crate::{BoxError, provider::BoxFuture};

mod disk;
mod error;

pub use error::{FileStoreError, FileStoreErrorKind};

/// The format of the token file that this version writes and reads.
const FORMAT: u64 = 1;
/// The largest token file read: a token response is a few KiB at most.
const MAX_FILE_LEN: u64 = 64 * 1024;
/// Bounds on the pause between two tries of a held lock, in [`FileStore::lock`].
const POLL_MIN: Duration = Duration::from_millis(10);
const POLL_MAX: Duration = Duration::from_millis(100);

/// A [`TokenStore`] in a file, for a CLI or a cron job that should not log in on every run,
/// and for the processes of one user on one machine that should share one login.
///
/// A run finds the token the run before it saved: still valid, it is sent without asking
/// the server; expired, it is refreshed with the stored refresh token. Processes
/// running at once take turns through a lock file: one logs in or refreshes, and the others
/// use the token it saved, so a refresh token that the server accepts once is spent once.
///
/// # Files
///
/// For a store at `token.json`:
///
/// | file | holds |
/// | --- | --- |
/// | `token.json` | the record, as JSON: `{"format": 1, "record": {…}}`, where `record` is [`StoredToken::to_json`]'s object (`version`, `access_token`, `refresh_token`, `expires_at` in Unix seconds, …; `{"version": N, "revoked": true}` after a revoke) |
/// | `token.json.lock` | nothing: the lock that one process holds while it logs in or refreshes |
/// | `token.json.save-lock` | nothing: the lock held for the few milliseconds of a save |
/// | `token.json.tmp.<pid>.<random>` | a save under way, renamed to `token.json` when written |
///
/// A missing directory is created (mode `0700`). The lock files are never deleted: a process
/// waiting on a lock file that another deleted would lock a file no one else sees. `format`
/// is the layout's version: a file of a format this version does not know is neither read
/// nor replaced ([`FileStoreErrorKind::UnknownFormat`]).
///
/// **The access token and the refresh token are stored unencrypted**: anyone who can read
/// the file can use the account until the tokens expire or are revoked. Keep it on a local
/// disk of the machine, in a directory of the user's own (`~/.cache/my-app/`, say).
///
/// # Permissions
///
/// On Unix the token file and the lock files are created with mode `0600` (the open call
/// gives the mode, so the file is never readable by others, not even for a moment), and
/// every read checks the open file: a token file **owned by another user**
/// ([`FileStoreErrorKind::Owner`]), or **readable or writable by the group or others**
/// ([`FileStoreErrorKind::Permissions`]), is refused, for reading and for replacing. Its
/// tokens may have been read by someone else, or planted by someone else (a token of their
/// account, or a refresh token they will spend first): a person should look before the file
/// is used again, and a warning that scrolls by would not stop anyone. Until then the store
/// fails, and the cache does without it: each run logs in. Make the file `0600` or delete it.
///
/// On other platforms the files get their directory's access rights and nothing is checked.
///
/// # Writes and versions
///
/// A save writes a temporary file in the same directory (mode `0600`), syncs it to disk
/// (`fsync`), renames it over the token file and syncs the directory: a crash at any point
/// leaves the old record or the new one, never a torn file. Readers take no lock: a rename
/// replaces the file whole.
///
/// A save never overwrites a newer record: under the save lock it reads the file and writes
/// only a greater [version](StoredToken::version), as [`TokenStore::save`] requires. A
/// revoked record is saved the same way. The save lock is held for the milliseconds of one
/// save; a save waits up to 2 s for another process's, trying every 2 ms, then fails.
///
/// # Corrupt files
///
/// A token file that is truncated, is not JSON, is larger than 64 KiB or lacks a record's
/// fields makes [`load`](TokenStore::load) fail with [`FileStoreErrorKind::Corrupt`], whose
/// message says where the JSON broke off and never quotes the file. The cache warns of a
/// failed load (with the `tracing` feature) and fetches a token as if the store were empty;
/// the next save replaces the corrupt file. Nothing in such a file can be trusted to be a
/// token, and a file this store wrote cannot be corrupt short of a disk fault or another
/// program's write, so it is reported rather than ignored, and then repaired.
///
/// # Locking
///
/// The lock is the operating system's lock on the lock file (`flock` on Unix, `LockFileEx`
/// on Windows, through the `fs4` crate), taken on a file opened for each try, so that two
/// caches of one process exclude each other as two processes do. It is not a lease: it lasts
/// until the holder releases it (drops its [`StoreLock`]) or dies. The OS releases the lock of
/// a process that exits, crashes or is killed (`SIGKILL` included) at once, so the next
/// process takes it at its next try, 10 to 100 ms later. The lock file is opened
/// close-on-exec: a program that the holder starts does not inherit the lock.
///
/// The cache never waits inside the store: it calls [`try_lock`](TokenStore::try_lock), which
/// never waits for the lock, and tries again every 10 to 100 ms, reading the token file in
/// between, as it does with every store. [`lock`](TokenStore::lock), for callers of their
/// own, tries the same way. Each file operation (open, lock, read, write, `fsync`) runs on
/// tokio's blocking thread pool (`spawn_blocking`), not on the runtime's threads: an `fsync`
/// may take milliseconds, more on a busy disk. A try whose answer the cache no longer waits
/// for leaves no lock behind: its file is closed when the try ends.
///
/// The lock file must be on a local file system. Over NFS, `flock` is emulated with
/// byte-range locks on Linux and may not lock at all elsewhere.
///
/// # What faults cost
///
/// - **A holder that dies** (killed, crashed) costs the others nothing but their next try:
///   10 to 100 ms. That one then refreshes with the stored refresh token, the newest.
/// - **A holder that stalls** (stopped with `SIGSTOP`, a debugger, a hung token endpoint)
///   holds the lock for as long as it stalls: an OS lock cannot run out. The others send
///   their still-valid tokens meanwhile, and a cache that needs a new one waits up to twice
///   its [timeout](crate::TokenCacheBuilder::timeout) (20 s by default), then fails its fetch
///   with [`TokenErrorKind::Timeout`](crate::TokenErrorKind::Timeout) rather than spend a
///   refresh token beside the holder. A live holder's flight is bounded by a few of its
///   timeouts (its reads, its call to the provider, its save), so only a stalled process
///   holds the lock longer.
/// - **A full disk, or a directory not writable**: the save fails, and the token is used
///   all the same, as with any store; the next run logs in again.
///
/// # Cost
///
/// The cache reads the store before each login or refresh and while it waits for the lock,
/// never per request. A read is an open, an `fstat`, a read of a few hundred bytes and a JSON
/// parse on a blocking thread: 15 to 40 µs where it was measured (a virtual machine's disk).
/// A save takes the save lock and syncs twice (the file and the directory): 2.5 to 7.5 ms
/// there, more on a busy or spinning disk, far less than a login.
///
/// # Example
///
/// ```
/// use tower_bearer_auth::{TokenCache, provider::StaticToken, store::FileStore};
///
/// # #[tokio::main]
/// # async fn main() -> Result<(), tower_bearer_auth::BoxError> {
/// # let dir = std::env::temp_dir().join(format!("file-store-doc-{}", std::process::id()));
/// # let _ = std::fs::remove_dir_all(&dir);
/// // In a CLI: `~/.cache/my-app/token.json`, say.
/// let path = dir.join("token.json");
/// let cache = TokenCache::builder(StaticToken::new("abc"))
///     .store(FileStore::new(&path))
///     .build();
/// let token = cache.get().await?; // logs in and saves the token in the file
///
/// // The next run, in another process: finds the token in the file.
/// let next_run = TokenCache::builder(StaticToken::new("abc"))
///     .store(FileStore::new(&path))
///     .build();
/// assert_eq!(next_run.get().await?.access_token(), token.access_token());
///
/// #[cfg(unix)]
/// {
///     use std::os::unix::fs::PermissionsExt;
///     let mode = std::fs::metadata(&path)?.permissions().mode();
///     assert_eq!(mode & 0o777, 0o600);
/// }
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct FileStore {
    paths: Arc<Paths>,
}

/// The store's files.
struct Paths {
    token: PathBuf,
    lock: PathBuf,
    save_lock: PathBuf,
}

impl FileStore {
    /// A store keeping its token in the file at `path`, with its lock files beside it
    /// (`path` with `.lock` and `.save-lock` appended). Nothing is opened until the cache
    /// first uses the store.
    ///
    /// Every process sharing a login uses the same path; another account needs another file.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        let token = path.into();
        let beside = |suffix: &str| {
            let mut name = token.clone().into_os_string();
            name.push(suffix);
            PathBuf::from(name)
        };
        let paths = Paths {
            lock: beside(".lock"),
            save_lock: beside(".save-lock"),
            token,
        };
        Self {
            paths: Arc::new(paths),
        }
    }

    /// The token file's path.
    pub fn path(&self) -> &Path {
        &self.paths.token
    }

    /// The lock file's path: the file whose OS lock a process holds while it logs in or
    /// refreshes.
    pub fn lock_path(&self) -> &Path {
        &self.paths.lock
    }

    async fn try_lock(&self) -> Result<Option<StoreLock>, BoxError> {
        let paths = self.paths.clone();
        let file = blocking(move || disk::try_lock(&paths.lock)).await?;
        Ok(file.map(|file| StoreLock::new(LockFile { _file: file })))
    }

    async fn lock(&self) -> Result<StoreLock, BoxError> {
        let mut pause = POLL_MIN;
        loop {
            if let Some(lock) = self.try_lock().await? {
                return Ok(lock);
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(POLL_MAX);
        }
    }
}

impl TokenStore for FileStore {
    /// Reads the token file; `Ok(None)` if there is none.
    ///
    /// # Errors
    ///
    /// A [`FileStoreError`]: the file is [corrupt](FileStoreErrorKind::Corrupt), of an
    /// [unknown format](FileStoreErrorKind::UnknownFormat), another user's
    /// ([`Owner`](FileStoreErrorKind::Owner)), open to others
    /// ([`Permissions`](FileStoreErrorKind::Permissions)), or unreadable
    /// ([`Io`](FileStoreErrorKind::Io)).
    fn load(&self) -> BoxFuture<'_, Result<Option<StoredToken>, BoxError>> {
        let paths = self.paths.clone();
        Box::pin(blocking(move || disk::load(&paths.token)))
    }

    /// Writes `token` over the file atomically, unless the file holds the same or a greater
    /// version; a corrupt file is replaced.
    ///
    /// # Errors
    ///
    /// A [`FileStoreError`]: the file is another user's, open to others or of an unknown
    /// format, or a write failed.
    fn save<'a>(&'a self, token: &'a StoredToken) -> BoxFuture<'a, Result<bool, BoxError>> {
        let paths = self.paths.clone();
        let token = token.clone();
        Box::pin(blocking(move || disk::save(&paths, &token)))
    }

    /// Takes the lock file's lock, trying every 10 to 100 ms for as long as another holds it:
    /// the OS releases it when its holder dies, but not while it lives. Bound the wait with
    /// a timeout of your own.
    fn lock(&self) -> BoxFuture<'_, Result<StoreLock, BoxError>> {
        Box::pin(self.lock())
    }

    /// Takes the lock file's lock if no one holds it, without waiting for it.
    fn try_lock(&self) -> BoxFuture<'_, Result<Option<StoreLock>, BoxError>> {
        Box::pin(self.try_lock())
    }
}

impl fmt::Debug for FileStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileStore")
            .field("path", &self.paths.token)
            .field("lock_path", &self.paths.lock)
            .finish()
    }
}

/// The held lock file: closing it releases the OS lock.
struct LockFile {
    _file: File,
}

/// Runs `work` on tokio's blocking pool. Dropping the future leaves it to finish there; what
/// it returns (a lock file, say) is then dropped, and closed.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, FileStoreError> + Send + 'static,
) -> Result<T, BoxError> {
    match tokio::task::spawn_blocking(work).await {
        Ok(result) => result.map_err(Into::into),
        Err(join) => Err(join.into()),
    }
}

#[cfg(test)]
mod tests;
