//! Silences, with Alertmanager's model and API v2 JSON: label matchers plus
//! a time range, created by someone with a comment. A silence is pending
//! before `startsAt`, active from `startsAt` until `endsAt`, expired after;
//! expired silences are kept for a retention period (120h by default) and
//! then dropped.
//!
//! The store persists to one JSON file, rewritten atomically on every
//! change (temporary file, fsync, rename, fsync of the directory), so a
//! crash leaves either the old or the new set.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::alert::LabelSet;
use crate::matchers::{MatchOp, Matcher, matches_all};
use crate::rfc3339;

/// How long expired silences are kept, as Alertmanager's
/// `--data.retention`.
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(120 * 3600);

#[derive(Debug, thiserror::Error)]
pub enum SilenceError {
    #[error("invalid silence: {0}")]
    Invalid(String),
    #[error("silence {0} not found")]
    NotFound(String),
    #[error("silence {0} already expired")]
    AlreadyExpired(String),
    #[error("reading silences from {}: {source}", path.display())]
    Read { path: PathBuf, source: io::Error },
    #[error("silences file {} is corrupt: {message}", path.display())]
    Corrupt { path: PathBuf, message: String },
    #[error("writing silences to {}: {source}", path.display())]
    Write { path: PathBuf, source: io::Error },
    #[error("generating a silence id: {0}")]
    Random(String),
}

/// A matcher as the API writes it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SilenceMatcher {
    pub name: String,
    pub value: String,
    pub is_regex: bool,
    /// False for `!=`/`!~`; older clients leave it out, meaning true.
    #[serde(default = "yes")]
    pub is_equal: bool,
}

fn yes() -> bool {
    true
}

impl SilenceMatcher {
    pub fn op(&self) -> MatchOp {
        MatchOp::from_flags(self.is_regex, self.is_equal)
    }

    pub fn compile(&self) -> Result<Matcher, String> {
        Matcher::new(self.name.clone(), self.op(), self.value.clone()).map_err(|e| e.message)
    }

    pub fn from_matcher(m: &Matcher) -> SilenceMatcher {
        SilenceMatcher {
            name: m.name().to_string(),
            value: m.value().to_string(),
            is_regex: m.op().is_regex(),
            is_equal: m.op().is_positive(),
        }
    }
}

/// The body of `POST /api/v2/silences`; with an `id` it updates that
/// silence.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PostableSilence {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    pub matchers: Vec<SilenceMatcher>,
    #[serde(with = "rfc3339::serde_ms")]
    pub starts_at: i64,
    #[serde(with = "rfc3339::serde_ms")]
    pub ends_at: i64,
    #[serde(default)]
    pub created_by: String,
    #[serde(default)]
    pub comment: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SilenceState {
    Expired,
    Active,
    Pending,
}

