//! Notifications: the people something waits for hear of it without
//! polling — a new packet or deliverable, a return, an approval, a share.
//!
//! Two channels, each optional (`mdropd serve --notify-webhook`,
//! `--smtp`): a webhook (one JSON POST per event, HMAC-SHA-256-signed with
//! a secret from a 0600 file, retried with backoff) and email over SMTP to
//! the address each principal set for itself (`mdrop notify email`). A
//! notice carries the event, the matter and ids only — never file names,
//! notes or sizes: the server does not know the first two, and the third
//! is nobody else's business.
//!
//! Delivery is best effort and never holds up a request: handlers queue a
//! notice ([`Notifier::send`], which never blocks; a full queue drops it
//! and counts it), and a background task sends it. Notices queued when
//! the server stops are lost; nothing here is evidence (the audit log is).

use std::fmt::Write as _;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use http_body_util::Full;
use lettre::message::{Mailbox, header::ContentType};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport as _, Message, Tokio1Executor};
use serde::Serialize;
use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};
use zeroize::Zeroizing;

/// Notices waiting to be sent before new ones are dropped.
const QUEUE: usize = 1024;
/// Notices being sent at once.
const SENDING: usize = 8;
/// Tries per webhook call and per email (the first and its retries).
pub const TRIES: u32 = 6;
/// Wait before the first retry; doubled after each.
const FIRST_RETRY: Duration = Duration::from_secs(1);
/// The longest a webhook call or an SMTP exchange may take.
const TIMEOUT: Duration = Duration::from_secs(15);

/// One event, for the people it concerns.
#[derive(Debug, Clone, Serialize)]
pub struct Notice {
    /// `packet`, `deliverable`, `returned`, `approved` or `shared`.
    pub event: &'static str,
    /// The matter.
    pub matter: String,
    /// The packet or deliverable.
    pub id: String,
    /// Who it is for.
    pub recipients: Vec<String>,
    /// Unix seconds.
    pub time: u64,
    /// Recipients' email addresses, where they set one.
    #[serde(skip)]
    pub emails: Vec<(String, String)>,
}

impl Notice {
    /// The email's subject and body: the event, the matter and the id.
    fn email(&self) -> (String, String) {
        let what = match self.event {
            "packet" => "A new packet",
            "deliverable" => "A new deliverable",
            "returned" => "Your deliverable was returned",
            "approved" => "Your deliverable was approved",
            "shared" => "A packet shared with you",
            _ => "Something new",
        };
        let subject = format!("[Matterdrop] {what} in matter {}", self.matter);
        // Short lines: mail software wraps long ones, ids included.
        let mut body = format!(
            "{what}.\n\nMatter: {}\nItem:   {}\n\n",
            self.matter, self.id
        );
        let _ = writeln!(body, "See it with:\n  mdrop inbox --matter {}", self.matter);
        body.push_str(
            "\nThis message names the matter and the item only;\n\
             what it holds stays encrypted until your own client\n\
             decrypts it.\n",
        );
        (subject, body)
    }
}

/// Where handlers queue notices.
#[derive(Debug)]
pub struct Notifier {
    tx: Option<mpsc::Sender<Notice>>,
    dropped: AtomicU64,
    emails: bool,
}

impl Notifier {
    /// A notifier that sends nothing (no channel configured).
    pub fn disabled() -> Self {
        Self {
            tx: None,
            dropped: AtomicU64::new(0),
            emails: false,
        }
    }

    /// A notifier and the queue [`run`] sends from; `emails`: whether an
    /// SMTP relay is configured.
    pub fn channel(emails: bool) -> (Self, mpsc::Receiver<Notice>) {
        let (tx, rx) = mpsc::channel(QUEUE);
        (
            Self {
                tx: Some(tx),
                dropped: AtomicU64::new(0),
                emails,
            },
            rx,
        )
    }

    /// Whether email is sent (principals' addresses are then looked up).
    pub fn emails(&self) -> bool {
        self.emails
    }

    /// Whether notices go anywhere (else handlers need not build them).
    pub fn enabled(&self) -> bool {
        self.tx.is_some()
    }

