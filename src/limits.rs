//! [ssr] Bounded work: a [`Gate`] counts the jobs of one kind under way (chat turns, syntheses,
//! uploads, requests waiting for the built-in model) against a maximum that the caller reads from
//! the settings at each use, so a changed limit applies to the next job without a restart.
//!
//! Work beyond a limit is refused at once ([`Gate::try_enter`]); only work that an admitted job
//! needs to finish may wait for a place ([`Gate::enter`]). The limits themselves are
//! `limits.*` in the settings; the HTTP answers for a refusal are in `server::limits`.

use std::sync::{
    atomic::{AtomicUsize, Ordering},
    Arc,
};
use tokio::sync::Notify;

/// A counter of jobs in progress. Cheap to share (`Arc`); a [`Pass`] is one place, given back
/// when it is dropped, however the job ends (finished, failed, cancelled).
#[derive(Default)]
pub struct Gate {
    in_use: AtomicUsize,
    freed: Notify,
}

/// One place in a [`Gate`], held for as long as the job runs.
#[must_use = "the place is given back when the pass is dropped"]
pub struct Pass(Arc<Gate>);

impl Gate {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// A place if fewer than `max` are taken; never waits.
    pub fn try_enter(self: &Arc<Self>, max: usize) -> Option<Pass> {
        self.in_use
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .ok()
            .map(|_| Pass(self.clone()))
    }

    /// A place, waiting for one to be given back when all `max()` are taken. `max` is read again
    /// at each try, so a raised limit lets waiting jobs in as soon as a place is freed.
    pub async fn enter(self: &Arc<Self>, max: impl Fn() -> usize) -> Pass {
        loop {
            // Registered before the check, so a place freed between the check and the wait is
            // not missed.
            let freed = self.freed.notified();
            tokio::pin!(freed);
            freed.as_mut().enable();
            if let Some(pass) = self.try_enter(max()) {
                return pass;
            }
            freed.await;
        }
    }

    /// How many places are taken now.
    pub fn in_use(&self) -> usize {
        self.in_use.load(Ordering::Acquire)
    }
}

impl Drop for Pass {
    fn drop(&mut self) {
        self.0.in_use.fetch_sub(1, Ordering::AcqRel);
        // One waiter takes the place; a waiter that went away passes the wake-up on.
        self.0.freed.notify_one();
    }
}

/// A limit from the settings as a count of places (`u32` always fits in `usize` here).
pub fn places(limit: u32) -> usize {
    usize::try_from(limit).unwrap_or(usize::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn places_are_refused_beyond_the_limit_and_given_back_on_drop() {
        let gate = Gate::new();
        let a = gate.try_enter(2).unwrap();
        let _b = gate.try_enter(2).unwrap();
        assert!(gate.try_enter(2).is_none());
        assert_eq!(gate.in_use(), 2);
        // A raised limit applies at once; a lowered one to the next try.
        let c = gate.try_enter(3).unwrap();
        assert!(gate.try_enter(1).is_none());
        drop((a, c));
        assert_eq!(gate.in_use(), 1);
        assert!(gate.try_enter(2).is_some());
    }

    #[tokio::test]
    async fn a_waiting_job_gets_the_next_freed_place() {
        let gate = Gate::new();
        let held = gate.try_enter(1).unwrap();
        let waiting = tokio::spawn({
            let gate = gate.clone();
            async move { gate.enter(|| 1).await }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(
            !waiting.is_finished(),
            "it must wait while the place is held"
        );
        drop(held);
        let pass = tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .expect("the freed place reaches the waiting job")
            .unwrap();
        assert_eq!(gate.in_use(), 1);
        drop(pass);
        assert_eq!(gate.in_use(), 0);
    }

    #[tokio::test]
    async fn a_waiter_that_gives_up_does_not_keep_the_place_from_the_next() {
        let gate = Gate::new();
        let held = gate.try_enter(1).unwrap();
        let quitter = tokio::spawn({
            let gate = gate.clone();
            async move { gate.enter(|| 1).await }
        });
        let patient = tokio::spawn({
            let gate = gate.clone();
            async move { gate.enter(|| 1).await }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        quitter.abort();
        drop(held);
        let pass = tokio::time::timeout(Duration::from_secs(5), patient)
            .await
            .expect("the place goes to the one still waiting")
            .unwrap();
        drop(pass);
        assert_eq!(gate.in_use(), 0);
    }
}
