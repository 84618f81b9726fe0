//! The HTTP port: `/rtc` (WebSocket), `/rtc/validate`, `/rtc/v1*`, Twirp and `GET /`.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router as Routes;
use axum::body::Bytes;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use switchyard_sfu::{Router, RouterConfig};

use crate::hub::{Hub, JoinError, SignalPath};
use crate::settings::Settings;
use crate::shards::Shards;
use crate::signal::{self, Start};
use crate::token::{self, Claims};
use crate::twirp;
use crate::webhook::Webhooks;

#[derive(Clone)]
pub(crate) struct App {
    pub(crate) shards: Arc<Shards>,
    pub(crate) settings: Arc<Settings>,
}

/// A running server.
pub struct Server {
    pub http_addr: SocketAddr,
    pub udp_addr: SocketAddr,
}

/// Binds the HTTP listener and the UDP sockets, starts the media threads and serves HTTP on
/// the current tokio runtime until the process ends.
pub async fn serve(
    settings: Settings,
) -> std::io::Result<(
    Server,
    impl std::future::Future<Output = std::io::Result<()>>,
)> {
    let settings = Arc::new(settings);
    let bind_ip = settings
        .bind
        .first()
        .copied()
        .unwrap_or(IpAddr::from([0, 0, 0, 0]));
    let threads = settings
        .media_threads
        .clamp(1, switchyard_sfu::ShardId::MAX);
    // Every media thread has its own socket on the one UDP port (`SO_REUSEPORT`; the
    // kernel spreads clients over them by address); large buffers absorb a room's bursts
    // (livekit-server warns below 5 MB).
    let mut udp = Vec::with_capacity(threads);
    for _ in 0..threads {
        let port = udp
            .first()
            .map_or(Ok(settings.udp_port), |s: &Arc<std::net::UdpSocket>| {
                s.local_addr().map(|a| a.port())
            })?;
        udp.push(Arc::new(switchyard_netio::bind_udp(
            SocketAddr::new(bind_ip, port),
            switchyard_netio::UdpOptions {
                reuse_port: threads > 1,
                buffer_size: 8 << 20,
                gro: false,
            },
        )?));
    }
    let udp_addr = udp[0].local_addr()?;
    let mut tcp = if settings.tcp_port == 0 {
        None
    } else {
        Some(std::net::TcpListener::bind(SocketAddr::new(
            bind_ip,
            settings.tcp_port,
        ))?)
    };
    let tcp_addr = tcp.as_ref().map(|l| l.local_addr()).transpose()?;
    let advertised = settings.advertised_ips();
    let candidates: Vec<SocketAddr> = advertised
        .iter()
        .filter(|_| settings.udp_candidates)
        .map(|ip| SocketAddr::new(*ip, udp_addr.port()))
        .collect();
    let tcp_candidates: Vec<SocketAddr> = tcp_addr
        .map(|a| {
            advertised
                .iter()
                .map(|ip| SocketAddr::new(*ip, a.port()))
                .collect()
        })
        .unwrap_or_default();
    switchyard_sfu::warm_up(Instant::now());
    let webhooks = settings.webhook.clone().map(Webhooks::start);
    let counters = Arc::<switchyard_telemetry::livekit::SfuCounters>::default();
    let mut hubs = Vec::with_capacity(threads);
    let mut polls = Vec::with_capacity(threads);
    let mut wakers = Vec::with_capacity(threads);
    for (i, socket) in udp.iter().enumerate() {
        let router = Router::new(
            RouterConfig {
                candidates: candidates.clone(),
                tcp_candidates: tcp_candidates.clone(),
                ingress_limit: settings.ingress_limit,
                congestion_control: settings.congestion_control,
                shard: switchyard_sfu::ShardId::new(i).expect("thread count clamped"),
            },
            Instant::now(),
        );
        hubs.push(Arc::new(Mutex::new(Hub::new(
            settings.clone(),
            socket.clone(),
            router,
            webhooks.clone(),
            counters.clone(),
        ))));
        let poll = mio::Poll::new()?;
        wakers.push(mio::Waker::new(poll.registry(), crate::media::WAKE)?);
        polls.push(poll);
    }
    let shards = Arc::new(Shards::new(hubs, wakers));
    if let Some(port) = settings.prometheus_port {
        metrics(SocketAddr::new(bind_ip, port), shards.clone(), counters)?;
    }
    for (i, (socket, poll)) in udp.into_iter().zip(polls).enumerate() {
        let shards = shards.clone();
        // ICE-TCP connections are few: the first media thread serves them all.
        let sockets = crate::media::Sockets {
            udp: socket,
            tcp: if i == 0 { tcp.take() } else { None },
        };
        let advertised = advertised.clone();
        std::thread::Builder::new()
            .name(format!("sfu-media-{i}"))
            .spawn(move || crate::media::run(i, shards, poll, sockets, advertised))?;
    }
    if threads > 1 {
        tracing::info!(threads, "media threads, each forwarding whole rooms");
    }
    {
        let shards = shards.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(300));
            loop {
                tick.tick().await;
                for hub in shards.hubs() {
                    hub.lock().expect("hub lock").speakers_tick(Instant::now());
                }
            }
        });
    }
    {
        let shards = shards.clone();
        tokio::spawn(async move {
            // str0m reports stream statistics every 2 s; grade at the same pace.
            let mut tick = tokio::time::interval(Duration::from_secs(2));
            loop {
                tick.tick().await;
                for hub in shards.hubs() {
                    hub.lock().expect("hub lock").quality_tick();
                }
            }
        });
    }
    {
        let shards = shards.clone();
        tokio::spawn(async move {
            // Housekeeping at one-second resolution: empty rooms close, connected
            // participants get their periodic refreshed token.
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tick.tick().await;
                let now = Instant::now();
                for hub in shards.hubs() {
                    let mut h = hub.lock().expect("hub lock");
                    h.reap_rooms(now);
                    h.refresh_tokens(now);
                }
                shards.forget_closed(now);
            }
        });
    }
    let app = App {
        shards,
        settings: settings.clone(),
    };
    let routes = Routes::new()
        .route("/", get(|| async { "OK" }))
        .route("/rtc", get(rtc))
        .route("/rtc/validate", get(validate))
        .route("/rtc/v1", get(rtc_v1))
        .route("/rtc/v1/validate", get(validate_v1))
        .route("/twirp/livekit.RoomService/{method}", post(twirp_call))
        .with_state(app);
    let listener =
        tokio::net::TcpListener::bind(SocketAddr::new(bind_ip, settings.http_port)).await?;
    let http_addr = listener.local_addr()?;
    tracing::info!(%http_addr, %udp_addr, ?tcp_addr, "livekit-compatible SFU listening");
    let fut = async move { axum::serve(listener, routes).await };
    Ok((
        Server {
            http_addr,
            udp_addr,
        },
        fut,
    ))
}

