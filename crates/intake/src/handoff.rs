//! Requests accepted by this process, handed to their job in memory so that
//! the job does not read back from the store the body it was accepted with.
//! Keyed by the job's ordering key (one per request). Best effort: a job that
//! finds nothing here (another instance accepted it, a restart, an entry
//! pushed out by newer ones) reads the inbox row as before.

use parking_lot::Mutex;

use crate::recent::Recent;

/// Requests kept at most (the oldest go first).
const KEPT: usize = 4096;

/// What a job needs of its request: the dedupe key and the raw body.
#[derive(Debug, Clone, PartialEq)]
pub struct HandedRequest {
    pub dedupe_key: String,
    pub body: Vec<u8>,
}

pub struct Handoff {
    requests: Mutex<Recent<String, HandedRequest>>,
}

impl Default for Handoff {
    fn default() -> Self {
        Handoff {
            requests: Mutex::new(Recent::new(KEPT)),
        }
    }
}

impl Handoff {
    /// Keep `request` for the job ordered by `ordering_key`, unless one is
    /// kept for it already: a repeat of a request (same key, maybe another
    /// body) never replaces what the first delivery's job is to read.
    pub fn put(&self, ordering_key: &str, request: HandedRequest) {
        self.requests
            .lock()
            .insert_if_absent(ordering_key.to_owned(), request);
    }

    /// Take the request of the job ordered by `ordering_key`, if kept.
    pub fn take(&self, ordering_key: &str) -> Option<HandedRequest> {
        self.requests.lock().remove(ordering_key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_is_taken_once_and_old_ones_make_room() {
        let handoff = Handoff::default();
        let request = |n: usize| HandedRequest {
            dedupe_key: format!("k{n}"),
            body: vec![1, 2, 3],
        };
        handoff.put("a", request(0));
        handoff.put("a", request(1));
        assert_eq!(handoff.take("a"), Some(request(0)), "the first is kept");
        assert_eq!(handoff.take("a"), None);
        for n in 0..=KEPT {
            handoff.put(&format!("job-{n}"), request(n));
        }
        assert_eq!(handoff.take("job-0"), None, "the oldest made room");
        assert_eq!(handoff.take(&format!("job-{KEPT}")), Some(request(KEPT)));
    }
}