    /// Queues `notice` without waiting; a full queue drops it.
    pub fn send(&self, notice: Notice) {
        let Some(tx) = &self.tx else { return };
        if notice.recipients.is_empty() {
            return;
        }
        if let Err(e) = tx.try_send(notice) {
            let n = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            // One line per hundred, not per notice.
            if n % 100 == 1 {
                match e {
                    mpsc::error::TrySendError::Full(_) => {
                        warn!(dropped = n, "notification queue full: notices dropped");
                    }
                    mpsc::error::TrySendError::Closed(_) => {
                        warn!(dropped = n, "notifications stopped: notices dropped");
                    }
                }
            }
        }
    }
}

/// A webhook endpoint, its signing secret and the client that calls it.
pub struct Webhook {
    url: hyper::Uri,
    secret: Zeroizing<Vec<u8>>,
    client: HttpsClient,
}

impl std::fmt::Debug for Webhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Webhook")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl Webhook {
    /// `url` (`https://`, or `http://` to a loopback host only) signed
    /// with the secret in `secret_file` (its bytes, trailing whitespace
    /// trimmed; at least 16; the file must not be readable by group or
    /// others).
    pub fn new(url: &str, secret_file: &std::path::Path) -> Result<Self, String> {
        // rustls picks no provider by itself when the build enables more
        // than one (the workspace's benchmarks enable ring): the project's.
        matterdrop_common::tls::install_crypto_provider();
        let uri: hyper::Uri = url
            .parse()
            .map_err(|e| format!("--notify-webhook {url:?}: {e}"))?;
        let https = match (uri.scheme_str(), uri.host()) {
            (Some("https"), Some(_)) => true,
            (Some("http"), Some(host)) if is_loopback(host) => false,
            (Some("http"), Some(_)) => {
                return Err(format!(
                    "--notify-webhook {url:?}: http:// sends matters and ids in the clear; only a loopback receiver may use it (use https://)"
                ));
            }
            _ => {
                return Err(format!("--notify-webhook {url:?}: give an https:// URL"));
            }
        };
        let meta = std::fs::metadata(secret_file).map_err(|e| {
            format!(
                "--notify-webhook-secret-file {}: {e}",
                secret_file.display()
            )
        })?;
        {
            use std::os::unix::fs::PermissionsExt as _;
            if meta.permissions().mode() & 0o077 != 0 {
                return Err(format!(
                    "--notify-webhook-secret-file {}: readable by others; chmod 600 it",
                    secret_file.display()
                ));
            }
        }
        let mut secret = Zeroizing::new(std::fs::read(secret_file).map_err(|e| {
            format!(
                "--notify-webhook-secret-file {}: {e}",
                secret_file.display()
            )
        })?);
        while secret.last().is_some_and(u8::is_ascii_whitespace) {
            secret.pop();
        }
        if secret.len() < 16 {
            return Err(format!(
                "--notify-webhook-secret-file {}: the secret must be at least 16 bytes",
                secret_file.display()
            ));
        }
        // The system's roots are loaded now, for an https:// URL only: a
        // server that cannot call its webhook refuses to start.
        let builder = hyper_rustls::HttpsConnectorBuilder::new();
        let connector = if https {
            builder
                .with_native_roots()
                .map_err(|e| format!("--notify-webhook: loading the system's TLS roots: {e}"))?
                .https_only()
                .enable_http1()
                .build()
        } else {
            builder
                .with_tls_config(
                    rustls::ClientConfig::builder_with_provider(
                        matterdrop_common::tls::crypto_provider(),
                    )
                    .with_safe_default_protocol_versions()
                    .map_err(|e| e.to_string())?
                    .with_root_certificates(rustls::RootCertStore::empty())
                    .with_no_client_auth(),
                )
                .https_or_http()
                .enable_http1()
                .build()
        };
        let client =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build(connector);
        Ok(Self {
            url: uri,
            secret,
            client,
        })
    }
}

/// Whether `host` (a URL's) is this machine.
fn is_loopback(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// An SMTP relay and the sender address.
pub struct Smtp {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    describe: String,
}

impl std::fmt::Debug for Smtp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe)
    }
}

