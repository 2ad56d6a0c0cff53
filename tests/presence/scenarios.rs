//! The presence scenarios, each on a fresh store of any backend.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use stateless_ws::broadcast::{Broadcaster, Payload, RecordingSender};
use stateless_ws::presence::{Presence, PresenceConfig, PresenceEvent, PresenceKind};
use stateless_ws::queue::{Dispatched, FanoutPlanner, InMemoryQueue};
use stateless_ws::store::{ConnectionStore, ConnectionStoreExt};
use stateless_ws::{ConnectionId, Membership, RoomId, UserId};

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn id(s: &str) -> ConnectionId {
    ConnectionId::new(s).unwrap()
}

fn room(s: &str) -> RoomId {
    RoomId::new(s).unwrap()
}

/// A record of `conn` (of `user`, when given) in `room`, connected an hour ago.
fn record(conn: &str, user: Option<&str>, r: &str) -> Membership {
    let mut m = Membership::new(id(conn), room(r)).with_connected_at(now() - 3_600);
    if let Some(u) = user {
        m = m.with_user(UserId::new(u).unwrap());
    }
    m
}

struct Fixture {
    store: Arc<dyn ConnectionStore>,
    sender: RecordingSender,
    presence: Presence,
}

impl Fixture {
    fn new(store: Arc<dyn ConnectionStore>) -> Self {
        let sender = RecordingSender::new();
        let broadcaster = Broadcaster::new(Arc::clone(&store), Arc::new(sender.clone()));
        Self {
            presence: Presence::new(broadcaster),
            store,
            sender,
        }
    }

    async fn join(&self, records: &[&Membership]) {
        for r in records {
            self.store.join(r).await.unwrap();
        }
    }

    /// The presence events `conn` received, oldest first.
    fn events(&self, conn: &str) -> Vec<PresenceEvent> {
        self.sender
            .messages(&id(conn))
            .iter()
            .map(|m| serde_json::from_str(m).unwrap())
            .collect()
    }
}

/// (event, [(memberId, connections)]) of each event.
fn summary(events: &[PresenceEvent]) -> Vec<(PresenceKind, Vec<(String, usize)>)> {
    events
        .iter()
        .map(|e| {
            let mut members: Vec<_> = e
                .members
                .iter()
                .map(|m| (m.member_id.clone(), m.connections))
                .collect();
            members.sort();
            (e.event, members)
        })
        .collect()
}

/// A user member: `memberId` `user:<id>`.
fn m(id: &str, n: usize) -> (String, usize) {
    (format!("user:{id}"), n)
}

/// An anonymous connection: `memberId` `conn:<id>`.
fn conn_m(id: &str, n: usize) -> (String, usize) {
    (format!("conn:{id}"), n)
}

pub(crate) async fn two_tabs_are_one_member(store: Arc<dyn ConnectionStore>) {
    let f = Fixture::new(store);
    let bob = record("bob1", Some("bob"), "general");
    let (a1, a2) = (
        record("alice1", Some("alice"), "general"),
        record("alice2", Some("alice"), "general"),
    );
    f.join(&[&bob, &a1]).await;
    let report = f.presence.entered(&a1).await.unwrap();
    assert_eq!(report.announcements.len(), 1);
    assert!(
        f.sender.messages(&id("alice1")).is_empty(),
        "not posted to itself"
    );

    f.join(&[&a2]).await;
    let report = f.presence.entered(&a2).await.unwrap();
    assert!(
        report.announcements.is_empty(),
        "a second tab is not a new member"
    );
    assert_eq!(report.unchanged[0].1.connections, 2);

    let snapshot = f.presence.members(&room("general")).await.unwrap();
    let mut listed = summary(&[snapshot])[0].1.clone();
    listed.sort();
    assert_eq!(listed, [m("alice", 2), m("bob", 1)]);

    let removed = f.store.disconnect(&id("alice1")).await.unwrap();
    let report = f.presence.left(&removed).await.unwrap();
    assert!(report.announcements.is_empty(), "one tab left, alice stays");

    let removed = f.store.disconnect(&id("alice2")).await.unwrap();
    let report = f.presence.left(&removed).await.unwrap();
    assert_eq!(report.announcements.len(), 1);
    assert_eq!(
        summary(&f.events("bob1")),
        [
            (PresenceKind::Joined, vec![m("alice", 1)]),
            (PresenceKind::Left, vec![m("alice", 0)])
        ]
    );
}

