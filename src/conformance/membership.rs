//! Joining, leaving, disconnecting and reading one membership.

use super::*;

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

/// Joining a room again replaces the record: one record per (connection, room), latest values.
pub async fn repeated_join_overwrites(store: &dyn ConnectionStore) {
    let p = unique("overwrite");
    let c = conn(&p, 1);
    let r = room(&p, "r");
    let first = UserId::new(format!("{p}-first")).unwrap();
    let second = UserId::new(format!("{p}-second")).unwrap();
    let far = unix_seconds(store.clock().now()) + 3_600;
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

/// `membership` returns the (connection, room) record when present and live, and `None` when
/// absent (another room, another connection, after leaving) or expired; `is_member` agrees.
pub async fn membership_reads_one_record(store: &dyn ConnectionStore) {
    let p = unique("membership");
    let now = unix_seconds(store.clock().now());
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
