//! How dealflow writes its own small files (the sandbox world, the URL file, the
//! service status): whole or not at all, and readable by the owner only.

/// Replaces `path` with `bytes`, owner-only (NamedTempFile is created 0600 on Unix) and
/// atomically: a reader never sees half a file, and a secret in it is never readable by
/// others, even for a moment.
pub fn write_private(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let dir = path.parent().unwrap_or_else(|| std::path::Path::new("."));
    std::fs::create_dir_all(dir)?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}
