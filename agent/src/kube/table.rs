//! A table of one kind's objects as followed by a watcher: applies, deletes
//! and re-lists, and tells what changed so that vanished series can be
//! marked stale and transitions counted.

use std::collections::HashMap;

/// What a change did to the table.
pub enum Change<T> {
    /// A key not seen before.
    Added,
    /// The key existed; the old value is returned.
    Updated(T),
}

pub struct Table<T> {
    rows: HashMap<String, T>,
    /// Keys seen since a re-list began; `None` outside a re-list.
    relisting: Option<std::collections::HashSet<String>>,
    /// Whether a first list has completed: additions before it are the
    /// state found at start, not changes.
    pub synced: bool,
}

impl<T> Default for Table<T> {
    fn default() -> Self {
        Table {
            rows: HashMap::new(),
            relisting: None,
            synced: false,
        }
    }
}

impl<T> Table<T> {
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    pub fn get(&self, key: &str) -> Option<&T> {
        self.rows.get(key)
    }

    pub fn values(&self) -> impl Iterator<Item = &T> {
        self.rows.values()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&String, &T)> {
        self.rows.iter()
    }

    pub fn apply(&mut self, key: String, value: T) -> Change<T> {
        if let Some(seen) = self.relisting.as_mut() {
            seen.insert(key.clone());
        }
        match self.rows.insert(key, value) {
            None => Change::Added,
            Some(old) => Change::Updated(old),
        }
    }

    pub fn delete(&mut self, key: &str) -> Option<T> {
        self.rows.remove(key)
    }

    /// A (re-)list starts: what it does not return was deleted meanwhile.
    pub fn begin_relist(&mut self) {
        self.relisting = Some(Default::default());
    }

    /// The list is complete; returns the rows it did not return.
    pub fn end_relist(&mut self) -> Vec<(String, T)> {
        let Some(seen) = self.relisting.take() else {
            return Vec::new();
        };
        let gone: Vec<String> = self
            .rows
            .keys()
            .filter(|k| !seen.contains(*k))
            .cloned()
            .collect();
        self.synced = true;
        gone.into_iter()
            .filter_map(|k| self.rows.remove(&k).map(|v| (k, v)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_relist_removes_what_it_did_not_return() {
        let mut t = Table::default();
        t.begin_relist();
        t.apply("a".into(), 1);
        t.apply("b".into(), 2);
        assert!(t.end_relist().is_empty());
        assert!(t.synced);
        t.begin_relist();
        assert!(matches!(t.apply("a".into(), 3), Change::Updated(1)));
        let gone = t.end_relist();
        assert_eq!(gone, vec![("b".to_string(), 2)]);
        assert_eq!(t.len(), 1);
        assert_eq!(t.get("a"), Some(&3));
    }
}
