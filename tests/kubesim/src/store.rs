//! The object store: what etcd plus the apiserver's watch cache hold.
//!
//! Objects are kept serialized (the bytes a list or watch sends, minus
//! `kind` and `apiVersion`) with the few fields selectors read pulled out,
//! because a `serde_json::Value` per object costs several times more memory
//! and every read would serialize it again. Writes go through
//! `serde_json::Value`: parse, change, stamp, serialize.
//!
//! One resourceVersion counter spans all kinds, as etcd's revision does.
//! Each kind keeps its own bounded event history (like the per-resource watch
//! cache); a watch or a paginated list older than that history gets 410.

use std::collections::{BTreeMap, VecDeque};
use std::ops::Bound;
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use bytes::Bytes;
use serde_json::{Map, Value, json};
use tokio::sync::broadcast;

use crate::resources::{Kind, RESOURCES, ResourceType};
use crate::rng::Rng;
use crate::selectors::{Selectable, Selector};
use crate::time;

/// How many events a live watcher may fall behind before it is dropped
/// (the apiserver also closes watchers that cannot keep up).
const WATCH_CHANNEL_CAPACITY: usize = 16_384;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    #[error("{plural} \"{name}\" not found")]
    NotFound { plural: &'static str, name: String },
    #[error("{plural} \"{name}\" already exists")]
    AlreadyExists { plural: &'static str, name: String },
    #[error("{0}")]
    Invalid(String),
    /// 410 Gone: the requested resourceVersion has left the history.
    #[error("{0}")]
    Expired(String),
}

/// One stored object.
#[derive(Debug)]
pub struct Object {
    namespace: Box<str>,
    name: Box<str>,
    uid: Box<str>,
    rv: u64,
    labels: Box<[(Box<str>, Box<str>)]>,
    fields: Box<[(&'static str, Box<str>)]>,
    ready: Option<bool>,
    /// The controlling owner's kind and name.
    owner: Option<(Box<str>, Box<str>)>,
    /// The object without `kind` and `apiVersion`; always a JSON object
    /// with `metadata`.
    json: Bytes,
}

impl Object {
    fn from_value(resource: &'static ResourceType, mut value: Value) -> Result<Object, StoreError> {
        let map = value
            .as_object_mut()
            .ok_or_else(|| StoreError::Invalid("object is not a JSON object".into()))?;
        map.remove("kind");
        map.remove("apiVersion");
        let meta = map
            .get("metadata")
            .and_then(Value::as_object)
            .ok_or_else(|| StoreError::Invalid("object has no metadata".into()))?;
        let text = |m: &Map<String, Value>, k: &str| -> Box<str> {
            m.get(k).and_then(Value::as_str).unwrap_or_default().into()
        };
        let name = text(meta, "name");
        if name.is_empty() {
            return Err(StoreError::Invalid("metadata.name is required".into()));
        }
        let namespace = text(meta, "namespace");
        if resource.namespaced == namespace.is_empty() {
            return Err(StoreError::Invalid(format!(
                "{} {name}: namespace {}",
                resource.plural,
                if resource.namespaced {
                    "required"
                } else {
                    "not allowed"
                }
            )));
        }
        let rv = meta
            .get("resourceVersion")
            .and_then(Value::as_str)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let mut labels: Vec<(Box<str>, Box<str>)> = meta
            .get("labels")
            .and_then(Value::as_object)
            .map(|l| {
                l.iter()
                    .map(|(k, v)| (k.as_str().into(), v.as_str().unwrap_or_default().into()))
                    .collect()
            })
            .unwrap_or_default();
        labels.sort();
        let fields = resource
            .fields
            .iter()
            .map(|path| (*path, scalar_at(map, path).into()))
            .collect();
        let ready = (resource.kind == "Pod").then(|| pod_ready(map));
        let uid = text(meta, "uid");
        let owner = meta
            .get("ownerReferences")
            .and_then(Value::as_array)
            .and_then(|refs| {
                refs.iter()
                    .find(|r| r.get("controller").and_then(Value::as_bool) == Some(true))
                    .or_else(|| refs.first())
            })
            .map(|r| (text_of(r, "kind"), text_of(r, "name")));
        let json = serde_json::to_vec(&value)
            .map_err(|e| StoreError::Invalid(format!("serializing: {e}")))?;
        Ok(Object {
            namespace,
            name,
            uid,
            rv,
            labels: labels.into(),
            fields,
            ready,
            owner,
            // Shrink to fit: serialization leaves up to twice the length allocated.
            json: Bytes::from(json.into_boxed_slice()),
        })
    }

    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn uid(&self) -> &str {
        &self.uid
    }

    pub fn resource_version(&self) -> u64 {
        self.rv
    }

    pub fn labels(&self) -> impl Iterator<Item = (&str, &str)> + Clone {
        self.labels.iter().map(|(k, v)| (&**k, &**v))
    }

    /// A selectable field (`spec.nodeName`), `""` when absent.
    pub fn field_value(&self, path: &str) -> &str {
        Selectable::field(self, path)
    }

    /// For pods: whether the Ready condition is True.
    pub fn ready(&self) -> Option<bool> {
        self.ready
    }

    /// The controlling owner's kind and name (`ReplicaSet`, `web-5d8f`).
    pub fn owner(&self) -> Option<(&str, &str)> {
        self.owner.as_ref().map(|(k, n)| (&**k, &**n))
    }

    /// The stored JSON (no `kind`/`apiVersion`, as list items are sent).
    pub fn json(&self) -> &Bytes {
        &self.json
    }

    /// Parses the stored JSON.
    pub fn to_value(&self) -> Value {
        serde_json::from_slice(&self.json).unwrap_or(Value::Null)
    }

    /// Appends the object with `kind` and `apiVersion`, as a GET or a watch
    /// event carries it.
    pub fn write_typed(&self, resource: &ResourceType, out: &mut Vec<u8>) {
        out.extend_from_slice(b"{\"kind\":\"");
        out.extend_from_slice(resource.kind.as_bytes());
        out.extend_from_slice(b"\",\"apiVersion\":\"");
        out.extend_from_slice(resource.api_version().as_bytes());
        out.push(b'"');
        // Stored JSON always starts with `{"metadata"`, so splice after the brace.
        if self.json.len() > 2 {
            out.push(b',');
        }
        out.extend_from_slice(self.json.get(1..).unwrap_or(b"}"));
    }

    fn key(&self) -> (&str, &str) {
        (&self.namespace, &self.name)
    }
}

impl Selectable for Object {
    fn label(&self, key: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(k, _)| &**k == key)
            .map(|(_, v)| &**v)
    }

    fn field(&self, path: &str) -> &str {
        match path {
            "metadata.name" => &self.name,
            "metadata.namespace" => &self.namespace,
            _ => self
                .fields
                .iter()
                .find(|(p, _)| *p == path)
                .map(|(_, v)| &**v)
                .unwrap_or(""),
        }
    }
}

fn text_of(v: &Value, key: &str) -> Box<str> {
    v.get(key)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .into()
}

/// A dotted path's scalar value as text (`""` when absent).
fn scalar_at(map: &Map<String, Value>, path: &str) -> String {
    let mut segments = path.split('.');
    let Some(first) = segments.next() else {
        return String::new();
    };
    let mut cur = map.get(first);
    for seg in segments {
        cur = cur.and_then(|v| v.get(seg));
    }
    match cur {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Bool(b)) => b.to_string(),
        Some(Value::Number(n)) => n.to_string(),
        _ => String::new(),
    }
}

fn pod_ready(map: &Map<String, Value>) -> bool {
    map.get("status")
        .and_then(|s| s.get("conditions"))
        .and_then(Value::as_array)
        .is_some_and(|conds| {
            conds.iter().any(|c| {
                c.get("type").and_then(Value::as_str) == Some("Ready")
                    && c.get("status").and_then(Value::as_str) == Some("True")
            })
        })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Added,
    Modified,
    Deleted,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

/// One change. A deletion's `object` is the last state stamped with the
/// deletion's resourceVersion; `prev` is the state before the change.
#[derive(Debug)]
pub struct Event {
    pub ty: EventType,
    pub object: Arc<Object>,
    pub prev: Option<Arc<Object>>,
}

impl Event {
    pub fn resource_version(&self) -> u64 {
        self.object.rv
    }
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Key {
    namespace: Box<str>,
    name: Box<str>,
}

impl Key {
    fn new(namespace: &str, name: &str) -> Key {
        Key {
            namespace: namespace.into(),
            name: name.into(),
        }
    }

    fn pair(&self) -> (&str, &str) {
        (&self.namespace, &self.name)
    }
}

struct KindState {
    objects: BTreeMap<Key, Arc<Object>>,
    history: VecDeque<Arc<Event>>,
    /// Every event of this kind with a resourceVersion above this is in `history`.
    window_start: u64,
    tx: broadcast::Sender<Arc<Event>>,
}

struct Inner {
    rv: u64,
    uids: Rng,
    kinds: Vec<KindState>,
}

impl Inner {
    /// The stored object at `key`, or NotFound as the apiserver says it.
    fn current(&self, kind: Kind, key: &Key) -> Result<Arc<Object>, StoreError> {
        self.kinds[kind.index()]
            .objects
            .get(key)
            .cloned()
            .ok_or_else(|| StoreError::NotFound {
                plural: kind.info().plural,
                name: key.name.to_string(),
            })
    }
}

/// Options of one list request.
#[derive(Debug, Default)]
pub struct ListOptions<'a> {
    pub namespace: Option<&'a str>,
    pub selector: Selector,
    /// At most this many items (0 or `None`: all).
    pub limit: Option<usize>,
    pub continue_token: Option<&'a str>,
    /// `resourceVersionMatch=Exact`: the list as of this resourceVersion.
    pub exact: Option<u64>,
}

/// One page of a list.
#[derive(Debug)]
pub struct ListPage {
    /// The resourceVersion the list was taken at (kept across pages).
    pub resource_version: u64,
    pub items: Vec<Arc<Object>>,
    pub continue_token: Option<String>,
}

/// Where a watch starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WatchFrom {
    /// Send every current object as ADDED, then changes (`resourceVersion`
    /// unset or `0`).
    Current,
    /// Changes after this resourceVersion.
    After(u64),
}

/// What a new watch starts with.
pub struct WatchFeed {
    /// Objects to send as ADDED first (for [`WatchFrom::Current`]), already
    /// filtered.
    pub initial: Vec<Arc<Object>>,
    /// Past events to replay (unfiltered), oldest first.
    pub backlog: Vec<Arc<Event>>,
    /// Live events after the backlog.
    pub live: broadcast::Receiver<Arc<Event>>,
    /// Events at or below this resourceVersion are not to be sent.
    pub after: u64,
    /// The store's resourceVersion when the watch started.
    pub resource_version: u64,
}

/// The shared object store.
pub struct Store {
    inner: RwLock<Inner>,
    history_limit: usize,
}

impl Store {
    /// A store whose first write gets resourceVersion `base_rv + 1`.
    pub fn new(base_rv: u64, history_limit: usize) -> Store {
        let kinds = RESOURCES
            .iter()
            .map(|_| KindState {
                objects: BTreeMap::new(),
                history: VecDeque::new(),
                window_start: base_rv,
                tx: broadcast::channel(WATCH_CHANNEL_CAPACITY).0,
            })
            .collect();
        Store {
            inner: RwLock::new(Inner {
                rv: base_rv,
                uids: Rng::new(base_rv),
                kinds,
            }),
            history_limit: history_limit.max(1),
        }
    }

    fn read(&self) -> RwLockReadGuard<'_, Inner> {
        // A panic while holding the lock cannot leave a half-made change:
        // every write builds the new object before touching the maps.
        self.inner.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, Inner> {
        self.inner.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// The latest resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.read().rv
    }

    pub fn count(&self, kind: Kind) -> usize {
        self.read().kinds[kind.index()].objects.len()
    }

    pub fn get(&self, kind: Kind, namespace: &str, name: &str) -> Option<Arc<Object>> {
        self.read().kinds[kind.index()]
            .objects
            .get(&Key::new(namespace, name))
            .cloned()
    }

    /// Current objects (in one namespace, if given) for which `keep` holds.
    pub fn scan(
        &self,
        kind: Kind,
        namespace: Option<&str>,
        mut keep: impl FnMut(&Object) -> bool,
    ) -> Vec<Arc<Object>> {
        let inner = self.read();
        let objects = &inner.kinds[kind.index()].objects;
        match namespace {
            Some(ns) => objects
                .range(Key::new(ns, "")..)
                .take_while(|(k, _)| &*k.namespace == ns)
                .filter(|(_, o)| keep(o))
                .map(|(_, o)| o.clone())
                .collect(),
            None => objects.values().filter(|o| keep(o)).cloned().collect(),
        }
    }

    /// Creates an object, stamping uid, creationTimestamp, generation and
    /// resourceVersion.
    pub fn create(&self, kind: Kind, value: Value) -> Result<Arc<Object>, StoreError> {
        let mut inner = self.write();
        self.create_locked(&mut inner, kind, value)
    }

    /// Creates many objects under one lock (the initial workload).
    pub fn create_all(
        &self,
        kind: Kind,
        values: impl IntoIterator<Item = Value>,
    ) -> Result<usize, StoreError> {
        let mut inner = self.write();
        let mut n = 0;
        for value in values {
            self.create_locked(&mut inner, kind, value)?;
            n += 1;
        }
        Ok(n)
    }

    fn create_locked(
        &self,
        inner: &mut Inner,
        kind: Kind,
        mut value: Value,
    ) -> Result<Arc<Object>, StoreError> {
        let resource = kind.info();
        let rv = inner.rv + 1;
        let uid = inner.uids.uuid();
        {
            let meta = value
                .get_mut("metadata")
                .and_then(Value::as_object_mut)
                .ok_or_else(|| StoreError::Invalid("object has no metadata".into()))?;
            meta.entry("uid").or_insert_with(|| Value::String(uid));
            meta.entry("creationTimestamp")
                .or_insert_with(|| Value::String(time::now_seconds()));
            if resource.has_generation {
                meta.entry("generation").or_insert(json!(1));
            }
            meta.insert("resourceVersion".into(), Value::String(rv.to_string()));
        }
        let object = Arc::new(Object::from_value(resource, value)?);
        let state = &mut inner.kinds[kind.index()];
        let key = Key::new(&object.namespace, &object.name);
        if state.objects.contains_key(&key) {
            return Err(StoreError::AlreadyExists {
                plural: resource.plural,
                name: object.name.to_string(),
            });
        }
        inner.rv = rv;
        state.objects.insert(key, object.clone());
        self.record(
            state,
            Event {
                ty: EventType::Added,
                object: object.clone(),
                prev: None,
            },
        );
        Ok(object)
    }

    /// Changes an object: `change` edits it and says whether it changed
    /// anything. Returns the new object, or `None` when nothing changed.
    /// `metadata.generation` follows spec changes for kinds that keep one.
    pub fn update(
        &self,
        kind: Kind,
        namespace: &str,
        name: &str,
        change: impl FnOnce(&mut Value) -> bool,
    ) -> Result<Option<Arc<Object>>, StoreError> {
        let resource = kind.info();
        let mut inner = self.write();
        let key = Key::new(namespace, name);
        let current = inner.current(kind, &key)?;
        let mut value = current.to_value();
        let spec_before = resource.has_generation.then(|| value.get("spec").cloned());
        if !change(&mut value) {
            return Ok(None);
        }
        let rv = inner.rv + 1;
        {
            let meta = value
                .get_mut("metadata")
                .and_then(Value::as_object_mut)
                .ok_or_else(|| StoreError::Invalid("update removed metadata".into()))?;
            // Identity is not the caller's to change.
            meta.insert("name".into(), Value::String(name.to_owned()));
            if resource.namespaced {
                meta.insert("namespace".into(), Value::String(namespace.to_owned()));
            }
            meta.insert("uid".into(), Value::String(current.uid.to_string()));
            meta.insert("resourceVersion".into(), Value::String(rv.to_string()));
        }
        if let Some(before) = spec_before
            && before.as_ref() != value.get("spec")
        {
            let generation = value
                .pointer("/metadata/generation")
                .and_then(Value::as_i64)
                .unwrap_or(0);
            value["metadata"]["generation"] = json!(generation + 1);
        }
        let object = Arc::new(Object::from_value(resource, value)?);
        inner.rv = rv;
        let state = &mut inner.kinds[kind.index()];
        state.objects.insert(key, object.clone());
        self.record(
            state,
            Event {
                ty: EventType::Modified,
                object: object.clone(),
                prev: Some(current),
            },
        );
        Ok(Some(object))
    }

    /// Deletes an object; the DELETED event carries its last state at the
    /// deletion's resourceVersion.
    pub fn delete(
        &self,
        kind: Kind,
        namespace: &str,
        name: &str,
    ) -> Result<Arc<Object>, StoreError> {
        let resource = kind.info();
        let mut inner = self.write();
        let key = Key::new(namespace, name);
        let current = inner.current(kind, &key)?;
        let rv = inner.rv + 1;
        let tombstone = Arc::new(restamp(resource, &current, rv)?);
        inner.rv = rv;
        let state = &mut inner.kinds[kind.index()];
        state.objects.remove(&key);
        self.record(
            state,
            Event {
                ty: EventType::Deleted,
                object: tombstone.clone(),
                prev: Some(current),
            },
        );
        Ok(tombstone)
    }

    fn record(&self, state: &mut KindState, event: Event) {
        let event = Arc::new(event);
        state.history.push_back(event.clone());
        while state.history.len() > self.history_limit {
            if let Some(old) = state.history.pop_front() {
                state.window_start = old.resource_version();
            }
        }
        // No receivers is the normal case between watches.
        let _ = state.tx.send(event);
    }

    /// Forgets all history: watches and continue tokens from before now get
    /// 410 Gone.
    pub fn compact(&self) {
        let mut inner = self.write();
        let rv = inner.rv;
        for state in &mut inner.kinds {
            state.history.clear();
            state.window_start = rv;
        }
    }

    /// One page of a list, consistent at one resourceVersion across pages.
    pub fn list(&self, kind: Kind, opts: &ListOptions<'_>) -> Result<ListPage, StoreError> {
        let token = opts.continue_token.map(ContinueToken::decode).transpose()?;
        let inner = self.read();
        let state = &inner.kinds[kind.index()];
        let at = match (&token, opts.exact) {
            (Some(t), _) => t.rv,
            (None, Some(rv)) => rv,
            (None, None) => inner.rv,
        };
        if at > inner.rv {
            return Err(too_new(at, inner.rv));
        }
        if at < state.window_start {
            return Err(StoreError::Expired(if token.is_some() {
                CONTINUE_EXPIRED.to_owned()
            } else {
                format!("too old resource version: {at} ({})", state.window_start)
            }));
        }
        // The state at `at` is the current one with every later change undone:
        // for each key changed since, its state before the first such change.
        let first_after = state
            .history
            .partition_point(|e| e.resource_version() <= at);
        let mut undo: BTreeMap<(&str, &str), Option<&Arc<Object>>> = BTreeMap::new();
        for event in state.history.range(first_after..) {
            undo.entry(event.object.key())
                .or_insert(event.prev.as_ref());
        }

        let start: Bound<(&str, &str)> = match (&token, opts.namespace) {
            (Some(t), _) => Bound::Excluded((t.namespace.as_str(), t.name.as_str())),
            (None, Some(ns)) => Bound::Included((ns, "")),
            (None, None) => Bound::Unbounded,
        };
        let start_key: Bound<Key> = match start {
            Bound::Excluded((ns, n)) => Bound::Excluded(Key::new(ns, n)),
            Bound::Included((ns, n)) => Bound::Included(Key::new(ns, n)),
            Bound::Unbounded => Bound::Unbounded,
        };
        let mut current = state
            .objects
            .range((start_key, Bound::Unbounded))
            .map(|(k, o)| (k.pair(), Some(o)))
            .peekable();
        let mut undone = undo
            .range((start, Bound::Unbounded))
            .map(|(k, o)| (*k, *o))
            .peekable();

        let limit = opts.limit.filter(|&l| l > 0).unwrap_or(usize::MAX);
        let mut items = Vec::new();
        let mut more = false;
        loop {
            let next = match (current.peek(), undone.peek()) {
                (None, None) => break,
                (Some(_), None) => current.next(),
                (None, Some(_)) => undone.next(),
                (Some((ck, _)), Some((uk, _))) => {
                    if ck < uk {
                        current.next()
                    } else {
                        if ck == uk {
                            current.next();
                        }
                        undone.next()
                    }
                }
            };
            let Some((key, object)) = next else { break };
            if opts.namespace.is_some_and(|ns| key.0 != ns) {
                break;
            }
            let Some(object) = object else { continue };
            if !opts.selector.matches(&**object) {
                continue;
            }
            if items.len() == limit {
                more = true;
                break;
            }
            items.push(object.clone());
        }
        let continue_token = if more {
            items.last().map(|last: &Arc<Object>| {
                ContinueToken {
                    rv: at,
                    namespace: last.namespace.to_string(),
                    name: last.name.to_string(),
                }
                .encode()
            })
        } else {
            None
        };
        Ok(ListPage {
            resource_version: at,
            items,
            continue_token,
        })
    }

    /// Starts a watch: what to replay, and a receiver for what follows.
    pub fn watch(
        &self,
        kind: Kind,
        from: WatchFrom,
        namespace: Option<&str>,
        selector: &Selector,
    ) -> Result<WatchFeed, StoreError> {
        let inner = self.read();
        let state = &inner.kinds[kind.index()];
        // Subscribing under the lock that writers hold while sending means
        // no event falls between the replay and the live stream.
        let live = state.tx.subscribe();
        match from {
            WatchFrom::Current => {
                let initial = state
                    .objects
                    .values()
                    .filter(|o| namespace.is_none_or(|ns| &*o.namespace == ns))
                    .filter(|o| selector.matches(&***o))
                    .cloned()
                    .collect();
                Ok(WatchFeed {
                    initial,
                    backlog: Vec::new(),
                    live,
                    after: inner.rv,
                    resource_version: inner.rv,
                })
            }
            WatchFrom::After(rv) => {
                if rv > inner.rv {
                    return Err(too_new(rv, inner.rv));
                }
                if rv < state.window_start {
                    return Err(StoreError::Expired(format!(
                        "too old resource version: {rv} ({})",
                        state.window_start
                    )));
                }
                let first = state
                    .history
                    .partition_point(|e| e.resource_version() <= rv);
                Ok(WatchFeed {
                    initial: Vec::new(),
                    backlog: state.history.range(first..).cloned().collect(),
                    live,
                    after: rv,
                    resource_version: inner.rv,
                })
            }
        }
    }
}

/// A version above the store's can only come from before a restart (one
/// store serves every instance). The real apiserver would wait and time
/// out; a 410 sends the client to re-list, which is what it needs.
fn too_new(requested: u64, current: u64) -> StoreError {
    StoreError::Expired(format!(
        "too large resource version: {requested} (current {current}): the simulator has restarted"
    ))
}

/// A copy of `object` carrying resourceVersion `rv` (deletions, and objects
/// that leave a watch's selector, are sent at the change's version).
pub fn restamp(
    resource: &'static ResourceType,
    object: &Object,
    rv: u64,
) -> Result<Object, StoreError> {
    let mut value = object.to_value();
    if let Some(meta) = value.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.insert("resourceVersion".into(), Value::String(rv.to_string()));
    }
    Object::from_value(resource, value)
}

