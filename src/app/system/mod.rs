//! The System tab: the health report as cards (the language model, speech recognition, each
//! voice with a "Test"), and the latency of recent spoken replies, refreshed on demand.

use crate::{
    api::{
        get_health,
        system::{get_latency, test_voice},
    },
    app::common::ErrorBanner,
    shared::{
        chat::{LatencyReport, StageStats, Timings},
        config::{AsrProvider, LlmProvider, TtsProvider},
        health::{Health, InstallSource, InstalledFile, InstalledHealth, ProviderHealth},
        history::format_ts,
    },
};
use leptos::prelude::*;

/// The latency panel's window, in replies.
const LATENCY_TURNS: u32 = 50;

/// The System tab.
#[component]
pub fn SystemTab() -> impl IntoView {
    let refresh = RwSignal::new(0u32);
    let health = Resource::new(move || refresh.get(), |_| get_health());
    view! {
        <section class="tab system" data-testid="tab-system">
            <div class="tab-head">
                <h1>"System"</h1>
                <button type="button" data-testid="refresh-health" on:click=move |_| refresh.update(|n| *n += 1)>
                    "Refresh"
                </button>
            </div>
            <Transition fallback=|| view! { <p class="muted">"Checking…"</p> }>
                {move || Suspend::new(async move {
                    match health.await {
                        Ok(h) => view! { <HealthView health=h/> }.into_any(),
                        Err(e) => view! { <ErrorBanner error=e/> }.into_any(),
                    }
                })}
            </Transition>
            <LatencyPanel refresh=refresh/>
        </section>
    }
}

#[component]
fn HealthView(health: Health) -> impl IntoView {
    let yes_no = |b: bool| if b { "yes" } else { "no" };
    let Health {
        ok,
        libs,
        installed,
        llm,
        tts,
        asr,
        db,
        issues,
        version,
        ..
    } = health;
    view! {
        <div class="banner" class:banner-ok=ok class:banner-warn=!ok data-testid="health-summary" data-ok=ok.to_string()>
            {if ok { "Everything needed for a conversation is working." } else { "Some parts need attention." }}
        </div>
        {(!issues.is_empty()).then(|| view! {
            <ul class="issues" data-testid="health-issues">
                {issues.into_iter().map(|i| view! { <li>{i}</li> }).collect_view()}
            </ul>
        })}
        <div class="cards">
            <article class="card health" data-testid="health-card" data-kind="db" data-state=if db.ok { "ok" } else { "error" }>
                <h2>"Database"</h2>
                <State ok=db.ok label=if db.ok { "ok" } else { "error" }/>
                <dl>
                    <dt>"Journal"</dt><dd>{db.journal_mode}</dd>
                    <dt>"Messages"</dt><dd data-testid="db-messages">{db.messages}</dd>
                </dl>
            </article>
            <ProviderCard title="Language model" kind="llm" health=llm/>
            <ProviderCard title="Speech recognition" kind="asr" health=asr/>
            {tts.into_iter().map(|t| view! { <VoiceCard health=t/> }).collect_view()}
            <article class="card health" data-testid="health-card" data-kind="libs" data-state=if libs.three && libs.default_avatar { "ok" } else { "misconfigured" }>
                <h2>"3D viewer"</h2>
                <dl>
                    <dt>"three.js"</dt><dd>{yes_no(libs.three)}</dd>
                    <dt>"three-vrm"</dt><dd>{yes_no(libs.three_vrm)}</dd>
                    <dt>"Default avatar"</dt><dd>{yes_no(libs.default_avatar)}</dd>
                </dl>
            </article>
            <InstalledCard installed=installed/>
            <article class="card health" data-testid="health-card" data-kind="version" data-state="ok">
                <h2>"Version"</h2>
                <p class="big" data-testid="version">{version}</p>
            </article>
        </div>
    }
}

/// Which built-in model and which Piper the server uses, and whether they came from the data
/// folder or the install folder (the checkout's `data/` that `make setup` filled).
#[component]
fn InstalledCard(installed: InstalledHealth) -> impl IntoView {
    let found = installed.model.source != InstallSource::Missing
        && installed.piper.source != InstallSource::Missing;
    let row = |what: &'static str, id: &'static str, file: InstalledFile| {
        view! {
            <dt>{what}</dt>
            <dd data-testid=id data-source=file.source.name()>
                <code>{file.path}</code>" "<span class="muted">"("{file.source.label()}")"</span>
            </dd>
        }
    };
    view! {
        <article class="card health" data-testid="health-card" data-kind="installed" data-state=if found { "ok" } else { "misconfigured" }>
            <h2>"Installed files"</h2>
            <dl>
                {row("Built-in model", "installed-model", installed.model)}
                {row("Piper", "installed-piper", installed.piper)}
                {row("Whisper", "installed-whisper", installed.whisper)}
                {row("Whisper model", "installed-whisper-model", installed.whisper_model)}
            </dl>
        </article>
    }
}

