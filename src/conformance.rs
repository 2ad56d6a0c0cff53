//! The [`ConnectionStore`] conformance suite: one scenario per sentence of the
//! [contract](ConnectionStore#contract), run by every backend.
//!
//! Enabled with the `conformance` feature (and always in this crate's own tests). A third-party
//! backend proves itself by running [`run_all`] from its tests:
//!
//! ```no_run
//! # async fn f() {
//! let store = stateless_ws::store::InMemoryStore::new();
//! stateless_ws::conformance::run_all(&store).await;
//! # }
//! ```
//!
//! **Not covered by semver**: scenarios are added as the contract is sharpened, so a backend
//! that passed may fail a later minor release's suite (as object_store does with its
//! integration tests). Pin the crate's version in the backend's dev-dependencies.
//!
//! Scenarios panic with a message naming the broken rule, like any test assertion. Each uses
//! fresh, unique ids, so they can share one table with each other and with earlier runs. They
//! assume the store's clock is within a few minutes of the system clock, a TTL of at least one
//! minute, and that secondary indexes are read-your-writes (true of the in-memory store and of
//! MiniStack; real DynamoDB GSIs lag slightly, so run this suite against an emulator).

// Scenarios are test assertions: panicking with a message is how they report.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use futures_util::future::join_all;

use crate::ids::{ConnectionId, RoomId, UserId};
use crate::store::Membership;
use crate::store::membership::unix_seconds;
use crate::store::{ConnectionStore, ConnectionStoreExt};

/// Runs every scenario against `store`, one after another.
pub async fn run_all(store: &dyn ConnectionStore) {
    join_leave_disconnect(store).await;
    several_rooms_per_connection(store).await;
    user_listing_has_no_duplicates(store).await;
    repeated_join_overwrites(store).await;
    expired_records_are_never_returned(store).await;
    join_sets_expiry_and_refresh_extends_it(store).await;
    deletes_are_idempotent(store).await;
    large_room_is_listed_whole(store).await;
    batch_removal_of_more_than_25(store).await;
    concurrent_joins_are_all_kept(store).await;
    membership_reads_one_record(store).await;
}

/// A prefix no other scenario run (in this process or an earlier one) has used.
fn unique(tag: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{tag}-{}-{nanos:x}-{n}", std::process::id())
}

fn conn(prefix: &str, i: usize) -> ConnectionId {
    ConnectionId::new(format!("{prefix}-c{i}=")).unwrap()
}

fn room(prefix: &str, name: &str) -> RoomId {
    RoomId::new(format!("{prefix}-{name}")).unwrap()
}

fn ids(records: &[Membership]) -> Vec<ConnectionId> {
    let mut v: Vec<_> = records.iter().map(|c| c.connection_id.clone()).collect();
    v.sort();
    v
}

fn rooms(records: &[Membership]) -> Vec<RoomId> {
    let mut v: Vec<_> = records.iter().map(|c| c.room.clone()).collect();
    v.sort();
    v
}

fn sorted<T: Ord>(mut v: Vec<T>) -> Vec<T> {
    v.sort();
    v
}

