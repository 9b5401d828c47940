//! Atomic, durable file writes: a reader (or a resumed run) never sees half a
//! file, and a file that was renamed into place survives a power cut.

use anyhow::{Context, Result};
use std::io::Write;
use std::path::{Path, PathBuf};

/// `path` with `.tmp` appended to its file name.
pub fn tmp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".tmp");
    path.with_file_name(name)
}

/// Writes `bytes` to `path` and flushes them to the disk (`fsync`) before
/// returning. Errors name the path (a full disk says so).
pub fn write_synced(path: &Path, bytes: &[u8]) -> Result<()> {
    write_synced_with(path, bytes, |_| {})
}

/// [`write_synced`] with a hook called after the first half of the bytes is
/// written (the checkpoint tests kill the process there).
pub(crate) fn write_synced_with(path: &Path, bytes: &[u8], half: impl FnOnce(&Path)) -> Result<()> {
    let err = || format!("{}: cannot write", path.display());
    let mut f = std::fs::File::create(path).with_context(err)?;
    let (a, b) = bytes.split_at(bytes.len() / 2);
    f.write_all(a).with_context(err)?;
    half(path);
    f.write_all(b).with_context(err)?;
    f.sync_all().with_context(err)?;
    Ok(())
}

/// Writes `bytes` to a temporary file, flushes it to the disk, renames it
/// over `path` and flushes the directory entry.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = tmp_path(path);
    write_synced(&tmp, bytes)?;
    rename(&tmp, path)?;
    sync_dir(path)
}

pub fn rename(from: &Path, to: &Path) -> Result<()> {
    std::fs::rename(from, to)
        .with_context(|| format!("cannot rename {} to {}", from.display(), to.display()))
}

/// Flushes the directory holding `path` (its renames) to the disk. Where a
/// directory cannot be opened for that (not Unix), this does nothing.
pub fn sync_dir(path: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .with_context(|| format!("{}: cannot flush the directory", dir.display()))?;
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}