fn token_of<'a>(q: &'a HashMap<String, String>, headers: &'a HeaderMap) -> Option<&'a str> {
    q.get("access_token").map(String::as_str).or_else(|| {
        headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(token::bearer)
    })
}

/// The checks shared by `/rtc` and `/rtc/validate`, with livekit-server's statuses.
fn check(
    app: &App,
    q: &HashMap<String, String>,
    headers: &HeaderMap,
) -> Result<Claims, (StatusCode, String)> {
    let Some(t) = token_of(q, headers) else {
        return Err((StatusCode::UNAUTHORIZED, "no access token".into()));
    };
    let claims = token::verify(t, &app.settings.keys)
        .map_err(|e| (StatusCode::UNAUTHORIZED, e.to_string()))?;
    app.shards
        .for_room(&claims.video.room)
        .lock()
        .expect("hub lock")
        .validate_join(&claims)
        .map_err(|e| {
            let status = match e {
                JoinError::RoomNotFound => StatusCode::NOT_FOUND,
                JoinError::NoRoomJoin => StatusCode::UNAUTHORIZED,
                JoinError::NoIdentity | JoinError::NoSuchParticipant => StatusCode::BAD_REQUEST,
            };
            (status, e.to_string())
        })?;
    Ok(claims)
}

fn cors(mut r: Response) -> Response {
    r.headers_mut().insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        header::HeaderValue::from_static("*"),
    );
    r
}

