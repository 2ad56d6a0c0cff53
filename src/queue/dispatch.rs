//! [`RoomDispatch`]: one payload to one room, in-line or through the queue by the room's size.

use std::fmt;

use super::{Enqueued, FanoutPlanner};
use crate::broadcast::{BroadcastReport, Broadcaster, Payload, Target};
use crate::error::Result;
use crate::ids::{ConnectionId, RoomId};

/// How [`RoomDispatch`] sent a payload.
#[derive(Debug)]
#[non_exhaustive]
pub enum Dispatched {
    /// Posted in this call by the broadcaster: its retries, deadline and Gone cleanup (with its
    /// connect grace) included.
    InLine(Box<BroadcastReport>),
    /// Handed to the fan-out queue; its workers deliver.
    Queued(Enqueued),
    /// Not sent: the room has more recipients than the `max` given to
    /// [`send_within`](RoomDispatch::send_within). [`send`](RoomDispatch::send) never answers
    /// this.
    TooLarge {
        /// Recipients counted before reading stopped: `max + 1` (reading stops there: at most
        /// `max + 1` records are read, `max + 2` with the excluded connection); the room may
        /// have more.
        read: usize,
    },
}

/// Sends a payload to a room in this invocation or through the [`FanoutPlanner`], by the room's
/// size — the choice [`Presence`](crate::presence::Presence) and the chat example make for
/// every message; see [choosing in-line or queued](super#choosing-in-line-or-queued).
///
/// **A room's size is the number of its connections other than `exclude`** — the posts a
/// send makes. So with `queue_above = N`, a room of N members plus the excluded sender is
/// sent in-line, and N + 1 members besides the sender are queued; the same count decides
/// [`send_within`](Self::send_within)'s `max`.
///
/// To decide, the room is read page by page only until its size is known to pass the limit
/// (more than `queue_above`, or `max`, recipients seen), never to its end, and each page read
/// asks the store for only the records still needed (the `limit` of
/// [`room_page`](crate::store::ConnectionStore::room_page)): deciding that a room of 10,000 is
/// above 10 reads 11 records (12 when the excluded connection is among them), not a backend
/// page of thousands. A small room is
/// then sent to from the records read — one listing, not two; a large one is handed to the
/// queue, whose planner reads it again as it packs the jobs. `queue_above = 0` (and no `max`)
/// queues every room without reading it; without a queue (and no `max`) nothing needs
/// deciding, and the room goes to the broadcaster's streaming
/// [`broadcast`](Broadcaster::broadcast).
///
/// Cheap to clone. Build one per invocation from that invocation's [`Broadcaster`] (its
/// deadline and default endpoint apply) and planner; give both the same store.
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use stateless_ws::broadcast::{Broadcaster, Payload, RecordingSender};
/// use stateless_ws::queue::{Dispatched, FanoutPlanner, InMemoryQueue, RoomDispatch};
/// use stateless_ws::store::{ConnectionStore, InMemoryStore};
/// use stateless_ws::{ConnectionId, Membership, RoomId};
///
/// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
/// let store = Arc::new(InMemoryStore::new());
/// let sender = RecordingSender::new(); // ApiGatewaySender in production
/// let queue = Arc::new(InMemoryQueue::new()); // SqsQueue in production
/// let dispatch = RoomDispatch::new(Broadcaster::new(store.clone(), Arc::new(sender.clone())))
///     .with_queue(FanoutPlanner::new(store.clone(), queue.clone()), 2);
///
/// let room = RoomId::new("general")?;
/// let me = ConnectionId::new("me=")?;
/// for id in ["me=", "a=", "b="] {
///     store.join(&Membership::new(ConnectionId::new(id)?, room.clone())).await?;
/// }
/// let hi = Payload::text("hi")?;
/// // Two recipients besides the sender: not above 2, posted now.
/// let Dispatched::InLine(report) = dispatch.send(&room, &hi, Some(&me)).await? else { panic!() };
/// assert_eq!(report.delivered_count, 2);
///
/// // A third: above 2, handed to the queue (a worker delivers it).
/// store.join(&Membership::new(ConnectionId::new("c=")?, room.clone())).await?;
/// let Dispatched::Queued(enqueued) = dispatch.send(&room, &hi, Some(&me)).await? else { panic!() };
/// assert_eq!((enqueued.targets, queue.len()), (3, 1));
///
/// // With a maximum (presence's `max_room_size`): above it, nothing is sent.
/// let withheld = dispatch.send_within(&room, &hi, Some(&me), Some(2)).await?;
/// assert!(matches!(withheld, Dispatched::TooLarge { read: 3 }));
/// # Ok::<(), stateless_ws::Error>(()) }).unwrap();
/// ```
#[derive(Clone)]
pub struct RoomDispatch {
    broadcaster: Broadcaster,
    /// The planner and the size above which it is used.
    queue: Option<(FanoutPlanner, usize)>,
}

