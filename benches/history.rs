//! History benchmark: 1,000,000 messages across 10,000 sessions, on each backend in turn: a
//! SQLite file (WAL, FTS5 triggers on) and a throwaway PostgreSQL cluster (generated tsvector,
//! GIN index; `fsync=off`, as a test server). Prints, for each, the insert rate, search latency
//! (p50/p95) for common, mid and rare words, and the database size. Both go through the same
//! `Store` calls the app uses. `WAIFU_BENCH_MESSAGES` changes the count; `make bench` runs it.

use std::time::{Duration, Instant};
use waifu_rt3d::{
    shared::history::Role,
    store::{self, messages::NewMessage, postgres::cluster::Cluster, Db},
};

const SESSIONS: i64 = 10_000;
const MESSAGES: usize = 1_000_000;
const BATCH: usize = 5_000;
const VOCABULARY: usize = 20_000;
const QUERIES: usize = 200;

/// A small deterministic generator (xorshift64*), so every run indexes the same text.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Word `i` of a made-up language, built from syllables.
fn word(mut i: usize) -> String {
    const SYL: [&str; 24] = [
        "ka", "ri", "mo", "to", "na", "shi", "ru", "ya", "ke", "su", "mi", "no", "ha", "te", "yu",
        "ra", "ko", "ma", "ne", "chi", "sa", "ho", "ki", "wa",
    ];
    let mut w = String::new();
    loop {
        w.push_str(SYL[i % SYL.len()]);
        i /= SYL.len();
        if i == 0 {
            break;
        }
    }
    w
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx].as_secs_f64() * 1000.0
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let messages = std::env::var("WAIFU_BENCH_MESSAGES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(MESSAGES);
    println!("history benchmark: {messages} messages, {SESSIONS} sessions, {VOCABULARY}-word vocabulary (Zipf)");

    let dir = tempfile::tempdir()?;
    let path = dir.path().join("bench.db");
    let pool = store::open(&path).await?;
    let sqlite = store::sqlite(pool.clone());
    run("sqlite", &sqlite, messages, || async {
        sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
            .execute(&pool)
            .await?;
        sqlx::query("INSERT INTO messages_fts(messages_fts) VALUES ('optimize')")
            .execute(&pool)
            .await?;
        sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
            .execute(&pool)
            .await?;
        Ok(["bench.db", "bench.db-wal"]
            .iter()
            .filter_map(|f| std::fs::metadata(dir.path().join(f)).ok())
            .map(|m| m.len())
            .sum())
    })
    .await?;
    sqlite.close().await;

    let cluster = Cluster::start()?;
    let url = cluster.create_database().await?;
    let pool = store::postgres::open(&url).await?;
    let postgres = store::postgres_db(pool.clone());
    run("postgres", &postgres, messages, || async {
        sqlx::query("VACUUM ANALYZE messages")
            .execute(&pool)
            .await?;
        let size: i64 = sqlx::query_scalar("SELECT pg_database_size(current_database())")
            .fetch_one(&pool)
            .await?;
        Ok(size as u64)
    })
    .await?;
    postgres.close().await;
    Ok(())
}

/// Fills `db` with the same made-up corpus (the generator restarts for each backend), then
/// times searches. `settle` does the backend's own upkeep after the load and says how big the
/// database is.
async fn run<F, Fut>(label: &str, db: &Db, messages: usize, settle: F) -> anyhow::Result<()>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<u64>>,
{
    let words: Vec<String> = (0..VOCABULARY).map(word).collect();
    // Zipf(1.0) over the vocabulary: a few words are very common, most are rare.
    let weights: Vec<f64> = (1..=VOCABULARY).map(|r| 1.0 / r as f64).collect();
    let total: f64 = weights.iter().sum();
    let mut cdf = Vec::with_capacity(VOCABULARY);
    let mut acc = 0.0;
    for w in &weights {
        acc += w / total;
        cdf.push(acc);
    }
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);

    let started = Instant::now();
    for i in 0..SESSIONS {
        db.create_session_with_id(i + 1).await?;
    }

    let mut texts: Vec<String> = Vec::with_capacity(BATCH);
    let mut inserted = 0usize;
    let insert_started = Instant::now();
    while inserted < messages {
        texts.clear();
        for _ in 0..BATCH.min(messages - inserted) {
            let n = 8 + (rng.next() % 13) as usize;
            let sentence: Vec<&str> = (0..n)
                .map(|_| {
                    let u = rng.unit();
                    let idx = cdf.partition_point(|c| *c < u).min(VOCABULARY - 1);
                    words[idx].as_str()
                })
                .collect();
            texts.push(sentence.join(" "));
        }
        let batch: Vec<NewMessage> = texts
            .iter()
            .enumerate()
            .map(|(k, t)| {
                let session = ((inserted + k) as i64 % SESSIONS) + 1;
                let role = if k % 2 == 0 {
                    Role::User
                } else {
                    Role::Assistant
                };
                NewMessage::new(session, role, t)
            })
            .collect();
        inserted += db.add_messages(&batch).await? as usize;
    }
    let insert_secs = insert_started.elapsed().as_secs_f64();
    println!(
        "{label} insert: {inserted} messages in {insert_secs:.1} s = {:.0} messages/s (batches of {BATCH}, index kept up to date)",
        inserted as f64 / insert_secs
    );

    let size = settle().await?;
    println!(
        "{label} database size: {:.1} MiB ({:.0} bytes per message)",
        size as f64 / 1048576.0,
        size as f64 / inserted as f64
    );

    for (what, range) in [
        ("common words (ranks 1-10)", 0..10),
        ("mid words (ranks 100-1000)", 100..1000),
        ("rare words (ranks 10000-20000)", 10_000..VOCABULARY),
    ] {
        let mut times = Vec::with_capacity(QUERIES);
        let mut hits = 0usize;
        for q in 0..QUERIES {
            let idx = range.start + (rng.next() as usize % range.len());
            let query = if q % 4 == 3 {
                format!(
                    "{} {}",
                    words[idx],
                    words[range.start + (rng.next() as usize % range.len())]
                )
            } else {
                words[idx].clone()
            };
            let t = Instant::now();
            hits += db.search(&query, None, 20, 0).await?.len();
            times.push(t.elapsed());
        }
        times.sort();
        println!(
            "{label} search, {what}: p50 {:.2} ms, p95 {:.2} ms, max {:.2} ms ({QUERIES} queries, {:.1} results each, top 20)",
            percentile(&times, 0.5),
            percentile(&times, 0.95),
            percentile(&times, 1.0),
            hits as f64 / QUERIES as f64
        );
    }
    println!(
        "{label} total time: {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