impl SilenceState {
    pub fn as_str(self) -> &'static str {
        match self {
            SilenceState::Expired => "expired",
            SilenceState::Active => "active",
            SilenceState::Pending => "pending",
        }
    }

    /// Alertmanager's rule: pending before the start, active until the
    /// end, expired from the end on.
    pub fn at(starts_at_ms: i64, ends_at_ms: i64, now_ms: i64) -> SilenceState {
        if now_ms < starts_at_ms {
            SilenceState::Pending
        } else if now_ms < ends_at_ms {
            SilenceState::Active
        } else {
            SilenceState::Expired
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SilenceStatus {
    pub state: SilenceState,
}

/// A silence as `GET /api/v2/silences` returns it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GettableSilence {
    pub id: String,
    pub status: SilenceStatus,
    #[serde(with = "rfc3339::serde_ms")]
    pub updated_at: i64,
    pub matchers: Vec<SilenceMatcher>,
    #[serde(with = "rfc3339::serde_ms")]
    pub starts_at: i64,
    #[serde(with = "rfc3339::serde_ms")]
    pub ends_at: i64,
    pub created_by: String,
    pub comment: String,
}

/// A stored silence.
#[derive(Clone, Debug)]
pub struct Silence {
    pub id: String,
    pub matchers: Vec<SilenceMatcher>,
    pub starts_at_ms: i64,
    pub ends_at_ms: i64,
    pub updated_at_ms: i64,
    pub created_by: String,
    pub comment: String,
    compiled: Vec<Matcher>,
}

impl Silence {
    pub fn state(&self, now_ms: i64) -> SilenceState {
        SilenceState::at(self.starts_at_ms, self.ends_at_ms, now_ms)
    }

    /// Whether the matchers match (whatever the state).
    pub fn matches(&self, labels: &LabelSet) -> bool {
        matches_all(&self.compiled, labels)
    }

    pub fn to_gettable(&self, now_ms: i64) -> GettableSilence {
        GettableSilence {
            id: self.id.clone(),
            status: SilenceStatus {
                state: self.state(now_ms),
            },
            updated_at: self.updated_at_ms,
            matchers: self.matchers.clone(),
            starts_at: self.starts_at_ms,
            ends_at: self.ends_at_ms,
            created_by: self.created_by.clone(),
            comment: self.comment.clone(),
        }
    }
}

/// Checks matchers as Alertmanager does and compiles them.
fn compile_matchers(matchers: &[SilenceMatcher]) -> Result<Vec<Matcher>, String> {
    if matchers.is_empty() {
        return Err("at least one matcher is required".into());
    }
    let mut compiled = Vec::with_capacity(matchers.len());
    for (i, m) in matchers.iter().enumerate() {
        compiled.push(
            m.compile()
                .map_err(|e| format!("matcher {i} ({}): {e}", m.name))?,
        );
    }
    // A silence whose every matcher matches the empty string would silence
    // alerts that lack the labels entirely, usually everything.
    if compiled.iter().all(|m| m.matches_value("")) {
        return Err("at least one matcher must not match the empty string".into());
    }
    Ok(compiled)
}

/// The silences file: a version and the silences, times in RFC 3339.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StoredFile {
    version: u32,
    silences: Vec<StoredSilence>,
}

const FILE_VERSION: u32 = 1;

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct StoredSilence {
    id: String,
    matchers: Vec<SilenceMatcher>,
    #[serde(with = "rfc3339::serde_ms")]
    starts_at: i64,
    #[serde(with = "rfc3339::serde_ms")]
    ends_at: i64,
    #[serde(with = "rfc3339::serde_ms")]
    updated_at: i64,
    created_by: String,
    comment: String,
}

/// The silence store.
#[derive(Debug)]
pub struct Silences {
    path: Option<PathBuf>,
    retention_ms: i64,
    by_id: BTreeMap<String, Silence>,
}

impl Silences {
    /// A store that keeps nothing on disk (tests, or no data directory).
    pub fn in_memory() -> Silences {
        Silences {
            path: None,
            retention_ms: duration_ms(DEFAULT_RETENTION),
            by_id: BTreeMap::new(),
        }
    }

    /// Opens the store persisted at `path`, loading it if the file exists.
    pub fn open(path: impl AsRef<Path>) -> Result<Silences, SilenceError> {
        let path = path.as_ref().to_path_buf();
        let mut by_id = BTreeMap::new();
        match fs::read(&path) {
            Ok(bytes) => {
                let corrupt = |message: String| SilenceError::Corrupt {
                    path: path.clone(),
                    message,
                };
                let file: StoredFile =
                    serde_json::from_slice(&bytes).map_err(|e| corrupt(e.to_string()))?;
                if file.version != FILE_VERSION {
                    return Err(corrupt(format!(
                        "version {} is not one this build reads ({FILE_VERSION})",
                        file.version
                    )));
                }
                for s in file.silences {
                    let compiled = compile_matchers(&s.matchers)
                        .map_err(|e| corrupt(format!("silence {}: {e}", s.id)))?;
                    by_id.insert(
                        s.id.clone(),
                        Silence {
                            id: s.id,
                            matchers: s.matchers,
                            starts_at_ms: s.starts_at,
                            ends_at_ms: s.ends_at,
                            updated_at_ms: s.updated_at,
                            created_by: s.created_by,
                            comment: s.comment,
                            compiled,
                        },
                    );
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    fs::create_dir_all(dir).map_err(|source| SilenceError::Write {
                        path: dir.to_path_buf(),
                        source,
                    })?;
                }
            }
            Err(source) => return Err(SilenceError::Read { path, source }),
        }
        Ok(Silences {
            path: Some(path),
            retention_ms: duration_ms(DEFAULT_RETENTION),
            by_id,
        })
    }

