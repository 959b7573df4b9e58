//! `statfs` on a worker thread with a deadline per mount.
//!
//! A hung network filesystem blocks `statfs` in the kernel, and nothing can
//! interrupt it. The sampler hands each call to a worker thread and waits a
//! bounded time; a mount that does not answer is marked stuck and skipped
//! (reported with `node_filesystem_device_error 1`) until its pending call
//! finally returns, and a fresh worker takes over the other mounts.

use std::collections::HashMap;
use std::io;
use std::path::PathBuf;
use std::sync::mpsc;
use std::time::Duration;

use crate::procfs::{FsStats, statvfs};

type Reply = mpsc::Receiver<io::Result<FsStats>>;
type Job = (PathBuf, mpsc::Sender<io::Result<FsStats>>);

/// The call made on the worker thread; `statvfs` except in tests.
pub type StatFn = fn(&std::path::Path) -> io::Result<FsStats>;

pub struct StatfsWorker {
    jobs: Option<mpsc::Sender<Job>>,
    stuck: HashMap<String, Reply>,
    stat: StatFn,
}

pub enum Answer {
    Stats(FsStats),
    Error(io::Error),
    /// The mount did not answer in time now or in an earlier cycle.
    Stuck,
}

impl StatfsWorker {
    pub fn new() -> StatfsWorker {
        Self::with(statvfs)
    }

    pub fn with(stat: StatFn) -> StatfsWorker {
        StatfsWorker {
            jobs: None,
            stuck: HashMap::new(),
            stat,
        }
    }

    fn sender(&mut self) -> io::Result<&mpsc::Sender<Job>> {
        if self.jobs.is_none() {
            let (tx, rx) = mpsc::channel::<Job>();
            let stat = self.stat;
            std::thread::Builder::new()
                .name("lookout-statfs".into())
                .spawn(move || {
                    for (path, reply) in rx {
                        let _ = reply.send(stat(&path));
                    }
                })?;
            self.jobs = Some(tx);
        }
        Ok(self.jobs.as_ref().expect("set above"))
    }

    pub fn statfs(&mut self, key: &str, path: PathBuf, deadline: Duration) -> Answer {
        if let Some(pending) = self.stuck.get(key) {
            match pending.try_recv() {
                Err(mpsc::TryRecvError::Empty) => return Answer::Stuck,
                // It answered at last (or its worker died): try afresh below.
                _ => {
                    self.stuck.remove(key);
                }
            }
        }
        let (reply_tx, reply_rx) = mpsc::channel();
        let sent = match self.sender() {
            Ok(tx) => tx.send((path.clone(), reply_tx)).is_ok(),
            Err(e) => return Answer::Error(e),
        };
        if !sent {
            // The worker is gone; run this one call inline on a new worker.
            self.jobs = None;
            return self.statfs(key, path, deadline);
        }
        match reply_rx.recv_timeout(deadline) {
            Ok(Ok(s)) => Answer::Stats(s),
            Ok(Err(e)) => Answer::Error(e),
            Err(_) => {
                // The worker is blocked in the kernel: leave it with this
                // mount and start a new one for the others.
                self.jobs = None;
                self.stuck.insert(key.to_string(), reply_rx);
                Answer::Stuck
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;
    use std::sync::atomic::{AtomicBool, Ordering};

    static RELEASE: AtomicBool = AtomicBool::new(false);

    /// `/hang` blocks until released, like a dead NFS server; others answer.
    fn fake_stat(path: &Path) -> io::Result<FsStats> {
        if path == Path::new("/hang") {
            while !RELEASE.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        statvfs(path)
    }

    #[test]
    fn a_hung_mount_is_skipped_and_the_others_still_answer() {
        let mut w = StatfsWorker::with(fake_stat);
        let t = Duration::from_millis(100);
        assert!(matches!(w.statfs("/", "/".into(), t), Answer::Stats(_)));
        assert!(matches!(
            w.statfs("/hang", "/hang".into(), t),
            Answer::Stuck
        ));
        // The next mounts go to a fresh worker and answer at once.
        let started = std::time::Instant::now();
        assert!(matches!(w.statfs("/", "/".into(), t), Answer::Stats(_)));
        assert!(started.elapsed() < t);
        // Still stuck: skipped without waiting, no second thread on it.
        let started = std::time::Instant::now();
        assert!(matches!(
            w.statfs("/hang", "/hang".into(), t),
            Answer::Stuck
        ));
        assert!(started.elapsed() < Duration::from_millis(20));
        // It answers at last: the mount is asked again.
        RELEASE.store(true, Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(50));
        let again = w.statfs("/hang", "/hang".into(), t);
        assert!(
            matches!(again, Answer::Stats(_) | Answer::Error(_)),
            "asked again, not stuck"
        );
        assert!(matches!(
            w.statfs("/missing-mount", "/definitely/not/here".into(), t),
            Answer::Error(_)
        ));
    }
}