impl Smtp {
    /// `url`: `smtp+starttls://HOST[:PORT]` (default 587),
    /// `smtps://HOST[:PORT]` (implicit TLS, default 465), or `smtp://HOST:PORT`
    /// without TLS, which only a loopback host may use. Credentials, if
    /// any, from `MDROPD_SMTP_USER` and `MDROPD_SMTP_PASSWORD`.
    pub fn new(url: &str, from: &str) -> Result<Self, String> {
        // (As for the webhook: lettre's TLS takes the process's provider.)
        matterdrop_common::tls::install_crypto_provider();
        let bad = |why: &str| format!("--smtp {url:?}: {why}");
        let uri: hyper::Uri = url.parse().map_err(|e| bad(&format!("{e}")))?;
        let scheme = uri
            .scheme_str()
            .ok_or_else(|| bad("give smtp+starttls://, smtps:// or smtp://HOST:PORT"))?
            .to_owned();
        if uri.authority().is_some_and(|a| a.as_str().contains('@')) {
            // (Not echoed: it holds a password.)
            return Err(
                "--smtp: no credentials in the URL: set MDROPD_SMTP_USER and MDROPD_SMTP_PASSWORD"
                    .to_owned(),
            );
        }
        let host = uri
            .host()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| bad("no host"))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let port = uri.port_u16();
        let builder = match scheme.as_str() {
            "smtp+starttls" => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&host)
                .map_err(|e| bad(&e.to_string()))?,
            "smtps" => AsyncSmtpTransport::<Tokio1Executor>::relay(&host)
                .map_err(|e| bad(&e.to_string()))?,
            "smtp" => {
                if !is_loopback(&host) {
                    return Err(bad(
                        "smtp:// sends in the clear; only a loopback relay may use it (use smtp+starttls:// or smtps://)",
                    ));
                }
                let Some(port) = port else {
                    return Err(bad("smtp:// needs a port"));
                };
                AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&host).port(port)
            }
            _ => return Err(bad("give smtp+starttls://, smtps:// or smtp://HOST:PORT")),
        };
        let builder = match port {
            Some(p) => builder.port(p),
            None => builder,
        };
        let builder = match (
            std::env::var("MDROPD_SMTP_USER"),
            std::env::var("MDROPD_SMTP_PASSWORD"),
        ) {
            (Ok(user), Ok(pass)) => builder.credentials(Credentials::new(user, pass)),
            (Err(_), Err(_)) => builder,
            _ => {
                return Err(
                    "--smtp: set both MDROPD_SMTP_USER and MDROPD_SMTP_PASSWORD, or neither"
                        .to_owned(),
                );
            }
        };
        let from: Mailbox = from
            .parse()
            .map_err(|e| format!("--smtp-from {from:?}: {e}"))?;
        Ok(Self {
            transport: builder.timeout(Some(TIMEOUT)).build(),
            from,
            describe: format!("{scheme}://{host}"),
        })
    }
}

/// What [`run`] sends with.
#[derive(Debug, Default)]
pub struct Channels {
    /// The webhook, if any.
    pub webhook: Option<Webhook>,
    /// The SMTP relay, if any.
    pub smtp: Option<Smtp>,
}

impl Channels {
    /// Whether any channel is configured.
    pub fn any(&self) -> bool {
        self.webhook.is_some() || self.smtp.is_some()
    }
}

/// Whether a whole email address is acceptable to store for a principal.
pub fn check_address(address: &str) -> Result<(), String> {
    if address.len() > 254
        || address
            .chars()
            .any(|c| c.is_control() || c.is_whitespace() || !c.is_ascii())
    {
        return Err(
            "an email address is at most 254 ASCII characters, without spaces or control characters"
                .into(),
        );
    }
    address
        .parse::<lettre::Address>()
        .map(|_| ())
        .map_err(|e| format!("not an email address: {e}"))
}

type HttpsClient = hyper_util::client::legacy::Client<
    hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
    Full<bytes::Bytes>,
>;

