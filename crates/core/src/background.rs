//! Background CPU work (parsing and mapping sync pages) on a few threads of lower priority, so
//! that API requests always find a core: under five syncs, their CPU work on tokio's blocking
//! pool meant a dozen runnable threads sharing two cores equally with the API's.

use std::future::Future;
use std::pin::Pin;
use std::sync::mpsc;
use std::sync::{Mutex, OnceLock};
use std::task::{Context, Poll};

use tokio::sync::oneshot;

type Work = Box<dyn FnOnce() + Send>;

/// How much lower than the process background threads run (a nice value: the scheduler
/// still gives them every cycle nobody else wants).
const NICENESS: i32 = 10;

/// The work of [`run`]; resolves to its result, or `Err` if it panicked.
pub struct Background<T> {
    rx: oneshot::Receiver<T>,
}

/// The work ended without a result (it panicked).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("background work stopped")]
pub struct Stopped;

impl<T> Future for Background<T> {
    type Output = Result<T, Stopped>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.rx)
            .poll(cx)
            .map(|r| r.map_err(|_| Stopped))
    }
}

fn queue() -> &'static Mutex<mpsc::Sender<Work>> {
    static QUEUE: OnceLock<Mutex<mpsc::Sender<Work>>> = OnceLock::new();
    QUEUE.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<Work>();
        let rx = std::sync::Arc::new(Mutex::new(rx));
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
        for i in 0..threads {
            let rx = rx.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("ironbridge-bg-{i}"))
                .spawn(move || {
                    lower_priority();
                    loop {
                        // The lock is held only to take one item, never while working.
                        let next = match rx.lock() {
                            Ok(rx) => rx.recv(),
                            Err(_) => return,
                        };
                        match next {
                            // A panic is the caller's (its `Background` resolves to
                            // `Stopped`); the thread goes on with the next item.
                            Ok(work) => {
                                let _ =
                                    std::panic::catch_unwind(std::panic::AssertUnwindSafe(work));
                            }
                            Err(_) => return,
                        }
                    }
                });
            if let Err(e) = spawned {
                tracing::warn!(error = %e, "background thread not started");
            }
        }
        Mutex::new(tx)
    })
}

/// Runs `f` on a background thread.
pub fn run<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Background<T> {
    let (tx, rx) = oneshot::channel();
    let work: Work = Box::new(move || {
        let _ = tx.send(f());
    });
    // Sending fails only if every thread is gone; the dropped sender then resolves the
    // handle to `Stopped`.
    if let Ok(queue) = queue().lock() {
        let _ = queue.send(work);
    }
    Background { rx }
}

/// Lowers the calling thread's priority: on Linux a nice value is per thread, and `None`
/// (`who = 0`) is the calling thread. Elsewhere it would be the whole process: left alone.
#[cfg(target_os = "linux")]
fn lower_priority() {
    if let Err(e) = rustix::process::setpriority_process(None, NICENESS) {
        tracing::debug!(error = %e, "background threads keep the normal priority");
    }
}

#[cfg(not(target_os = "linux"))]
fn lower_priority() {}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn work_runs_at_lower_priority_and_a_panic_is_the_callers_alone() {
        let niceness = run(|| {
            #[cfg(target_os = "linux")]
            let nice = rustix::process::getpriority_process(None).unwrap_or(0);
            #[cfg(not(target_os = "linux"))]
            let nice = NICENESS;
            nice
        })
        .await
        .unwrap();
        // At least ours: a process started at a lower priority keeps its own.
        assert!(niceness >= NICENESS, "{niceness}");
        let panicked: Result<(), Stopped> = run(|| panic!("boom")).await;
        assert_eq!(panicked, Err(Stopped));
        // The threads survive a panic.
        let results: Vec<_> = (0..8).map(|i| run(move || i * 2)).collect();
        let mut sum = 0;
        for r in results {
            sum += r.await.unwrap();
        }
        assert_eq!(sum, 56);
    }
}