pub(crate) async fn two_tabs_joining_at_once_announce_once(store: Arc<dyn ConnectionStore>) {
    let f = Fixture::new(store);
    let bob = record("bob1", Some("bob"), "general");
    // Both written before either counts (the race), same second: the connection id decides.
    let a1 = record("alice1", Some("alice"), "general").with_connected_at(now());
    let a2 = record("alice2", Some("alice"), "general").with_connected_at(now());
    f.join(&[&bob, &a1, &a2]).await;
    let (r1, r2) = tokio::join!(f.presence.entered(&a1), f.presence.entered(&a2));
    let (r1, r2) = (r1.unwrap(), r2.unwrap());
    assert_eq!(r1.announcements.len() + r2.announcements.len(), 1);
    assert_eq!(r1.announcements.len(), 1, "alice1 sorts first");
    assert_eq!(
        summary(&f.events("bob1")),
        [(PresenceKind::Joined, vec![m("alice", 2)])]
    );
    // The other tab hears nothing about its own user joining while the first one is connecting.
    assert!(f.events("alice1").is_empty() || f.events("alice2").is_empty());

    // An earlier `connectedAt` wins over the id.
    let f2 = Fixture::new(Arc::clone(&f.store));
    let c1 = record("carol1", Some("carol"), "general").with_connected_at(now());
    let c2 = record("carol0", Some("carol"), "general").with_connected_at(now() + 5);
    f2.join(&[&c1, &c2]).await;
    assert_eq!(
        f2.presence.entered(&c1).await.unwrap().announcements.len(),
        1
    );
    assert!(
        f2.presence
            .entered(&c2)
            .await
            .unwrap()
            .announcements
            .is_empty()
    );
}

pub(crate) async fn two_tabs_leaving_at_once_never_miss_left(store: Arc<dyn ConnectionStore>) {
    let f = Fixture::new(store);
    let bob = record("bob1", Some("bob"), "general");
    let a1 = record("alice1", Some("alice"), "general");
    let a2 = record("alice2", Some("alice"), "general");
    f.join(&[&bob, &a1, &a2]).await;
    // Both removed before either counts: each sees no connection left, both announce.
    let removed1 = f.store.disconnect(&id("alice1")).await.unwrap();
    let removed2 = f.store.disconnect(&id("alice2")).await.unwrap();
    let (r1, r2) = tokio::join!(f.presence.left(&removed1), f.presence.left(&removed2));
    assert_eq!(
        r1.unwrap().announcements.len() + r2.unwrap().announcements.len(),
        2
    );
    let events = summary(&f.events("bob1"));
    assert_eq!(events.len(), 2, "at least once: announced twice here");
    assert!(
        events
            .iter()
            .all(|e| *e == (PresenceKind::Left, vec![m("alice", 0)]))
    );
}

pub(crate) async fn gone_cleanup_departures_are_batched_per_room(store: Arc<dyn ConnectionStore>) {
    let f = Fixture::new(store);
    // general: alice, bob, carol (gone), dave (two tabs, both gone), anonymous `anon` (gone).
    // games: carol (gone) and erin.
    let records = [
        record("alice1", Some("alice"), "general"),
        record("bob1", Some("bob"), "general"),
        record("carol1", Some("carol"), "general"),
        record("dave1", Some("dave"), "general"),
        record("dave2", Some("dave"), "general"),
        record("anon", None, "general"),
        record("carol1", Some("carol"), "games"),
        record("erin1", Some("erin"), "games"),
    ];
    f.join(&records.iter().collect::<Vec<_>>()).await;
    for gone in ["carol1", "dave1", "dave2", "anon"] {
        f.sender.set_gone(&id(gone));
    }
    let broadcaster = Broadcaster::new(Arc::clone(&f.store), Arc::new(f.sender.clone()));
    let report = broadcaster
        .broadcast(
            &room("general"),
            &Payload::text("hello").unwrap(),
            Some(&id("alice1")),
        )
        .await
        .unwrap();
    assert_eq!(report.removed.len(), 5, "{report}");
    assert_eq!(report.removed.len(), 5);
    f.sender.clear();

    let presence = f.presence.departed(&report).await.unwrap();
    assert_eq!(presence.announcements.len(), 2, "one per room");
    let left_general = (
        PresenceKind::Left,
        vec![conn_m("anon", 0), m("carol", 0), m("dave", 0)],
    );
    assert_eq!(
        summary(&f.events("alice1")),
        std::slice::from_ref(&left_general)
    );
    assert_eq!(summary(&f.events("bob1")), [left_general]);
    assert_eq!(
        summary(&f.events("erin1")),
        [(PresenceKind::Left, vec![m("carol", 0)])]
    );
    assert_eq!(
        f.sender.total_delivered(),
        3,
        "one post per remaining member"
    );
}