/// Sends what is queued on `rx` until `shutdown`.
pub async fn run(
    mut rx: mpsc::Receiver<Notice>,
    channels: Channels,
    shutdown: CancellationToken,
) -> Result<(), String> {
    let channels = Arc::new(channels);
    let sending = Arc::new(Semaphore::new(SENDING));
    loop {
        let notice = tokio::select! {
            () = shutdown.cancelled() => break,
            n = rx.recv() => match n {
                Some(n) => n,
                None => break,
            },
        };
        let Ok(permit) = sending.clone().acquire_owned().await else {
            break;
        };
        let (channels, shutdown) = (channels.clone(), shutdown.clone());
        tokio::spawn(async move {
            let _permit = permit;
            // The webhook and the emails side by side: a failing one does
            // not hold up the other.
            let hook = async {
                if let Some(hook) = &channels.webhook {
                    post(hook, &notice, &shutdown).await;
                }
            };
            let mails = async {
                if let Some(smtp) = &channels.smtp {
                    for (principal, address) in &notice.emails {
                        mail(smtp, &notice, principal, address, &shutdown).await;
                    }
                }
            };
            tokio::join!(hook, mails);
        });
    }
    Ok(())
}

/// Runs `attempt` up to [`TRIES`] times with doubling waits while it says
/// to retry; gives up early at shutdown.
async fn with_retries<F, Fut>(what: &str, shutdown: &CancellationToken, mut attempt: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<(), (bool, String)>>,
{
    let mut wait = FIRST_RETRY;
    for n in 1..=TRIES {
        match attempt().await {
            Ok(()) => {
                debug!(what, tries = n, "notification sent");
                return true;
            }
            Err((retry, why)) => {
                if !retry || n == TRIES {
                    warn!(what, tries = n, reason = %why, "notification not sent");
                    return false;
                }
                debug!(what, tries = n, reason = %why, "notification failed; retrying");
            }
        }
        tokio::select! {
            () = shutdown.cancelled() => return false,
            () = tokio::time::sleep(wait) => {}
        }
        wait *= 2;
    }
    false
}

/// One webhook call per notice: the JSON body, its HMAC-SHA-256 under the
/// secret (`X-Matterdrop-Signature: sha256=HEX`), the event and a delivery
/// id (`X-Matterdrop-Delivery`, the same on every retry).
async fn post(hook: &Webhook, notice: &Notice, shutdown: &CancellationToken) {
    let client = &hook.client;
    let body = match serde_json::to_vec(notice) {
        Ok(b) => bytes::Bytes::from(b),
        Err(e) => {
            warn!(error = %e, "notification not encoded");
            return;
        }
    };
    let signature = matterdrop_common::sign::hmac_sha256(&hook.secret, &body);
    let delivery: String = {
        let mut id = [0u8; 16];
        rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut id);
        id.iter().map(|b| format!("{b:02x}")).collect()
    };
    let hex: String = signature.iter().map(|b| format!("{b:02x}")).collect();
    let sent = with_retries("webhook", shutdown, || {
        let req = hyper::Request::post(hook.url.clone())
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .header("x-matterdrop-event", notice.event)
            .header("x-matterdrop-delivery", delivery.as_str())
            .header("x-matterdrop-signature", format!("sha256={hex}"))
            .body(Full::new(body.clone()));
        async move {
            let req = req.map_err(|e| (false, e.to_string()))?;
            match tokio::time::timeout(TIMEOUT, client.request(req)).await {
                Err(_) => Err((true, "timed out".to_owned())),
                Ok(Err(e)) => Err((true, e.to_string())),
                Ok(Ok(resp)) => {
                    let status = resp.status();
                    if status.is_success() {
                        Ok(())
                    } else {
                        // The server's trouble or a rate limit: again later;
                        // a refusal of the request itself: no.
                        let retry = status.is_server_error()
                            || status == hyper::StatusCode::TOO_MANY_REQUESTS
                            || status == hyper::StatusCode::REQUEST_TIMEOUT;
                        Err((retry, format!("HTTP {status}")))
                    }
                }
            }
        }
    })
    .await;
    if sent {
        info!(event = notice.event, id = %notice.id, "webhook notified");
    }
}

