//! Listings: complete, without duplicates, and consistent under batches and concurrency.

use super::*;

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