    /// How long expired silences are kept before [`gc`](Self::gc) drops
    /// them.
    pub fn with_retention(mut self, retention: Duration) -> Silences {
        self.retention_ms = duration_ms(retention);
        self
    }

    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    /// `POST /api/v2/silences`: creates a silence, or updates the one named
    /// by `id`. Returns the id of the silence now in force (an update that
    /// cannot be made in place creates a new one, as in Alertmanager).
    pub fn add(&mut self, silence: PostableSilence, now_ms: i64) -> Result<String, SilenceError> {
        match silence.id.clone().filter(|id| !id.is_empty()) {
            Some(id) => self.update(&id, silence, now_ms),
            None => {
                let compiled = check_new(&silence, now_ms)?;
                let mut next = self.by_id.clone();
                let id = insert_new(&mut next, silence, compiled, now_ms)?;
                self.commit(next)?;
                Ok(id)
            }
        }
    }

    /// Updates silence `id`. Alertmanager's rule: matchers unchanged, and
    /// for an active silence the start unchanged and the end not in the
    /// past, for a pending one the start not in the past, updates in place;
    /// anything else expires the old silence and creates a new one.
    pub fn update(
        &mut self,
        id: &str,
        silence: PostableSilence,
        now_ms: i64,
    ) -> Result<String, SilenceError> {
        let Some(old) = self.by_id.get(id) else {
            return Err(SilenceError::NotFound(id.to_string()));
        };
        let compiled = check_new(&silence, now_ms)?;
        let in_place = old.matchers == silence.matchers
            && match old.state(now_ms) {
                SilenceState::Active => {
                    silence.starts_at == old.starts_at_ms && silence.ends_at >= now_ms
                }
                SilenceState::Pending => silence.starts_at >= now_ms,
                SilenceState::Expired => false,
            };
        let mut next = self.by_id.clone();
        let new_id = if in_place {
            next.insert(
                id.to_string(),
                Silence {
                    id: id.to_string(),
                    matchers: silence.matchers,
                    starts_at_ms: silence.starts_at,
                    ends_at_ms: silence.ends_at,
                    updated_at_ms: now_ms,
                    created_by: silence.created_by,
                    comment: silence.comment,
                    compiled,
                },
            );
            id.to_string()
        } else {
            if let Some(s) = next.get_mut(id) {
                expire_in_place(s, now_ms);
            }
            insert_new(&mut next, silence, compiled, now_ms)?
        };
        self.commit(next)?;
        Ok(new_id)
    }

    /// `DELETE /api/v2/silence/{id}`: ends an active silence now, or
    /// cancels a pending one.
    pub fn expire(&mut self, id: &str, now_ms: i64) -> Result<(), SilenceError> {
        let Some(s) = self.by_id.get(id) else {
            return Err(SilenceError::NotFound(id.to_string()));
        };
        if s.state(now_ms) == SilenceState::Expired {
            return Err(SilenceError::AlreadyExpired(id.to_string()));
        }
        let mut next = self.by_id.clone();
        if let Some(s) = next.get_mut(id) {
            expire_in_place(s, now_ms);
        }
        self.commit(next)
    }

    pub fn get(&self, id: &str) -> Option<&Silence> {
        self.by_id.get(id)
    }

