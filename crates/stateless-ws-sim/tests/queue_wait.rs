//! Found by the simulator: `InMemoryQueue::wait_until_empty` livelocks on the paused clock once
//! a received message's visibility timeout has passed and no consumer calls `receive` (the
//! event source mapping was at its concurrency limit). `next_visibility` then returns an
//! instant in the past — only `receive` moves expired messages back — so `timeout_at` is ready
//! at once and the loop never lets the runtime go idle: virtual time stops, and on a real clock
//! the loop spins a core until someone receives. The simulator waits with its own loop instead
//! (`scenario.rs`). Run with `--ignored` once the library is fixed; it fails (after 10 s) today.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use stateless_ws::queue::{InMemoryQueue, JobQueue};

#[test]
#[ignore = "InMemoryQueue::wait_until_empty livelocks after an unreceived visibility timeout"]
fn wait_until_empty_lets_time_pass_after_a_visibility_timeout() {
    let (tx, rx) = std::sync::mpsc::channel();
    // A thread of its own: with the bug it never returns.
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap();
        let timed_out = runtime.block_on(async {
            let queue = InMemoryQueue::new().with_visibility_timeout(Duration::from_secs(1));
            queue.send_batch(&["job".to_owned()]).await.unwrap();
            let received = queue.receive(1, Duration::ZERO).await;
            assert_eq!(received.len(), 1);
            // Never deleted, never received again: the queue is not empty, so this must wait
            // out the 5 s timeout in virtual time.
            tokio::time::timeout(Duration::from_secs(5), queue.wait_until_empty())
                .await
                .is_err()
        });
        let _ = tx.send(timed_out);
    });
    assert_eq!(
        rx.recv_timeout(Duration::from_secs(10)),
        Ok(true),
        "wait_until_empty did not let virtual time pass"
    );
}
