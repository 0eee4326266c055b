//! One shared shutdown signal for every long-lived task.
//!
//! `app` holds the [`ShutdownTrigger`]; every task holds a cloned [`Shutdown`] and races it against
//! its work, so SIGTERM, SIGINT and `/-/quit` stop intake first and let the final flush finish.

use tokio::sync::watch;

/// Cloned into every long-lived task; fires when shutdown starts or when the trigger is dropped.
#[derive(Clone, Debug)]
pub struct Shutdown(watch::Receiver<bool>);

/// The sending side, owned by `app`.
#[derive(Debug)]
pub struct ShutdownTrigger(watch::Sender<bool>);

/// A new trigger and its first receiver.
pub fn channel() -> (ShutdownTrigger, Shutdown) {
    let (tx, rx) = watch::channel(false);
    (ShutdownTrigger(tx), Shutdown(rx))
}

impl ShutdownTrigger {
    /// Starts shutdown; every `Shutdown::started` future resolves.
    pub fn trigger(&self) {
        let _ = self.0.send(true);
    }
    /// Another receiver.
    pub fn subscribe(&self) -> Shutdown {
        Shutdown(self.0.subscribe())
    }
}

impl Shutdown {
    /// Whether shutdown has started.
    pub fn is_started(&self) -> bool {
        *self.0.borrow()
    }
    /// Resolves once shutdown has started (or the trigger is gone).
    pub async fn started(&mut self) {
        let _ = self.0.wait_for(|s| *s).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn started_resolves_after_trigger() {
        let (t, mut s) = channel();
        assert!(!s.is_started());
        t.trigger();
        s.started().await;
        assert!(s.is_started());
    }
}