    /// Every silence, in Alertmanager's API order: active ones ending
    /// soonest first, then pending ones starting soonest first, then
    /// expired ones, most recently ended first.
    pub fn list(&self, now_ms: i64) -> Vec<GettableSilence> {
        let mut all: Vec<&Silence> = self.by_id.values().collect();
        all.sort_by_key(|s| match s.state(now_ms) {
            SilenceState::Active => (0, s.ends_at_ms, s.id.clone()),
            SilenceState::Pending => (1, s.starts_at_ms, s.id.clone()),
            SilenceState::Expired => (2, -s.ends_at_ms, s.id.clone()),
        });
        all.into_iter().map(|s| s.to_gettable(now_ms)).collect()
    }

    /// Ids of the active silences whose matchers match, sorted.
    pub fn silenced_by(&self, labels: &LabelSet, now_ms: i64) -> Vec<String> {
        self.by_id
            .values()
            .filter(|s| s.state(now_ms) == SilenceState::Active && s.matches(labels))
            .map(|s| s.id.clone())
            .collect()
    }

    /// Whether any active silence matches.
    pub fn is_silenced(&self, labels: &LabelSet, now_ms: i64) -> bool {
        self.by_id
            .values()
            .any(|s| s.state(now_ms) == SilenceState::Active && s.matches(labels))
    }

    /// Drops silences that ended more than the retention ago; returns how
    /// many.
    pub fn gc(&mut self, now_ms: i64) -> Result<usize, SilenceError> {
        let keep = |s: &Silence| s.ends_at_ms.saturating_add(self.retention_ms) > now_ms;
        let dropped = self.by_id.values().filter(|s| !keep(s)).count();
        if dropped == 0 {
            return Ok(0);
        }
        let next = self
            .by_id
            .iter()
            .filter(|(_, s)| keep(s))
            .map(|(k, s)| (k.clone(), s.clone()))
            .collect();
        self.commit(next)?;
        Ok(dropped)
    }

    /// Persists `next` and only then makes it current, so a failed write
    /// leaves memory and disk agreeing.
    fn commit(&mut self, next: BTreeMap<String, Silence>) -> Result<(), SilenceError> {
        if let Some(path) = &self.path {
            write_file(path, &next)?;
        }
        self.by_id = next;
        Ok(())
    }
}

fn duration_ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

fn check_new(s: &PostableSilence, now_ms: i64) -> Result<Vec<Matcher>, SilenceError> {
    let compiled = compile_matchers(&s.matchers).map_err(SilenceError::Invalid)?;
    if s.ends_at <= s.starts_at {
        return Err(SilenceError::Invalid(format!(
            "endsAt {} must be after startsAt {}",
            rfc3339::format(s.ends_at),
            rfc3339::format(s.starts_at)
        )));
    }
    if s.ends_at <= now_ms {
        return Err(SilenceError::Invalid(format!(
            "endsAt {} is in the past",
            rfc3339::format(s.ends_at)
        )));
    }
    Ok(compiled)
}

fn insert_new(
    map: &mut BTreeMap<String, Silence>,
    s: PostableSilence,
    compiled: Vec<Matcher>,
    now_ms: i64,
) -> Result<String, SilenceError> {
    let id = new_id()?;
    map.insert(
        id.clone(),
        Silence {
            id: id.clone(),
            matchers: s.matchers,
            // As Alertmanager: a silence cannot start in the past.
            starts_at_ms: s.starts_at.max(now_ms),
            ends_at_ms: s.ends_at,
            updated_at_ms: now_ms,
            created_by: s.created_by,
            comment: s.comment,
            compiled,
        },
    );
    Ok(id)
}

fn expire_in_place(s: &mut Silence, now_ms: i64) {
    match s.state(now_ms) {
        SilenceState::Expired => return,
        SilenceState::Active => s.ends_at_ms = now_ms,
        SilenceState::Pending => {
            s.starts_at_ms = now_ms;
            s.ends_at_ms = now_ms;
        }
    }
    s.updated_at_ms = now_ms;
}

