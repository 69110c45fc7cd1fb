//! [`FileMailer`]: one `.eml` file per message, for development and the demo.

use std::path::{Path, PathBuf};

use async_trait::async_trait;
use convene_domain::ids::MessageId;
use convene_domain::outbox::DeliveryError;
use convene_domain::ports::{Mailer, OutgoingEmail};

use convene_email::Sender;

use crate::mime::{build_message, message_kind};

/// Writes each message to `<folder>/<idempotency key>.eml` (written aside, then renamed
/// into place), so a retry of the same message replaces its file and a reader never sees
/// half a message.
#[derive(Clone, Debug)]
pub struct FileMailer {
    folder: PathBuf,
    from: Sender,
}

impl FileMailer {
    /// A mailer writing into `folder` (created on first use).
    pub fn new(folder: impl Into<PathBuf>, from: Sender) -> Self {
        Self {
            folder: folder.into(),
            from,
        }
    }

    /// Where the message with this idempotency key is written.
    pub fn path_for(&self, key: MessageId) -> PathBuf {
        self.folder.join(format!("{key}.eml"))
    }

    /// The folder messages are written to.
    pub fn folder(&self) -> &Path {
        &self.folder
    }
}

fn io_failure(e: &std::io::Error) -> DeliveryError {
    DeliveryError::Transient {
        reason: format!("cannot write the .eml file: {}", e.kind()),
        retry_after: None,
    }
}

#[async_trait]
impl Mailer for FileMailer {
    async fn send(&self, email: &OutgoingEmail) -> Result<(), DeliveryError> {
        let bytes = build_message(email, &self.from)?.formatted();
        tokio::fs::create_dir_all(&self.folder)
            .await
            .map_err(|e| io_failure(&e))?;
        let path = self.path_for(email.idempotency_key);
        let tmp = self
            .folder
            .join(format!(".{}.eml.tmp", email.idempotency_key));
        tokio::fs::write(&tmp, &bytes)
            .await
            .map_err(|e| io_failure(&e))?;
        tokio::fs::rename(&tmp, &path)
            .await
            .map_err(|e| io_failure(&e))?;
        tracing::info!(message_id = %email.idempotency_key, kind = message_kind(email), "email written to a file");
        Ok(())
    }
}