async fn validate(
    State(app): State<App>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    cors(match check(&app, &q, &headers) {
        Ok(_) => (StatusCode::OK, "success").into_response(),
        Err((s, m)) => (s, m).into_response(),
    })
}

/// `/rtc/v1/validate`: the `/rtc` checks plus a decodable `join_request`.
async fn validate_v1(
    State(app): State<App>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    cors(match check(&app, &q, &headers) {
        Err((s, m)) => (s, m).into_response(),
        Ok(_) => match q
            .get("join_request")
            .map(|j| signal::decode_join_request(j))
        {
            Some(Ok(_)) => (StatusCode::OK, "success").into_response(),
            Some(Err(e)) => (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
            None => (StatusCode::BAD_REQUEST, "join_request required").into_response(),
        },
    })
}

async fn rtc_v1(
    State(app): State<App>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let Ok(ws) = ws else {
        return StatusCode::NOT_FOUND.into_response();
    };
    upgrade(app, q, headers, ws, "/rtc/v1")
}

async fn rtc(
    State(app): State<App>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let Ok(ws) = ws else {
        return StatusCode::NOT_FOUND.into_response();
    };
    upgrade(app, q, headers, ws, "/rtc")
}

/// `prometheus.port`: livekit-server's metrics on `/metrics`, plus `/`, `/healthz` and
/// `/readyz`, served from a thread of their own.
fn metrics(
    addr: SocketAddr,
    shards: Arc<Shards>,
    counters: Arc<switchyard_telemetry::livekit::SfuCounters>,
) -> std::io::Result<()> {
    use switchyard_telemetry::http::{Endpoint, Health};
    use switchyard_telemetry::livekit::LiveKitCollector;
    let listener = std::net::TcpListener::bind(addr)?;
    let mut registry = switchyard_telemetry::Registry::default();
    registry.register_collector(Box::new(LiveKitCollector::new(counters, move || {
        shards.gauges()
    })));
    let health = Arc::new(Health::default());
    health.set_ready(true);
    tracing::info!(%addr, "prometheus metrics endpoint");
    switchyard_telemetry::http::serve(
        listener,
        Endpoint {
            metrics_path: "/metrics".into(),
            registry,
            health,
        },
    )?;
    Ok(())
}

/// Validates and upgrades a signalling request. `/rtc/v1` needs a `join_request`; `/rtc`
/// with one (the Go SDK's single-PC mode) is served the same way.
fn upgrade(
    app: App,
    q: HashMap<String, String>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
    path: &'static str,
) -> Response {
    let claims = match check(&app, &q, &headers) {
        Ok(c) => c,
        Err((s, m)) => {
            tracing::info!(status = %s, "signalling refused: {m}");
            return (s, m).into_response();
        }
    };
    let join_request = match q
        .get("join_request")
        .map(|j| signal::decode_join_request(j))
    {
        Some(Ok(j)) => Some(j),
        Some(Err(e)) => return (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
        None if path == "/rtc/v1" => {
            return (StatusCode::BAD_REQUEST, "join_request required").into_response();
        }
        None => None,
    };
    let (start, mode) = match join_request {
        Some(j) => (Start::JoinV1(Box::new(j)), SignalPath::V1),
        None => match (q.get("reconnect").map(String::as_str), q.get("sid")) {
            (Some("1" | "true"), Some(sid)) if !sid.is_empty() => {
                (Start::Resume { sid: sid.clone() }, SignalPath::V0)
            }
            _ => {
                // livekit-client sends `auto_subscribe=1` or `0`; the Go SDK `true`/`false`.
                let auto_subscribe = !matches!(
                    q.get("auto_subscribe").map(String::as_str),
                    Some("0" | "false")
                );
                (Start::Join { auto_subscribe }, SignalPath::V0)
            }
        },
    };
    tracing::info!(
        path,
        room = claims.video.room,
        identity = claims.identity(),
        "signalling session"
    );
    let hub = app.shards.for_room(&claims.video.room).clone();
    ws.max_message_size(signal::MAX_SIGNAL_BYTES)
        .on_upgrade(move |socket| signal::run(socket, hub, claims, start, mode))
}

async fn twirp_call(
    State(app): State<App>,
    Path(method): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    twirp::handle(&app, &method, &headers, &body)
}
