//! The account throttle through the sender: exactly the burst, then exactly the rate.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use stateless_ws::ConnectionId;
use stateless_ws::broadcast::{ConnectionSender, Payload, Target};
use stateless_ws_sim::core::SimCore;
use stateless_ws_sim::sender::{ApiParams, SimApi, SimSender};
use tokio::time::Instant;

#[test]
fn a_flood_gets_the_burst_then_the_rate_exactly() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    runtime.block_on(async {
        let mut params = ApiParams::default();
        params.rate = 1_000;
        params.burst = 500;
        params.gone_fraction = 0.0;
        params.post_cpu = Duration::ZERO;
        let api = SimApi::new(params);
        let payload = Payload::text("x").unwrap();
        let start = Instant::now();
        // 10 posts every millisecond for 1 s, each from its own sender (core), one account.
        let mut tasks = Vec::new();
        for i in 0..10_000u64 {
            let sender = SimSender::on_core(api.clone(), SimCore::new());
            let payload = payload.clone();
            let at = start + Duration::from_millis(i / 10);
            tasks.push(tokio::spawn(async move {
                tokio::time::sleep_until(at).await;
                let target = Target::new(ConnectionId::new(format!("c{i}=")).unwrap());
                sender.post(&target, &payload).await.is_ok()
            }));
        }
        let mut ok = 0;
        for t in tasks {
            ok += u64::from(t.await.unwrap());
        }
        // The burst at once, then one token per millisecond from 1 ms to 999 ms.
        assert_eq!(ok, 500 + 999);
        let stats = api.stats();
        assert_eq!((stats.delivered, stats.throttled), (1_499, 10_000 - 1_499));
    });
}
