//! The latency trace: per-stage P50/P95 over recent replies (`GET /api/latency`, the System
//! tab), and the browser's playback report that completes a reply's trace.

use super::error::ApiError;
use crate::shared::{
    chat::{LatencyReport, PlaybackReport, StageStats, Timings, RECENT_TRACES},
    history::Role,
};
use crate::store::Db;

/// The System tab's window: the last 50 replies.
pub const DEFAULT_TURNS: i64 = 50;
pub const MAX_TURNS: i64 = 1_000;

/// A stage's value in one turn.
type Stage = fn(&Timings) -> Option<u64>;

/// Every stage after `input_received`, in pipeline order.
const STAGES: &[(&str, Stage)] = &[
    ("llm_request_started", |t| t.llm_request_started),
    ("first_token", |t| t.first_token),
    ("first_segment", |t| t.first_segment),
    ("tts_request_started", |t| t.tts_request_started),
    ("tts_ready", |t| t.tts_ready),
    ("first_audio_sent", |t| t.first_audio_sent),
    ("playback_started", |t| t.playback_started),
    ("response_complete", |t| t.response_complete),
];

/// The report over the last `limit` assistant replies that have a trace.
pub async fn report(db: &Db, limit: Option<i64>) -> Result<LatencyReport, ApiError> {
    let limit = limit.unwrap_or(DEFAULT_TURNS);
    if !(1..=MAX_TURNS).contains(&limit) {
        return Err(ApiError::bad_request(
            "bad_limit",
            format!("limit must be between 1 and {MAX_TURNS}."),
        ));
    }
    let rows = db.recent_timings(limit).await?;
    // A trace that does not parse (written by hand, or by a future version) is left out.
    let turns: Vec<Timings> = rows
        .iter()
        .filter_map(|json| serde_json::from_str(json).ok())
        .collect();
    Ok(summarise(&turns))
}

/// Per-stage spread, and the headline: time to first audio, heard (`playback_started`, when
/// the browser reported it) or else sent (`first_audio_sent`); for voice turns, the same from
/// the end of speech.
pub fn summarise(turns: &[Timings]) -> LatencyReport {
    let first_audio = |t: &Timings| t.playback_started.or(t.first_audio_sent);
    LatencyReport {
        turns: turns.len() as u32,
        stages: STAGES
            .iter()
            .map(|(name, get)| stats(name, turns.iter().filter_map(get)))
            .collect(),
        first_audio: stats("first_audio", turns.iter().filter_map(first_audio)),
        speech_to_first_audio: stats(
            "speech_to_first_audio",
            turns.iter().filter_map(|t| {
                let before = t.speech_end?.unsigned_abs();
                first_audio(t).map(|after| after + before)
            }),
        ),
        recent: turns.iter().take(RECENT_TRACES).cloned().collect(),
    }
}

fn stats(stage: &str, values: impl Iterator<Item = u64>) -> StageStats {
    let mut v: Vec<u64> = values.collect();
    v.sort_unstable();
    StageStats {
        stage: stage.into(),
        count: v.len() as u32,
        p50: percentile(&v, 50),
        p95: percentile(&v, 95),
    }
}

/// The nearest-rank percentile of sorted values: always a value that was measured.
fn percentile(sorted: &[u64], p: usize) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (p * sorted.len()).div_ceil(100).max(1);
    sorted.get(rank - 1).copied()
}

/// Adds the browser's `playback_started` to an assistant reply's trace.
pub async fn record_playback(db: &Db, id: i64, report: &PlaybackReport) -> Result<(), ApiError> {
    let message = db
        .get_message(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("There is no message {id}.")))?;
    if message.role != Role::Assistant {
        return Err(ApiError::bad_request(
            "not_assistant",
            format!("Message {id} is not a reply: only replies have a latency trace."),
        ));
    }
    let patch = serde_json::json!({ "playback_started": report.playback_started }).to_string();
    if !db.merge_timings(id, &patch).await? {
        return Err(ApiError::not_found(format!("There is no message {id}.")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn turn(first_audio_sent: Option<u64>, playback: Option<u64>, complete: u64) -> Timings {
        Timings {
            first_token: Some(100),
            first_audio_sent,
            playback_started: playback,
            response_complete: Some(complete),
            ..Timings::default()
        }
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&v, 50), Some(50));
        assert_eq!(percentile(&v, 95), Some(95));
        assert_eq!(percentile(&[7], 95), Some(7));
        assert_eq!(percentile(&[1, 2], 50), Some(1));
        assert_eq!(percentile(&[1, 2], 95), Some(2));
        assert_eq!(percentile(&[], 50), None);
    }

    #[test]
    fn first_audio_prefers_what_was_heard() {
        let turns = [
            turn(Some(400), Some(450), 2_000),
            turn(Some(300), None, 1_000),
            turn(None, None, 900),
        ];
        let r = summarise(&turns);
        assert_eq!(r.turns, 3);
        assert_eq!(r.first_audio.count, 2);
        assert_eq!(r.first_audio.p50, Some(300));
        assert_eq!(r.first_audio.p95, Some(450));
        let names: Vec<&str> = r.stages.iter().map(|s| s.stage.as_str()).collect();
        assert_eq!(names.first(), Some(&"llm_request_started"));
        assert_eq!(names.last(), Some(&"response_complete"));
        let complete = r.stages.last().unwrap();
        assert_eq!(
            (complete.count, complete.p50, complete.p95),
            (3, Some(1_000), Some(2_000))
        );
        let ready = r.stages.iter().find(|s| s.stage == "tts_ready").unwrap();
        assert_eq!((ready.count, ready.p50), (0, None));
    }

    #[test]
    fn voice_turns_count_from_the_end_of_speech() {
        let spoken = Timings {
            speech_end: Some(-700),
            asr_done: Some(-50),
            ..turn(Some(900), None, 2_000)
        };
        let r = summarise(&[spoken, turn(Some(300), None, 1_000)]);
        assert_eq!(r.first_audio.count, 2);
        assert_eq!(r.speech_to_first_audio.count, 1, "typed turns are left out");
        assert_eq!(r.speech_to_first_audio.p50, Some(1_600));
    }

    #[test]
    fn no_turns_is_an_empty_report() {
        let r = summarise(&[]);
        assert_eq!(r.turns, 0);
        assert!(r.stages.iter().all(|s| s.count == 0 && s.p50.is_none()));
    }
}
