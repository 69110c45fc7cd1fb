//! What the composer is configured with.

use convene_domain::email::EmailAddress;
use convene_domain::time::SignedDuration;

/// Who emails come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sender {
    /// Display name (`Convene`).
    pub name: String,
    /// Address (`no-reply@convene.example`).
    pub address: EmailAddress,
}

/// Configuration of [`TemplateComposer`](crate::TemplateComposer).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EmailConfig {
    /// Public URL of the Convene server, without a trailing slash
    /// (`https://convene.example.com`); guest links and settings links start with it.
    pub base_url: String,
    /// Who emails come from; also the invitation's `ORGANIZER` when the organizer erased
    /// their account.
    pub sender: Sender,
    /// How long after the poll deadline a guest's link keeps working (to see the outcome).
    pub guest_link_grace: SignedDuration,
    /// The product's name as emails show it.
    pub product_name: String,
}

impl EmailConfig {
    /// A configuration with the defaults: guest links live 7 days past the deadline, the
    /// product is called "Convene".
    pub fn new(base_url: impl Into<String>, sender: Sender) -> Self {
        Self {
            base_url: base_url.into(),
            sender,
            guest_link_grace: SignedDuration::from_hours(24 * 7),
            product_name: "Convene".to_owned(),
        }
    }
}
