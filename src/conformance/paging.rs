//! Room pages (contract rule 10): ordered by connection id, each connection once, expired
//! records skipped, and stable while the room changes under the reader.

use super::*;
use crate::store::{Page, PageCursor};

/// Every page of `r` from `cursor` on, in order.
async fn read_from(
    store: &dyn ConnectionStore,
    r: &RoomId,
    mut cursor: Option<PageCursor>,
) -> Vec<Page> {
    let mut pages = Vec::new();
    loop {
        let page = store.room_page(r, cursor.as_ref(), None).await.unwrap();
        cursor.clone_from(&page.next);
        pages.push(page);
        if cursor.is_none() {
            return pages;
        }
        assert!(
            pages.len() <= 10_000,
            "room_page never returned a last page (next: None)"
        );
    }
}

/// Joins `members` new connections (ids from `prefix`) to `r` and returns their ids.
async fn fill(
    store: &dyn ConnectionStore,
    prefix: &str,
    r: &RoomId,
    members: usize,
) -> Vec<ConnectionId> {
    let all: Vec<ConnectionId> = (0..members).map(|i| conn(prefix, i)).collect();
    for c in &all {
        store
            .join(&Membership::new(c.clone(), r.clone()))
            .await
            .unwrap();
    }
    all
}

fn listed(pages: &[Page]) -> Vec<ConnectionId> {
    pages
        .iter()
        .flat_map(|p| p.records.iter().map(|m| m.connection_id.clone()))
        .collect()
}

fn assert_strictly_ordered(ids: &[ConnectionId], what: &str) {
    for pair in ids.windows(2) {
        assert!(
            pair[0] < pair[1],
            "{what}: room pages must list connections in increasing id order, each once; got {} then {}",
            pair[0],
            pair[1]
        );
    }
}

/// Reading every page lists each member once, in connection-id order, and the cursor of a
/// page is never behind what it listed.
pub async fn room_pages_cover_the_room_once(store: &dyn ConnectionStore) {
    const MEMBERS: usize = 75;
    let p = unique("pages");
    let r = room(&p, "big");
    let all = fill(store, &p, &r, MEMBERS).await;
    let pages = read_from(store, &r, None).await;
    let ids = listed(&pages);
    assert_strictly_ordered(&ids, "a full reading");
    assert_eq!(ids, sorted(all.clone()), "every member, once");
    for page in &pages {
        assert!(
            page.records.iter().all(|m| m.room == r),
            "records of this room only"
        );
        if let (Some(last), Some(next)) = (page.records.last(), &page.next) {
            assert!(
                &last.connection_id <= next.last_evaluated(),
                "a page's cursor is at or after its last record"
            );
        }
    }
    let empty = room(&p, "empty");
    assert_eq!(
        store.room_page(&empty, None, None).await.unwrap(),
        Page::default(),
        "an empty room is one empty last page"
    );
    store.remove_connections(&all).await.unwrap();
    assert!(listed(&read_from(store, &r, None).await).is_empty());
}

/// Expired records inside a page are skipped; the pages go on past them.
pub async fn expired_records_inside_pages_are_skipped(store: &dyn ConnectionStore) {
    const MEMBERS: usize = 40;
    let p = unique("pages-expired");
    let r = room(&p, "r");
    let now = unix_seconds(store.clock().now());
    let mut live = Vec::new();
    let mut every = Vec::new();
    for i in 0..MEMBERS {
        let c = conn(&p, i);
        // Runs of expired records (3 of every 4), so whole backend pages can be expired.
        let expires = if i % 4 == 0 { now + 3_600 } else { now - 3_600 };
        if i % 4 == 0 {
            live.push(c.clone());
        }
        every.push(c.clone());
        store
            .join(&Membership::new(c, r.clone()).with_expires_at(expires))
            .await
            .unwrap();
    }
    let pages = read_from(store, &r, None).await;
    let ids = listed(&pages);
    assert_strictly_ordered(&ids, "a reading with expired records");
    assert_eq!(ids, sorted(live), "the live members, and only them");
    store.remove_connections(&every).await.unwrap();
}