const CONTINUE_EXPIRED: &str = "The provided continue parameter is too old to display a \
    consistent list result. You can start a new list without the continue parameter, or use \
    the continue value from the response to this list request.";

/// The opaque `continue` value: the list's resourceVersion and the last key sent.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct ContinueToken {
    rv: u64,
    #[serde(rename = "ns")]
    namespace: String,
    name: String,
}

impl ContinueToken {
    fn encode(&self) -> String {
        let json = serde_json::to_vec(self).unwrap_or_default();
        json.iter().map(|b| format!("{b:02x}")).collect()
    }

    fn decode(token: &str) -> Result<ContinueToken, StoreError> {
        let invalid = || StoreError::Invalid(format!("continue key is not valid: {token}"));
        if !token.len().is_multiple_of(2) || !token.is_ascii() {
            return Err(invalid());
        }
        let bytes = (0..token.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&token[i..i + 2], 16))
            .collect::<Result<Vec<u8>, _>>()
            .map_err(|_| invalid())?;
        serde_json::from_slice(&bytes).map_err(|_| invalid())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(ns: &str, name: &str, node: &str) -> Value {
        json!({"metadata": {"name": name, "namespace": ns, "labels": {"app": "a"}},
               "spec": {"nodeName": node}})
    }

    fn names(page: &ListPage) -> Vec<String> {
        page.items.iter().map(|o| o.name().to_owned()).collect()
    }

