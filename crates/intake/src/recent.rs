//! A map that keeps its newest entries only: the waiters' finished outcomes
//! remember "the last few thousand".

use std::borrow::Borrow;
use std::collections::{HashMap, VecDeque};
use std::hash::Hash;

pub(crate) struct Recent<K, V> {
    entries: HashMap<K, V>,
    /// Keys in insertion order, oldest first. A removed key stays here until it
    /// is the oldest (so `remove` costs no scan); should the same key be
    /// inserted again meanwhile, that entry leaves early, which callers accept.
    order: VecDeque<K>,
    limit: usize,
}

impl<K: Eq + Hash + Clone, V> Recent<K, V> {
    pub(crate) fn new(limit: usize) -> Self {
        Recent {
            entries: HashMap::new(),
            order: VecDeque::new(),
            limit,
        }
    }

    /// Insert or replace; the oldest entries go when past the limit.
    pub(crate) fn insert(&mut self, key: K, value: V) {
        if self.entries.insert(key.clone(), value).is_none() {
            self.remember(key);
        }
    }

    pub(crate) fn get<Q: Eq + Hash + ?Sized>(&self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
    {
        self.entries.get(key)
    }

    pub(crate) fn remove<Q: Eq + Hash + ?Sized>(&mut self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
    {
        self.entries.remove(key)
    }

    fn remember(&mut self, key: K) {
        self.order.push_back(key);
        while self.order.len() > self.limit {
            if let Some(old) = self.order.pop_front() {
                self.entries.remove(&old);
            }
        }
    }
}
