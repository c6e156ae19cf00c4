//! [`Bounded`]: a map by token that keeps at most a set number of entries, dropping the oldest
//! first, so that a long run cannot grow the server without limit.

use std::collections::HashMap;

/// A map from tokens to `V` that holds at most `limit` entries. Inserting into a full map
/// first drops the oldest quarter of the entries (by insertion), so the work is spread over
/// many inserts.
pub(super) struct Bounded<V> {
    entries: HashMap<String, (u64, V)>,
    next: u64,
    limit: usize,
}

impl<V> Bounded<V> {
    pub(super) fn new(limit: usize) -> Self {
        Self {
            entries: HashMap::new(),
            next: 0,
            limit: limit.max(1),
        }
    }

    /// Inserts or replaces `key`'s value, which then counts as the newest.
    pub(super) fn insert(&mut self, key: String, value: V) {
        if self.entries.len() >= self.limit && !self.entries.contains_key(&key) {
            self.drop_oldest(self.limit.div_ceil(4));
        }
        self.next += 1;
        self.entries.insert(key, (self.next, value));
    }

    fn drop_oldest(&mut self, count: usize) {
        let mut ages: Vec<u64> = self.entries.values().map(|(age, _)| *age).collect();
        let count = count.min(ages.len());
        if count == 0 {
            return;
        }
        let (_, &mut newest_dropped, _) = ages.select_nth_unstable(count - 1);
        self.entries.retain(|_, (age, _)| *age > newest_dropped);
    }

    pub(super) fn get(&self, key: &str) -> Option<&V> {
        self.entries.get(key).map(|(_, v)| v)
    }

    pub(super) fn contains_key(&self, key: &str) -> bool {
        self.entries.contains_key(key)
    }

    pub(super) fn remove(&mut self, key: &str) -> Option<V> {
        self.entries.remove(key).map(|(_, v)| v)
    }

    pub(super) fn retain(&mut self, mut keep: impl FnMut(&str, &mut V) -> bool) {
        self.entries.retain(|k, (_, v)| keep(k, v));
    }

    pub(super) fn values(&self) -> impl Iterator<Item = &V> {
        self.entries.values().map(|(_, v)| v)
    }

    pub(super) fn values_mut(&mut self) -> impl Iterator<Item = &mut V> {
        self.entries.values_mut().map(|(_, v)| v)
    }

    pub(super) fn clear(&mut self) {
        self.entries.clear();
    }

    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_at_most_the_limit_dropping_the_oldest() {
        let mut map = Bounded::new(8);
        for i in 0..100 {
            map.insert(format!("t{i}"), i);
            assert!(map.len() <= 8);
        }
        assert!(map.contains_key("t99"));
        assert!(!map.contains_key("t0"));
        assert_eq!(map.get("t99"), Some(&99));
        // Replacing a key in a full map drops nothing.
        let before = map.len();
        map.insert("t99".into(), 0);
        assert_eq!(map.len(), before);
        assert_eq!(map.remove("t99"), Some(0));
        map.retain(|_, v| *v % 2 == 0);
        assert!(map.values().all(|v| v % 2 == 0));
        map.values_mut().for_each(|v| *v = 1);
        map.clear();
        assert_eq!(map.len(), 0);
    }
}