pub(crate) async fn connecting_clients_are_not_cleaned_up(store: Arc<dyn ConnectionStore>) {
    let f = Fixture::new(store);
    let bob = record("bob1", Some("bob"), "general");
    // carol is in her $connect (record written a moment ago, API Gateway answers 410);
    // zed vanished an hour ago.
    let carol = record("carol1", Some("carol"), "general").with_connected_at(now());
    let zed = record("zed1", Some("zed"), "general");
    let alice = record("alice1", Some("alice"), "general");
    f.join(&[&bob, &carol, &zed, &alice]).await;
    f.sender.set_gone(&id("carol1"));
    f.sender.set_gone(&id("zed1"));

    let report = f.presence.entered(&alice).await.unwrap();
    assert_eq!(report.kept_connecting, [id("carol1")]);
    assert_eq!(report.cleaned.len(), 1);
    assert!(
        f.store
            .membership(&id("carol1"), &room("general"))
            .await
            .unwrap()
            .is_some(),
        "a connecting client keeps its record"
    );
    assert!(
        f.store
            .membership(&id("zed1"), &room("general"))
            .await
            .unwrap()
            .is_none()
    );
    // bob heard alice join, then zed leave (found by the announcement's cleanup).
    assert_eq!(
        summary(&f.events("bob1")),
        [
            (PresenceKind::Joined, vec![m("alice", 1)]),
            (PresenceKind::Left, vec![m("zed", 0)])
        ]
    );
}

pub(crate) async fn max_room_size_turns_announcements_off(store: Arc<dyn ConnectionStore>) {
    let f = Fixture::new(store);
    let mut config = PresenceConfig::default();
    config.max_room_size = Some(3);
    let presence = f.presence.clone().with_config(config);
    let records: Vec<Membership> = (0..5)
        .map(|i| record(&format!("c{i}"), Some(&format!("u{i}")), "big"))
        .collect();
    // A room's size is the connections an announcement goes to: the one entering not counted.
    f.join(&records[..4].iter().collect::<Vec<_>>()).await;
    let report = presence.entered(&records[3]).await.unwrap();
    assert!(
        matches!(report.announcements[0].delivery, Dispatched::InLine(_)),
        "3 others are not above 3: {report:?}"
    );
    assert_eq!(f.sender.total_delivered(), 3);

    f.join(&[&records[4]]).await;
    let report = presence.entered(&records[4]).await.unwrap();
    assert!(
        matches!(
            report.announcements[0].delivery,
            Dispatched::TooLarge { read } if read > 3
        ),
        "4 others are above 3: {report:?}"
    );
    let removed = f.store.disconnect(&id("c0")).await.unwrap();
    presence.left(&removed).await.unwrap();
    assert_eq!(f.sender.total_delivered(), 3, "nothing more was posted");
}

pub(crate) async fn anonymous_connections_are_members_of_their_own(
    store: Arc<dyn ConnectionStore>,
) {
    let f = Fixture::new(store);
    let bob = record("bob1", Some("bob"), "general");
    let anon = record("anon1", None, "general");
    f.join(&[&bob, &anon]).await;
    f.presence.entered(&anon).await.unwrap();
    let removed = f.store.disconnect(&id("anon1")).await.unwrap();
    f.presence.left(&removed).await.unwrap();
    let events = f.events("bob1");
    assert_eq!(
        summary(&events),
        [
            (PresenceKind::Joined, vec![conn_m("anon1", 1)]),
            (PresenceKind::Left, vec![conn_m("anon1", 0)])
        ]
    );
    assert!(events.iter().all(|e| e.members[0].user_id.is_none()));
    let text = &f.sender.messages(&id("bob1"))[0];
    assert!(!text.contains("userId"), "{text}");
}

