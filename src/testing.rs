//! [test] What the property tests share: how many cases each one runs.
//!
//! Every property runs 10,000 cases by default. `WAIFU_PROPTEST_CASES=100000 cargo test` runs
//! more (or fewer); proptest's own `PROPTEST_CASES` works too and wins over both, since the
//! `proptest!` macro reads it last.

use proptest::test_runner::Config;

/// The default number of cases per property.
pub(crate) const DEFAULT_CASES: u32 = 10_000;

/// Cases per property: `WAIFU_PROPTEST_CASES`, else `PROPTEST_CASES`, else [`DEFAULT_CASES`].
pub(crate) fn cases() -> u32 {
    ["WAIFU_PROPTEST_CASES", "PROPTEST_CASES"]
        .iter()
        .find_map(|var| std::env::var(var).ok()?.trim().parse().ok())
        .unwrap_or(DEFAULT_CASES)
}

/// The configuration of an ordinary property: [`cases`] cases.
pub(crate) fn config() -> Config {
    with_cases(cases())
}

/// For a property whose every case is expensive (a round trip through SQLite or the file
/// system): one case in `divisor`, at least 100. Each caller says why it needs this.
pub(crate) fn config_divided(divisor: u32) -> Config {
    with_cases((cases() / divisor).max(100))
}

/// `cases` cases, and as many `prop_assume!` rejections per case as proptest's defaults allow
/// (1,024 for 256 cases), so that raising the case count does not abort a property that
/// skips some inputs.
fn with_cases(cases: u32) -> Config {
    Config {
        max_global_rejects: cases.saturating_mul(4),
        ..Config::with_cases(cases)
    }
}

/// A strategy for strings matching `pattern`, compiled once. (A bare `&str` works as a strategy
/// too, but proptest parses it again for every case, which is most of a cheap property's time.)
pub(crate) fn re(pattern: &str) -> proptest::string::RegexGeneratorStrategy<String> {
    proptest::string::string_regex(pattern)
        .unwrap_or_else(|e| panic!("bad test pattern {pattern:?}: {e}"))
}

/// Any text: every Unicode scalar value, control characters and newlines included (proptest's
/// own `any::<String>()` leaves out control characters, and is parsed again for every case).
pub(crate) fn any_text() -> proptest::string::RegexGeneratorStrategy<String> {
    re("(?s:.){0,40}")
}
