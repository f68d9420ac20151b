//! Callers waiting for the outcome of a request in this process. The job
//! handler wakes them after recording the outcome, and remembers the last
//! few thousand requests it finished, so a caller that starts waiting after
//! the job was done (it is fast) knows to read the store at once, and one
//! that starts before needs no read until it is woken. Callers still re-read
//! the store on a longer period, so an outcome recorded by another instance
//! is seen too.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::Notify;

/// Finished requests remembered.
const REMEMBERED: usize = 4096;

#[derive(Default)]
pub struct Waiters {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    waiting: HashMap<i64, (Arc<Notify>, usize)>,
    finished: HashSet<i64>,
    order: VecDeque<i64>,
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

    /// Whether the job of request `id` finished in this process lately.
    pub fn finished(&self, id: i64) -> bool {
        self.state.lock().finished.contains(&id)
    }

    /// Wakes everyone waiting on `id` and remembers that it finished.
    pub fn wake(&self, id: i64) {
        let notify = {
            let mut state = self.state.lock();
            if state.finished.insert(id) {
                state.order.push_back(id);
                while state.order.len() > REMEMBERED {
                    if let Some(old) = state.order.pop_front() {
                        state.finished.remove(&old);
                    }
                }
            }
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
        let waiters = Waiters::default();
        assert!(!waiters.finished(1));
        waiters.wake(1);
        assert!(waiters.finished(1));
        for id in 2..=(REMEMBERED as i64 + 1) {
            waiters.wake(id);
        }
        assert!(!waiters.finished(1));
        assert!(waiters.finished(2));
        assert!(waiters.finished(REMEMBERED as i64 + 1));
    }
}
