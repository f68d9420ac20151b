//! Requests accepted by this process, handed to their job in memory so that
//! the job does not read back from the store the body it was accepted with.
//! Keyed by the job's ordering key (one per request). Best effort: a job that
//! finds nothing here (another instance accepted it, a restart, an entry
//! pushed out by newer ones) reads the inbox row as before.

use std::collections::{HashMap, VecDeque};

use parking_lot::Mutex;

/// Requests kept at most (the oldest go first)...
const KEPT: usize = 4096;
/// ...and their bodies' bytes at most, so that requests piling up behind a
/// slow target (or taken by another instance's engine) cannot fill memory.
const KEPT_BYTES: usize = 64 * 1024 * 1024;

/// What a job needs of its request: the dedupe key and the raw body.
#[derive(Debug, Clone, PartialEq)]
pub struct HandedRequest {
    pub dedupe_key: String,
    pub body: Vec<u8>,
}

enum Entry {
    Kept(HandedRequest),
    /// Two requests with one ordering key were handed over before either was
    /// stored (an `Idempotency-Key` sent twice at once, maybe with different
    /// bodies): which one the store keeps is not known here, so the job
    /// reads its request from the store.
    Ambiguous,
}

#[derive(Default)]
struct Entries {
    map: HashMap<String, Entry>,
    /// Keys in insertion order, oldest first; a key taken meanwhile stays
    /// until it is the oldest (should it be handed over again, that entry
    /// leaves early: the job then reads the store).
    order: VecDeque<String>,
    bytes: usize,
}

impl Entries {
    fn forget(&mut self, key: &str) -> Option<Entry> {
        let entry = self.map.remove(key);
        if let Some(Entry::Kept(request)) = &entry {
            self.bytes = self.bytes.saturating_sub(request.body.len());
        }
        entry
    }
}

#[derive(Default)]
pub struct Handoff {
    entries: Mutex<Entries>,
}

impl Handoff {
    /// Keep `request` for the job ordered by `ordering_key`. When one is kept
    /// for that key already, neither is handed over: the job reads the one
    /// the store kept.
    pub fn put(&self, ordering_key: &str, request: HandedRequest) {
        let mut entries = self.entries.lock();
        if entries.map.contains_key(ordering_key) {
            entries.forget(ordering_key);
            entries
                .map
                .insert(ordering_key.to_owned(), Entry::Ambiguous);
            return;
        }
        entries.bytes += request.body.len();
        entries
            .map
            .insert(ordering_key.to_owned(), Entry::Kept(request));
        entries.order.push_back(ordering_key.to_owned());
        while entries.order.len() > KEPT || entries.bytes > KEPT_BYTES {
            let Some(oldest) = entries.order.pop_front() else {
                break;
            };
            entries.forget(&oldest);
        }
    }

    /// Take the request of the job ordered by `ordering_key`, if kept and not
    /// ambiguous.
    pub fn take(&self, ordering_key: &str) -> Option<HandedRequest> {
        match self.entries.lock().forget(ordering_key) {
            Some(Entry::Kept(request)) => Some(request),
            Some(Entry::Ambiguous) | None => None,
        }
    }

    /// Forget what a request that was not stored handed over; an ambiguous
    /// mark stays for the job of the request that was.
    pub fn withdraw(&self, ordering_key: &str) {
        let mut entries = self.entries.lock();
        if matches!(entries.map.get(ordering_key), Some(Entry::Kept(_))) {
            entries.forget(ordering_key);
        }
    }

    #[cfg(test)]
    fn bytes(&self) -> usize {
        self.entries.lock().bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(n: usize, size: usize) -> HandedRequest {
        HandedRequest {
            dedupe_key: format!("k{n}"),
            body: vec![1; size],
        }
    }

    #[test]
    fn a_request_is_taken_once_and_old_ones_make_room() {
        let handoff = Handoff::default();
        handoff.put("a", request(0, 3));
        assert_eq!(handoff.take("a"), Some(request(0, 3)));
        assert_eq!(handoff.take("a"), None);
        for n in 0..=KEPT {
            handoff.put(&format!("job-{n}"), request(n, 3));
        }
        assert_eq!(handoff.take("job-0"), None, "the oldest made room");
        assert_eq!(handoff.take(&format!("job-{KEPT}")), Some(request(KEPT, 3)));
    }

    #[test]
    fn kept_bodies_stay_within_their_byte_budget() {
        let handoff = Handoff::default();
        let size = 1024 * 1024;
        for n in 0..200 {
            handoff.put(&format!("job-{n}"), request(n, size));
        }
        assert!(
            handoff.bytes() <= KEPT_BYTES,
            "{} bytes kept",
            handoff.bytes()
        );
        assert_eq!(handoff.take("job-0"), None, "the oldest made room");
        assert_eq!(handoff.take("job-199"), Some(request(199, size)));
    }

    /// Two requests with one key at once: whichever the store kept, its job
    /// must not run with the other's body, so neither is handed over.
    #[test]
    fn two_requests_with_one_key_hand_over_neither() {
        let handoff = Handoff::default();
        handoff.put("same", request(1, 3));
        handoff.put("same", request(2, 5));
        // The request the store refused as a repeat withdraws: the mark stays.
        handoff.withdraw("same");
        handoff.put("same", request(3, 7));
        assert_eq!(handoff.take("same"), None);
        assert_eq!(handoff.bytes(), 0);
    }
}