#[component]
fn ProviderCard(title: &'static str, kind: &'static str, health: ProviderHealth) -> impl IntoView {
    let state = health.state.name();
    let provider = health.provider;
    let name = provider_label(&provider);
    view! {
        <article class="card health" data-testid="health-card" data-kind=kind data-provider=provider data-state=state>
            <h2>{title}": " <span class="provider-name">{name}</span></h2>
            <State ok=state == "ok" label=state/>
            <p class="detail">{health.detail}</p>
            {health.latency_ms.map(|ms| view! { <p class="muted">{format!("{ms} ms")}</p> })}
        </article>
    }
}

#[component]
fn State(ok: bool, label: &'static str) -> impl IntoView {
    view! { <span class="state" class:state-ok=ok class:state-bad=!ok>{label.replace('_', " ")}</span> }
}

/// A voice's card: the probe's state, what it last did in a conversation, and a "Test" that
/// speaks a short sentence with this voice alone.
#[component]
fn VoiceCard(health: ProviderHealth) -> impl IntoView {
    let state = health.state.name();
    let provider = health.provider;
    let test = {
        let provider = provider.clone();
        Action::new(move |_: &()| test_voice(provider.clone()))
    };
    let test_state = move || {
        if test.pending().get() {
            "testing"
        } else {
            match test.value().get() {
                None => "idle",
                Some(Ok(_)) => "ok",
                Some(Err(_)) => "error",
            }
        }
    };
    let result_id = format!("tts-test-result-{provider}");
    // Which came last in conversation: a failure the fallback covered, or a spoken sentence.
    let last_outcome = match (&health.last_error, &health.last_success) {
        (Some(e), Some(s)) if s.ts >= e.ts => "ok",
        (Some(_), _) => "error",
        (None, Some(_)) => "ok",
        (None, None) => "none",
    };
    view! {
        <article class="card health" data-testid="health-card" data-kind="tts" data-provider=provider.clone() data-state=state>
            <div class="voice-card" data-testid=format!("tts-card-{provider}") data-last-outcome=last_outcome>
                <h2>"Voice: " <span class="provider-name">{provider_label(&provider)}</span></h2>
                <State ok=state == "ok" label=state/>
                <p class="detail">{health.detail}</p>
                {health.latency_ms.map(|ms| view! { <p class="muted">{format!("Probe: {ms} ms")}</p> })}
                <dl>
                    {health.last_success.map(|s| view! {
                        <dt>"Last spoke"</dt>
                        <dd data-testid=format!("tts-last-success-{provider}")>{format!("{} ms, {}", s.latency_ms, format_ts(s.ts))}</dd>
                    })}
                    {health.last_error.map(|e| view! {
                        <dt>"Last error"</dt>
                        <dd class="error-text" data-testid=format!("tts-last-error-{provider}") data-code=e.code.clone()>
                            {format!("{} ({}): {}", e.code.replace('_', " "), format_ts(e.ts), e.message)}
                        </dd>
                    })}
                </dl>
                <button
                    type="button"
                    data-testid=format!("tts-test-{provider}")
                    disabled=move || test.pending().get()
                    on:click=move |_| { test.dispatch(()); }
                >
                    "Test"
                </button>
                <div class="voice-test" data-testid=result_id data-state=test_state>
                    {move || test.value().get().map(|r| match r {
                        Ok(s) => view! {
                            <p>{format!("Spoke in {} ms", s.latency_ms)}</p>
                            <audio src=s.url controls autoplay></audio>
                        }.into_any(),
                        Err(e) => view! { <ErrorBanner error=e/> }.into_any(),
                    })}
                </div>
            </div>
        </article>
    }
}

/// Time to first audio and each stage's P50/P95 over the last replies.
#[component]
fn LatencyPanel(refresh: RwSignal<u32>) -> impl IntoView {
    let report = Resource::new(move || refresh.get(), |_| get_latency(LATENCY_TURNS));
    view! {
        <section class="card latency" data-testid="latency-panel">
            <h2>"Latency"</h2>
            <Transition fallback=|| view! { <p class="muted">"Reading…"</p> }>
                {move || Suspend::new(async move {
                    match report.await {
                        Ok(r) => view! { <LatencyView report=r/> }.into_any(),
                        Err(e) => view! { <ErrorBanner error=e/> }.into_any(),
                    }
                })}
            </Transition>
        </section>
    }
}

