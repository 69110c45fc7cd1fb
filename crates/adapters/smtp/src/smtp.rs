//! [`SmtpMailer`]: lettre's asynchronous SMTP transport.

use std::time::Duration;

use async_trait::async_trait;
use convene_domain::outbox::DeliveryError;
use convene_domain::ports::{Mailer, OutgoingEmail};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use secrecy::{ExposeSecret, SecretString};

use convene_email::Sender;

use crate::mime::{build_message, message_kind};

/// How the connection to the SMTP server is protected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SmtpSecurity {
    /// Connect in plain text and upgrade with STARTTLS, refusing to go on without it
    /// (submission, port 587 by default).
    StartTls,
    /// TLS from the first byte (submissions, port 465 by default).
    ImplicitTls,
    /// No encryption at all (port 25 by default). Only for a test server on the same
    /// machine: credentials and messages would cross the network in clear.
    Plain,
}

/// Configuration of [`SmtpMailer`].
#[derive(Clone, Debug)]
pub struct SmtpConfig {
    /// Server host name (also the name its TLS certificate must carry).
    pub host: String,
    /// Port; `None` takes the default of `security`.
    pub port: Option<u16>,
    /// Connection protection.
    pub security: SmtpSecurity,
    /// User name and password, when the server wants them.
    pub credentials: Option<(String, SecretString)>,
    /// Longest wait for one message: connecting, and the whole SMTP conversation.
    pub timeout: Duration,
    /// Who messages come from.
    pub from: Sender,
}

impl SmtpConfig {
    /// STARTTLS required on the default port, no credentials, 30 s timeout.
    pub fn new(host: impl Into<String>, from: Sender) -> Self {
        Self {
            host: host.into(),
            port: None,
            security: SmtpSecurity::StartTls,
            credentials: None,
            timeout: Duration::from_secs(30),
            from,
        }
    }
}

/// Why an [`SmtpMailer`] could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum SmtpSetupError {
    /// The TLS parameters could not be built for this host.
    #[error("cannot set up TLS for the SMTP host: {0}")]
    Tls(String),
}

/// Sends over SMTP with lettre's asynchronous transport, one connection per message.
///
/// Refusals map to [`DeliveryError`]s by the server's reply: 4xx is transient, 5xx and
/// addresses the library refuses are permanent; connection failures, TLS failures and
/// timeouts are transient.
#[derive(Clone)]
pub struct SmtpMailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Sender,
    timeout: Duration,
}

impl std::fmt::Debug for SmtpMailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpMailer")
            .field("from", &self.from.address.domain())
            .finish_non_exhaustive()
    }
}

impl SmtpMailer {
    /// A mailer for `config`. Connects lazily, on the first message.
    pub fn new(config: &SmtpConfig) -> Result<Self, SmtpSetupError> {
        let tls = || {
            TlsParameters::new(config.host.clone()).map_err(|e| SmtpSetupError::Tls(e.to_string()))
        };
        let (tls, default_port) = match config.security {
            SmtpSecurity::StartTls => (Tls::Required(tls()?), 587),
            SmtpSecurity::ImplicitTls => (Tls::Wrapper(tls()?), 465),
            SmtpSecurity::Plain => (Tls::None, 25),
        };
        let mut builder =
            AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(config.host.clone())
                .port(config.port.unwrap_or(default_port))
                .tls(tls)
                .timeout(Some(config.timeout));
        if let Some((user, password)) = &config.credentials {
            builder = builder.credentials(Credentials::new(
                user.clone(),
                password.expose_secret().to_owned(),
            ));
        }
        Ok(Self {
            transport: builder.build(),
            from: config.from.clone(),
            timeout: config.timeout,
        })
    }
}

/// Maps lettre's error to the outbox's judgement, keeping the server's reply text out
/// (it often quotes the address).
fn classify(e: &lettre::transport::smtp::Error) -> DeliveryError {
    let code = e.status().map(|c| c.to_string()).unwrap_or_default();
    if e.is_permanent() {
        DeliveryError::Permanent {
            reason: format!("SMTP server refused the message ({code})"),
        }
    } else if e.is_transient() {
        DeliveryError::Transient {
            reason: format!("SMTP server deferred the message ({code})"),
            retry_after: None,
        }
    } else if e.is_timeout() {
        DeliveryError::Transient {
            reason: "SMTP timeout".to_owned(),
            retry_after: None,
        }
    } else if e.is_client() {
        DeliveryError::Permanent {
            reason: "the SMTP client refused the message".to_owned(),
        }
    } else if e.is_tls() {
        DeliveryError::Transient {
            reason: "SMTP TLS failure".to_owned(),
            retry_after: None,
        }
    } else {
        DeliveryError::Transient {
            reason: "SMTP connection failure".to_owned(),
            retry_after: None,
        }
    }
}

#[async_trait]
impl Mailer for SmtpMailer {
    async fn send(&self, email: &OutgoingEmail) -> Result<(), DeliveryError> {
        let message = build_message(email, &self.from)?;
        // lettre bounds only the connect; a server that stalls later is bounded here.
        let result = match tokio::time::timeout(self.timeout, self.transport.send(message)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(classify(&e)),
            Err(_) => Err(DeliveryError::Transient {
                reason: "SMTP timeout".to_owned(),
                retry_after: None,
            }),
        };
        match &result {
            Ok(()) => {
                tracing::info!(message_id = %email.idempotency_key, kind = message_kind(email), "email sent over SMTP");
            }
            Err(err) => {
                tracing::warn!(message_id = %email.idempotency_key, kind = message_kind(email), error = %err, "SMTP delivery failed");
            }
        }
        result
    }
}
