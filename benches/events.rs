//! Parsing throughput of API Gateway WebSocket events, one benchmark per kind, each parsing the
//! fixture from `&[u8]` as Lambda hands it over. Criterion reports events per second.
//!
//! Run with: `cargo bench --all-features --bench events`

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use stateless_ws::WebSocketEvent;

const FIXTURES: [(&str, &[u8]); 4] = [
    ("connect", include_bytes!("../tests/fixtures/connect.json")),
    (
        "disconnect",
        include_bytes!("../tests/fixtures/disconnect.json"),
    ),
    ("message", include_bytes!("../tests/fixtures/message.json")),
    (
        "message_base64",
        include_bytes!("../tests/fixtures/message_base64.json"),
    ),
];

fn parse(c: &mut Criterion) {
    let mut group = c.benchmark_group("parse");
    group.throughput(Throughput::Elements(1));
    for (name, bytes) in FIXTURES {
        // A fixture that stopped parsing would make the numbers meaningless.
        assert!(
            WebSocketEvent::from_slice(bytes).is_ok(),
            "{name} does not parse"
        );
        group.bench_function(name, |b| {
            b.iter(|| WebSocketEvent::from_slice(black_box(bytes)))
        });
    }
    group.finish();
}

criterion_group!(benches, parse);
criterion_main!(benches);
