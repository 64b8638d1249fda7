//! `logout`, `whoami` and `accounts`: the stored accounts, seen and removed.
//!
//! `whoami` proves the session as a mount would (mint or renew a token, read the gallery) and
//! reports what the account is: id, nickname, region, the bytes the gallery uses of the quota,
//! and how many items and albums it holds (the album list's counts: one request per 100
//! albums, however many items). A refused account ends in the same error, with the same fix,
//! that `mount` would give.

use bytesize::ByteSize;

use super::{ConfigArgs, LogoutArgs, WhoamiArgs};
use crate::account::{self, AccountStore, StoredCredentials};
use crate::cloud::{ClientConfig, GalleryApi, HttpGalleryClient};

fn store(config: &ConfigArgs) -> Result<AccountStore, String> {
    Ok(AccountStore::open(&account::config_dir(
        config.config_dir.clone(),
    )?)?)
}

pub(crate) fn logout(args: LogoutArgs) -> Result<(), String> {
    let store = store(&args.config)?;
    let names = if args.all {
        store.names()?
    } else {
        vec![store.resolve(args.account.as_deref())?.name]
    };
    if names.is_empty() {
        println!("No account is stored; nothing to do.");
        return Ok(());
    }
    for name in names {
        let path = store.path(&name);
        if store.remove(&name)? {
            println!("Logged out {name:?}: removed {}.", path.display());
        }
    }
    println!(
        "The token itself stays valid at Xiaomi; to revoke it too, log out of \
         account.xiaomi.com in a browser (that ends every session of the account)."
    );
    Ok(())
}

pub(crate) fn list(args: ConfigArgs) -> Result<(), String> {
    let store = store(&args)?;
    let names = store.names()?;
    if names.is_empty() {
        println!(
            "No account is stored in {}; run `micloudfs login`.",
            store.dir().display()
        );
        return Ok(());
    }
    for name in names {
        if let Some(a) = store.load(&name)? {
            println!(
                "{name}\tuser id {}\tregion {}\t{}",
                a.user_id,
                a.region_label(),
                a.kind()
            );
        }
    }
    Ok(())
}

pub(crate) fn whoami(args: WhoamiArgs) -> Result<(), String> {
    let store = store(&args.config)?;
    let account = store.resolve(args.account.as_deref())?;
    let api_base = args.api_base.unwrap_or_else(|| account.api_base.clone());
    // A pasted cookie renewed on the way is kept.
    let source = StoredCredentials::new(store.clone(), &account.name);
    let client = HttpGalleryClient::new(ClientConfig {
        source: Some(std::sync::Arc::new(source)),
        ..ClientConfig::new(&api_base, account.credentials()?)
    })
    .map_err(|e| e.to_string())?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start: {e}"))?;
    let note = crate::account::no_gallery_note(account.region);
    let (info, albums) = rt
        .block_on(async {
            client.check_credentials().await?;
            let info = client.account_info().await?;
            let albums = client.list_albums().await?;
            Ok::<_, crate::cloud::CloudError>((info, albums))
        })
        .map_err(|e| match (&e, &note) {
            (crate::cloud::CloudError::Api { .. }, Some(note))
            | (crate::cloud::CloudError::Unauthorized, Some(note)) => {
                format!(
                    "account {:?}: the gallery was refused: {note}",
                    account.name
                )
            }
            _ => format!("account {:?}: {e}", account.name),
        })?;
    let items: u64 = albums.iter().map(|a| a.media_count).sum();
    let nickname = if info.nickname.is_empty() {
        "(none)".to_string()
    } else {
        info.nickname
    };
    println!("account:  {}", account.name);
    println!("user id:  {}", account.user_id);
    println!("nickname: {nickname}");
    println!("region:   {} ({api_base})", account.region_label());
    println!("session:  {}", account.kind());
    println!(
        "gallery:  {} used by the gallery; {} of {} used in all",
        ByteSize::b(info.gallery_bytes).display().iec(),
        ByteSize::b(info.used_bytes).display().iec(),
        ByteSize::b(info.quota_bytes).display().iec()
    );
    println!("items:    {items} in {} albums", albums.len());
    if let (true, Some(note)) = (albums.is_empty(), note) {
        println!("note:     {note}");
    }
    Ok(())
}
