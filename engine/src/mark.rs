//! A monotonic "durable up to here" mark that async tasks wait on. The flusher that moves it
//! wakes only the waiters it reached, after it lets go of the lock.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use parking_lot::Mutex;

struct State {
    mark: u64,
    failed: bool,
    next_id: u64,
    /// Waiters by (needed mark, id): those a new mark reaches are a prefix.
    waiters: BTreeMap<(u64, u64), Waker>,
}

/// A mark that only grows, and a flag that says it never will again.
pub(crate) struct DurableMark {
    state: Mutex<State>,
}

impl DurableMark {
    pub(crate) fn new(mark: u64) -> Self {
        DurableMark {
            state: Mutex::new(State {
                mark,
                failed: false,
                next_id: 0,
                waiters: BTreeMap::new(),
            }),
        }
    }

    /// The mark now.
    pub(crate) fn get(&self) -> u64 {
        self.state.lock().mark
    }

    /// Raises the mark to `to` (never lowers it) and wakes the waiters it reached.
    pub(crate) fn advance(&self, to: u64) {
        let ready = {
            let mut st = self.state.lock();
            if to <= st.mark {
                return;
            }
            st.mark = to;
            // Ids never reach u64::MAX, so this splits off exactly the needs above `to`.
            let rest = st.waiters.split_off(&(to, u64::MAX));
            std::mem::replace(&mut st.waiters, rest)
        };
        for (_, w) in ready {
            w.wake();
        }
    }

    /// Says the mark will not move again (a failed write): every waiter wakes.
    pub(crate) fn fail(&self) {
        let all = {
            let mut st = self.state.lock();
            st.failed = true;
            std::mem::take(&mut st.waiters)
        };
        for (_, w) in all {
            w.wake();
        }
    }

    /// Resolves to `true` once the mark is at least `need`, or to `false` once it failed
    /// below `need`.
    pub(crate) fn wait(&self, need: u64) -> WaitMark<'_> {
        WaitMark {
            mark: self,
            need,
            key: None,
        }
    }
}

/// The future of [`DurableMark::wait`].
pub(crate) struct WaitMark<'a> {
    mark: &'a DurableMark,
    need: u64,
    key: Option<(u64, u64)>,
}

impl Future for WaitMark<'_> {
    type Output = bool;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<bool> {
        let this = self.get_mut();
        let mut st = this.mark.state.lock();
        if st.mark >= this.need || st.failed {
            if let Some(key) = this.key.take() {
                st.waiters.remove(&key);
            }
            return Poll::Ready(st.mark >= this.need);
        }
        match this.key {
            Some(key) => match st.waiters.get_mut(&key) {
                Some(w) => {
                    if !w.will_wake(cx.waker()) {
                        *w = cx.waker().clone();
                    }
                }
                None => {
                    st.waiters.insert(key, cx.waker().clone());
                }
            },
            None => {
                let key = (this.need, st.next_id);
                st.next_id += 1;
                st.waiters.insert(key, cx.waker().clone());
                this.key = Some(key);
            }
        }
        Poll::Pending
    }
}

impl Drop for WaitMark<'_> {
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            self.mark.state.lock().waiters.remove(&key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::task::Wake;

    struct Count(AtomicUsize);
    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn poll(f: &mut WaitMark<'_>, waker: &Waker) -> Poll<bool> {
        Pin::new(f).poll(&mut Context::from_waker(waker))
    }

    #[test]
    fn only_the_waiters_a_mark_reaches_wake() {
        let m = DurableMark::new(5);
        let counts: Vec<Arc<Count>> = (0..3)
            .map(|_| Arc::new(Count(AtomicUsize::new(0))))
            .collect();
        let wakers: Vec<Waker> = counts.iter().map(|c| Waker::from(c.clone())).collect();
        assert_eq!(poll(&mut m.wait(5), &wakers[0]), Poll::Ready(true));
        let mut a = m.wait(7);
        let mut b = m.wait(9);
        let mut c = m.wait(9);
        assert_eq!(poll(&mut a, &wakers[0]), Poll::Pending);
        assert_eq!(poll(&mut b, &wakers[1]), Poll::Pending);
        assert_eq!(poll(&mut c, &wakers[2]), Poll::Pending);
        m.advance(8);
        let woken: Vec<usize> = counts.iter().map(|c| c.0.load(Ordering::SeqCst)).collect();
        assert_eq!(woken, vec![1, 0, 0]);
        assert_eq!(poll(&mut a, &wakers[0]), Poll::Ready(true));
        assert_eq!(poll(&mut b, &wakers[1]), Poll::Pending);
        m.advance(3); // never lowers
        assert_eq!(m.get(), 8);
        drop(c); // a dropped waiter is forgotten
        m.advance(9);
        let woken: Vec<usize> = counts.iter().map(|c| c.0.load(Ordering::SeqCst)).collect();
        assert_eq!(woken, vec![1, 1, 0]);
        assert_eq!(poll(&mut b, &wakers[1]), Poll::Ready(true));
        assert!(m.state.lock().waiters.is_empty());
    }

    #[test]
    fn a_failure_wakes_everyone_and_reads_as_not_reached() {
        let m = DurableMark::new(0);
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let waker = Waker::from(count.clone());
        let mut a = m.wait(1);
        let mut b = m.wait(2);
        assert_eq!(poll(&mut a, &waker), Poll::Pending);
        assert_eq!(poll(&mut b, &waker), Poll::Pending);
        m.advance(1);
        m.fail();
        assert_eq!(count.0.load(Ordering::SeqCst), 2);
        assert_eq!(poll(&mut a, &waker), Poll::Ready(true));
        assert_eq!(poll(&mut b, &waker), Poll::Ready(false));
    }

    #[test]
    fn threads_waiting_on_a_moving_mark_all_finish() {
        let m = Arc::new(DurableMark::new(0));
        let waiters: Vec<_> = (0..8u64)
            .map(|t| {
                let m = m.clone();
                std::thread::spawn(move || {
                    for i in 0..200u64 {
                        assert!(futures::executor::block_on(m.wait(t * 7 + i * 13)));
                    }
                })
            })
            .collect();
        for v in 1..=(8 * 7 + 200 * 13) {
            m.advance(v);
            if v % 64 == 0 {
                std::thread::yield_now();
            }
        }
        for w in waiters {
            w.join().unwrap();
        }
    }
}
