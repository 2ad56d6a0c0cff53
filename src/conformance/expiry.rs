//! Expiry: the TTL set on join, refreshed, and honoured by every read.

use super::*;

/// Records whose expiry has passed are invisible to every listing, though still removable.
pub async fn expired_records_are_never_returned(store: &dyn ConnectionStore) {
    let p = unique("expired");
    let now = unix_seconds(store.clock().now());
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
    let start = unix_seconds(store.clock().now());
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

/// Rule 11: a join without `connected_at` is stamped with the store's clock; one with it keeps
/// it.
pub async fn join_stamps_connected_at_from_the_clock(store: &dyn ConnectionStore) {
    let p = unique("stamp");
    let (fresh, old) = (conn(&p, 1), conn(&p, 2));
    let r = room(&p, "r");
    let before = unix_seconds(store.clock().now());
    store
        .join(&Membership::new(fresh.clone(), r.clone()))
        .await
        .unwrap();
    let after = unix_seconds(store.clock().now());
    store
        .join(&Membership::new(old.clone(), r.clone()).with_connected_at(1_000))
        .await
        .unwrap();
    let stamped = store.membership(&fresh, &r).await.unwrap().unwrap();
    let at = stamped.connected_at.expect("join must stamp connected_at");
    assert!(
        (before..=after).contains(&at),
        "connected_at {at} must be the store clock's now ({before}..={after})"
    );
    let kept = store.membership(&old, &r).await.unwrap().unwrap();
    assert_eq!(
        kept.connected_at,
        Some(1_000),
        "a given connected_at is kept"
    );
}