    #[test]
    fn stamps_and_orders() {
        let store = Store::new(1000, 100);
        store
            .create(Kind::PODS, pod("b", "p2", "n1"))
            .expect("create");
        let o = store
            .create(Kind::PODS, pod("a", "p9", "n2"))
            .expect("create");
        assert_eq!(o.resource_version(), 1002);
        assert_eq!(o.uid().len(), 36);
        let v = o.to_value();
        assert_eq!(v["metadata"]["resourceVersion"], "1002");
        assert!(v["metadata"]["creationTimestamp"].is_string());
        assert!(matches!(
            store.create(Kind::PODS, pod("a", "p9", "n2")),
            Err(StoreError::AlreadyExists { .. })
        ));
        let page = store
            .list(Kind::PODS, &ListOptions::default())
            .expect("list");
        assert_eq!(names(&page), ["p9", "p2"]);
        assert_eq!(page.resource_version, 1002);
        let mut typed = Vec::new();
        o.write_typed(Kind::PODS.info(), &mut typed);
        let typed: Value = serde_json::from_slice(&typed).expect("valid json");
        assert_eq!(typed["kind"], "Pod");
        assert_eq!(typed["apiVersion"], "v1");
        assert_eq!(typed["spec"]["nodeName"], "n2");
    }

    #[test]
    fn pages_are_consistent_across_changes() {
        let store = Store::new(0, 100);
        for i in 0..10 {
            store
                .create(Kind::PODS, pod("ns", &format!("p{i}"), "n"))
                .expect("create");
        }
        let opts = ListOptions {
            limit: Some(4),
            ..Default::default()
        };
        let first = store.list(Kind::PODS, &opts).expect("list");
        assert_eq!(names(&first), ["p0", "p1", "p2", "p3"]);
        // Changes after the first page must not show in later pages.
        store.delete(Kind::PODS, "ns", "p5").expect("delete");
        store
            .create(Kind::PODS, pod("ns", "p55", "n"))
            .expect("create");
        store
            .update(Kind::PODS, "ns", "p6", |v| {
                v["spec"]["nodeName"] = json!("moved");
                true
            })
            .expect("update");
        let token = first.continue_token.expect("more pages");
        let second = store
            .list(
                Kind::PODS,
                &ListOptions {
                    limit: Some(4),
                    continue_token: Some(&token),
                    ..Default::default()
                },
            )
            .expect("list");
        assert_eq!(names(&second), ["p4", "p5", "p6", "p7"]);
        assert_eq!(second.resource_version, first.resource_version);
        assert_eq!(second.items[2].field("spec.nodeName"), "n");
        store.compact();
        let token = second.continue_token.expect("more pages");
        let expired = store.list(
            Kind::PODS,
            &ListOptions {
                continue_token: Some(&token),
                ..Default::default()
            },
        );
        assert!(matches!(expired, Err(StoreError::Expired(_))));
    }

