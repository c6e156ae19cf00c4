//! A flight as the cache's state records it, and how it lands for its waiters.

use std::sync::Arc;

use tokio::{sync::watch, time::Instant};

use crate::{error::TokenError, token::Token};

/// How a flight ended, as its waiters see it.
#[derive(Clone)]
pub(crate) enum Landing {
    /// Still under way.
    Pending,
    Token(Arc<Token>),
    Failed(TokenError),
    /// The flight is gone without a token for its waiters: ask the cache again.
    Restart,
}

/// A waiting request's end of a flight's channel.
pub(crate) type Outcome = watch::Receiver<Landing>;

/// The flight under way, as the cache's state keeps it.
pub(crate) struct Flight {
    pub(crate) id: u64,
    pub(super) tx: watch::Sender<Landing>,
    /// Closed once the flight's task has ended (finished, stopped, or dropped unspawned).
    pub(super) ended: watch::Receiver<()>,
    /// Past this instant the flight is taken to be stuck and may be replaced.
    pub(super) deadline: Instant,
}

impl Flight {
    pub(crate) fn subscribe(&self) -> Outcome {
        self.tx.subscribe()
    }

    pub(crate) fn stuck(&self, now: Instant) -> bool {
        now >= self.deadline
    }

    /// Tells the waiters.
    pub(crate) fn land(&self, landing: Landing) {
        self.tx.send_replace(landing);
    }
}
