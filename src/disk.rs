//! [ssr] What a full disk looks like, wherever the app writes: `ENOSPC` (or a quota) from a file
//! write, `SQLITE_FULL` from the database. Each error type asks these and answers 507
//! `disk_full` with a message that says what was not saved and that the old data is intact.

use std::io;

/// The wire code for every "the disk is full" answer.
pub const FULL: &str = "disk_full";

/// `ENOSPC` on Linux and the BSDs; `EDQUOT` (a user's quota is used up) reads the same to a person.
const ENOSPC: i32 = 28;

/// Whether a write failed because the disk (or the user's quota) is full, also when the error
/// was wrapped in another `io::Error` on its way up.
pub fn is_full(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded
    ) || e.raw_os_error() == Some(ENOSPC)
        || e.get_ref().is_some_and(|inner| is_full_chain(inner))
}

/// Whether anything in `e`'s chain of sources is a full disk.
pub fn is_full_chain(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(e);
    while let Some(e) = next {
        if e.downcast_ref::<io::Error>().is_some_and(is_full) {
            return true;
        }
        next = e.source();
    }
    false
}

/// Whether the database refused a write because the disk is full: SQLite's `SQLITE_FULL` (13,
/// which SQLite also gives for `ENOSPC` on its own files), or an I/O error that says so.
pub fn sqlite_is_full(e: &sqlx::Error) -> bool {
    match e {
        // Only SQLite's codes are numbers of this kind; a PostgreSQL SQLSTATE such as 22012
        // could read as one.
        sqlx::Error::Database(db)
            if db.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_none() =>
        {
            false
        }
        sqlx::Error::Database(db) => db
            .code()
            .and_then(|c| c.parse::<i32>().ok())
            // Extended result codes keep the primary code in the low byte.
            .is_some_and(|c| c & 0xff == 13),
        sqlx::Error::Io(io) => is_full(io),
        other => is_full_chain(other),
    }
}

/// Whether PostgreSQL refused a write because its disk is full: SQLSTATE 53100
/// (`disk_full`).
pub fn postgres_is_full(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.try_downcast_ref::<sqlx::postgres::PgDatabaseError>()
        .is_some_and(|pg| pg.code() == "53100"))
}

/// The sentence every disk-full message ends with.
pub fn advice(kept: &str) -> String {
    format!("Free some space on the disk that holds the data folder and try again; {kept}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enospc_and_quota_are_full_other_errors_are_not() {
        assert!(is_full(&io::Error::from_raw_os_error(ENOSPC)));
        assert!(is_full(&io::Error::from(io::ErrorKind::StorageFull)));
        assert!(is_full(&io::Error::from(io::ErrorKind::QuotaExceeded)));
        assert!(!is_full(&io::Error::from(io::ErrorKind::PermissionDenied)));
        let wrapped = io::Error::other(io::Error::from_raw_os_error(ENOSPC));
        assert!(is_full_chain(&wrapped));
        assert!(!is_full_chain(&io::Error::other("x")));
    }
}
