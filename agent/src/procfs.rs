//! Reading kernel files cheaply and parsing their common shapes.
//!
//! Opening, reading and closing a cgroup or proc file costs 7–18 µs; keeping
//! the descriptor and re-reading it with `pread` at offset 0 costs a fraction
//! of that and still returns fresh values, because these files are generated
//! on every read. [`KeptFile`] does that.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// A kernel file kept open and re-read from offset 0.
#[derive(Debug)]
pub struct KeptFile {
    path: PathBuf,
    file: File,
}

impl KeptFile {
    pub fn open(path: impl Into<PathBuf>) -> io::Result<KeptFile> {
        let path = path.into();
        let file = File::open(&path)?;
        Ok(KeptFile { path, file })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads the whole file into `buf`.
    ///
    /// Kernel files come from seq_file, which fills at most its own buffer
    /// (a page, or more for a single large record) per read and stops only
    /// between records. So a first read shorter than [`SHORT_READ`] is the
    /// whole file (stopping that early would need one record larger than the
    /// rest of a page, which none of the files read here have): one system
    /// call for nearly every cgroup and proc file. Anything longer is read on
    /// to end of file.
    pub fn read(&self, buf: &mut ReadBuf) -> io::Result<()> {
        buf.len = 0;
        loop {
            let offered = buf.data.len() - buf.len;
            let n = self
                .file
                .read_at(&mut buf.data[buf.len..], buf.len as u64)?;
            let first = buf.len == 0;
            buf.len += n;
            if n == 0 || (first && n < SHORT_READ) {
                return Ok(());
            }
            if n < offered {
                continue;
            }
            let bigger = buf.data.len() * 2;
            buf.data.resize(bigger, 0);
        }
    }

    /// Reads the file as text (kernel files are ASCII).
    pub fn read_str<'b>(&self, buf: &'b mut ReadBuf) -> io::Result<&'b str> {
        self.read(buf)?;
        std::str::from_utf8(buf.bytes()).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
    }

    /// Reads a file holding one unsigned number.
    pub fn read_u64(&self, buf: &mut ReadBuf) -> io::Result<u64> {
        let s = self.read_str(buf)?;
        parse_u64(s.trim()).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}: not a number: {:?}", self.path.display(), s.trim()),
            )
        })
    }
}

/// A first read shorter than this is taken as the whole file; see
/// [`KeptFile::read`].
pub const SHORT_READ: usize = 2048;

/// A reusable read buffer. Its storage stays initialised between reads, so
/// re-reading a kernel file costs no zero-filling.
#[derive(Debug)]
pub struct ReadBuf {
    data: Vec<u8>,
    len: usize,
}

impl Default for ReadBuf {
    fn default() -> Self {
        ReadBuf {
            data: vec![0; 8192],
            len: 0,
        }
    }
}

impl ReadBuf {
    pub fn new() -> ReadBuf {
        ReadBuf::default()
    }

    /// What the last read returned.
    pub fn bytes(&self) -> &[u8] {
        &self.data[..self.len]
    }

    /// The last read as text; empty if it was not UTF-8.
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(self.bytes()).unwrap_or("")
    }
}

/// Opens a file if it exists; other errors are returned.
pub fn open_optional(path: impl Into<PathBuf>) -> io::Result<Option<KeptFile>> {
    match KeptFile::open(path) {
        Ok(f) => Ok(Some(f)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

pub fn parse_u64(s: &str) -> Option<u64> {
    s.parse().ok()
}

/// Looks up `key value` lines (cgroup `memory.stat`, `cpu.stat`,
/// `/proc/vmstat`): returns the value of `key`, wherever it appears.
pub fn flat_keyed(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let (k, v) = line.split_once(' ')?;
        if k == key {
            v.trim().parse().ok()
        } else {
            None
        }
    })
}

/// Calls `f` for every `key value` line.
pub fn for_each_keyed(text: &str, mut f: impl FnMut(&str, u64)) {
    for line in text.lines() {
        if let Some((k, v)) = line.split_once(' ')
            && let Ok(v) = v.trim().parse()
        {
            f(k, v);
        }
    }
}

/// The rows of a `/proc/net/dev` table: interface name and its 16 counters
/// (8 receive, then 8 transmit), without allocating. Malformed rows are
/// skipped.
pub fn net_dev_rows(text: &str) -> impl Iterator<Item = (&str, [f64; 16])> {
    text.lines().skip(2).filter_map(|line| {
        let (dev, rest) = line.split_once(':')?;
        let mut values = [0.0; 16];
        let mut fields = rest.split_ascii_whitespace();
        for v in values.iter_mut() {
            *v = fields.next()?.parse().ok()?;
        }
        Some((dev.trim(), values))
    })
}

/// Undoes the octal escapes (`\040` for a space) of `/proc/mounts` fields.
pub fn unescape_octal(s: &str) -> String {
    if !s.contains('\\') {
        return s.to_string();
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = (b[i + 1] - b'0') as u32 * 64
                + (b[i + 2] - b'0') as u32 * 8
                + (b[i + 3] - b'0') as u32;
            out.push(v as u8);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The kernel's USER_HZ, the unit of `/proc/stat` and `cpuacct.stat` ticks.
pub fn clock_ticks_per_second() -> f64 {
    // SAFETY: sysconf has no memory effects.
    let v = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if v > 0 { v as f64 } else { 100.0 }
}

/// CPU time used by the calling thread, for per-sampler cost accounting.
pub fn thread_cpu_time() -> std::time::Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: ts is a valid out-pointer.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return std::time::Duration::ZERO;
    }
    std::time::Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// `statvfs` figures of one filesystem, in bytes and inodes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FsStats {
    pub size_bytes: u64,
    pub free_bytes: u64,
    pub avail_bytes: u64,
    pub files: u64,
    pub files_free: u64,
    pub readonly: bool,
}

pub fn statvfs(path: &Path) -> io::Result<FsStats> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    // SAFETY: zeroed statvfs is a valid out-value; c is NUL-terminated.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::statvfs(c.as_ptr(), &mut st) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    let frsize = st.f_frsize as u64;
    Ok(FsStats {
        size_bytes: st.f_blocks as u64 * frsize,
        free_bytes: st.f_bfree as u64 * frsize,
        avail_bytes: st.f_bavail as u64 * frsize,
        files: st.f_files as u64,
        files_free: st.f_ffree as u64,
        readonly: st.f_flag & libc::ST_RDONLY != 0,
    })
}