/// A connection that joins or leaves while a reader is between pages is listed once or not at
/// all, never twice; members that stay are all listed.
pub async fn join_and_leave_during_paging(store: &dyn ConnectionStore) {
    const MEMBERS: usize = 60;
    let p = unique("pages-moving");
    let r = room(&p, "r");
    let all = fill(store, &p, &r, MEMBERS).await;
    let first = store.room_page(&r, None, None).await.unwrap();
    let Some(cursor) = first.next.clone() else {
        // One page holds the room: nothing can change between pages. The suite's own runs use
        // small pages so that the rest of this scenario runs.
        assert_eq!(listed(&[first]), sorted(all.clone()));
        store.remove_connections(&all).await.unwrap();
        return;
    };
    let read: HashSet<ConnectionId> = first
        .records
        .iter()
        .map(|m| m.connection_id.clone())
        .collect();
    // Between pages: one member already listed leaves and comes back (a reconnect with the
    // same id), one not yet listed leaves, and a newcomer joins on each side of the cursor.
    let relisted = first.records[0].connection_id.clone();
    let unread: Vec<&ConnectionId> = all.iter().filter(|c| !read.contains(*c)).collect();
    let left = (*unread.last().unwrap()).clone();
    store.leave(&relisted, &r).await.unwrap();
    store
        .join(&Membership::new(relisted.clone(), r.clone()))
        .await
        .unwrap();
    store.leave(&left, &r).await.unwrap();
    let early = ConnectionId::new(format!("{p}-a-early=")).unwrap();
    let late = ConnectionId::new(format!("{p}-z-late=")).unwrap();
    for c in [&early, &late] {
        store
            .join(&Membership::new(c.clone(), r.clone()))
            .await
            .unwrap();
    }
    let rest = read_from(store, &r, Some(cursor)).await;
    let mut ids: Vec<ConnectionId> = first
        .records
        .iter()
        .map(|m| m.connection_id.clone())
        .collect();
    ids.extend(listed(&rest));
    assert_strictly_ordered(&ids, "a reading while members join and leave");
    assert!(
        !ids.contains(&left),
        "a member that left before its page was read is not listed"
    );
    assert!(
        !ids.contains(&early),
        "a newcomer behind the cursor is not listed"
    );
    assert!(
        ids.contains(&late),
        "a newcomer ahead of the cursor is listed"
    );
    for c in all.iter().filter(|c| **c != left) {
        assert!(ids.contains(c), "member {c}, there all along, is listed");
    }
    let mut everyone = all;
    everyone.extend([early, late]);
    store.remove_connections(&everyone).await.unwrap();
}

/// Rule 12: a page read with a limit holds at most that many records, and reading page after
/// page with it still lists every member once, in order; a limit of 0 reads as 1.
pub async fn room_page_limit_bounds_each_page(store: &dyn ConnectionStore) {
    const MEMBERS: usize = 12;
    let p = unique("pages-limit");
    let r = room(&p, "r");
    let all = fill(store, &p, &r, MEMBERS).await;
    for limit in [5, 1, 0] {
        let mut ids = Vec::new();
        let mut cursor: Option<PageCursor> = None;
        let mut reads = 0;
        loop {
            let page = store
                .room_page(&r, cursor.as_ref(), Some(limit))
                .await
                .unwrap();
            reads += 1;
            assert!(
                page.records.len() <= limit.max(1),
                "rule 12: a page read with limit {limit} returned {} records",
                page.records.len()
            );
            ids.extend(page.records.iter().map(|m| m.connection_id.clone()));
            match page.next {
                Some(next) => cursor = Some(next),
                None => break,
            }
            assert!(
                reads <= 2 * MEMBERS + 2,
                "room_page with limit {limit} never returned a last page"
            );
        }
        assert_strictly_ordered(&ids, "a reading with a limit");
        assert_eq!(
            ids,
            sorted(all.clone()),
            "rule 12: limited pages (limit {limit}) still cover the room once"
        );
    }
    store.remove_connections(&all).await.unwrap();
}
