//! [`FileStoreError`]: why a [`FileStore`](super::FileStore) refused a file or failed.

use std::{error::Error, fmt, io, path::PathBuf};

/// Why a [`FileStore`](super::FileStore) could not read, write or lock its files.
///
/// Its message names the file and what was wrong with it, never what the file holds: a
/// corrupt file is described by where its JSON broke off, not by its text. The cause, for
/// [`Io`](FileStoreErrorKind::Io), is in [`source`](Error::source).
#[derive(Debug)]
pub struct FileStoreError {
    kind: FileStoreErrorKind,
    path: PathBuf,
    what: What,
    source: Option<io::Error>,
}

/// What kind of [`FileStoreError`] this is.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FileStoreErrorKind {
    /// A file could not be opened, read, written, synced, renamed or locked: the operating
    /// system's error is the [`source`](Error::source).
    Io,
    /// The token file is not a token file: truncated, not JSON, too large, or JSON without
    /// the fields of a record. [`load`](crate::store::TokenStore::load) fails with it; the
    /// next [`save`](crate::store::TokenStore::save) replaces the file.
    Corrupt,
    /// The token file was written in a format this version of the crate does not know (by a
    /// newer one, say). Neither read nor replaced.
    UnknownFormat,
    /// The token file may be read or written by the group or by others (its mode is not
    /// `0600` or stricter). Neither read nor replaced.
    Permissions,
    /// The token file belongs to another user than the one the process runs as. Neither read
    /// nor replaced.
    Owner,
}

#[derive(Debug)]
enum What {
    Op(&'static str),
    Corrupt(String),
    Format(u64),
    Mode(u32),
    Owner { owner: u32, user: u32 },
}

impl FileStoreError {
    pub(super) fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        Self {
            kind: FileStoreErrorKind::Io,
            path: path.into(),
            what: What::Op(op),
            source: Some(source),
        }
    }

    /// `detail` must not quote the file.
    pub(super) fn corrupt(path: impl Into<PathBuf>, detail: impl Into<String>) -> Self {
        Self {
            kind: FileStoreErrorKind::Corrupt,
            path: path.into(),
            what: What::Corrupt(detail.into()),
            source: None,
        }
    }

    pub(super) fn unknown_format(path: impl Into<PathBuf>, format: u64) -> Self {
        Self {
            kind: FileStoreErrorKind::UnknownFormat,
            path: path.into(),
            what: What::Format(format),
            source: None,
        }
    }

    #[cfg_attr(not(unix), allow(dead_code))]
    pub(super) fn permissions(path: impl Into<PathBuf>, mode: u32) -> Self {
        Self {
            kind: FileStoreErrorKind::Permissions,
            path: path.into(),
            what: What::Mode(mode),
            source: None,
        }
    }

    #[cfg_attr(not(unix), allow(dead_code))]
    pub(super) fn owner(path: impl Into<PathBuf>, owner: u32, user: u32) -> Self {
        Self {
            kind: FileStoreErrorKind::Owner,
            path: path.into(),
            what: What::Owner { owner, user },
            source: None,
        }
    }

    /// What kind of error this is.
    pub fn kind(&self) -> FileStoreErrorKind {
        self.kind
    }

    /// The file concerned: the token file, its lock file, or the directory holding them.
    pub fn path(&self) -> &std::path::Path {
        &self.path
    }
}

impl fmt::Display for FileStoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path = self.path.display();
        match &self.what {
            What::Op(op) => write!(f, "cannot {op} {path}"),
            What::Corrupt(detail) => write!(f, "token file {path} is corrupt: {detail}"),
            What::Format(format) => write!(
                f,
                "token file {path} has format {format}, which this version does not read"
            ),
            What::Mode(mode) => write!(
                f,
                "token file {path} has mode {mode:04o}, open to group or others: refused \
                 (its tokens may have been read; make it 0600 or delete it)"
            ),
            What::Owner { owner, user } => write!(
                f,
                "token file {path} belongs to user {owner}, not to this process's user \
                 {user}: refused"
            ),
        }
    }
}

impl Error for FileStoreError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        self.source.as_ref().map(|e| e as _)
    }
}
