//! The Setup tab's voice tools: the fallback order (move up/down) and "Speak test sentence".

use crate::{
    api::speak_text,
    app::common::ErrorBanner,
    shared::{config::TtsProvider, tts::Speech},
};
use leptos::prelude::*;

/// The fallback chain as an ordered list: ticked providers are submitted in the order shown.
#[component]
pub fn ChainOrder(chain: Vec<TtsProvider>) -> impl IntoView {
    // Configured fallbacks first, in their order, then the rest.
    let mut order: Vec<(TtsProvider, RwSignal<bool>)> =
        chain.iter().map(|p| (*p, RwSignal::new(true))).collect();
    order.extend(
        TtsProvider::ALL
            .into_iter()
            .filter(|p| !chain.contains(p))
            .map(|p| (p, RwSignal::new(false))),
    );
    let order = RwSignal::new(order);
    let shift = move |p: TtsProvider, up: bool| {
        order.update(|o| {
            let Some(i) = o.iter().position(|(q, _)| *q == p) else {
                return;
            };
            let j = if up { i.checked_sub(1) } else { Some(i + 1) };
            if let Some(j) = j.filter(|j| *j < o.len()) {
                o.swap(i, j);
            }
        })
    };
    view! {
        <input type="hidden" name="tts.fallback_chain" value=""/>
        <ol class="chain" id="tts.fallback_chain" data-testid="chain-order">
            <For each=move || order.get() key=|(p, _)| *p let:item>
                {
                    let (p, checked) = item;
                    view! {
                        <li class="chain-row" data-provider=p.name()>
                            <label class="check">
                                <input
                                    type="checkbox"
                                    name="tts.fallback_chain"
                                    value=p.name()
                                    prop:checked=move || checked.get()
                                    on:change=move |ev| checked.set(event_target_checked(&ev))
                                />
                                {p.label()}
                            </label>
                            <button type="button" class="small" title="Move up" aria-label=format!("Move {} up", p.label()) on:click=move |_| shift(p, true)>"↑"</button>
                            <button type="button" class="small" title="Move down" aria-label=format!("Move {} down", p.label()) on:click=move |_| shift(p, false)>"↓"</button>
                        </li>
                    }
                }
            </For>
        </ol>
    }
}

/// Speaks a sentence with the saved voice settings and plays it, saying who spoke, how long it
/// took and whether it came from the cache.
#[component]
pub fn SpeakTest() -> impl IntoView {
    let text = RwSignal::new("Hello! I am your companion, and this is how I sound.".to_string());
    let speak = Action::new(|text: &String| speak_text(text.clone()));
    // idle → speaking → ready (audio loaded) → playing → played; or error.
    let playback = RwSignal::new("idle");
    Effect::new(move |_| match speak.value().get() {
        Some(Ok(_)) => playback.set("loading"),
        Some(Err(_)) => playback.set("error"),
        None => {}
    });
    let state = move || {
        if speak.pending().get() {
            "speaking"
        } else {
            playback.get()
        }
    };
    let result = move |s: Speech| {
        let fell = s
            .meta
            .fell_back_from
            .iter()
            .map(|f| format!("{} ({})", f.provider, f.code))
            .collect::<Vec<_>>()
            .join(", ");
        view! {
            <audio
                src=s.url.clone()
                controls
                autoplay
                data-testid="speak-audio"
                on:canplay=move |_| if playback.get_untracked() == "loading" { playback.set("ready") }
                on:playing=move |_| playback.set("playing")
                on:ended=move |_| playback.set("played")
            ></audio>
            <dl class="speak-meta">
                <dt>"Voice"</dt><dd data-testid="speak-provider">{s.meta.provider.clone()}</dd>
                <dt>"Took"</dt><dd data-testid="speak-latency">{format!("{} ms", s.latency_ms)}</dd>
                <dt>"From cache"</dt><dd data-testid="speak-cached">{if s.meta.cached { "yes" } else { "no" }}</dd>
                {s.meta.duration_ms.map(|ms| view! { <dt>"Length"</dt><dd>{format!("{:.1} s", ms as f64 / 1000.0)}</dd> })}
                {(!fell.is_empty()).then(|| view! { <dt>"Skipped"</dt><dd data-testid="speak-fell-back">{fell}</dd> })}
            </dl>
        }
    };
    view! {
        <div class="speak-test" data-testid="speak-test" data-state=state>
            <label for="speak-text">"Test sentence"</label>
            <div class="row">
                <input id="speak-text" type="text" prop:value=move || text.get() on:input=move |ev| text.set(event_target_value(&ev))/>
                <button
                    type="button"
                    data-testid="speak-button"
                    disabled=move || speak.pending().get()
                    on:click=move |_| { speak.dispatch(text.get_untracked()); }
                >
                    "Speak test sentence"
                </button>
            </div>
            <small class="hint">"Uses the saved settings: save first after a change."</small>
            {move || speak.value().get().map(|r| match r {
                Ok(s) => result(s).into_any(),
                Err(e) => view! { <ErrorBanner error=e/> }.into_any(),
            })}
        </div>
    }
}
