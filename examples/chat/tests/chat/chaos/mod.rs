//! Issue 19's "done when": nothing is lost across reconnects, under chaos.
//!
//! The chat (in-memory store and log) runs behind the local gateway; N WebSocket clients join one
//! room and follow the history protocol of `stateless_ws::history` (a Rust port of
//! `static/resumable.js`'s `RoomFeed`), while a driver cuts their sockets at random — a close
//! frame or a dropped TCP connection — and a sender publishes M numbered messages. Once the
//! sender is done and every client is back, each one must show offsets 1..=M exactly once, in
//! order, with the right text. Beside that result the tests print what the clients got live:
//! `M − distinct offsets received live` is what a client without the protocol would have missed.
//!
//! The queued test sends every room through an `InMemoryQueue` and kills a worker in the middle
//! of a job (its posts to half the targets done, the rest hanging), four times: the job comes
//! back after the visibility timeout to a healthy worker and is posted again — duplicates the
//! clients must drop.
//!
//! The chaos is drawn from a seeded PRNG: the seed is printed, and `CHAOS_SEED=<n>` replays the
//! same sequence of cuts (which client, how, for how long, when; the interleaving with the
//! server still varies from run to run).

use std::collections::{BTreeSet, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chat::{Chat, ChatConfig, IdentitySource};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use stateless_ws::Result;
use stateless_ws::broadcast::{
    ApiGatewaySender, Broadcaster, ConnectionInfo, ConnectionSender, Payload, Target,
};
use stateless_ws::history::InMemoryLog;
use stateless_ws::lambda::{self, Context};
use stateless_ws::queue::{FanoutPlanner, FanoutWorker, InMemoryQueue, WorkerPool};
use stateless_ws::store::{ConnectionStore, InMemoryStore};
use stateless_ws::{Error, WebSocketEvent};
use stateless_ws_local::{LocalGateway, LocalGatewayConfig, RunningGateway};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, connect_async};

use crate::common;

mod feed;
use feed::*;

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

const ROOM: &str = "chaos";
/// Clients under chaos.
const CLIENTS: usize = 8;
/// Messages published.
const MESSAGES: u64 = 200;
/// The queued sender's pause after each acknowledged message: a queued `send` is answered at
/// once, and the run should last a few seconds of cuts, as the in-line one does (paced by its
/// fan-out, about 40 ms a message in a debug build).
const QUEUED_PACE: Duration = Duration::from_millis(10);
/// How long after an open a client waits for a live message before resuming a second time
/// (the protocol's settle resume; `resumable.js` waits 1.5 s).
const SETTLE: Duration = Duration::from_millis(300);
/// How long every client has, once the sender is done, to be back and caught up.
const CATCH_UP: Duration = Duration::from_secs(15);

/// How the driver cuts a socket, and for how long the client stays away.
#[derive(Debug, Clone, Copy)]
enum Cut {
    /// A close frame, then waiting for the server's.
    Polite(Duration),
    /// The TCP connection dropped, no close frame.
    Abrupt(Duration),
}

async fn send_resume(ws: &mut Socket, (epoch, offset): Ask) {
    let body = json!({"action": "resume", "room": ROOM, "epoch": epoch, "offset": offset});
    // A socket that fails here is ending: the next read says so.
    let _ = ws.send(Message::text(body.to_string())).await;
}

/// Hands a frame to the feed; `Some` is a resume to send.
fn on_frame(feed: &Mutex<Feed>, frame: &Message, heard: &mut bool) -> Option<Ask> {
    let Message::Text(text) = frame else {
        return None;
    };
    let value: Value = serde_json::from_str(text.as_str()).ok()?;
    if value["room"] != ROOM {
        return None;
    }
    let mut feed = lock(feed);
    match value["type"].as_str() {
        Some("room.message") => {
            *heard = true;
            feed.receive(value)
        }
        Some("room.history") => feed.history(&value),
        _ => None,
    }
}

