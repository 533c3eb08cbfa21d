//! [ssr] All SQL lives here, one file per aggregate. Nothing else talks to the database.

mod db;

pub use db::{db_health, open, StoreError};
