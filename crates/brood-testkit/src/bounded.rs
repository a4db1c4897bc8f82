//! Time bounds: every test finishes in bounded time, and a hang fails with a
//! message instead of stalling the suite.

use std::future::Future;
use std::time::{Duration, Instant};

/// The default bound on one async test.
pub const TEST_LIMIT: Duration = Duration::from_secs(60);

/// How often [`eventually`] and [`eventually_blocking`] look again.
const POLL_EVERY: Duration = Duration::from_millis(5);

/// Runs `fut` to completion, failing the test if it takes longer than `limit`.
///
/// Needs a Tokio runtime with the time driver enabled.
pub async fn bounded<F: Future>(limit: Duration, fut: F) -> F::Output {
    match tokio::time::timeout(limit, fut).await {
        Ok(out) => out,
        Err(_) => panic!("test exceeded its time bound of {limit:?}"),
    }
}

/// Polls `cond` until it holds or `limit` passes; returns whether it held.
///
/// For conditions only observable from outside (a zombie disappearing from
/// `/proc`, a descriptor closing), where there is no event to wait on. Never
/// a stand-in for waiting on something brood does signal.
pub async fn eventually(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(POLL_EVERY).await;
    }
}

/// [`eventually`] for code outside a runtime: sleeps the calling thread
/// between looks.
pub fn eventually_blocking(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(POLL_EVERY);
    }
}

/// Defines an async test whose body fails the test if it runs longer than
/// [`TEST_LIMIT`] (or the bound given with `#[time_limit(..)]`).
///
/// The test's own attributes, its `#[tokio::test(..)]` first of all, are
/// kept as written; the macro only wraps the body in [`bounded`]. Invoke it
/// with parentheses so that rustfmt formats the test inside.
///
/// ```
/// use std::time::Duration;
///
/// brood_testkit::bounded_test!(
///     /// Runs within the default bound.
///     #[tokio::test]
///     async fn adds() {
///         assert_eq!(1 + 1, 2);
///     }
/// );
///
/// brood_testkit::bounded_test!(
///     #[time_limit(Duration::from_secs(5))]
///     #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
///     async fn sleeps_briefly() {
///         tokio::time::sleep(Duration::from_millis(1)).await;
///     }
/// );
/// # fn main() {}
/// ```
#[macro_export]
macro_rules! bounded_test {
    ($($test:tt)*) => {
        $crate::__bounded_test!(@attrs [] [$crate::TEST_LIMIT] $($test)*);
    };
}

/// The workings of [`bounded_test!`]: takes the attributes one at a time,
/// keeping all but `#[time_limit(..)]`, then writes the function.
#[doc(hidden)]
#[macro_export]
macro_rules! __bounded_test {
    (@attrs [$($kept:tt)*] [$limit:expr] #[time_limit($new:expr)] $($rest:tt)*) => {
        $crate::__bounded_test!(@attrs [$($kept)*] [$new] $($rest)*);
    };
    (@attrs [$($kept:tt)*] [$limit:expr] #[$attr:meta] $($rest:tt)*) => {
        $crate::__bounded_test!(@attrs [$($kept)* #[$attr]] [$limit] $($rest)*);
    };
    (@attrs [$($kept:tt)*] [$limit:expr] async fn $name:ident() $body:block) => {
        $($kept)*
        async fn $name() {
            $crate::bounded($limit, async $body).await
        }
    };
}