/// A random version-4 UUID, the form Alertmanager's ids take.
fn new_id() -> Result<String, SilenceError> {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).map_err(|e| SilenceError::Random(e.to_string()))?;
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    Ok(format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    ))
}

fn write_file(path: &Path, silences: &BTreeMap<String, Silence>) -> Result<(), SilenceError> {
    let file = StoredFile {
        version: FILE_VERSION,
        silences: silences
            .values()
            .map(|s| StoredSilence {
                id: s.id.clone(),
                matchers: s.matchers.clone(),
                starts_at: s.starts_at_ms,
                ends_at: s.ends_at_ms,
                updated_at: s.updated_at_ms,
                created_by: s.created_by.clone(),
                comment: s.comment.clone(),
            })
            .collect(),
    };
    let wrap = |source: io::Error| SilenceError::Write {
        path: path.to_path_buf(),
        source,
    };
    let bytes = serde_json::to_vec_pretty(&file).map_err(|e| wrap(io::Error::other(e)))?;
    let mut tmp_name = path.as_os_str().to_owned();
    tmp_name.push(".tmp");
    let tmp = PathBuf::from(tmp_name);
    let mut f = fs::File::create(&tmp).map_err(wrap)?;
    f.write_all(&bytes).map_err(wrap)?;
    // Data on disk before the rename makes it visible, or a crash could
    // leave an empty file under the real name.
    f.sync_all().map_err(wrap)?;
    drop(f);
    fs::rename(&tmp, path).map_err(wrap)?;
    // The rename itself is only durable once the directory is synced.
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(wrap)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: i64 = 3_600_000;

    fn m(name: &str, value: &str, is_regex: bool, is_equal: bool) -> SilenceMatcher {
        SilenceMatcher {
            name: name.into(),
            value: value.into(),
            is_regex,
            is_equal,
        }
    }

    fn post(matchers: Vec<SilenceMatcher>, start: i64, end: i64) -> PostableSilence {
        PostableSilence {
            id: None,
            matchers,
            starts_at: start,
            ends_at: end,
            created_by: "ops".into(),
            comment: "maintenance".into(),
        }
    }

    fn labels(pairs: &[(&str, &str)]) -> LabelSet {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn states_and_matching() {
        let mut s = Silences::in_memory();
        let now = 100 * H;
        let id = s
            .add(
                post(vec![m("node", "n1", false, true)], now + H, now + 2 * H),
                now,
            )
            .unwrap();
        assert_eq!(id.len(), 36);
        assert_eq!(&id[14..15], "4");
        let l = labels(&[("node", "n1"), ("alertname", "X")]);
        assert!(s.silenced_by(&l, now).is_empty(), "pending");
        assert_eq!(s.list(now)[0].status.state, SilenceState::Pending);
        assert_eq!(s.silenced_by(&l, now + H), vec![id.clone()]);
        assert!(
            s.silenced_by(&labels(&[("node", "n2")]), now + H)
                .is_empty()
        );
        assert!(
            s.silenced_by(&l, now + 2 * H).is_empty(),
            "endsAt is exclusive"
        );
        assert_eq!(
            s.get(&id).unwrap().state(now + 2 * H),
            SilenceState::Expired
        );

        let id2 = s
            .add(
                post(
                    vec![m("node", "n.*", true, true), m("env", "dev", false, false)],
                    now,
                    now + H,
                ),
                now,
            )
            .unwrap();
        assert_eq!(s.silenced_by(&l, now), vec![id2.clone()]);
        assert!(
            s.silenced_by(&labels(&[("node", "n1"), ("env", "dev")]), now)
                .is_empty()
        );
        assert!(s.is_silenced(&labels(&[("node", "nx")]), now));
    }

    #[test]
    fn validation_like_alertmanager() {
        let mut s = Silences::in_memory();
        let now = 10 * H;
        let err = |r: Result<String, SilenceError>| r.unwrap_err().to_string();
        assert_eq!(
            err(s.add(post(vec![], now, now + H), now)),
            "invalid silence: at least one matcher is required"
        );
        assert_eq!(
            err(s.add(post(vec![m("a", ".*", true, true)], now, now + H), now)),
            "invalid silence: at least one matcher must not match the empty string"
        );
        assert_eq!(
            err(s.add(
                post(
                    vec![m("a", "", false, true), m("b", "x", false, false)],
                    now,
                    now + H
                ),
                now
            )),
            "invalid silence: at least one matcher must not match the empty string"
        );
        assert!(
            s.add(
                post(
                    vec![m("a", "", false, true), m("b", "x", false, true)],
                    now,
                    now + H
                ),
                now
            )
            .is_ok()
        );
        assert_eq!(
            err(s.add(post(vec![m("a", "b", false, true)], now + H, now + H), now)),
            "invalid silence: endsAt 1970-01-01T11:00:00.000Z must be after startsAt 1970-01-01T11:00:00.000Z"
        );
        assert_eq!(
            err(s.add(
                post(vec![m("a", "b", false, true)], now - 2 * H, now - H),
                now
            )),
            "invalid silence: endsAt 1970-01-01T09:00:00.000Z is in the past"
        );
        assert!(
            err(s.add(post(vec![m("a", "(", true, true)], now, now + H), now))
                .starts_with("invalid silence: matcher 0 (a): invalid regex")
        );
        assert!(
            err(s.add(post(vec![m("", "x", false, true)], now, now + H), now))
                .contains("label name is empty")
        );
        // A start in the past becomes now.
        let id = s
            .add(post(vec![m("a", "b", false, true)], now - H, now + H), now)
            .unwrap();
        assert_eq!(s.get(&id).unwrap().starts_at_ms, now);
    }

    #[test]
    fn update_in_place_or_replace_and_expire() {
        let mut s = Silences::in_memory();
        let now = 10 * H;
        let id = s
            .add(post(vec![m("a", "b", false, true)], now, now + H), now)
            .unwrap();
        // Extending an active silence keeps its id.
        let mut p = post(vec![m("a", "b", false, true)], now, now + 3 * H);
        p.id = Some(id.clone());
        assert_eq!(s.add(p, now + 1000).unwrap(), id);
        assert_eq!(s.get(&id).unwrap().ends_at_ms, now + 3 * H);
        assert_eq!(s.get(&id).unwrap().updated_at_ms, now + 1000);
        // New matchers: the old one expires and a new one takes over.
        let new = s
            .update(
                &id,
                post(vec![m("a", "c", false, true)], now, now + 3 * H),
                now + 2000,
            )
            .unwrap();
        assert_ne!(new, id);
        assert_eq!(s.get(&id).unwrap().state(now + 2000), SilenceState::Expired);
        assert_eq!(s.get(&id).unwrap().ends_at_ms, now + 2000);
        assert_eq!(s.get(&new).unwrap().starts_at_ms, now + 2000);
        assert!(matches!(
            s.update(
                "nope",
                post(vec![m("a", "b", false, true)], now, now + H),
                now
            ),
            Err(SilenceError::NotFound(_))
        ));

        s.expire(&new, now + 3000).unwrap();
        assert_eq!(s.get(&new).unwrap().ends_at_ms, now + 3000);
        assert!(matches!(
            s.expire(&new, now + 4000),
            Err(SilenceError::AlreadyExpired(_))
        ));
        // Expiring a pending silence moves both ends to now.
        let pending = s
            .add(
                post(vec![m("x", "y", false, true)], now + 5 * H, now + 6 * H),
                now,
            )
            .unwrap();
        s.expire(&pending, now + 1).unwrap();
        let p = s.get(&pending).unwrap();
        assert_eq!((p.starts_at_ms, p.ends_at_ms), (now + 1, now + 1));

        // List order: active, pending, expired (latest ended first).
        let active = s
            .add(post(vec![m("q", "r", false, true)], now, now + 9 * H), now)
            .unwrap();
        let later = s
            .add(
                post(vec![m("q", "s", false, true)], now + 7 * H, now + 9 * H),
                now,
            )
            .unwrap();
        let order: Vec<String> = s.list(now + 5000).into_iter().map(|g| g.id).collect();
        assert_eq!(order, [active, later, new, id, pending]);
    }

    #[test]
    fn gc_after_retention() {
        let mut s = Silences::in_memory().with_retention(Duration::from_secs(3600));
        let now = 10 * H;
        let id = s
            .add(post(vec![m("a", "b", false, true)], now, now + H), now)
            .unwrap();
        assert_eq!(s.gc(now + 2 * H - 1).unwrap(), 0);
        assert!(s.get(&id).is_some());
        assert_eq!(s.gc(now + 2 * H).unwrap(), 1);
        assert!(s.is_empty());
    }

    #[test]
    fn api_json_shapes() {
        let p: PostableSilence = serde_json::from_str(
            r#"{"matchers":[{"name":"alertname","value":"Disk.*","isRegex":true},{"name":"env","value":"dev","isRegex":false,"isEqual":false}],
                "startsAt":"2025-01-06T02:00:00Z","endsAt":"2025-01-06T04:00:00.000+00:00","createdBy":"me","comment":"c"}"#,
        )
        .unwrap();
        assert!(p.matchers[0].is_equal);
        assert_eq!(p.matchers[1].op(), MatchOp::NotEqual);
        assert_eq!(p.ends_at - p.starts_at, 2 * H);
        let mut s = Silences::in_memory();
        // Created at 2025-01-06T00:00:00Z.
        let id = s.add(p, 1_736_121_600_000).unwrap();
        let g = serde_json::to_value(s.get(&id).unwrap().to_gettable(1_736_128_800_000)).unwrap();
        assert_eq!(g["id"], id.as_str());
        assert_eq!(g["status"]["state"], "active");
        assert_eq!(g["startsAt"], "2025-01-06T02:00:00.000Z");
        assert_eq!(g["endsAt"], "2025-01-06T04:00:00.000Z");
        assert_eq!(g["updatedAt"], "2025-01-06T00:00:00.000Z");
        assert_eq!(
            g["matchers"][1],
            serde_json::json!({"name":"env","value":"dev","isRegex":false,"isEqual":false})
        );
        assert_eq!(g["createdBy"], "me");
        let back: GettableSilence = serde_json::from_value(g).unwrap();
        assert_eq!(back.id, id);
    }

    #[test]
    fn persistence_and_corruption() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub").join("silences.json");
        let now = 10 * H;
        let id = {
            let mut s = Silences::open(&path).unwrap();
            assert!(s.is_empty());
            s.add(post(vec![m("a", "b", false, true)], now, now + H), now)
                .unwrap()
        };
        let s = Silences::open(&path).unwrap();
        assert_eq!(s.len(), 1);
        let got = s.get(&id).unwrap();
        assert_eq!(
            (got.starts_at_ms, got.ends_at_ms, got.created_by.as_str()),
            (now, now + H, "ops")
        );
        assert!(s.is_silenced(&labels(&[("a", "b")]), now));
        assert!(!path.with_extension("json.tmp").exists());

        fs::write(&path, b"{\"version\":1,\"silences\":[{\"id\":").unwrap();
        let err = Silences::open(&path).unwrap_err();
        assert!(matches!(err, SilenceError::Corrupt { .. }));
        assert!(
            err.to_string()
                .starts_with(&format!("silences file {} is corrupt: EOF", path.display())),
            "{err}"
        );

        fs::write(&path, br#"{"version":1,"silences":[{"id":"x","matchers":[{"name":"a","value":"(","isRegex":true}],"startsAt":"2025-01-06T02:00:00Z","endsAt":"2025-01-06T04:00:00Z","updatedAt":"2025-01-06T02:00:00Z","createdBy":"","comment":""}]}"#).unwrap();
        let err = Silences::open(&path).unwrap_err().to_string();
        assert!(
            err.contains("is corrupt: silence x: matcher 0 (a): invalid regex"),
            "{err}"
        );
    }
}
