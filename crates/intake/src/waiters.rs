//! Callers waiting for the outcome of a request in this process. The job
//! handler wakes them once the outcome is settled (the ticket exists in the
//! target; its link is stored right after, and a run after a crash in
//! between finds that same ticket by its marker), and keeps
//! the outcomes of the last few thousand requests it finished, so a caller
//! gets it without reading the store, whether it started waiting before or
//! after the job was done. Callers still re-read the store on a longer
//! period, so an outcome recorded by another instance is seen too.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::Notify;

use crate::RequestOutcome;
use crate::recent::Recent;

/// Finished requests remembered.
const REMEMBERED: usize = 4096;

pub struct Waiters {
    state: Mutex<State>,
}

impl Default for Waiters {
    fn default() -> Self {
        Waiters {
            state: Mutex::new(State {
                waiting: HashMap::new(),
                finished: Recent::new(REMEMBERED),
            }),
        }
    }
}

struct State {
    waiting: HashMap<i64, (Arc<Notify>, usize)>,
    finished: Recent<i64, RequestOutcome>,
}

/// A registration; unregisters when dropped.
pub struct Waiting<'a> {
    waiters: &'a Waiters,
    id: i64,
    pub notify: Arc<Notify>,
}

impl Waiters {
    /// Registers interest in request `id`.
    pub fn register(&self, id: i64) -> Waiting<'_> {
        let mut state = self.state.lock();
        let entry = state
            .waiting
            .entry(id)
            .or_insert_with(|| (Arc::new(Notify::new()), 0));
        entry.1 += 1;
        Waiting {
            waiters: self,
            id,
            notify: entry.0.clone(),
        }
    }

    /// The outcome of request `id` if its job finished in this process lately.
    pub fn finished(&self, id: i64) -> Option<RequestOutcome> {
        self.state.lock().finished.get(&id).cloned()
    }

    /// Forget the outcome remembered for `id` (the request starts again).
    pub fn forget(&self, id: i64) {
        self.state.lock().finished.remove(&id);
    }

    /// Remembers the (durable) outcome of `id` and wakes everyone waiting on it.
    pub fn wake(&self, id: i64, outcome: RequestOutcome) {
        let notify = {
            let mut state = self.state.lock();
            state.finished.insert(id, outcome);
            state.waiting.get(&id).map(|(n, _)| n.clone())
        };
        if let Some(notify) = notify {
            notify.notify_waiters();
        }
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        let mut state = self.waiters.state.lock();
        if let Some(entry) = state.waiting.get_mut(&self.id) {
            entry.1 = entry.1.saturating_sub(1);
            if entry.1 == 0 {
                state.waiting.remove(&self.id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finished_requests_are_remembered_up_to_the_limit() {
        let created = |ticket_id| RequestOutcome::Created {
            source: "web".into(),
            ticket_id,
            ticket_ref: ticket_id.to_string(),
            url: String::new(),
            message: String::new(),
        };
        let waiters = Waiters::default();
        assert_eq!(waiters.finished(1), None);
        waiters.wake(1, created(10));
        assert_eq!(waiters.finished(1), Some(created(10)));
        for id in 2..=(REMEMBERED as i64 + 1) {
            waiters.wake(id, created(id + 10));
        }
        assert_eq!(waiters.finished(1), None);
        assert_eq!(waiters.finished(2), Some(created(12)));
        assert!(waiters.finished(REMEMBERED as i64 + 1).is_some());
    }
}
