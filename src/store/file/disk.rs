//! The blocking side of [`FileStore`](super::FileStore): reading, checking, writing and
//! locking its files. Each function runs on a thread of tokio's blocking pool.

use std::{
    fs::{self, File, OpenOptions},
    hash::{BuildHasher, RandomState},
    io::{self, Read, Write},
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use fs4::TryLockError;
use serde_json::{Map, Value};
use zeroize::Zeroizing;

use super::{FORMAT, FileStoreError, MAX_FILE_LEN};
use crate::store::StoredToken;

/// How long a save waits for another process's save to end: a save takes milliseconds.
const SAVE_LOCK_WAIT: Duration = Duration::from_secs(2);
/// The pause between two tries of the save lock.
const SAVE_LOCK_PAUSE: Duration = Duration::from_millis(2);

/// Reads the token file, after checking its owner and mode: `Ok(None)` if there is none.
pub(super) fn load(path: &Path) -> Result<Option<StoredToken>, FileStoreError> {
    let mut file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(FileStoreError::io("open", path, e)),
    };
    // The open file's metadata: the file read is the file checked.
    let meta = file
        .metadata()
        .map_err(|e| FileStoreError::io("read the metadata of", path, e))?;
    check(path, &meta)?;
    let mut text = Zeroizing::new(Vec::new());
    (&mut file)
        .take(MAX_FILE_LEN + 1)
        .read_to_end(&mut text)
        .map_err(|e| FileStoreError::io("read", path, e))?;
    if text.len() as u64 > MAX_FILE_LEN {
        let detail = format!("larger than {} KiB", MAX_FILE_LEN / 1024);
        return Err(FileStoreError::corrupt(path, detail));
    }
    parse(path, &text).map(Some)
}

/// The file's owner must be the process's user, and its mode must shut out group and others.
#[cfg(unix)]
fn check(path: &Path, meta: &fs::Metadata) -> Result<(), FileStoreError> {
    use std::os::unix::fs::MetadataExt;

    let user = rustix::process::geteuid().as_raw();
    if meta.uid() != user {
        return Err(FileStoreError::owner(path, meta.uid(), user));
    }
    let mode = meta.mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(FileStoreError::permissions(path, mode));
    }
    Ok(())
}

/// No owner or mode on this platform: the file has its directory's access rights.
#[cfg(not(unix))]
fn check(_: &Path, _: &fs::Metadata) -> Result<(), FileStoreError> {
    Ok(())
}

/// The record in the file's text: `{"format": 1, "record": {…}}`.
pub(super) fn parse(path: &Path, text: &[u8]) -> Result<StoredToken, FileStoreError> {
    let mut outer: Map<String, Value> =
        serde_json::from_slice(text).map_err(|e| FileStoreError::corrupt(path, describe(&e)))?;
    let format = outer
        .get("format")
        .ok_or_else(|| FileStoreError::corrupt(path, "no `format` field"))?;
    let format = format
        .as_u64()
        .ok_or_else(|| FileStoreError::corrupt(path, "`format` is not a number"))?;
    if format != FORMAT {
        return Err(FileStoreError::unknown_format(path, format));
    }
    let record = outer
        .remove("record")
        .ok_or_else(|| FileStoreError::corrupt(path, "no `record` field"))?;
    let record = Zeroizing::new(record.to_string());
    // Not `from_json`'s message: it may quote a field's value.
    StoredToken::from_json(&record)
        .map_err(|_| FileStoreError::corrupt(path, "`record` is not a stored token"))
}

/// The file's text for `record`.
pub(super) fn render(record: &StoredToken) -> Zeroizing<String> {
    let json = Zeroizing::new(record.to_json());
    Zeroizing::new(format!("{{\"format\":{FORMAT},\"record\":{}}}\n", *json))
}

/// Where a JSON error is, and what kind: never its message, which may quote the text.
fn describe(error: &serde_json::Error) -> String {
    use serde_json::error::Category;

    let (line, column) = (error.line(), error.column());
    match error.classify() {
        Category::Eof => format!("truncated (the JSON ends at line {line}, column {column})"),
        Category::Syntax => format!("not JSON (at line {line}, column {column})"),
        Category::Data => "not a JSON object".to_owned(),
        Category::Io => "unreadable".to_owned(),
    }
}

