//! One AMQP connection shared by a process's links, reopened after it drops.
//!
//! Each opening is a *generation*. Links remember the generation they were attached on; a
//! link error marks that generation broken, and the next caller opens a new one. Deliveries
//! received on an old generation can no longer be settled (the broker has already put them
//! back), so settling them reports a lost lock instead of completing anything twice.
//!
//! A connection whose peer died (a broker killed, a connection reset) stays silent: the SDK
//! tells no one, and a send on it waits for an answer that never comes. So an operation that
//! goes unanswered for [`SUSPECT_AFTER`] has the connection probed ([`Connection::probe`]):
//! a dead one cannot even begin a session. A connection found broken wakes everything still
//! waiting on it ([`Live::until_broken`]), which then retries on the next generation at once
//! instead of each waiting out [`OPERATION_TIMEOUT`].

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex as SyncMutex, Weak};
use std::time::Duration;

use azure_core::time::OffsetDateTime;
use azure_core_amqp::{
    AmqpClaimsBasedSecurity, AmqpClaimsBasedSecurityApis, AmqpConnection, AmqpConnectionApis,
    AmqpConnectionOptions, AmqpError, AmqpErrorKind, AmqpSession, AmqpSessionApis,
    AmqpSessionOptions,
};
use tokio::sync::{Mutex, watch};
use tracing::{info, warn};

use super::auth::TokenSource;
use super::settings::AmqpSettings;
use crate::queue::QueueError;

/// Longest wait for the peer to open a connection, a session or a link.
pub const OPEN_TIMEOUT: Duration = Duration::from_secs(15);
/// Longest wait for the peer to answer a send or take a settlement. A link whose
/// connection died without a close frame never answers; past this, it counts as lost.
pub const OPERATION_TIMEOUT: Duration = Duration::from_secs(10);
/// How long an operation waits for an answer before the connection is probed. Well above a
/// healthy broker's answer (milliseconds, or a quorum queue's fsync), so a healthy
/// connection is rarely probed, and a probe costs one session begin and end.
pub const SUSPECT_AFTER: Duration = Duration::from_secs(1);
/// Longest wait for the probe's session to begin.
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// The shared connection of one broker.
#[derive(Debug)]
pub struct Connection {
    pub settings: AmqpSettings,
    tokens: Option<TokenSource>,
    live: Mutex<Option<Arc<Live>>>,
    generations: AtomicU64,
}

/// One opened connection with its session and, for Service Bus, its `$cbs` link.
pub struct Live {
    pub generation: u64,
    pub connection: AmqpConnection,
    pub session: AmqpSession,
    cbs: Option<AmqpClaimsBasedSecurity>,
    /// Audience to when its token must be put again.
    authorized: SyncMutex<BTreeMap<String, OffsetDateTime>>,
    broken: AtomicBool,
    /// Tells waiters the moment `broken` is set.
    broken_signal: watch::Sender<bool>,
    /// Set while a probe runs, so a burst of slow operations probes once.
    probing: AtomicBool,
}