/// Join puts a connection in a room, leave takes it out of that room only, disconnect takes it
/// out of all and returns what it removed.
pub async fn join_leave_disconnect(store: &dyn ConnectionStore) {
    let p = unique("jld");
    let (a, b) = (conn(&p, 1), conn(&p, 2));
    let (lobby, games) = (room(&p, "lobby"), room(&p, "games"));
    let user = UserId::new(format!("{p}-user")).unwrap();

    assert!(
        store.room_connections(&lobby).await.unwrap().is_empty(),
        "new room must be empty"
    );
    store
        .join(
            &Membership::new(a.clone(), lobby.clone())
                .with_user(user.clone())
                .with_endpoint("https://x.example/prod"),
        )
        .await
        .unwrap();
    store
        .join(&Membership::new(b.clone(), lobby.clone()))
        .await
        .unwrap();
    store
        .join(&Membership::new(a.clone(), games.clone()))
        .await
        .unwrap();

    let members = store.room_connections(&lobby).await.unwrap();
    assert_eq!(
        ids(&members),
        sorted(vec![a.clone(), b.clone()]),
        "room lists both joiners"
    );
    let a_in_lobby = members.iter().find(|c| c.connection_id == a).unwrap();
    assert_eq!(a_in_lobby.user_id.as_ref(), Some(&user), "user id is kept");
    assert_eq!(a_in_lobby.room, lobby);
    assert_eq!(
        a_in_lobby.endpoint.as_deref(),
        Some("https://x.example/prod"),
        "management endpoint is kept"
    );
    assert!(a_in_lobby.connected_at.is_some(), "connectedAt is kept");
    let b_in_lobby = members.iter().find(|c| c.connection_id == b).unwrap();
    assert_eq!(
        b_in_lobby.user_id, None,
        "a connection without user has none"
    );
    assert_eq!(b_in_lobby.endpoint, None);

    store.leave(&a, &lobby).await.unwrap();
    assert_eq!(
        ids(&store.room_connections(&lobby).await.unwrap()),
        vec![b.clone()],
        "leave removes from that room"
    );
    assert_eq!(
        rooms(&store.connection_rooms(&a).await.unwrap()),
        vec![games.clone()],
        "leave keeps the other rooms"
    );

    let removed = store.disconnect(&a).await.unwrap();
    assert_eq!(
        rooms(&removed),
        vec![games.clone()],
        "disconnect returns what it removed"
    );
    assert!(
        store.connection_rooms(&a).await.unwrap().is_empty(),
        "disconnect removes every room"
    );
    assert!(store.room_connections(&games).await.unwrap().is_empty());
    store.disconnect(&b).await.unwrap();
    assert!(store.room_connections(&lobby).await.unwrap().is_empty());
}

/// A connection may be in many rooms at once; each room lists it, and its own listing names them
/// all.
pub async fn several_rooms_per_connection(store: &dyn ConnectionStore) {
    let p = unique("multi");
    let c = conn(&p, 1);
    let names: Vec<RoomId> = (0..5).map(|i| room(&p, &format!("r{i}"))).collect();
    for r in &names {
        store
            .join(&Membership::new(c.clone(), r.clone()))
            .await
            .unwrap();
    }
    assert_eq!(
        sorted(store.rooms_of(&c).await.unwrap()),
        sorted(names.clone())
    );
    for r in &names {
        assert_eq!(
            ids(&store.room_connections(r).await.unwrap()),
            vec![c.clone()],
            "room {r} lists the connection"
        );
        assert!(store.is_member(&c, r).await.unwrap());
    }
    let removed = store.disconnect(&c).await.unwrap();
    assert_eq!(
        removed.len(),
        names.len(),
        "disconnect removes one record per room"
    );
    for r in &names {
        assert!(store.room_connections(r).await.unwrap().is_empty());
    }
}

/// A user's connections are listed once each, however many rooms each is in.
pub async fn user_listing_has_no_duplicates(store: &dyn ConnectionStore) {
    let p = unique("user");
    let alice = UserId::new(format!("{p}-alice")).unwrap();
    let bob = UserId::new(format!("{p}-bob")).unwrap();
    let (phone, laptop, other) = (conn(&p, 1), conn(&p, 2), conn(&p, 3));
    for r in ["a", "b", "c"] {
        store
            .join(&Membership::new(phone.clone(), room(&p, r)).with_user(alice.clone()))
            .await
            .unwrap();
    }
    store
        .join(&Membership::new(laptop.clone(), room(&p, "a")).with_user(alice.clone()))
        .await
        .unwrap();
    store
        .join(&Membership::new(other.clone(), room(&p, "a")).with_user(bob.clone()))
        .await
        .unwrap();

    let listed = store.user_connections(&alice).await.unwrap();
    assert_eq!(
        ids(&listed),
        sorted(vec![phone.clone(), laptop.clone()]),
        "each connection of the user exactly once"
    );
    assert!(listed.iter().all(|c| c.user_id.as_ref() == Some(&alice)));
    assert_eq!(
        ids(&store.user_connections(&bob).await.unwrap()),
        vec![other.clone()]
    );
    let nobody = UserId::new(format!("{p}-nobody")).unwrap();
    assert!(store.user_connections(&nobody).await.unwrap().is_empty());

    store
        .remove_connections(&[phone, laptop, other])
        .await
        .unwrap();
    assert!(
        store.user_connections(&alice).await.unwrap().is_empty(),
        "removed connections leave the user listing"
    );
}

