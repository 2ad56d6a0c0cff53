//! `InMemoryQueue` on the paused clock: waiting for an empty queue lets virtual time pass.
//!
//! Found by the simulator (`crates/stateless-ws-sim`): once a received message's visibility
//! timeout had passed with no consumer calling `receive` (the event source mapping was at its
//! concurrency limit), `wait_until_empty` spun — `next_visibility` was an instant in the past —
//! and virtual time stopped.

use std::time::Duration;

use stateless_ws::queue::{InMemoryQueue, JobQueue};

#[test]
fn wait_until_empty_lets_time_pass_after_a_visibility_timeout() {
    let (tx, rx) = std::sync::mpsc::channel();
    // A thread of its own, so that a regression fails this test instead of hanging the run.
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap();
        let outcome = runtime.block_on(async {
            let queue = InMemoryQueue::new().with_visibility_timeout(Duration::from_secs(1));
            queue.send_batch(&["job".to_owned()]).await.unwrap();
            let received = queue.receive(1, Duration::ZERO).await;
            assert_eq!(received.len(), 1);
            // Never deleted, never received again: the queue is not empty, so this waits out
            // the 5 s timeout in virtual time.
            let waited = tokio::time::timeout(Duration::from_secs(5), queue.wait_until_empty())
                .await
                .is_err();
            // The message came back visible (not lost) and is received again.
            let again = queue.receive(1, Duration::ZERO).await;
            (waited, again.len(), again.first().map(|r| r.receive_count))
        });
        let _ = tx.send(outcome);
    });
    assert_eq!(
        rx.recv_timeout(Duration::from_secs(10)),
        Ok((true, 1, Some(2))),
        "wait_until_empty did not let virtual time pass"
    );
}