    #[test]
    fn generation_follows_spec() {
        let store = Store::new(0, 100);
        store
            .create(
                Kind::DEPLOYMENTS,
                json!({"metadata": {"name": "d", "namespace": "ns"}, "spec": {"replicas": 1}}),
            )
            .expect("create");
        let o = store
            .update(Kind::DEPLOYMENTS, "ns", "d", |v| {
                v["status"] = json!({"replicas": 1});
                true
            })
            .expect("update")
            .expect("changed");
        assert_eq!(o.to_value()["metadata"]["generation"], 1);
        let o = store
            .update(Kind::DEPLOYMENTS, "ns", "d", |v| {
                v["spec"]["replicas"] = json!(3);
                true
            })
            .expect("update")
            .expect("changed");
        assert_eq!(o.to_value()["metadata"]["generation"], 2);
        assert!(
            store
                .update(Kind::DEPLOYMENTS, "ns", "d", |_| false)
                .expect("update")
                .is_none()
        );
    }

    #[test]
    fn watch_replays_history_and_expires() {
        let store = Store::new(0, 3);
        for i in 0..5 {
            store
                .create(Kind::PODS, pod("ns", &format!("p{i}"), "n"))
                .expect("create");
        }
        let feed = store
            .watch(Kind::PODS, WatchFrom::After(3), None, &Selector::default())
            .expect("in window");
        let rvs: Vec<u64> = feed.backlog.iter().map(|e| e.resource_version()).collect();
        assert_eq!(rvs, [4, 5]);
        assert!(matches!(
            store.watch(Kind::PODS, WatchFrom::After(1), None, &Selector::default()),
            Err(StoreError::Expired(m)) if m == "too old resource version: 1 (2)"
        ));
        assert!(matches!(
            store.watch(Kind::PODS, WatchFrom::After(99), None, &Selector::default()),
            Err(StoreError::Expired(m)) if m.starts_with("too large resource version: 99")
        ));
        let deleted = store.delete(Kind::PODS, "ns", "p0").expect("delete");
        assert_eq!(deleted.resource_version(), 6);
        assert_eq!(deleted.to_value()["metadata"]["resourceVersion"], "6");
    }
}