/// Joining a room again replaces the record: one record per (connection, room), latest values.
pub async fn repeated_join_overwrites(store: &dyn ConnectionStore) {
    let p = unique("overwrite");
    let c = conn(&p, 1);
    let r = room(&p, "r");
    let first = UserId::new(format!("{p}-first")).unwrap();
    let second = UserId::new(format!("{p}-second")).unwrap();
    let far = unix_seconds(SystemTime::now()) + 3_600;
    store
        .join(
            &Membership::new(c.clone(), r.clone())
                .with_user(first.clone())
                .with_expires_at(far),
        )
        .await
        .unwrap();
    store
        .join(
            &Membership::new(c.clone(), r.clone())
                .with_user(second.clone())
                .with_expires_at(far + 60)
                .with_endpoint("https://other.example/dev"),
        )
        .await
        .unwrap();
    let members = store.room_connections(&r).await.unwrap();
    assert_eq!(
        members.len(),
        1,
        "a repeated join must not duplicate the record"
    );
    assert_eq!(
        members[0].user_id.as_ref(),
        Some(&second),
        "the latest join wins"
    );
    assert_eq!(members[0].expires_at, Some(far + 60));
    assert_eq!(
        members[0].endpoint.as_deref(),
        Some("https://other.example/dev")
    );
    assert_eq!(store.connection_rooms(&c).await.unwrap().len(), 1);
    assert!(
        store.user_connections(&first).await.unwrap().is_empty(),
        "the overwritten user no longer lists it"
    );
    assert_eq!(store.user_connections(&second).await.unwrap().len(), 1);
    store.disconnect(&c).await.unwrap();
}

/// Records whose expiry has passed are invisible to every listing, though still removable.
pub async fn expired_records_are_never_returned(store: &dyn ConnectionStore) {
    let p = unique("expired");
    let now = unix_seconds(SystemTime::now());
    let user = UserId::new(format!("{p}-u")).unwrap();
    let (live, dead) = (conn(&p, 1), conn(&p, 2));
    let (r, other) = (room(&p, "r"), room(&p, "other"));
    store
        .join(
            &Membership::new(live.clone(), r.clone())
                .with_user(user.clone())
                .with_expires_at(now + 3_600),
        )
        .await
        .unwrap();
    store
        .join(
            &Membership::new(dead.clone(), r.clone())
                .with_user(user.clone())
                .with_expires_at(now - 3_600),
        )
        .await
        .unwrap();
    store
        .join(
            &Membership::new(dead.clone(), other.clone())
                .with_user(user.clone())
                .with_expires_at(now + 3_600),
        )
        .await
        .unwrap();

    assert_eq!(
        ids(&store.room_connections(&r).await.unwrap()),
        vec![live.clone()],
        "room listing hides expired records"
    );
    assert_eq!(
        ids(&store.user_connections(&user).await.unwrap()),
        sorted(vec![live.clone(), dead.clone()]),
        "user listing keeps a connection with one live record"
    );
    let dead_rooms = store.connection_rooms(&dead).await.unwrap();
    assert_eq!(
        rooms(&dead_rooms),
        vec![other.clone()],
        "connection listing hides expired records"
    );
    assert!(!store.is_member(&dead, &r).await.unwrap());

    let removed = store
        .remove_connections(&[dead.clone(), live.clone()])
        .await
        .unwrap();
    assert_eq!(
        removed.len(),
        3,
        "removal deletes expired records too, and reports them"
    );
    assert!(store.user_connections(&user).await.unwrap().is_empty());
}

