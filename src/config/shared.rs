//! Settings shared by several instances. With a PostgreSQL database the settings document (the
//! same sealed JSON the file holds) lives in one database row with a revision number, instead of
//! in the data folder's file:
//! - at start, an instance takes the row; the first instance ever writes its own settings there;
//! - a save writes the row only if nobody else saved since this instance last read it, otherwise
//!   it reads the newer settings and applies the change again on top of them, so two instances
//!   saving at once lose neither change;
//! - every save notifies the other instances, which read the row again within a moment.
//!
//! Sealed keys can only be opened with the same `secret.key`, so every instance must be given
//! the same key file (`--secret-key-file`).

use super::{
    apply,
    file::{document, parse},
    file::{ConfigStore, Saved},
    Changer, ConfigError,
};
use crate::store::{Db, StoreError};
use serde_json::Value;
use std::{
    io,
    path::{Path, PathBuf},
    sync::{
        atomic::{AtomicI64, Ordering},
        Arc, Weak,
    },
};

/// Where shared settings are written, as errors name it.
const SETTINGS_ROW: &str = "the database's settings row";

/// How often a save is retried when other instances keep saving first.
const SAVE_ATTEMPTS: usize = 5;

pub(crate) struct Shared {
    db: Db,
    /// The revision of the settings in effect here.
    revision: AtomicI64,
}

fn store_error(e: StoreError) -> ConfigError {
    ConfigError::Write {
        path: PathBuf::from(SETTINGS_ROW),
        source: io::Error::other(e.to_string()),
    }
}

impl ConfigStore {
    /// Moves the settings into `db` when it is shared by several instances (PostgreSQL), and
    /// keeps them in step with the other instances' saves from then on. Does nothing for SQLite,
    /// whose settings stay in the data folder's file. Returns warnings for the health report.
    pub async fn share_through(self: &Arc<Self>, db: Db) -> Result<Vec<String>, ConfigError> {
        if !db.shares_settings() {
            return Ok(Vec::new());
        }
        let mut warnings = Vec::new();
        // Subscribed before reading, so that a save between the two is not missed.
        let changes = db.watch_settings().await.map_err(store_error)?;
        let revision = match db.read_settings().await.map_err(store_error)? {
            Some(row) => {
                match parse(&row.doc, self.ring()) {
                    Ok(parsed) => {
                        warnings.extend(parsed.opened.warnings(&parsed.cfg, self.ring(), None));
                        self.set_current(parsed.cfg);
                    }
                    Err(why) => warnings.push(format!(
                        "The shared settings in the database could not be used ({why}); this instance runs on its own settings file until they are saved again."
                    )),
                }
                row.revision
            }
            None => {
                let doc = document(&self.get(), self.ring(), Path::new(SETTINGS_ROW))?;
                match db.write_settings(&doc, None).await.map_err(store_error)? {
                    Some(revision) => revision,
                    // Another instance started at the same moment and wrote first: take its.
                    None => return Box::pin(self.share_through(db)).await,
                }
            }
        };
        let shared = Shared {
            db,
            revision: AtomicI64::new(revision),
        };
        if self.shared.set(shared).is_err() {
            return Ok(warnings);
        }
        tokio::spawn(follow(Arc::downgrade(self), changes));
        Ok(warnings)
    }
}

impl Shared {
    /// [`ConfigStore`]'s save when the settings are shared. The caller holds the writer lock.
    pub(super) async fn save(
        &self,
        store: &ConfigStore,
        patch: Value,
        who: Changer,
    ) -> Result<Saved, ConfigError> {
        for _ in 0..SAVE_ATTEMPTS {
            let applied = apply(&store.get(), patch.clone(), who)?;
            let doc = document(&applied.config, store.ring(), Path::new(SETTINGS_ROW))?;
            let expected = self.revision.load(Ordering::SeqCst);
            match self
                .db
                .write_settings(&doc, Some(expected))
                .await
                .map_err(store_error)?
            {
                Some(revision) => {
                    self.revision.store(revision, Ordering::SeqCst);
                    return Ok(Saved {
                        config: store.set_current(applied.config),
                        cleared_keys: applied.cleared_keys,
                    });
                }
                // Another instance saved first: apply the change again on top of its settings.
                None => self.reload(store).await?,
            }
        }
        Err(ConfigError::Write {
            path: PathBuf::from(SETTINGS_ROW),
            source: io::Error::other("other instances kept saving at the same time; try again"),
        })
    }

    /// Takes the row's settings if they are newer than the ones in effect.
    async fn reload(&self, store: &ConfigStore) -> Result<(), ConfigError> {
        let Some(row) = self.db.read_settings().await.map_err(store_error)? else {
            return Ok(());
        };
        if row.revision <= self.revision.load(Ordering::SeqCst) {
            return Ok(());
        }
        match parse(&row.doc, store.ring()) {
            Ok(parsed) => {
                store.set_current(parsed.cfg);
                self.revision.store(row.revision, Ordering::SeqCst);
                tracing::info!(
                    revision = row.revision,
                    "settings changed by another instance"
                );
            }
            Err(why) => {
                tracing::warn!("settings saved by another instance could not be used: {why}");
            }
        }
        Ok(())
    }
}

/// Reads the settings again whenever another instance may have saved them, for as long as the
/// store lives.
async fn follow(store: Weak<ConfigStore>, mut changes: tokio::sync::mpsc::Receiver<()>) {
    while changes.recv().await.is_some() {
        let Some(store) = store.upgrade() else {
            return;
        };
        let _writer = store.writer().await;
        let Some(shared) = store.shared.get() else {
            return;
        };
        if let Err(e) = shared.reload(&store).await {
            tracing::warn!(error = %e, "reading the shared settings failed");
        }
    }
}