impl fmt::Debug for RoomDispatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RoomDispatch")
            .field("broadcaster", &self.broadcaster)
            .field("queue", &self.queue.as_ref().map(|(queue, _)| queue))
            .field("queue_above", &self.queue_above())
            .finish()
    }
}

impl RoomDispatch {
    /// Sends every room in-line through `broadcaster` (and reads its store).
    pub fn new(broadcaster: Broadcaster) -> Self {
        Self {
            broadcaster,
            queue: None,
        }
    }

    /// Hands rooms of more than `queue_above` recipients to `queue` (`0`: every
    /// room, without reading it).
    #[must_use]
    pub fn with_queue(mut self, queue: FanoutPlanner, queue_above: usize) -> Self {
        self.queue = Some((queue, queue_above));
        self
    }

    /// The broadcaster of in-line sends.
    pub fn broadcaster(&self) -> &Broadcaster {
        &self.broadcaster
    }

    /// The size above which rooms are queued: `None` without a queue.
    pub fn queue_above(&self) -> Option<usize> {
        self.queue.as_ref().map(|(_, above)| *above)
    }

    /// Sends `payload` to every connection in `room` except `exclude`: through the queue when
    /// they are more than [`queue_above`](Self::queue_above), else in-line. Answers
    /// [`Dispatched::InLine`] or [`Dispatched::Queued`].
    ///
    /// # Errors
    ///
    /// When the room cannot be read to decide — nothing is sent then — or the broadcaster
    /// cannot list its first page; as
    /// [`FanoutPlanner::enqueue_broadcast`] when enqueueing fails. Delivery failures are in the
    /// [`BroadcastReport`].
    pub async fn send(
        &self,
        room: &RoomId,
        payload: &Payload,
        exclude: Option<&ConnectionId>,
    ) -> Result<Dispatched> {
        self.send_within(room, payload, exclude, None).await
    }

    /// As [`send`](Self::send), but a room of more than `max` recipients is not sent to at all:
    /// [`Dispatched::TooLarge`]. Finding out reads the room until more than `max` recipients
    /// are seen, and the records read serve the in-line send, so withholding costs no more
    /// than deciding.
    ///
    /// # Errors
    ///
    /// As [`send`](Self::send).
    pub async fn send_within(
        &self,
        room: &RoomId,
        payload: &Payload,
        exclude: Option<&ConnectionId>,
        max: Option<usize>,
    ) -> Result<Dispatched> {
        let queue_above = self.queue_above();
        // Past this many recipients the outcome is known: stop reading there. A maximum
        // decides alone (above it nothing is sent; at or below it the whole room is known);
        // otherwise the queue's threshold.
        let Some(limit) = max.or(queue_above) else {
            let report = self.broadcaster.broadcast(room, payload, exclude).await?;
            return Ok(Dispatched::InLine(Box::new(report)));
        };
        if max.is_none()
            && let Some((queue, 0)) = &self.queue
        {
            return self.enqueue(queue, room, payload, exclude).await;
        }
        let mut recipients: Vec<Target> = Vec::new();
        let mut excluded_seen = exclude.is_none();
        let mut cursor = None;
        loop {
            // Read only what can still matter: the recipients up to `limit + 1`, and the
            // excluded connection while it may still show up.
            let wanted = limit + 1 - recipients.len() + usize::from(!excluded_seen);
            let page = self
                .broadcaster
                .store()
                .room_page(room, cursor.as_ref(), Some(wanted))
                .await?;
            for record in &page.records {
                if Some(&record.connection_id) == exclude {
                    excluded_seen = true;
                } else {
                    recipients.push(Target::from(record));
                }
            }
            if recipients.len() > limit {
                break;
            }
            match page.next {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        let size = recipients.len();
        if max.is_some_and(|max| size > max) {
            tracing::debug!(%room, read = size, ?max, "room too large: not sent");
            return Ok(Dispatched::TooLarge { read: size });
        }
        if let Some((queue, above)) = &self.queue
            && size > *above
        {
            drop(recipients);
            return self.enqueue(queue, room, payload, exclude).await;
        }
        let report = self.broadcaster.send_to(recipients, payload).await;
        Ok(Dispatched::InLine(Box::new(report)))
    }

    async fn enqueue(
        &self,
        queue: &FanoutPlanner,
        room: &RoomId,
        payload: &Payload,
        exclude: Option<&ConnectionId>,
    ) -> Result<Dispatched> {
        let enqueued = queue.enqueue_broadcast(room, payload, exclude).await?;
        Ok(Dispatched::Queued(enqueued))
    }
}
