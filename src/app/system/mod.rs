//! The System tab: the health report as cards, refreshed on demand.

use crate::{
    api::get_health,
    app::common::ErrorBanner,
    shared::health::{Health, ProviderHealth},
};
use leptos::prelude::*;

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
        </section>
    }
}

#[component]
fn HealthView(health: Health) -> impl IntoView {
    let yes_no = |b: bool| if b { "yes" } else { "no" };
    let Health {
        ok,
        libs,
        llm,
        tts,
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
            {tts.into_iter().map(|t| view! { <ProviderCard title="Voice" kind="tts" health=t/> }).collect_view()}
            <article class="card health" data-testid="health-card" data-kind="libs" data-state=if libs.three && libs.default_avatar { "ok" } else { "misconfigured" }>
                <h2>"3D viewer"</h2>
                <dl>
                    <dt>"three.js"</dt><dd>{yes_no(libs.three)}</dd>
                    <dt>"three-vrm"</dt><dd>{yes_no(libs.three_vrm)}</dd>
                    <dt>"Default avatar"</dt><dd>{yes_no(libs.default_avatar)}</dd>
                </dl>
            </article>
            <article class="card health" data-testid="health-card" data-kind="version" data-state="ok">
                <h2>"Version"</h2>
                <p class="big" data-testid="version">{version}</p>
            </article>
        </div>
    }
}

#[component]
fn ProviderCard(title: &'static str, kind: &'static str, health: ProviderHealth) -> impl IntoView {
    let state = health.state.name();
    let provider = health.provider;
    let name = provider.clone();
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
