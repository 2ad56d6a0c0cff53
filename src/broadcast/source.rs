//! Where a fan-out's targets come from: a list the caller gave, or a room read page by page
//! while the workers post — the first page small, so that the first post leaves after one small
//! read, and each next page read while the one before is posted — so memory stays bounded by two
//! pages plus the queue of targets, whatever the room's size.

use std::sync::Arc;

use tokio::sync::mpsc;
use tokio::time::Instant;

use super::sender::Target;
use crate::error::Error;
use crate::ids::{ConnectionId, RoomId};
use crate::store::{ConnectionStore, Page, PageCursor};

/// The targets of one fan-out.
pub(super) enum Source {
    /// An explicit list, already deduplicated, endpoints filled in.
    List(Vec<Target>),
    /// A room: its first page (already read, so that a room that cannot be listed at all is an
    /// error before anything is sent), then the rest read as the workers go.
    Room(RoomSource),
}

pub(super) struct RoomSource {
    pub(super) store: Arc<dyn ConnectionStore>,
    pub(super) room: RoomId,
    pub(super) exclude: Option<ConnectionId>,
    pub(super) default_endpoint: Option<Arc<str>>,
    pub(super) first: Page,
}

/// What a source could not hand to the workers.
#[derive(Default)]
pub(super) struct Listed {
    /// Targets read but never queued (the workers had stopped): not attempted.
    pub(super) unsent: Vec<ConnectionId>,
    /// The first page not read, when the listing stopped early.
    pub(super) unread_from: Option<PageCursor>,
    /// Why reading the next page failed, if it did.
    pub(super) listing_error: Option<Error>,
}

impl Source {
    /// The most targets this source can yield, when known before posting: a list's length, or
    /// a room whose first page is its last. The pool spawns no more workers than this.
    pub(super) fn max_targets(&self) -> Option<usize> {
        match self {
            Self::List(targets) => Some(targets.len()),
            Self::Room(room) if room.first.next.is_none() => Some(room.first.records.len()),
            Self::Room(_) => None,
        }
    }

    /// Queues every target on `tx` until the source is exhausted, the workers stop taking
    /// targets (the channel closes), a 403 stops the run (`stopped`), or `deadline` passes.
    pub(super) async fn feed(
        self,
        tx: mpsc::Sender<Target>,
        deadline: Option<Instant>,
        stopped: impl Fn() -> bool,
    ) -> Listed {
        match self {
            Self::List(targets) => {
                let mut listed = Listed::default();
                queue(&tx, targets.into_iter(), &mut listed).await;
                listed
            }
            Self::Room(room) => room.feed(&tx, deadline, stopped).await,
        }
    }
}

/// Queues `targets` in order; once the channel is closed, the rest go to `unsent`. Returns
/// whether every target was queued.
async fn queue(
    tx: &mpsc::Sender<Target>,
    mut targets: impl Iterator<Item = Target>,
    listed: &mut Listed,
) -> bool {
    while let Some(target) = targets.next() {
        if let Err(mpsc::error::SendError(target)) = tx.send(target).await {
            listed.unsent.push(target.connection_id);
            listed.unsent.extend(targets.map(|t| t.connection_id));
            return false;
        }
    }
    true
}

impl RoomSource {
    async fn feed(
        self,
        tx: &mpsc::Sender<Target>,
        deadline: Option<Instant>,
        stopped: impl Fn() -> bool,
    ) -> Listed {
        let Self {
            store,
            room,
            exclude,
            default_endpoint,
            first,
        } = self;
        let mut listed = Listed::default();
        let mut page = first;
        loop {
            let Page { records, next, .. } = page;
            let targets = records
                .into_iter()
                .filter(|m| Some(&m.connection_id) != exclude.as_ref())
                .map(|m| {
                    let mut target = Target::from(m);
                    if target.endpoint.is_none() {
                        target.endpoint.clone_from(&default_endpoint);
                    }
                    target
                });
            let Some(cursor) = next else {
                queue(tx, targets, &mut listed).await;
                return listed;
            };
            if stopped() || deadline.is_some_and(|d| Instant::now() >= d) {
                queue(tx, targets, &mut listed).await;
                listed.unread_from = Some(cursor);
                return listed;
            }
            // Read ahead: the next page is read while this one's targets are queued (the
            // workers post them meanwhile), so that posting never waits for a read it could
            // have overlapped. One page ahead at most: memory stays bounded by two pages and
            // the queue of targets.
            let read = async {
                let read = store.room_page(&room, Some(&cursor), None);
                match deadline {
                    None => Some(read.await),
                    Some(d) => tokio::time::timeout_at(d, read).await.ok(),
                }
            };
            let (all_queued, result) = tokio::join!(queue(tx, targets, &mut listed), read);
            // As without read-ahead: a page read while posting had to stop is not posted.
            if !all_queued || stopped() || deadline.is_some_and(|d| Instant::now() >= d) {
                listed.unread_from = Some(cursor);
                return listed;
            }
            match result {
                Some(Ok(next)) => page = next,
                // The deadline passed during the read.
                None => {
                    listed.unread_from = Some(cursor);
                    return listed;
                }
                Some(Err(error)) => {
                    tracing::warn!(%room, error = %error.chain(), "reading the next page of the room failed");
                    listed.listing_error = Some(error);
                    listed.unread_from = Some(cursor);
                    return listed;
                }
            }
        }
    }
}