impl std::fmt::Debug for Live {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Live")
            .field("generation", &self.generation)
            .field("broken", &self.broken.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl Live {
    pub fn is_broken(&self) -> bool {
        self.broken.load(Ordering::Acquire)
    }

    /// Resolves once this generation is found broken.
    pub async fn until_broken(&self) {
        let mut signal = self.broken_signal.subscribe();
        // Err only when the sender is gone, which it is not while `self` lives.
        let _ = signal.wait_for(|broken| *broken).await;
    }
}

impl Connection {
    pub fn new(settings: AmqpSettings, tokens: Option<TokenSource>) -> Self {
        Self {
            settings,
            tokens,
            live: Mutex::new(None),
            generations: AtomicU64::new(0),
        }
    }

    /// The link address of `queue` (with `suffix` such as `/$management`).
    pub fn address(&self, queue: &str, suffix: &str) -> String {
        format!("{}{queue}{suffix}", self.settings.address_prefix)
    }

    /// The open connection, opening a new generation if there is none or it broke.
    pub async fn live(self: &Arc<Self>) -> Result<Arc<Live>, QueueError> {
        let mut slot = self.live.lock().await;
        if let Some(live) = slot.as_ref().filter(|l| !l.is_broken()) {
            return Ok(live.clone());
        }
        if let Some(old) = slot.take() {
            tokio::spawn(async move { close(old).await });
        }
        let generation = self.generations.fetch_add(1, Ordering::Relaxed) + 1;
        let live = tokio::time::timeout(OPEN_TIMEOUT, self.open(generation))
            .await
            .map_err(|_| unavailable("opening the connection timed out"))??;
        let live = Arc::new(live);
        if self.tokens.is_some() {
            tokio::spawn(refresh_tokens(Arc::downgrade(self), Arc::downgrade(&live)));
        }
        info!(
            generation,
            host = self.settings.audience_host(),
            "AMQP connection open"
        );
        *slot = Some(live.clone());
        Ok(live)
    }

    async fn open(&self, generation: u64) -> Result<Live, QueueError> {
        let connection = AmqpConnection::new();
        let id = format!("fabrikam-{}", uuid::Uuid::new_v4());
        connection
            .open(
                id,
                self.settings.url.clone(),
                Some(AmqpConnectionOptions {
                    idle_timeout: Some(azure_core::time::Duration::seconds(60)),
                    ..AmqpConnectionOptions::default()
                }),
            )
            .await
            .map_err(|e| classify(&e))?;
        let session = AmqpSession::new();
        session
            .begin(&connection, Some(self.session_options()))
            .await
            .map_err(|e| classify(&e))?;
        let cbs = match self.tokens {
            None => None,
            Some(_) => {
                let cbs =
                    AmqpClaimsBasedSecurity::new(session.clone()).map_err(|e| classify(&e))?;
                cbs.attach().await.map_err(|e| classify(&e))?;
                Some(cbs)
            }
        };
        Ok(Live {
            generation,
            connection,
            session,
            cbs,
            authorized: SyncMutex::new(BTreeMap::new()),
            broken: AtomicBool::new(false),
            broken_signal: watch::channel(false).0,
            probing: AtomicBool::new(false),
        })
    }

    /// Marks `generation` broken so the next caller reconnects, and wakes whatever still
    /// waits on it.
    pub fn broke(&self, live: &Live, why: &dyn std::fmt::Display) {
        if !live.broken.swap(true, Ordering::AcqRel) {
            warn!(generation = live.generation, error = %why, "AMQP connection lost; reconnecting on next use");
        }
        live.broken_signal.send_replace(true);
    }

    /// Checks that `live`'s peer still answers by beginning (and ending) a session on it,
    /// and marks it broken when not. Runs once at a time per generation.
    pub async fn probe(&self, live: &Live) {
        if live.is_broken() || live.probing.swap(true, Ordering::AcqRel) {
            return;
        }
        let session = AmqpSession::new();
        match tokio::time::timeout(PROBE_TIMEOUT, session.begin(&live.connection, None)).await {
            Ok(Ok(())) => {
                if let Err(e) = session.end().await {
                    tracing::debug!(error = %e, "ending the probe session");
                }
            }
            Ok(Err(e)) => self.broke(live, &format_args!("probe: {e}")),
            Err(_) => self.broke(live, &"probe: the broker did not begin a session"),
        }
        live.probing.store(false, Ordering::Release);
    }

    /// Waits for `operation` on `live` for at most [`OPERATION_TIMEOUT`], probing the
    /// connection when it is slow; `None` when the connection broke or the time ran out
    /// (then it is marked broken: a link that never answers is lost).
    pub async fn answer<T>(
        self: &Arc<Self>,
        live: &Arc<Live>,
        operation: impl Future<Output = T>,
        what: &str,
    ) -> Option<T> {
        let suspect = {
            let (connection, live) = (self.clone(), live.clone());
            async move {
                tokio::time::sleep(SUSPECT_AFTER).await;
                // Spawned: the probe finishes (and marks the connection) even if the
                // operation answers meanwhile.
                tokio::spawn(async move { connection.probe(&live).await });
                std::future::pending::<()>().await;
            }
        };
        tokio::select! {
            answered = operation => Some(answered),
            () = live.until_broken() => None,
            () = suspect => None,
            () = tokio::time::sleep(OPERATION_TIMEOUT) => {
                self.broke(live, &format_args!("no answer to {what}"));
                None
            }
        }
    }

    /// The runtime's error for `e`, after marking `live` broken when `e` means its link,
    /// session or connection is gone: the one place link failures are classified.
    pub fn failed(&self, live: &Live, e: &AmqpError) -> QueueError {
        if is_link_loss(e) {
            self.broke(live, e);
        }
        classify(e)
    }

    /// Puts a token for `queue` on `$cbs` (Service Bus only) and keeps it fresh while
    /// `live` lasts.
    pub async fn authorize(&self, live: &Live, queue: &str) -> Result<(), QueueError> {
        let Some(tokens) = &self.tokens else {
            return Ok(());
        };
        let audience = format!("sb://{}/{queue}", self.settings.audience_host());
        put_token(tokens, live, &audience).await
    }
}

async fn put_token(tokens: &TokenSource, live: &Live, audience: &str) -> Result<(), QueueError> {
    let Some(cbs) = &live.cbs else {
        return Ok(());
    };
    let token = tokens
        .token(audience)
        .await
        .map_err(|e| unavailable(&e.to_string()))?;
    cbs.authorize_path(
        audience.to_owned(),
        Some(token.token_type.to_owned()),
        &token.token,
        token.expires_on,
    )
    .await
    .map_err(|e| classify(&e))?;
    let refresh = token.refresh_at(OffsetDateTime::now_utc());
    crate::sync::lock(&live.authorized).insert(audience.to_owned(), refresh);
    Ok(())
}

/// Puts fresh tokens before the old ones expire, for as long as the generation lives.
async fn refresh_tokens(connection: Weak<Connection>, live: Weak<Live>) {
    loop {
        tokio::time::sleep(Duration::from_secs(15)).await;
        let (Some(connection), Some(live)) = (connection.upgrade(), live.upgrade()) else {
            return;
        };
        if live.is_broken() {
            return;
        }
        let now = OffsetDateTime::now_utc();
        let due: Vec<String> = crate::sync::lock(&live.authorized)
            .iter()
            .filter(|(_, at)| **at <= now)
            .map(|(a, _)| a.clone())
            .collect();
        for audience in due {
            let Some(tokens) = &connection.tokens else {
                return;
            };
            match put_token(tokens, &live, &audience).await {
                Ok(()) => info!(audience, "Service Bus token refreshed"),
                Err(e) => warn!(audience, error = %e, "Service Bus token refresh failed; retrying"),
            }
        }
    }
}

async fn close(live: Arc<Live>) {
    if let Err(e) = live.connection.close().await {
        tracing::debug!(error = %e, "closing a broken AMQP connection");
    }
}

/// The name of a send outcome other than accepted, for an error message.
pub fn outcome_name(o: &azure_core_amqp::AmqpSendOutcome) -> &'static str {
    use azure_core_amqp::AmqpSendOutcome as O;
    match o {
        O::Accepted => "accepted",
        O::Rejected(_) => "rejected",
        O::Released => "released",
        O::Modified(_) => "modified",
    }
}

/// The transfer windows a session opens with. Service Bus takes the SDK's unbounded
/// windows. A generic broker gets bounded ones: RabbitMQ 3.10's AMQP 1.0 session crashed
/// (`out_of_bound_serial_addition`) when its window arithmetic overflowed u32::MAX, dropping
/// the completions in flight; a window far above what one connection holds unsettled (its
/// receivers' credit) never limits it.
impl Connection {
    pub fn session_options(&self) -> AmqpSessionOptions {
        session_options(&self.settings)
    }
}

fn session_options(settings: &super::AmqpSettings) -> AmqpSessionOptions {
    if settings.is_service_bus() {
        return AmqpSessionOptions::with_unbounded_windows();
    }
    AmqpSessionOptions {
        incoming_window: Some(GENERIC_BROKER_WINDOW),
        outgoing_window: Some(GENERIC_BROKER_WINDOW),
        ..AmqpSessionOptions::default()
    }
}

/// A generic broker's session window, in transfers.
pub const GENERIC_BROKER_WINDOW: u32 = 65_536;

pub fn unavailable(why: &str) -> QueueError {
    QueueError::unavailable(why)
}

/// Whether `e` means the link, session or connection is gone (reconnect), rather than
/// this one operation failing.
fn is_link_loss(e: &AmqpError) -> bool {
    matches!(
        e.kind(),
        AmqpErrorKind::ConnectionDropped(_)
            | AmqpErrorKind::LinkClosedByRemote(_)
            | AmqpErrorKind::SessionClosedByRemote(_)
            | AmqpErrorKind::ConnectionClosedByRemote(_)
            | AmqpErrorKind::LinkDetachedByRemote(_)
            | AmqpErrorKind::SessionDetachedByRemote(_)
            | AmqpErrorKind::ConnectionDetachedByRemote(_)
            | AmqpErrorKind::LinkStateError(_)
            | AmqpErrorKind::FramingError(_)
            | AmqpErrorKind::IdleTimeoutElapsed(_)
            | AmqpErrorKind::TransportImplementationError(_)
    )
}

/// The runtime's classification of an AMQP error: everything that reaches here means the
/// peer cannot serve us right now. `AmqpError` cannot be cloned or moved out of the link
/// that reported it, so its text is the detail.
pub fn classify(e: &AmqpError) -> QueueError {
    QueueError::unavailable(e.to_string())
}
