//! Waiting for a condition with a deadline, for tests.

use std::time::{Duration, Instant};

/// Poll `check` every 100 ms until it returns `Some`, or fail with `what` and the last
/// observation after `timeout`.
pub fn wait_until<T>(
    what: &str,
    timeout: Duration,
    mut check: impl FnMut() -> Result<T, String>,
) -> Result<T, String> {
    let deadline = Instant::now() + timeout;
    loop {
        match check() {
            Ok(v) => return Ok(v),
            Err(last) if Instant::now() >= deadline => {
                return Err(format!(
                    "timed out after {:.1}s waiting for {what}; last: {last}",
                    timeout.as_secs_f64()
                ))
            }
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}
