//! Single-flight for password verification: concurrent checks of the same credentials share
//! one argon2 run.
//!
//! Why and the safety argument: `docs/auth.md` ("Single-flight").

use crate::limits::ARGON2_FLIGHTS_MAX;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use tokio::sync::OnceCell;

/// What identifies one verification: the credential cache's keyed digest of
/// (tenant, user, password) and the epoch of the stored hash it is checked against
/// (`None`: no such user, checked against the dummy hash).
pub type FlightKey = (blake3::Hash, Option<u64>);

type Cell<E> = Arc<OnceCell<Result<bool, E>>>;

/// Verifications in progress, one shared result cell each.
pub struct Flights<E> {
    inflight: Mutex<HashMap<FlightKey, Cell<E>>>,
}

/// A participant's hold on a cell; the last one out removes the entry.
struct Hold<'a, E> {
    flights: &'a Flights<E>,
    key: FlightKey,
    cell: Option<Cell<E>>,
}

impl<E> Drop for Hold<'_, E> {
    fn drop(&mut self) {
        // Clones of the cell are made and dropped only under the map lock, so the count is
        // exact here: 2 = the map's and this one.
        let mut map = self.flights.inflight.lock();
        if let Some(mine) = self.cell.take() {
            let done = mine.initialized();
            if let Some(cur) = map.get(&self.key) {
                if Arc::ptr_eq(cur, &mine) && (done || Arc::strong_count(&mine) == 2) {
                    map.remove(&self.key);
                }
            }
            drop(mine);
        }
    }
}

impl<E: Clone> Flights<E> {
    pub fn new() -> Self {
        Flights {
            inflight: Mutex::new(HashMap::new()),
        }
    }

    /// Runs `verify` for `key`, or waits for the run already in progress for the same key and
    /// returns its result. If the running caller is cancelled, a waiting one takes over.
    /// With `ARGON2_FLIGHTS_MAX` keys in progress, runs `verify` unshared.
    pub async fn run<F, Fut>(&self, key: FlightKey, verify: F) -> Result<bool, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<bool, E>>,
    {
        let hold = {
            let mut map = self.inflight.lock();
            let cell = match map.get(&key) {
                Some(c) => Some(c.clone()),
                None if map.len() < ARGON2_FLIGHTS_MAX => {
                    let c: Cell<E> = Arc::new(OnceCell::new());
                    map.insert(key, c.clone());
                    Some(c)
                }
                None => None,
            };
            cell.map(|c| Hold {
                flights: self,
                key,
                cell: Some(c),
            })
        };
        // Without a hold (too many keys in progress) the verification runs unshared.
        match hold.as_ref().and_then(|h| h.cell.as_deref()) {
            Some(cell) => cell.get_or_init(verify).await.clone(),
            None => verify().await,
        }
    }

    /// Keys in progress (for tests and metrics).
    pub fn len(&self) -> usize {
        self.inflight.lock().len()
    }

    /// Whether nothing is in progress.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<E: Clone> Default for Flights<E> {
    fn default() -> Self {
        Self::new()
    }
}