/// One email to one recipient.
async fn mail(
    smtp: &Smtp,
    notice: &Notice,
    principal: &str,
    address: &str,
    shutdown: &CancellationToken,
) {
    let Ok(to) = address.parse::<lettre::Address>() else {
        warn!(principal, "stored email address does not parse; not mailed");
        return;
    };
    let (subject, body) = notice.email();
    let message = Message::builder()
        .from(smtp.from.clone())
        .to(Mailbox::new(Some(principal.to_owned()), to))
        .subject(subject)
        .header(ContentType::TEXT_PLAIN)
        .body(body);
    let message = match message {
        Ok(m) => m,
        Err(e) => {
            warn!(principal, error = %e, "email not built");
            return;
        }
    };
    let sent = with_retries("email", shutdown, || {
        let message = message.clone();
        async move {
            // lettre bounds the connect only; a relay that stalls later
            // must not hold a sending slot for ever.
            match tokio::time::timeout(TIMEOUT, smtp.transport.send(message)).await {
                Err(_) => Err((true, "the relay did not answer in time".to_owned())),
                Ok(r) => r
                    .map(|_| ())
                    // A permanent refusal (5xx) is final; the rest may pass
                    // later.
                    .map_err(|e| (!e.is_permanent(), e.to_string())),
            }
        }
    })
    .await;
    if sent {
        info!(event = notice.event, id = %notice.id, principal, "email notified");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smtp_urls_and_addresses() {
        assert!(Smtp::new("smtp://127.0.0.1:2525", "mdropd@firm.example").is_ok());
        assert!(Smtp::new("smtp+starttls://mail.firm.example", "mdropd@firm.example").is_ok());
        assert!(Smtp::new("smtps://mail.firm.example:465", "mdropd@firm.example").is_ok());
        let e = Smtp::new("smtp://mail.firm.example:25", "mdropd@firm.example").unwrap_err();
        assert!(e.contains("in the clear"), "{e}");
        assert!(Smtp::new("smtp://127.0.0.1", "a@b.example").is_err());
        assert!(Smtp::new("smtps://[2001:db8::1]", "a@b.example").is_ok());
        assert!(Smtp::new("smtp://[::1]:2525", "a@b.example").is_ok());
        let e = Smtp::new("smtps://u:pw@mail.firm.example", "a@b.example").unwrap_err();
        assert!(e.contains("no credentials") && !e.contains("pw"), "{e}");
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("s");
        std::fs::write(&secret, "0123456789abcdef0123").unwrap();
        {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        assert!(Webhook::new("http://127.0.0.1:9/h", &secret).is_ok());
        assert!(Webhook::new("https://hooks.firm.example/h", &secret).is_ok());
        let e = Webhook::new("http://hooks.firm.example/h", &secret).unwrap_err();
        assert!(e.contains("in the clear"), "{e}");
        assert!(Webhook::new("ftp://127.0.0.1/h", &secret).is_err());
        assert!(check_address("bób@lpo.example").is_err());
        assert!(Smtp::new("ftp://x", "a@b.example").is_err());
        assert!(Smtp::new("smtp://127.0.0.1:25", "not an address").is_err());
        assert!(check_address("bob@lpo.example").is_ok());
        for bad in ["bob", "bob@", "bob @lpo.example", "bob@lpo.example\n", ""] {
            assert!(check_address(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn emails_name_the_matter_and_the_id_only() {
        let n = Notice {
            event: "packet",
            matter: "2026-PI-0042".into(),
            id: "p-0123".into(),
            recipients: vec!["bob@lpo-1".into()],
            time: 1,
            emails: vec![("bob@lpo-1".into(), "bob@lpo.example".into())],
        };
        let (subject, body) = n.email();
        assert_eq!(subject, "[Matterdrop] A new packet in matter 2026-PI-0042");
        assert!(body.contains("p-0123"));
        let json = serde_json::to_value(&n).unwrap();
        assert!(json.get("emails").is_none(), "{json}");
        assert_eq!(json["recipients"][0], "bob@lpo-1");
    }
}