/// One client: connects, resumes, follows the room, and obeys the driver's cuts until `stop`.
async fn run_client(
    url: String,
    feed: Arc<Mutex<Feed>>,
    mut cuts: mpsc::UnboundedReceiver<Cut>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        if *stop.borrow() {
            return;
        }
        let mut ws = match connect_async(url.as_str()).await {
            Ok((ws, _)) => ws,
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let first = {
            let mut feed = lock(&feed);
            feed.online = true;
            feed.stats.connections += 1;
            feed.this_connection.clear();
            feed.resume_request()
        };
        send_resume(&mut ws, first).await;
        let mut settle = Some(tokio::time::Instant::now() + SETTLE);
        let mut heard = false;
        let away = loop {
            tokio::select! {
                frame = ws.next() => match frame {
                    Some(Ok(frame)) => {
                        if let Some(ask) = on_frame(&feed, &frame, &mut heard) {
                            send_resume(&mut ws, ask).await;
                        }
                    }
                    // The server ended it: back soon.
                    _ => break Duration::from_millis(20),
                },
                cut = cuts.recv() => match cut {
                    Some(Cut::Polite(away)) => {
                        lock(&feed).stats.polite += 1;
                        let _ = ws.close(None).await;
                        // What arrives until the server's close frame is still received.
                        let _ = tokio::time::timeout(Duration::from_millis(500), async {
                            while let Some(Ok(frame)) = ws.next().await {
                                if frame.is_close() {
                                    break;
                                }
                                on_frame(&feed, &frame, &mut heard);
                            }
                        })
                        .await;
                        break away;
                    }
                    Some(Cut::Abrupt(away)) => {
                        lock(&feed).stats.abrupt += 1;
                        break away;
                    }
                    None => break Duration::ZERO,
                },
                () = sleep_until(settle), if settle.is_some() => {
                    settle = None;
                    if !heard {
                        let ask = lock(&feed).resume_request();
                        send_resume(&mut ws, ask).await;
                    }
                }
                _ = stop.changed() => {
                    let _ = ws.close(None).await;
                    lock(&feed).online = false;
                    return;
                }
            }
        };
        // Dropping the socket without a close frame (after an abrupt cut, the TCP connection
        // goes with whatever the client had not read).
        drop(ws);
        lock(&feed).online = false;
        tokio::time::sleep(away).await;
    }
}

async fn sleep_until(at: Option<tokio::time::Instant>) {
    if let Some(at) = at {
        tokio::time::sleep_until(at).await;
    }
}

