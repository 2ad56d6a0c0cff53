//! Unit tests of `job.rs`: the wire format, exact sizes, signatures and escaping.

use super::*;

fn target(i: usize) -> Target {
    Target::new(ConnectionId::new(format!("conn{i:06}=")).unwrap())
}

fn pack(payload: &Payload, n: usize, max_targets: usize, max_bytes: usize) -> Vec<Job> {
    let mut packer = JobPacker::new(
        "f1",
        JobContext::default(),
        payload,
        max_targets,
        max_bytes,
        1,
        None,
    )
    .unwrap();
    let mut bodies = Vec::new();
    for i in 0..n {
        if let Some((body, _)) = packer.push(&target(i)).unwrap() {
            bodies.push(body);
        }
    }
    bodies.extend(packer.finish().map(|(b, _)| b));
    for body in &bodies {
        assert!(body.len() <= max_bytes, "{} > {max_bytes}", body.len());
    }
    bodies.iter().map(|b| Job::parse(b).unwrap()).collect()
}

#[test]
fn jobs_hold_at_most_k_targets_each_once_in_order() {
    let payload = Payload::text("hi").unwrap();
    let jobs = pack(&payload, 1_234, 500, 1 << 20);
    assert_eq!(
        jobs.iter().map(Job::len).collect::<Vec<_>>(),
        [500, 500, 234]
    );
    let shards: Vec<u32> = jobs.iter().map(Job::shard).collect();
    assert_eq!(shards, [0, 1, 2]);
    let all: Vec<Target> = jobs.iter().flat_map(Job::targets).collect();
    assert_eq!(all, (0..1_234).map(target).collect::<Vec<_>>());
    assert_eq!(jobs[0].payload().unwrap(), payload);
}

#[test]
fn a_full_payload_fills_the_message_size_exactly_enough() {
    // 128 KB of JSON-heavy text: quotes escape, so base64 is shorter and is chosen.
    let quotes = Payload::text("\"".repeat(Payload::MAX_SIZE)).unwrap();
    let limit = 256 * 1024;
    let jobs = pack(&quotes, 5_000, 500, limit);
    assert!(matches!(jobs[0].payload, JobPayload::Base64(_)));
    assert_eq!(jobs[0].payload().unwrap(), quotes);
    // 131,072 bytes of payload become 174,764 of base64; the rest of 256 KiB holds ~4,000
    // targets of ~22 bytes, so K = 500 still binds.
    assert!(jobs.iter().all(|j| j.len() <= 500));
    // On a small queue the byte limit binds instead.
    let jobs = pack(&quotes, 5_000, 500, 180_000);
    assert!(jobs.len() > 10 && jobs[0].len() < 500, "{}", jobs[0].len());
    assert_eq!(jobs.iter().map(Job::len).sum::<usize>(), 5_000);
    // Plain text stays text.
    let plain = Payload::text("a".repeat(1_000)).unwrap();
    assert!(matches!(
        pack(&plain, 1, 500, limit)[0].payload,
        JobPayload::Text(_)
    ));
}

#[test]
fn a_payload_the_queue_cannot_hold_is_refused_up_front() {
    let big = Payload::text("a".repeat(Payload::MAX_SIZE)).unwrap();
    let err =
        JobPacker::new("f", JobContext::default(), &big, 500, 64 * 1024, 0, None).unwrap_err();
    assert!(matches!(err, Error::Config { .. }), "{err}");
    assert!(err.to_string().contains("MaximumMessageSize"), "{err}");
}

#[test]
fn parse_errors_name_the_field() {
    let payload = Payload::text("x").unwrap();
    let good = pack(&payload, 2, 500, 1 << 20)[0].to_body();
    let cases = [
        ("not json", "`.`"),
        (r#"{"v":1}"#, "`.`"),
        (
            &good.replace("conn000001=", "bad id with spaces"),
            "`targets[1].connectionId`",
        ),
        (&good.replace("\"v\":1", "\"v\":2"), "`v`"),
        (
            &good.replace("\"targetCount\":2", "\"targetCount\":3"),
            "`targetCount`",
        ),
        (
            &good.replace("{\"text\":\"x\"}", "{\"base64\":\"!!\"}"),
            "`payload.base64`",
        ),
    ];
    for (body, field) in cases {
        let err = Job::parse(body).unwrap_err();
        assert!(matches!(err, Error::InvalidBody { .. }), "{err}");
        assert!(err.to_string().contains(field), "{field}: {err}");
    }
}

#[test]
fn bodies_escape_what_sqs_refuses_and_read_back_the_same() {
    let room = RoomId::new("caf\u{FFFE}\u{FFFF}").unwrap();
    let payload = Payload::text("x\u{FFFF}y").unwrap();
    let mut packer = JobPacker::new(
        "f",
        JobContext::room(room.clone()),
        &payload,
        500,
        1 << 20,
        0,
        None,
    )
    .unwrap();
    assert!(packer.push(&target(1)).unwrap().is_none());
    let (body, _) = packer.finish().unwrap();
    assert_eq!(sqs_refused_char(&body), None, "{body}");
    assert!(body.contains("\\ufffe\\uffff"), "{body}");
    let job = Job::parse(&body).unwrap();
    assert_eq!(job.context().room.as_ref(), Some(&room));
    assert_eq!(job.payload().unwrap(), payload);
    assert_eq!(job.to_body(), body);
    assert_eq!(sqs_refused_char("a\u{1}"), Some('\u{1}'));
    assert_eq!(sqs_refused_char("\t\n\r\u{10FFFF}\u{FFFD}"), None);
}

#[test]
fn signed_bodies_verify_and_altered_ones_do_not() {
    let key = JobKey::new([7u8; 32]).unwrap();
    let payload = Payload::text("x\u{FFFE}").unwrap();
    let mut packer = JobPacker::new(
        "f",
        JobContext::room(RoomId::new("r").unwrap()),
        &payload,
        2,
        1 << 20,
        0,
        Some(key.clone()),
    )
    .unwrap();
    let mut bodies = Vec::new();
    for i in 0..3 {
        bodies.extend(packer.push(&target(i)).unwrap().map(|(b, _)| b));
    }
    bodies.extend(packer.finish().map(|(b, _)| b));
    assert_eq!(bodies.len(), 2);
    for body in &bodies {
        Job::parse(body).unwrap().verify(&key).unwrap();
    }
    let other = JobKey::new([8u8; 32]).unwrap();
    assert!(Job::parse(&bodies[0]).unwrap().verify(&other).is_err());
    let forged = bodies[0].replace("\"room\":\"r\"", "\"room\":\"s\"");
    let err = Job::parse(&forged).unwrap().verify(&key).unwrap_err();
    assert!(err.to_string().contains("`sig`"), "{err}");
    let unsigned = Job::parse(&bodies[0]).unwrap().to_body();
    assert!(Job::parse(&unsigned).unwrap().verify(&key).is_err());
    assert!(JobKey::new([0u8; 31]).is_err());
    assert_eq!(format!("{key:?}"), "JobKey(..)");
}

#[test]
fn the_remainder_is_the_next_generation_of_the_same_shard() {
    let payload = Payload::text("x").unwrap();
    let job = pack(&payload, 3, 500, 1 << 20).remove(0);
    let rest = job.remainder(&[target(2)]);
    assert_eq!(
        (rest.generation(), rest.shard(), rest.len()),
        (1, job.shard(), 1)
    );
    let back = Job::parse(&rest.to_body()).unwrap();
    assert_eq!(back, rest);
    assert_eq!(back.fanout_id(), "f1");
}
