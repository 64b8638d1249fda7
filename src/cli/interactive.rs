//! Temporary: replaced when the passport flows land.
use crate::account::{AccountStore, Region};
use crate::cloud::Credentials;

pub(crate) async fn qr(
    _: &AccountStore,
    _: &str,
    _: Option<Region>,
    _: bool,
) -> Result<Credentials, String> {
    Err("not yet".into())
}

pub(crate) async fn password(
    _: &AccountStore,
    _: &str,
    _: Option<Region>,
    _: bool,
    _: Option<String>,
    _: Option<String>,
) -> Result<Credentials, String> {
    Err("not yet".into())
}