/// The clients and their controls.
struct Clients {
    feeds: Vec<Arc<Mutex<Feed>>>,
    cuts: Vec<mpsc::UnboundedSender<Cut>>,
    stop: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Clients {
    fn spawn(url: &str, n: usize) -> Self {
        let (stop, stopped) = watch::channel(false);
        let mut clients = Clients {
            feeds: Vec::new(),
            cuts: Vec::new(),
            stop,
            tasks: Vec::new(),
        };
        for i in 0..n {
            let feed = Arc::new(Mutex::new(Feed::default()));
            let (cut, cuts) = mpsc::unbounded_channel();
            let url = format!("{url}?room={ROOM}&userId=client{i}");
            clients.tasks.push(tokio::spawn(run_client(
                url,
                Arc::clone(&feed),
                cuts,
                stopped.clone(),
            )));
            clients.feeds.push(feed);
            clients.cuts.push(cut);
        }
        clients
    }

    fn all(&self, what: impl Fn(&Feed) -> bool) -> bool {
        self.feeds.iter().all(|f| what(&lock(f)))
    }

    /// Waits until every client is online and has shown all `MESSAGES`; `false` on timeout.
    async fn wait_caught_up(&self, within: Duration) -> bool {
        let until = Instant::now() + within;
        while Instant::now() < until {
            if self.all(Feed::caught_up) {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        false
    }

    async fn stop(self) -> Vec<Feed> {
        let _ = self.stop.send(true);
        for task in self.tasks {
            let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
        }
        self.feeds
            .iter()
            .map(|f| std::mem::take(&mut *lock(f)))
            .collect()
    }
}

/// Cuts a random online client every 60–250 ms, a close frame or a dropped TCP connection at
/// random, for 10–300 ms, until `done`. Returns how many cuts it ordered.
async fn drive_chaos(clients: &Clients, rng: &mut SplitMix, done: &AtomicBool) -> u64 {
    let mut cuts = 0;
    while !done.load(Ordering::Acquire) {
        tokio::time::sleep(rng.millis(60, 250)).await;
        // Every draw is made whether or not the client is online, so a seed always gives the
        // same sequence of decisions.
        let i = usize::try_from(rng.below(clients.feeds.len() as u64)).unwrap_or(0);
        let polite = rng.below(2) == 0;
        let away = rng.millis(10, 300);
        if !lock(&clients.feeds[i]).online {
            continue;
        }
        let cut = if polite {
            Cut::Polite(away)
        } else {
            Cut::Abrupt(away)
        };
        if clients.cuts[i].send(cut).is_ok() {
            cuts += 1;
        }
    }
    cuts
}

/// Publishes `MESSAGES` numbered messages from a client the chaos leaves alone, one at a time,
/// checking that message `i` was logged at offset `i`.
async fn send_all(url: &str, pace: Duration, progress: &AtomicU64) {
    let mut ws = connect_async(format!("{url}?room={ROOM}&userId=sender"))
        .await
        .unwrap()
        .0;
    for i in 1..=MESSAGES {
        let body = json!({"action": "send", "room": ROOM, "message": format!("m{i}")});
        ws.send(Message::text(body.to_string())).await.unwrap();
        let ack = loop {
            let frame = tokio::time::timeout(Duration::from_secs(10), ws.next())
                .await
                .expect("an answer to send in time")
                .expect("the sender's socket stays open")
                .unwrap();
            if let Message::Text(text) = frame {
                let value: Value = serde_json::from_str(text.as_str()).unwrap();
                if matches!(value["type"].as_str(), Some("sent" | "queued" | "error")) {
                    break value;
                }
            }
        };
        assert!(
            matches!(ack["type"].as_str(), Some("sent" | "queued")),
            "{ack}"
        );
        assert_eq!(ack["offset"], i, "one sender: message {i} is offset {i}");
        progress.store(i, Ordering::Release);
        tokio::time::sleep(pace).await;
    }
    let _ = ws.close(None).await;
}

// ---------------------------------------------------------------------------------------------
// The chat behind the local gateway.

fn chat_config(queued: bool) -> ChatConfig {
    let mut config = ChatConfig::default();
    config.identity = IdentitySource::InsecureQueryString {
        param: "userId".into(),
    };
    // No presence announcements: every cut would cost a post to each member (two, with the
    // reconnect), noise beside the room messages under test.
    config.presence_max_room_size = Some(0);
    if queued {
        config.queue_above = Some(0);
    }
    config
}

async fn serve(chat: Chat) -> RunningGateway {
    let chat = Arc::new(chat);
    let on_event = lambda::service(move |event: WebSocketEvent, context: Context| {
        let chat = Arc::clone(&chat);
        async move { Ok::<_, Error>(chat.handle(&event, lambda::deadline(&context)).await) }
    });
    LocalGateway::new(LocalGatewayConfig::default())
        .default_handler(on_event)
        .bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap()
}

/// What a run left: each client's feed, the cuts made, and how long the clients took to catch
/// up once the sender was done (`None`: not within [`CATCH_UP`]).
struct Run {
    feeds: Vec<Feed>,
    cuts: u64,
    catch_up: Option<Duration>,
}

/// Runs clients, chaos and sender (pausing `pace` after each message) against `gateway`;
/// `during` runs beside them (the queued test's worker killer) and is awaited before the
/// catch-up.
async fn run_chaos<F: std::future::Future<Output = ()>>(
    gateway: &RunningGateway,
    seed: u64,
    pace: Duration,
    during: impl FnOnce(Arc<AtomicU64>) -> F,
) -> Run {
    let url = gateway.ws_url();
    let clients = Clients::spawn(&url, CLIENTS);
    // Everyone is in the room before the first message: "missed" then means missed by a cut.
    let all_online = tokio::time::timeout(Duration::from_secs(10), async {
        while !clients.all(|f| f.online) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert!(all_online.is_ok(), "the clients connect");
    let done = AtomicBool::new(false);
    let progress = Arc::new(AtomicU64::new(0));
    let mut rng = SplitMix(seed);
    let sending = async {
        send_all(&url, pace, &progress).await;
        done.store(true, Ordering::Release);
    };
    let ((), cuts, ()) = tokio::join!(
        sending,
        drive_chaos(&clients, &mut rng, &done),
        during(Arc::clone(&progress))
    );
    let sent = Instant::now();
    let catch_up = clients
        .wait_caught_up(CATCH_UP)
        .await
        .then(|| sent.elapsed());
    Run {
        feeds: clients.stop().await,
        cuts,
        catch_up,
    }
}

/// Prints the figures, then asserts what every client shows.
fn report_and_check(test: &str, run: &Run, took: Duration) {
    let Run {
        feeds,
        cuts,
        catch_up,
    } = run;
    let mut total_missed = 0;
    let mut total = Stats::default();
    say(format_args!(
        "{test}: {CLIENTS} clients, {MESSAGES} messages, {cuts} cuts, {:.1} s; caught up {} after the last message",
        took.as_secs_f64(),
        catch_up.map_or_else(|| "NOT".to_owned(), |d| format!("{} ms", d.as_millis()))
    ));
    say(format_args!(
        "{test}:   client  conns  polite  abrupt   live  missed-live  from-history  dups-dropped  live-repeats  resumes  shown"
    ));
    for (i, feed) in feeds.iter().enumerate() {
        let s = &feed.stats;
        let missed = MESSAGES - s.live_offsets.len() as u64;
        total_missed += missed;
        total.connections += s.connections;
        total.polite += s.polite;
        total.abrupt += s.abrupt;
        total.live += s.live;
        total.from_history += s.from_history;
        total.dropped += s.dropped;
        total.live_repeats += s.live_repeats;
        total.resumes += s.resumes;
        total.reloads += s.reloads;
        say(format_args!(
            "{test}:   {i:>6}  {:>5}  {:>6}  {:>6}  {:>5}  {missed:>11}  {:>12}  {:>12}  {:>12}  {:>7}  {:>5}",
            s.connections,
            s.polite,
            s.abrupt,
            s.live,
            s.from_history,
            s.dropped,
            s.live_repeats,
            s.resumes,
            feed.shown.len()
        ));
    }
    let missed_shown: u64 = feeds
        .iter()
        .map(|f| {
            let shown: BTreeSet<u64> = f
                .shown
                .iter()
                .filter_map(|e| e["offset"].as_u64())
                .collect();
            MESSAGES - (1..=MESSAGES).filter(|o| shown.contains(o)).count() as u64
        })
        .sum();
    say(format_args!(
        "{test}: without recovery {total_missed} of {} deliveries missed ({:.1}%); with the protocol {missed_shown} missed; \
         {} duplicates dropped ({} repeats of a live fan-out); {} resumes, {} from history, {} reloads",
        MESSAGES * CLIENTS as u64,
        100.0 * total_missed as f64 / (MESSAGES * CLIENTS as u64) as f64,
        total.dropped,
        total.live_repeats,
        total.resumes,
        total.from_history,
        total.reloads,
    ));

    assert!(
        total_missed > 0,
        "the chaos made no client miss a live message: the test exercised nothing"
    );
    assert_eq!(total.reloads, 0, "the log keeps everything: no reload");
    for (i, feed) in feeds.iter().enumerate() {
        let shown: Vec<(u64, String)> = feed
            .shown
            .iter()
            .map(|e| {
                (
                    e["offset"].as_u64().unwrap_or(0),
                    e["data"]["message"].as_str().unwrap_or("").to_owned(),
                )
            })
            .collect();
        let expected: Vec<(u64, String)> = (1..=MESSAGES).map(|o| (o, format!("m{o}"))).collect();
        if shown != expected {
            let wrong = shown
                .iter()
                .zip(&expected)
                .position(|(a, b)| a != b)
                .unwrap_or(shown.len().min(expected.len()));
            panic!(
                "{test}: client {i} shows {} messages (last {}), first difference at #{wrong}: \
                 {:?} instead of {:?}; held (first 10) {:?}",
                shown.len(),
                feed.last,
                shown.get(wrong),
                expected.get(wrong),
                feed.held.keys().take(10).collect::<Vec<_>>()
            );
        }
        let ids: HashSet<&str> = feed.shown.iter().filter_map(|e| e["id"].as_str()).collect();
        assert_eq!(
            ids.len(),
            feed.shown.len(),
            "client {i}: one id per message"
        );
    }
    assert!(
        catch_up.is_some(),
        "{test}: not every client was back and caught up within {CATCH_UP:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_line_nothing_is_lost_across_random_reconnects() {
    let test = "chaos in-line";
    let started = Instant::now();
    let seed = seed(test);
    let store: Arc<dyn ConnectionStore> = Arc::new(InMemoryStore::new());
    let sender = ApiGatewaySender::new(&common::local_sdk_config().await);
    let chat = Chat::new(store, Arc::new(sender), chat_config(false))
        .with_log(Arc::new(InMemoryLog::new()));
    let gateway = serve(chat).await;

    let run = run_chaos(&gateway, seed, Duration::ZERO, |_| async {}).await;
    gateway.shutdown().await;
    report_and_check(test, &run, started.elapsed());
}

// ---------------------------------------------------------------------------------------------
// The queued path, with workers killed mid-job.

/// Posts a gated worker lets through before it hangs on the job it latched onto.
const POSTS_BEFORE_HANG: usize = 5;
/// Workers killed in the queued test.
const KILLS: usize = 4;

/// Decides which worker hangs where: armed from an offset, it latches onto the first room
/// message at or past it that one worker posts, lets that worker post it `POSTS_BEFORE_HANG`
/// times, and hangs its further posts of it — a worker stuck mid-job, to be killed.
#[derive(Debug, Default)]
struct GateState {
    armed_from: Option<u64>,
    /// (worker, offset, posts let through, reported hung)
    latched: Option<(usize, u64, usize, bool)>,
}

#[derive(Debug)]
struct Gate {
    state: Mutex<GateState>,
    hung: mpsc::UnboundedSender<(usize, u64)>,
}

impl Gate {
    fn lock(&self) -> MutexGuard<'_, GateState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn arm(&self, from: u64) {
        *self.lock() = GateState {
            armed_from: Some(from),
            latched: None,
        };
    }

    fn disarm(&self) {
        *self.lock() = GateState::default();
    }

    /// Whether worker `worker` may post `payload` now (`false`: it hangs).
    fn passes(&self, worker: usize, payload: &Payload) -> bool {
        let Ok(value) = serde_json::from_str::<Value>(payload.as_str()) else {
            return true;
        };
        let (Some("room.message"), Some(offset)) =
            (value["type"].as_str(), value["offset"].as_u64())
        else {
            return true;
        };
        let mut state = self.lock();
        let Some(from) = state.armed_from else {
            return true;
        };
        match state.latched {
            Some((w, o, passed, reported)) if w == worker && o == offset => {
                if passed < POSTS_BEFORE_HANG {
                    state.latched = Some((w, o, passed + 1, reported));
                    return true;
                }
                if !reported {
                    state.latched = Some((w, o, passed, true));
                    let _ = self.hung.send((worker, offset));
                }
                false
            }
            // The latched worker moved on to another job: the one it latched onto had too few
            // targets to hang (clients away). This one, then.
            Some((w, _, _, false)) if w == worker => {
                state.latched = (offset >= from).then_some((worker, offset, 1, false));
                true
            }
            Some(_) => true,
            None => {
                if offset >= from {
                    state.latched = Some((worker, offset, 1, false));
                }
                true
            }
        }
    }
}

/// The management API as one worker sees it, through the [`Gate`].
#[derive(Debug)]
struct GatedSender {
    inner: Arc<dyn ConnectionSender>,
    gate: Arc<Gate>,
    worker: usize,
}

impl std::fmt::Display for GatedSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "GatedSender({}, worker {})", self.inner, self.worker)
    }
}

#[async_trait]
impl ConnectionSender for GatedSender {
    async fn post(&self, target: &Target, payload: &Payload) -> Result<()> {
        if !self.gate.passes(self.worker, payload) {
            // Stuck mid-job until the test kills this worker.
            std::future::pending::<()>().await;
        }
        self.inner.post(target, payload).await
    }
    async fn get(&self, target: &Target) -> Result<ConnectionInfo> {
        self.inner.get(target).await
    }
    async fn delete(&self, target: &Target) -> Result<()> {
        self.inner.delete(target).await
    }
    fn default_endpoint(&self) -> Option<&str> {
        self.inner.default_endpoint()
    }
}

/// The in-process workers: one pool of one worker each, so that one can be killed alone.
struct Workers {
    queue: InMemoryQueue,
    store: Arc<dyn ConnectionStore>,
    sender: Arc<dyn ConnectionSender>,
    gate: Arc<Gate>,
    endpoint: String,
    pools: Vec<Option<WorkerPool>>,
}

impl Workers {
    fn spawn(&mut self) {
        let worker = self.pools.len();
        let sender = GatedSender {
            inner: Arc::clone(&self.sender),
            gate: Arc::clone(&self.gate),
            worker,
        };
        let broadcaster = Broadcaster::new(Arc::clone(&self.store), Arc::new(sender));
        let fanout = FanoutWorker::new(broadcaster, Arc::new(self.queue.clone()))
            .with_allowed_endpoints([self.endpoint.clone()]);
        self.pools.push(Some(self.queue.spawn_workers(&fanout, 1)));
    }

    /// Kills worker `worker` mid-job, as a crash would: its job is not deleted.
    fn kill(&mut self, worker: usize) {
        if let Some(pool) = self.pools.get_mut(worker).and_then(Option::take) {
            pool.abort();
        }
    }

    async fn shutdown(self) {
        for pool in self.pools.into_iter().flatten() {
            pool.shutdown().await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_nothing_is_lost_when_a_worker_is_killed_mid_job() {
    let test = "chaos queued";
    let started = Instant::now();
    let seed = seed(test);
    let store: Arc<dyn ConnectionStore> = Arc::new(InMemoryStore::new());
    let sender: Arc<dyn ConnectionSender> =
        Arc::new(ApiGatewaySender::new(&common::local_sdk_config().await));
    let queue = InMemoryQueue::new().with_visibility_timeout(Duration::from_secs(1));
    let chat = Chat::new(Arc::clone(&store), Arc::clone(&sender), chat_config(true))
        .with_log(Arc::new(InMemoryLog::new()))
        .with_queue(FanoutPlanner::new(
            Arc::clone(&store),
            Arc::new(queue.clone()),
        ));
    let gateway = serve(chat).await;

    let (hung, mut hangs) = mpsc::unbounded_channel::<(usize, u64)>();
    let gate = Arc::new(Gate {
        state: Mutex::default(),
        hung,
    });
    let workers = Mutex::new(Workers {
        queue: queue.clone(),
        store,
        sender,
        gate: Arc::clone(&gate),
        endpoint: gateway.management_endpoint(),
        pools: Vec::new(),
    });
    {
        let mut w = workers.lock().unwrap();
        w.spawn();
        w.spawn();
    }
    let killed = Mutex::new(Vec::new());

    let (gate_ref, workers_ref, killed_ref) = (&gate, &workers, &killed);
    let killer = move |progress: Arc<AtomicU64>| {
        let (gate, workers, killed) = (gate_ref, workers_ref, killed_ref);
        async move {
            let mut from = MESSAGES / (KILLS as u64 + 1);
            while killed.lock().unwrap().len() < KILLS
                && progress.load(Ordering::Acquire) < MESSAGES
            {
                gate.arm(from);
                match tokio::time::timeout(Duration::from_secs(2), hangs.recv()).await {
                    Ok(Some((worker, offset))) => {
                        let mut w = workers.lock().unwrap();
                        w.kill(worker);
                        gate.disarm();
                        w.spawn();
                        killed.lock().unwrap().push(offset);
                        from = offset + MESSAGES / (KILLS as u64 + 1);
                    }
                    // No hang yet (the gate re-latches by itself; this is a safety net).
                    _ => from = from.max(progress.load(Ordering::Acquire) + 1),
                }
            }
            gate.disarm();
        }
    };
    let run = run_chaos(&gateway, seed, QUEUED_PACE, killer).await;
    // Every job done (the killed ones redelivered) before the figures are read.
    let drained = tokio::time::timeout(Duration::from_secs(10), queue.wait_until_empty()).await;
    let workers = workers.into_inner().unwrap();
    let spawned = workers.pools.len();
    workers.shutdown().await;
    gateway.shutdown().await;
    let killed = killed.into_inner().unwrap();
    say(format_args!(
        "{test}: killed {} workers mid-job (after {POSTS_BEFORE_HANG} posts each) on offsets {killed:?}; \
         {spawned} workers started in all; {} dead letters",
        killed.len(),
        queue.dead_letters().len()
    ));
    report_and_check(test, &run, started.elapsed());
    assert!(drained.is_ok(), "the queue drained");
    assert_eq!(
        killed.len(),
        KILLS,
        "a worker was killed mid-job {KILLS} times"
    );
    let repeats: u64 = run.feeds.iter().map(|f| f.stats.live_repeats).sum();
    assert!(
        repeats > 0,
        "no client received a redelivered job's message twice: the kill exercised nothing"
    );
}
