//! Callers waiting for the outcome of a request in this process. The job
//! handler wakes them after recording the outcome; callers still re-read the
//! store on a short period, so an outcome recorded by another instance is
//! seen too.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::Notify;

#[derive(Default)]
pub struct Waiters {
    waiting: Mutex<HashMap<i64, (Arc<Notify>, usize)>>,
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
        let mut map = self.waiting.lock();
        let entry = map
            .entry(id)
            .or_insert_with(|| (Arc::new(Notify::new()), 0));
        entry.1 += 1;
        Waiting {
            waiters: self,
            id,
            notify: entry.0.clone(),
        }
    }

    /// Wakes everyone waiting on `id`.
    pub fn wake(&self, id: i64) {
        let notify = self.waiting.lock().get(&id).map(|(n, _)| n.clone());
        if let Some(notify) = notify {
            notify.notify_waiters();
        }
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        let mut map = self.waiters.waiting.lock();
        if let Some(entry) = map.get_mut(&self.id) {
            entry.1 = entry.1.saturating_sub(1);
            if entry.1 == 0 {
                map.remove(&self.id);
            }
        }
    }
}