#[component]
fn LatencyView(report: LatencyReport) -> impl IntoView {
    let LatencyReport {
        turns,
        stages,
        first_audio,
        recent,
        ..
    } = report;
    view! {
        <p class="big" data-testid="latency-first-audio" data-p50=ms_attr(first_audio.p50) data-p95=ms_attr(first_audio.p95)>
            "Time to first audio: P50 " {ms(first_audio.p50)} " · P95 " {ms(first_audio.p95)}
        </p>
        {if turns == 0 {
            view! {
                <p class="muted" data-testid="latency-empty">
                    "No replies yet. Send a message in Chat with the voice on, and each stage's time shows here."
                </p>
            }
            .into_any()
        } else {
            view! {
                <p class="muted" data-testid="latency-turns" data-turns=turns>
                    {format!("Over the last {turns} replies, in ms since the message was sent.")}
                </p>
                <div class="table-scroll">
                <table class="latency-table">
                    <thead><tr><th>"Stage"</th><th>"P50"</th><th>"P95"</th><th>"Replies"</th></tr></thead>
                    <tbody>
                        {stages.into_iter().map(|s| view! { <StageRow stats=s/> }).collect_view()}
                    </tbody>
                </table>
                </div>
                <h3>"Latest replies"</h3>
                <p class="muted">"Prompt tokens the model read, and those it reused from its cache of the previous turn."</p>
                <div class="table-scroll">
                <table class="latency-table" data-testid="latency-recent">
                    <thead><tr>
                        <th>"First word"</th><th>"First audio"</th><th>"Complete"</th>
                        <th>"Prompt read"</th><th>"Reused"</th>
                    </tr></thead>
                    <tbody>
                        {recent.into_iter().map(|t| view! { <TraceRow trace=t/> }).collect_view()}
                    </tbody>
                </table>
                </div>
            }
            .into_any()
        }}
    }
}

/// One reply's trace: its main times and how much of its prompt was read.
#[component]
fn TraceRow(trace: Timings) -> impl IntoView {
    let read = trace
        .prompt_tokens
        .map(|total| total.saturating_sub(trace.prompt_cached.unwrap_or(0)));
    let tokens = |v: Option<u32>| v.map_or_else(|| "–".to_string(), |v| v.to_string());
    view! {
        <tr data-testid="latency-trace" data-read=read.map(|v| v.to_string()).unwrap_or_default()
            data-cached=trace.prompt_cached.map(|v| v.to_string()).unwrap_or_default()>
            <td>{ms(trace.first_token)}</td>
            <td>{ms(trace.playback_started.or(trace.first_audio_sent))}</td>
            <td>{ms(trace.response_complete)}</td>
            <td>{tokens(read)}</td>
            <td>{tokens(trace.prompt_cached)}</td>
        </tr>
    }
}

#[component]
fn StageRow(stats: StageStats) -> impl IntoView {
    view! {
        <tr data-testid=format!("latency-row-{}", stats.stage) data-p50=ms_attr(stats.p50)>
            <td>{stage_label(&stats.stage).to_string()}</td>
            <td>{ms(stats.p50)}</td>
            <td>{ms(stats.p95)}</td>
            <td>{stats.count}</td>
        </tr>
    }
}

/// A language model's or voice's name in plain words, as Setup shows it (the id itself for one
/// this build does not know). The two sets of ids do not overlap.
fn provider_label(id: &str) -> String {
    LlmProvider::from_name(id)
        .map(LlmProvider::label)
        .or_else(|| TtsProvider::from_name(id).map(TtsProvider::label))
        .or_else(|| AsrProvider::from_name(id).map(AsrProvider::label))
        .unwrap_or(id)
        .to_string()
}

/// A value for a `data-` attribute: the number, or empty when there is none.
fn ms_attr(v: Option<u64>) -> String {
    v.map(|v| v.to_string()).unwrap_or_default()
}

fn ms(v: Option<u64>) -> String {
    v.map_or_else(|| "–".to_string(), |v| format!("{v} ms"))
}

/// The stage's name in plain words.
fn stage_label(stage: &str) -> &str {
    match stage {
        "llm_request_started" => "Model asked",
        "first_token" => "First word written",
        "first_segment" => "First sentence complete",
        "tts_request_started" => "Voice asked",
        "tts_ready" => "First audio made",
        "first_audio_sent" => "First audio sent",
        "playback_started" => "First audio heard",
        "response_complete" => "Reply complete",
        other => other,
    }
}
