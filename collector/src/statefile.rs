//! Small state files beside the store (alert state, notification log):
//! written whole, so a crash leaves the old or the new content.

use std::io::Write;
use std::path::Path;

/// Writes `value` as JSON through a temporary file, fsync and rename.
pub fn write_atomically<T: serde::Serialize>(path: &Path, value: &T) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    let bytes = serde_json::to_vec(value).map_err(std::io::Error::other)?;
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(&bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent()
        && let Ok(d) = std::fs::File::open(dir)
    {
        let _ = d.sync_all();
    }
    Ok(())
}
