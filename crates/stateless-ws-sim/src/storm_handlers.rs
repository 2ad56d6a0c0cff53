//! The reconnect storm's functions ([`crate::storm`]): `$connect`, the message route's
//! `resume`, and `$disconnect` with the cut that invokes it — each the library's real code on an
//! instance's [`SimCore`], posting through a [`StormSender`].

use std::sync::Arc;
use std::time::Duration;

use stateless_ws::history::{Position, Publisher, ResumeLimits};
use stateless_ws::presence::{Presence, PresenceKind};
use stateless_ws::queue::RoomDispatch;
use stateless_ws::store::ConnectionStoreExt as _;
use stateless_ws::{ConnectionId, Membership, Result, RoomId, UserId};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::core::SimCore;
use crate::sender::SimSender;
use crate::storm::{World, old_id};
use crate::storm_attempts::cut_times;
use crate::storm_seams::{PostKind, StormSender};

/// A [`StormSender`] on `core` booking its posts as `kind`, timed from `origin`.
fn sender(world: &World, core: SimCore, kind: PostKind, origin: Instant) -> StormSender {
    StormSender::new(
        SimSender::on_core(Arc::clone(&world.api), core),
        Arc::clone(&world.ledger),
        kind,
        origin,
    )
}

/// API Gateway's side of the cut: at each client's cut, in time order, its old connection
/// closes (posts to it answer 410) and `$disconnect` is invoked — once: a throttled one is not
/// retried and leaves the records stale. Returns when every `$disconnect` has returned. Nothing
/// to do when the scenario takes the old connections as gone.
pub(crate) async fn cut(world: Arc<World>) -> Result<()> {
    if !world.s.disconnect {
        return Ok(());
    }
    let mut order: Vec<(Duration, usize)> = cut_times(&world.s).zip(0..).collect();
    order.sort_unstable();
    let mut running = JoinSet::new();
    for (at, i) in order {
        let at = world.start + at;
        if at > Instant::now() {
            tokio::time::sleep_until(at).await;
        }
        let old = old_id(i)?;
        world.ledger.cut(&old);
        let w = Arc::clone(&world);
        running.spawn(async move {
            let w2 = Arc::clone(&w);
            let outcome = w
                .disconnect_fn
                .invoke(move |core| async move { disconnect(&w2, core, old).await })
                .await;
            if let Some(Err(_)) = outcome {
                w.figures().disconnect_errors += 1;
            }
        });
        while running.try_join_next().is_some() {}
    }
    while running.join_next().await.is_some() {}
    Ok(())
}

/// The `$disconnect` handler: removes the connection's records, then announces `"left"` where
/// the user's last connection in a room is gone.
async fn disconnect(world: &World, core: SimCore, old: ConnectionId) -> Result<()> {
    core.run(world.s.connect_cpu).await;
    let removed = world.shared.disconnect(&old).await?;
    if world.s.presence && !removed.is_empty() {
        let sender = sender(world, core, PostKind::Departure, Instant::now());
        let report = Presence::new(world.broadcaster(sender))
            .left(&removed)
            .await?;
        let mut f = world.figures();
        f.departures += report.announcements.len() as u64;
        f.cleaned += report.cleaned.len() as u64;
    }
    Ok(())
}

/// The `$connect` handler: both joins, then the group room's presence announcement.
pub(crate) async fn connect(
    world: &World,
    core: SimCore,
    me: ConnectionId,
    user: UserId,
    personal: RoomId,
    group: RoomId,
) -> Result<()> {
    core.run(world.s.connect_cpu).await;
    let now = crate::clock::unix_now(&*world.shared);
    let record = |room: RoomId| {
        Membership::new(me.clone(), room)
            .with_user(user.clone())
            .with_connected_at(now)
    };
    let group_record = record(group);
    world.shared.join(&record(personal)).await?;
    world.shared.join(&group_record).await?;
    if world.s.presence {
        let sender = sender(world, core, PostKind::Presence, Instant::now());
        let report = Presence::new(world.broadcaster(sender))
            .entered(&group_record)
            .await?;
        let joined = report
            .announcements
            .iter()
            .filter(|a| a.kind == PresenceKind::Joined)
            .count() as u64;
        let mut f = world.figures();
        f.announcements += joined;
        // A post's 410 removed a cut connection's records: their "left" went out here.
        f.departures += report.announcements.len() as u64 - joined;
        f.kept_connecting += report.kept_connecting.len() as u64;
        f.cleaned += report.cleaned.len() as u64;
    }
    Ok(())
}

/// Resumes both rooms at once, each in its own message-route invocation, asked again after the
/// client's answer timeout while throttled.
pub(crate) async fn resume_rooms(
    world: &Arc<World>,
    me: &ConnectionId,
    personal: &RoomId,
    group: &RoomId,
) {
    tokio::join!(resume(world, me, personal), resume(world, me, group));
}

async fn resume(world: &Arc<World>, me: &ConnectionId, room: &RoomId) {
    let asked = Instant::now();
    loop {
        let w = Arc::clone(world);
        let outcome = world
            .message_fn
            .invoke(|core| async move {
                core.run(w.s.message_cpu).await;
                let Some(membership) = w.shared.membership(me, room).await? else {
                    return Ok(None);
                };
                let sender = sender(&w, core, PostKind::Resume, asked);
                let publisher =
                    Publisher::new(Arc::clone(&w.log), RoomDispatch::new(w.broadcaster(sender)));
                let resumed = publisher
                    .resume(
                        &membership,
                        room,
                        &Position::start(),
                        ResumeLimits::default(),
                    )
                    .await?;
                Ok::<_, stateless_ws::Error>(Some(resumed))
            })
            .await;
        {
            let mut f = world.figures();
            match outcome {
                Some(Ok(Some(resumed))) => {
                    f.resumes += 1;
                    f.log_reads += resumed.pages as u64;
                    f.recovered_messages += resumed.messages as u64;
                    f.resume_latency.record(asked.elapsed());
                    return;
                }
                Some(Ok(None)) | Some(Err(_)) => {
                    f.resume_errors += 1;
                    return;
                }
                None => f.resume_throttled += 1,
            }
        }
        tokio::time::sleep(world.s.backoff.answer_timeout).await;
    }
}