/// A join without expiry gets the store's TTL from now; refresh moves every live record of the
/// connection to that horizon and does not revive expired ones.
pub async fn join_sets_expiry_and_refresh_extends_it(store: &dyn ConnectionStore) {
    let p = unique("ttl");
    let c = conn(&p, 1);
    let (r1, r2, r3) = (room(&p, "r1"), room(&p, "r2"), room(&p, "r3"));
    let start = unix_seconds(SystemTime::now());
    store
        .join(&Membership::new(c.clone(), r1.clone()))
        .await
        .unwrap();
    let stamped = store.connection_rooms(&c).await.unwrap()[0]
        .expires_at
        .expect("join must set an expiry");
    assert!(
        stamped >= start + 60,
        "expiry {stamped} must be the store TTL (>= 1 min) after {start}"
    );

    store
        .join(&Membership::new(c.clone(), r2.clone()).with_expires_at(start + 5))
        .await
        .unwrap();
    store
        .join(&Membership::new(c.clone(), r3.clone()).with_expires_at(start.saturating_sub(10)))
        .await
        .unwrap();
    assert_eq!(
        store.refresh(&c).await.unwrap(),
        2,
        "both live records are refreshed, the expired one is not"
    );
    let after = store.connection_rooms(&c).await.unwrap();
    assert_eq!(
        rooms(&after),
        sorted(vec![r1.clone(), r2.clone()]),
        "refresh does not revive expired records"
    );
    for record in &after {
        let t = record.expires_at.unwrap();
        assert!(
            t >= start + 60,
            "refreshed expiry {t} must be the store TTL after {start}"
        );
    }
    let unknown = conn(&p, 99);
    assert_eq!(
        store.refresh(&unknown).await.unwrap(),
        0,
        "refreshing an unknown connection does nothing"
    );
    assert!(
        store.connection_rooms(&unknown).await.unwrap().is_empty(),
        "refresh must not create records"
    );
    store.disconnect(&c).await.unwrap();
}

/// Leaving a room one is not in, removing unknown connections and disconnecting twice succeed.
pub async fn deletes_are_idempotent(store: &dyn ConnectionStore) {
    let p = unique("idem");
    let c = conn(&p, 1);
    let r = room(&p, "r");
    store
        .leave(&c, &r)
        .await
        .expect("leaving an unknown room succeeds");
    assert!(
        store.disconnect(&c).await.unwrap().is_empty(),
        "disconnecting an unknown connection removes nothing"
    );
    store
        .join(&Membership::new(c.clone(), r.clone()))
        .await
        .unwrap();
    store.leave(&c, &r).await.unwrap();
    store.leave(&c, &r).await.expect("leaving twice succeeds");
    store
        .join(&Membership::new(c.clone(), r.clone()))
        .await
        .unwrap();
    assert_eq!(store.disconnect(&c).await.unwrap().len(), 1);
    assert!(
        store.disconnect(&c).await.unwrap().is_empty(),
        "second disconnect removes nothing and succeeds"
    );
    assert!(
        store.remove_connections(&[]).await.unwrap().is_empty(),
        "removing nothing succeeds"
    );
}

/// A room with more members than one backend page is returned whole (DynamoDB backends run this
/// with a small page size).
pub async fn large_room_is_listed_whole(store: &dyn ConnectionStore) {
    const MEMBERS: usize = 75;
    let p = unique("large");
    let r = room(&p, "big");
    let user = UserId::new(format!("{p}-u")).unwrap();
    let all: Vec<ConnectionId> = (0..MEMBERS).map(|i| conn(&p, i)).collect();
    for c in &all {
        store
            .join(&Membership::new(c.clone(), r.clone()).with_user(user.clone()))
            .await
            .unwrap();
    }
    let listed = store.room_connections(&r).await.unwrap();
    assert_eq!(
        listed.len(),
        MEMBERS,
        "every member of the room is listed, each once"
    );
    assert_eq!(ids(&listed), sorted(all.clone()));
    assert_eq!(
        store.user_connections(&user).await.unwrap().len(),
        MEMBERS,
        "user listing is complete too"
    );
    store.remove_connections(&all).await.unwrap();
    assert!(store.room_connections(&r).await.unwrap().is_empty());
}

/// Removing many connections at once deletes every record, across more than one 25-item batch.
pub async fn batch_removal_of_more_than_25(store: &dyn ConnectionStore) {
    const CONNECTIONS: usize = 40;
    let p = unique("batch");
    let (r1, r2) = (room(&p, "r1"), room(&p, "r2"));
    let keep = conn(&p, 1_000);
    let all: Vec<ConnectionId> = (0..CONNECTIONS).map(|i| conn(&p, i)).collect();
    for c in &all {
        store
            .join(&Membership::new(c.clone(), r1.clone()))
            .await
            .unwrap();
        store
            .join(&Membership::new(c.clone(), r2.clone()))
            .await
            .unwrap();
    }
    store
        .join(&Membership::new(keep.clone(), r1.clone()))
        .await
        .unwrap();

    let mut request = all.clone();
    request.push(conn(&p, 2_000)); // unknown: ignored
    request.push(all[0].clone()); // repeated: removed once
    let removed = store.remove_connections(&request).await.unwrap();
    assert_eq!(
        removed.len(),
        CONNECTIONS * 2,
        "every record of every connection is removed once"
    );
    let mut per_conn: HashMap<ConnectionId, HashSet<RoomId>> = HashMap::new();
    for record in removed {
        per_conn
            .entry(record.connection_id)
            .or_default()
            .insert(record.room);
    }
    assert_eq!(per_conn.len(), CONNECTIONS);
    assert!(per_conn.values().all(|rooms| rooms.len() == 2));
    assert_eq!(
        ids(&store.room_connections(&r1).await.unwrap()),
        vec![keep.clone()],
        "connections not named are kept"
    );
    assert!(store.room_connections(&r2).await.unwrap().is_empty());
    store.disconnect(&keep).await.unwrap();
}