/// Joins an absolute path under a root (`/host` + `/var/lib/docker`).
pub fn under_root(root: &Path, absolute: &str) -> PathBuf {
    root.join(absolute.trim_start_matches('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kept_file_rereads_fresh_content() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x");
        std::fs::write(&p, "123\n").unwrap();
        let f = KeptFile::open(&p).unwrap();
        let mut buf = ReadBuf::new();
        assert_eq!(f.read_u64(&mut buf).unwrap(), 123);
        std::fs::write(&p, "4567\n").unwrap();
        assert_eq!(f.read_u64(&mut buf).unwrap(), 4567);
    }

    #[test]
    fn kept_file_reads_proc_files_larger_than_one_page() {
        let f = KeptFile::open("/proc/self/smaps").unwrap();
        let mut buf = ReadBuf::new();
        let a = f.read_str(&mut buf).unwrap().to_string();
        assert!(
            a.len() > 8192,
            "larger than the initial buffer: {}",
            a.len()
        );
        assert!(a.ends_with('\n') && a.contains("Rss:"), "{a}");
        // The same length as reading it the ordinary way (give or take the
        // mappings that reading itself creates).
        let plain = std::fs::read_to_string("/proc/self/smaps").unwrap();
        assert!(
            a.len().abs_diff(plain.len()) < plain.len() / 4,
            "{} vs {}",
            a.len(),
            plain.len()
        );
        let short = KeptFile::open("/proc/loadavg").unwrap();
        let text = short.read_str(&mut buf).unwrap();
        assert_eq!(text.lines().count(), 1, "{text:?}");
        let f = KeptFile::open("/proc/stat").unwrap();
        let first = f.read_str(&mut buf).unwrap().to_string();
        let second = f.read_str(&mut buf).unwrap().to_string();
        assert!(first.starts_with("cpu ") && second.starts_with("cpu "));
    }

    #[test]
    fn keyed_lookup_finds_keys_anywhere() {
        let t = "cache 10\nrss 20\ntotal_inactive_file 30\n";
        assert_eq!(flat_keyed(t, "rss"), Some(20));
        assert_eq!(flat_keyed(t, "total_inactive_file"), Some(30));
        assert_eq!(flat_keyed(t, "missing"), None);
        let mut n = 0;
        for_each_keyed(t, |_, v| n += v);
        assert_eq!(n, 60);
    }

    #[test]
    fn net_dev_rows_parse_and_skip_malformed() {
        let t = "Inter-|   Receive\n face |bytes\n  eth0: 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16\n bad: 1 2\nlo: x 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1\n";
        let rows: Vec<_> = net_dev_rows(t).collect();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].0, "eth0");
        assert_eq!(rows[0].1[8], 9.0);
    }

    #[test]
    fn octal_escapes_are_undone() {
        assert_eq!(unescape_octal("/mnt/my\\040disk"), "/mnt/my disk");
        assert_eq!(unescape_octal("plain"), "plain");
        assert_eq!(unescape_octal("trail\\04"), "trail\\04");
    }

    #[test]
    fn statvfs_of_root_is_sane() {
        let s = statvfs(Path::new("/")).unwrap();
        assert!(s.size_bytes >= s.free_bytes && s.free_bytes >= s.avail_bytes);
        assert!(statvfs(Path::new("/definitely/not/here")).is_err());
    }
}