/// Saves `record` unless the file holds the same or a greater version: under the save lock,
/// reads the file, then writes a temporary file, syncs it, renames it over the token file
/// and syncs the directory.
///
/// A corrupt file is replaced; a file of another owner, open to others or of an unknown
/// format is not.
pub(super) fn save(paths: &super::Paths, record: &StoredToken) -> Result<bool, FileStoreError> {
    let path = &paths.token;
    make_dir(path)?;
    let _save_lock = save_lock(&paths.save_lock)?;
    match load(path) {
        Ok(Some(stored)) if stored.version() >= record.version() => return Ok(false),
        Ok(_) => {}
        Err(e) if e.kind() == super::FileStoreErrorKind::Corrupt => {
            crate::trace::warn!(
                name: "file_store",
                path = %path.display(),
                error = %e,
                "replacing a corrupt token file"
            );
        }
        Err(e) => return Err(e),
    }
    write_atomically(path, render(record).as_bytes())
        .map(|()| true)
        .map_err(|(op, path, e)| FileStoreError::io(op, path, e))
}

/// A temporary file next to `path`, created `0600`, written, synced, renamed over `path`;
/// then the directory synced, so that the rename survives a crash.
fn write_atomically(path: &Path, text: &[u8]) -> Result<(), (&'static str, PathBuf, io::Error)> {
    let dir = parent(path);
    let name = path
        .file_name()
        .map_or_else(Default::default, |n| n.to_string_lossy());
    let temp = dir.join(format!(
        "{name}.tmp.{}.{:016x}",
        std::process::id(),
        RandomState::new().hash_one(Instant::now())
    ));
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    private(&mut options);
    let mut file = options
        .open(&temp)
        .map_err(|e| ("create", temp.clone(), e))?;
    let written = file
        .write_all(text)
        .map_err(|e| ("write", temp.clone(), e))
        .and_then(|()| file.sync_all().map_err(|e| ("sync", temp.clone(), e)));
    drop(file);
    let renamed = written.and_then(|()| {
        fs::rename(&temp, path).map_err(|e| ("rename a temporary file over", path.to_owned(), e))
    });
    if renamed.is_err() {
        let _ = fs::remove_file(&temp);
    }
    renamed?;
    sync_dir(dir).map_err(|e| ("sync the directory", dir.to_owned(), e))
}

/// Files are created with mode `0600`, directories `0700`: never widened, then narrowed.
#[cfg(unix)]
fn private(options: &mut OpenOptions) {
    use std::os::unix::fs::OpenOptionsExt;
    options.mode(0o600);
}

#[cfg(not(unix))]
fn private(_: &mut OpenOptions) {}

#[cfg(unix)]
fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// A directory cannot be opened as a file here; the rename is as durable as the platform's.
#[cfg(not(unix))]
fn sync_dir(_: &Path) -> io::Result<()> {
    Ok(())
}

/// The directory holding `path`.
fn parent(path: &Path) -> &Path {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    }
}

/// Creates the directory holding `path` if it is missing, with mode `0700`.
fn make_dir(path: &Path) -> Result<(), FileStoreError> {
    let dir = parent(path);
    if dir.is_dir() {
        return Ok(());
    }
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder
        .create(dir)
        .map_err(|e| FileStoreError::io("create the directory", dir, e))
}

/// Opens (creating it `0600` if missing) a lock file.
fn open_lock_file(path: &Path) -> Result<File, FileStoreError> {
    make_dir(path)?;
    let mut options = OpenOptions::new();
    // Writable only so that it can be created; nothing is written to it.
    options.read(true).write(true).create(true).truncate(false);
    private(&mut options);
    options
        .open(path)
        .map_err(|e| FileStoreError::io("open the lock file", path, e))
}

/// Takes the OS lock on the lock file at `path` without waiting: `Ok(None)` while another
/// open file (another process, or another store in this one) holds it. The lock is held until
/// the returned file is closed, by the holder or by the OS when the holder dies.
pub(super) fn try_lock(path: &Path) -> Result<Option<File>, FileStoreError> {
    let file = open_lock_file(path)?;
    // Spelled out: `std::fs::File::try_lock` shadows the trait's method on new toolchains.
    match fs4::FileExt::try_lock(&file) {
        Ok(()) => Ok(Some(file)),
        Err(TryLockError::WouldBlock) => Ok(None),
        Err(TryLockError::Error(e)) => Err(FileStoreError::io("lock", path, e)),
    }
}

/// Takes the save lock, trying every 2 ms for 2 s at most.
fn save_lock(path: &Path) -> Result<File, FileStoreError> {
    let deadline = Instant::now() + SAVE_LOCK_WAIT;
    loop {
        if let Some(file) = try_lock(path)? {
            return Ok(file);
        }
        if Instant::now() >= deadline {
            let held = io::Error::new(
                io::ErrorKind::TimedOut,
                "another process held it for 2 s while saving",
            );
            return Err(FileStoreError::io("lock", path, held));
        }
        std::thread::sleep(SAVE_LOCK_PAUSE);
    }
}
