//! The waits for a client's next request on one connection, as two settings: the header-read
//! timeout (a request's head must be complete this long after its first byte, or after the
//! connection's start for its first request) and the keep-alive idle timeout (a connection
//! that answered a request may wait this long for the first byte of the next one).
//!
//! hyper has one timer for both: its header-read timeout starts when it begins waiting for a
//! head, idle time included. So each connection gives hyper a timer of its own ([`RequestTimer`])
//! whose sleeps end at the deadline the connection's state calls for; [`RequestClock`] learns
//! that state from the socket (bytes read, bytes written). hyper's HTTP/1 server uses its timer
//! for the header-read timeout only (hyper 1.x, `proto/h1/conn.rs`), so nothing else is
//! affected; tests/limits.rs checks both timeouts.

use hyper::rt::{Sleep, Timer};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

/// What one connection's socket has seen, for its timer.
pub struct RequestClock {
    epoch: Instant,
    header_timeout: Duration,
    idle_timeout: Duration,
    /// Microseconds from `epoch` (plus 1) when the first byte of the request being read
    /// arrived; 0 while none has.
    head_started: AtomicU64,
    /// A response has been written: the connection is kept alive between requests.
    answered: AtomicBool,
}

impl RequestClock {
    pub fn new(header_timeout: Duration, idle_timeout: Duration) -> Arc<RequestClock> {
        Arc::new(RequestClock {
            epoch: Instant::now(),
            header_timeout,
            idle_timeout,
            head_started: AtomicU64::new(0),
            answered: AtomicBool::new(false),
        })
    }

    /// The client sent bytes: the first of them starts the head's header timeout.
    pub fn bytes_read(&self) {
        if self.head_started.load(Ordering::Relaxed) == 0 {
            let now = self.epoch.elapsed().as_micros() as u64 + 1;
            let _ = self
                .head_started
                .compare_exchange(0, now, Ordering::Relaxed, Ordering::Relaxed);
        }
    }

    /// A response is being written: the request before it was read whole.
    pub fn bytes_written(&self) {
        self.head_started.store(0, Ordering::Relaxed);
        self.answered.store(true, Ordering::Relaxed);
    }

    /// When a wait for a head that began at `waiting_since` ends.
    fn deadline(&self, waiting_since: Instant) -> Instant {
        if !self.answered.load(Ordering::Relaxed) {
            // The first request: from the connection's start, as before any byte.
            return waiting_since + self.header_timeout;
        }
        match self.head_started.load(Ordering::Relaxed) {
            0 => waiting_since + self.idle_timeout,
            started => self.epoch + Duration::from_micros(started - 1) + self.header_timeout,
        }
    }
}

/// The timer hyper gets for one connection.
#[derive(Clone)]
pub struct RequestTimer(pub Arc<RequestClock>);

impl Timer for RequestTimer {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn Sleep>> {
        self.sleep_until(Instant::now() + duration)
    }

    /// hyper asks for `now + header timeout` when it starts waiting for a head.
    fn sleep_until(&self, deadline: Instant) -> Pin<Box<dyn Sleep>> {
        let clock = self.0.clone();
        let waiting_since = deadline.checked_sub(clock.header_timeout).unwrap_or(deadline);
        let current = clock.deadline(waiting_since);
        Box::pin(RequestSleep {
            clock,
            waiting_since,
            current,
            sleep: Box::pin(tokio::time::sleep_until(current.into())),
        })
    }
}

/// A wait for a head whose end moves with the connection's state (an idle connection that
/// starts receiving a head now has the header timeout from that byte).
struct RequestSleep {
    clock: Arc<RequestClock>,
    waiting_since: Instant,
    current: Instant,
    sleep: Pin<Box<tokio::time::Sleep>>,
}

impl Future for RequestSleep {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        let deadline = this.clock.deadline(this.waiting_since);
        if deadline != this.current {
            this.current = deadline;
            this.sleep.as_mut().reset(deadline.into());
        }
        this.sleep.as_mut().poll(cx)
    }
}

impl Sleep for RequestSleep {}
