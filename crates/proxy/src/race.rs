//! A busy future raced against a rare signal, without polling the signal on
//! every wake. `tokio::select!` polls every branch each time the task wakes:
//! a connection wakes several times per request, while its drain signal or
//! idle timer fires a few times in its life, and polling a watch receiver
//! takes a lock. Here the signal gets its own waker and is polled only after
//! that waker fired.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Wake, Waker};

use atomic_waker::AtomicWaker;

/// Which side finished first.
#[derive(Debug, PartialEq, Eq)]
pub enum First<M, S> {
    Main(M),
    Signal(S),
}

/// Resolves with `main`'s output, or with `signal`'s if that comes first.
/// `main` is polled first, so when both are ready `main` wins.
pub fn race<'a, M, S>(main: Pin<&'a mut M>, signal: Pin<&'a mut S>) -> Race<'a, M, S>
where
    M: Future,
    S: Future,
{
    let flag = Arc::new(Flag {
        // Set, so the first poll reaches the signal and registers its waker.
        fired: AtomicBool::new(true),
        task: AtomicWaker::new(),
    });
    Race {
        main,
        signal,
        signal_waker: Waker::from(flag.clone()),
        flag,
        task: None,
    }
}

pub struct Race<'a, M, S> {
    main: Pin<&'a mut M>,
    signal: Pin<&'a mut S>,
    flag: Arc<Flag>,
    signal_waker: Waker,
    /// The task waker last handed to `flag`: re-registered only when the
    /// task polls with a different one.
    task: Option<Waker>,
}

/// The signal's waker: marks the signal as worth polling and wakes the task.
struct Flag {
    fired: AtomicBool,
    task: AtomicWaker,
}

impl Wake for Flag {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.fired.store(true, Ordering::Release);
        self.task.wake();
    }
}

impl<M: Future, S: Future> Future for Race<'_, M, S> {
    type Output = First<M::Output, S::Output>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        if let Poll::Ready(out) = this.main.as_mut().poll(cx) {
            return Poll::Ready(First::Main(out));
        }
        // Registered before the flag is read: a signal firing in between
        // wakes the task again.
        if this.task.as_ref().is_none_or(|w| !w.will_wake(cx.waker())) {
            this.flag.task.register(cx.waker());
            this.task = Some(cx.waker().clone());
        }
        if this.flag.fired.load(Ordering::Acquire) && this.flag.fired.swap(false, Ordering::AcqRel)
        {
            let mut signal_cx = Context::from_waker(&this.signal_waker);
            if let Poll::Ready(out) = this.signal.as_mut().poll(&mut signal_cx) {
                return Poll::Ready(First::Signal(out));
            }
        }
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;
    use std::time::Duration;

    use super::*;

    /// Counts its polls; never ready.
    struct Polls<'a>(&'a AtomicUsize);

    impl Future for Polls<'_> {
        type Output = ();
        fn poll(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<()> {
            self.0.fetch_add(1, Ordering::Relaxed);
            Poll::Pending
        }
    }

    #[tokio::test]
    async fn the_signal_is_polled_only_when_it_woke() {
        let signal_polls = AtomicUsize::new(0);
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<u32>();
        // The main side: sums messages until it gets 0; wakes once per message.
        let main = async move {
            let mut sum = 0;
            while let Some(n) = rx.recv().await {
                if n == 0 {
                    break;
                }
                sum += n;
            }
            sum
        };
        let signal = Polls(&signal_polls);
        tokio::pin!(main, signal);
        let sender = tokio::spawn(async move {
            for n in (1..=100).chain([0]) {
                tx.send(n).ok();
                tokio::task::yield_now().await;
            }
        });
        let out = race(main.as_mut(), signal.as_mut()).await;
        sender.await.ok();
        assert_eq!(out, First::Main(5050));
        // Only the first poll reached the signal, not the hundred wakes.
        assert_eq!(signal_polls.load(Ordering::Relaxed), 1);
    }

    #[tokio::test]
    async fn a_signal_that_fires_wins_over_a_pending_main() {
        let main = std::future::pending::<()>();
        let signal = tokio::time::sleep(Duration::from_millis(20));
        tokio::pin!(main, signal);
        let out = tokio::time::timeout(Duration::from_secs(5), race(main, signal)).await;
        assert_eq!(out.ok(), Some(First::Signal(())));
    }

    #[tokio::test]
    async fn a_watch_flag_set_later_is_seen() {
        let (tx, mut rx) = tokio::sync::watch::channel(false);
        let main = std::future::pending::<()>();
        let signal = async move { rx.wait_for(|v| *v).await.is_ok() };
        tokio::pin!(main, signal);
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            tx.send(true).ok();
            // Keep the sender alive until the flag was seen.
            tokio::time::sleep(Duration::from_secs(5)).await;
        });
        let out = tokio::time::timeout(Duration::from_secs(5), race(main, signal)).await;
        assert_eq!(out.ok(), Some(First::Signal(true)));
    }
}