/// Joins racing each other are all kept: many connections into one room, and one connection
/// into many rooms.
pub async fn concurrent_joins_are_all_kept(store: &dyn ConnectionStore) {
    const N: usize = 32;
    let p = unique("race");
    let r = room(&p, "shared");
    let one = conn(&p, 10_000);
    let many: Vec<ConnectionId> = (0..N).map(|i| conn(&p, i)).collect();
    let room_names: Vec<RoomId> = (0..N).map(|i| room(&p, &format!("r{i}"))).collect();

    let joins = many
        .iter()
        .map(|c| Membership::new(c.clone(), r.clone()))
        .chain(
            room_names
                .iter()
                .map(|rn| Membership::new(one.clone(), rn.clone())),
        )
        .collect::<Vec<_>>();
    for result in join_all(joins.iter().map(|c| store.join(c))).await {
        result.unwrap();
    }
    assert_eq!(
        ids(&store.room_connections(&r).await.unwrap()),
        sorted(many.clone()),
        "no concurrent join into one room is lost"
    );
    assert_eq!(
        sorted(store.rooms_of(&one).await.unwrap()),
        sorted(room_names.clone()),
        "no concurrent join of one connection is lost"
    );

    let mut all = many;
    all.push(one);
    assert_eq!(store.remove_connections(&all).await.unwrap().len(), 2 * N);
}

/// `membership` returns the (connection, room) record when present and live, and `None` when
/// absent (another room, another connection, after leaving) or expired; `is_member` agrees.
pub async fn membership_reads_one_record(store: &dyn ConnectionStore) {
    let p = unique("membership");
    let now = unix_seconds(SystemTime::now());
    let user = UserId::new(format!("{p}-u")).unwrap();
    let (c, other_conn) = (conn(&p, 1), conn(&p, 2));
    let (r, expired, absent) = (room(&p, "r"), room(&p, "expired"), room(&p, "absent"));
    let record = Membership::new(c.clone(), r.clone())
        .with_user(user.clone())
        .with_connected_at(now)
        .with_expires_at(now + 3_600)
        .with_endpoint("https://abcd1234.execute-api.us-east-1.amazonaws.com/prod");
    store.join(&record).await.unwrap();
    store
        .join(
            &Membership::new(c.clone(), expired.clone())
                .with_user(user.clone())
                .with_expires_at(now - 3_600),
        )
        .await
        .unwrap();
    for i in 0..5 {
        let more = room(&p, &format!("more{i}"));
        store.join(&Membership::new(c.clone(), more)).await.unwrap();
    }

    assert_eq!(
        store.membership(&c, &r).await.unwrap(),
        Some(record.clone()),
        "membership returns the record as joined"
    );
    assert!(store.is_member(&c, &r).await.unwrap());
    assert_eq!(
        store.membership(&c, &expired).await.unwrap(),
        None,
        "membership hides an expired record"
    );
    assert!(!store.is_member(&c, &expired).await.unwrap());
    assert_eq!(
        store.membership(&c, &absent).await.unwrap(),
        None,
        "membership of a room the connection is not in"
    );
    assert_eq!(
        store.membership(&other_conn, &r).await.unwrap(),
        None,
        "membership of an unknown connection"
    );
    store.leave(&c, &r).await.unwrap();
    assert_eq!(
        store.membership(&c, &r).await.unwrap(),
        None,
        "membership after leaving"
    );
    store.disconnect(&c).await.unwrap();
}