pub(crate) async fn the_snapshot_lists_each_member_once(store: Arc<dyn ConnectionStore>) {
    let f = Fixture::new(store);
    // 8 connections of 5 members, over several pages (MiniStack's store reads 3 per page).
    let records = [
        record("a1", Some("alice"), "general"),
        record("a2", Some("alice"), "general"),
        record("a3", Some("alice"), "general"),
        record("b1", Some("bob"), "general"),
        record("b2", Some("bob"), "general"),
        record("c1", Some("carol"), "general"),
        record("x1", None, "general"),
        record("y1", None, "general"),
        record("z1", Some("zoe"), "elsewhere"),
    ];
    f.join(&records.iter().collect::<Vec<_>>()).await;
    let snapshot = f.presence.members(&room("general")).await.unwrap();
    assert_eq!(snapshot.event, PresenceKind::Members);
    assert!(!snapshot.truncated);
    let mut listed = summary(&[snapshot])[0].1.clone();
    listed.sort();
    assert_eq!(
        listed,
        [
            conn_m("x1", 1),
            conn_m("y1", 1),
            m("alice", 3),
            m("bob", 2),
            m("carol", 1),
        ]
    );

    let mut config = PresenceConfig::default();
    config.max_listed_members = 2;
    let snapshot = f
        .presence
        .with_config(config)
        .members(&room("general"))
        .await
        .unwrap();
    assert!(snapshot.truncated);
    assert_eq!(snapshot.members.len(), 2);
    let v = serde_json::to_value(&snapshot).unwrap();
    assert_eq!(v["truncated"], true);
}

pub(crate) async fn queued(store: Arc<dyn ConnectionStore>) {
    let f = Fixture::new(store);
    let queue = InMemoryQueue::new();
    let mut config = PresenceConfig::default();
    config.queue_above = Some(2);
    let presence = f
        .presence
        .clone()
        .with_queue(FanoutPlanner::new(
            Arc::clone(&f.store),
            Arc::new(queue.clone()),
        ))
        .with_config(config);
    let records: Vec<Membership> = (0..4)
        .map(|i| record(&format!("c{i}"), Some(&format!("u{i}")), "big"))
        .collect();
    // The one entering is not counted: 2 others are not above 2, 3 are.
    f.join(&records[..3].iter().collect::<Vec<_>>()).await;
    let report = presence.entered(&records[2]).await.unwrap();
    assert!(matches!(
        report.announcements[0].delivery,
        Dispatched::InLine(_)
    ));
    f.join(&[&records[3]]).await;
    let report = presence.entered(&records[3]).await.unwrap();
    let Dispatched::Queued(enqueued) = &report.announcements[0].delivery else {
        panic!("{report:?}");
    };
    assert_eq!(enqueued.targets, 3);
    assert_eq!(queue.len(), 1);
}

/// Issue 17, item 9: a user id equal to an anonymous connection's id names another member.
pub(crate) async fn a_user_and_an_anonymous_connection_with_one_id_are_two_members(
    store: Arc<dyn ConnectionStore>,
) {
    let f = Fixture::new(store);
    let watcher = record("watcher1", Some("watcher"), "general");
    let user = record("user-tab1", Some("abc="), "general");
    let anon = record("abc=", None, "general");
    f.join(&[&watcher, &user, &anon]).await;

    let snapshot = f.presence.members(&room("general")).await.unwrap();
    let mut ids: Vec<String> = snapshot
        .members
        .iter()
        .map(|m| m.member_id.clone())
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(
        ids.len(),
        3,
        "watcher, the user abc= and the connection abc=: {ids:?}"
    );
    let user_member = snapshot
        .members
        .iter()
        .find(|m| m.user_id.is_some() && m.member_id != "user:watcher")
        .map(|m| m.member_id.clone())
        .unwrap();
    assert_eq!(
        snapshot
            .members
            .iter()
            .map(|m| m.connections)
            .sum::<usize>(),
        3,
        "no member merged with another"
    );

    // The anonymous connection leaves: the user abc= is not the one announced as gone.
    let removed = f.store.disconnect(&id("abc=")).await.unwrap();
    f.presence.left(&removed).await.unwrap();
    let events = f.events("watcher1");
    let left = events.last().unwrap();
    assert_eq!(left.event, PresenceKind::Left);
    assert_ne!(left.members[0].member_id, user_member);
    assert_eq!(left.members[0].member_id, "conn:abc=");
    assert_eq!(user_member, "user:abc=");
}
