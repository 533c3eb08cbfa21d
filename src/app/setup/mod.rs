//! The Setup tab: who answers (language model), who speaks (voices) and who listens (speech
//! recognition), saved through the `save_settings` server function. Keys are write-only: the
//! form only ever learns whether one is set.

mod fields;
mod hearing;
mod speak;

use crate::{
    api::{check_llm, get_settings, save_settings},
    app::common::ErrorBanner,
    shared::{
        config::{
            AppConfig, AudioFormat, LlmConfig, LlmProvider, MemoryConfig, TtsConfig, TtsProvider,
        },
        config_form::{
            LLM_API_KEY, LLM_CONNECT_TIMEOUT_MS, LLM_ENDPOINT, LLM_FIRST_TOKEN_TIMEOUT_MS,
            LLM_IDLE_TIMEOUT_S, LLM_LOCAL_MODEL, LLM_MAX_TOKENS, LLM_MODEL, LLM_PROVIDER,
            LLM_SPOKEN_MAX_TOKENS, LLM_TEMPERATURE, LLM_TOTAL_TIMEOUT_S, MEMORY_MAX_HISTORY,
            TTS_FALLBACK_CHAIN, TTS_FORMAT, TTS_PROVIDER, TTS_SAMPLE_RATE, USER_NAME,
        },
        health::{LlmCheck, ProviderHealth, ProviderState},
        AppError,
    },
};
use fields::{Field, ProviderFields, Saves, SecretField, TextField};
use leptos::{ev::SubmitEvent, prelude::*, task::spawn_local};
use speak::{ChainOrder, SpeakTest};
use wasm_bindgen::JsCast;

/// The Setup tab.
#[component]
pub fn SetupTab() -> impl IntoView {
    let settings = Resource::new(|| (), |_| get_settings());
    view! {
        <section class="tab setup" data-testid="tab-setup">
            <h1>"Setup"</h1>
            <p class="muted lead">
                "Choose who answers, who speaks and who listens. The defaults work offline with no key. "
                "Keys stay on this machine, encrypted, are never shown again once saved, and are only "
                "sent to the server they were saved for."
            </p>
            <Suspense fallback=|| view! { <p class="muted">"Loading settings…"</p> }>
                {move || Suspend::new(async move {
                    match settings.await {
                        Ok(cfg) => view! { <SettingsForm initial=cfg/> }.into_any(),
                        Err(e) => view! { <ErrorBanner error=e/> }.into_any(),
                    }
                })}
            </Suspense>
        </section>
    }
}

/// The settings form. After a successful save it re-renders from what the server stored.
#[component]
fn SettingsForm(initial: AppConfig) -> impl IntoView {
    let saved = RwSignal::new(initial);
    let save = Action::new(|entries: &Vec<(String, String)>| save_settings(entries.clone()));
    let errors = Signal::derive(move || save.value().get().and_then(Result::err));
    // Each successful save empties the key fields (see `SecretField`).
    let saves = Saves(RwSignal::new(0));
    provide_context(saves);
    Effect::new(move |_| {
        if let Some(Ok(done)) = save.value().get() {
            saved.set(done.config);
            saves.0.update(|n| *n += 1);
        }
    });
    // What the last save did besides saving (a key dropped because its endpoint moved).
    let notices = move || {
        save.value()
            .get()
            .and_then(Result::ok)
            .map(|done| done.notices)
            .unwrap_or_default()
    };
    // The form can only be sent once the page is interactive.
    let hydrated = RwSignal::new(false);
    Effect::new(move |_| hydrated.set(true));

    let form = NodeRef::<leptos::html::Form>::new();
    let on_submit = move |ev: SubmitEvent| {
        ev.prevent_default();
        if let Some(form) = form.get() {
            save.dispatch(form_entries(&form));
        }
    };
    let status = move || {
        if save.pending().get() {
            ("saving", "Saving…")
        } else {
            match save.value().get() {
                Some(Ok(_)) => ("saved", "Saved."),
                Some(Err(_)) => ("error", "Not saved: see the messages above."),
                None => ("idle", ""),
            }
        }
    };

    view! {
        <form node_ref=form on:submit=on_submit class="settings" novalidate data-testid="settings-form">
            {move || {
                let cfg = saved.get();
                view! {
                    <LlmFields cfg=cfg.llm errors/>
                    <TtsFields cfg=cfg.tts errors/>
                    <hearing::AsrFields cfg=cfg.asr errors/>
                    <MemoryFields cfg=cfg.memory user_name=cfg.user.name errors/>
                }
            }}
            {move || errors.get().filter(|e| e.fields.is_empty()).map(|e| view! { <ErrorBanner error=e/> })}
            {move || {
                let notices = notices();
                (!notices.is_empty()).then(|| view! {
                    <div class="banner banner-warn" role="status" data-testid="save-notices">
                        {notices.into_iter().map(|n| view! { <p>{n}</p> }).collect_view()}
                    </div>
                })
            }}
            <div class="form-actions">
                <button type="submit" class="primary" disabled=move || !hydrated.get() || save.pending().get()>
                    "Save settings"
                </button>
                <span class="status" role="status" data-testid="save-status" data-state=move || status().0>
                    {move || status().1}
                </span>
            </div>
        </form>
    }
}

#[component]
fn LlmFields(cfg: LlmConfig, errors: Signal<Option<AppError>>) -> impl IntoView {
    let provider = RwSignal::new(cfg.provider);
    let endpoint = RwSignal::new(cfg.endpoint.clone());
    let on_provider = move |ev| {
        let Some(new) = LlmProvider::from_name(&event_target_value(&ev)) else {
            return;
        };
        // Follow the new provider's usual address unless the user typed their own.
        let current = endpoint.get_untracked();
        let current = current.trim();
        if current.is_empty()
            || LlmProvider::ALL
                .iter()
                .any(|p| p.default_endpoint() == current)
        {
            endpoint.set(new.default_endpoint().to_string());
        }
        provider.set(new);
    };
    let models = RwSignal::new(Vec::<String>::new());
    let check = RwSignal::new(None::<LlmCheck>);
    let testing = RwSignal::new(false);
    let test = move |_| {
        testing.set(true);
        let typed_key = document()
            .get_element_by_id("llm.api_key")
            .and_then(|e| e.dyn_into::<web_sys::HtmlInputElement>().ok())
            .map(|i| i.value())
            .unwrap_or_default();
        let (p, e) = (provider.get_untracked(), endpoint.get_untracked());
        spawn_local(async move {
            match check_llm(p.name().to_string(), e, typed_key).await {
                Ok(c) => {
                    models.set(c.models.clone());
                    check.set(Some(c));
                }
                Err(err) => check.set(Some(LlmCheck {
                    health: ProviderHealth {
                        provider: p.name().into(),
                        state: ProviderState::Error,
                        detail: err.message,
                        latency_ms: None,
                        last_error: None,
                        last_success: None,
                    },
                    models: Vec::new(),
                })),
            }
            testing.set(false);
        });
    };
    view! {
        <fieldset class="card" data-testid="llm-settings">
            <legend>"Language model"</legend>
            <Field field=&LLM_PROVIDER errors>
                <select id="llm.provider" name="llm.provider" on:change=on_provider>
                    {LlmProvider::ALL
                        .map(|p| view! { <option value=p.name() selected=p == cfg.provider>{p.label()}</option> })
                        .collect_view()}
                </select>
            </Field>
            <div class="group" hidden=move || !provider.get().uses_endpoint()>
                <Field field=&LLM_ENDPOINT errors>
                    <input
                        id="llm.endpoint"
                        name="llm.endpoint"
                        type="url"
                        spellcheck="false"
                        value=cfg.endpoint.clone()
                        prop:value=move || endpoint.get()
                        on:input=move |ev| endpoint.set(event_target_value(&ev))
                    />
                </Field>
                <SecretField field=&LLM_API_KEY set=cfg.api_key_set errors/>
            </div>
            <div class="group" hidden=move || provider.get() != LlmProvider::Embedded>
                <LocalModelField selected=cfg.local_model.clone() errors/>
            </div>
            <Field field=&LLM_MODEL errors>
                <input id="llm.model" name="llm.model" list="llm-models" value=cfg.model placeholder="the server's loaded model" spellcheck="false"/>
                <datalist id="llm-models">
                    {move || models.get().into_iter().map(|m| view! { <option value=m></option> }).collect_view()}
                </datalist>
            </Field>
            <div class="row test-row">
                <button type="button" data-testid="llm-test" on:click=test disabled=move || testing.get()>
                    {move || if testing.get() { "Testing…" } else { "Test connection" }}
                </button>
                {move || check.get().map(|c| view! {
                    <p class="test-result" data-testid="llm-test-result" data-state=c.health.state.name()>
                        <span class=if c.health.state == ProviderState::Ok { "state state-ok" } else { "state state-bad" }>{c.health.state.name()}</span>
                        " "{c.health.detail.clone()}
                        {c.health.latency_ms.map(|ms| format!(" ({ms} ms)"))}
                        {(!c.models.is_empty()).then(|| format!(" · {} model(s): pick one in the Model box", c.models.len()))}
                    </p>
                })}
            </div>
            <div class="row">
                <TextField field=&LLM_TEMPERATURE value=cfg.temperature.to_string() errors kind="number" step="0.05"/>
                <TextField field=&LLM_MAX_TOKENS value=cfg.max_tokens.to_string() errors kind="number"/>
                <TextField field=&LLM_SPOKEN_MAX_TOKENS value=cfg.spoken_max_tokens.to_string() errors kind="number"/>
            </div>
            <div class="row">
                <TextField field=&LLM_CONNECT_TIMEOUT_MS value=cfg.connect_timeout_ms.to_string() errors kind="number" step="1"/>
                <TextField field=&LLM_FIRST_TOKEN_TIMEOUT_MS value=cfg.first_token_timeout_ms.to_string() errors kind="number" step="1"/>
            </div>
            <div class="row">
                <TextField field=&LLM_IDLE_TIMEOUT_S value=cfg.idle_timeout_s.to_string() errors kind="number" step="1"/>
                <TextField field=&LLM_TOTAL_TIMEOUT_S value=cfg.total_timeout_s.to_string() errors kind="number" step="1"/>
            </div>
        </fieldset>
    }
}

/// The built-in model: one option per `.gguf` file in the models folder, described from its
/// header. The saved choice stays an option even when its file is gone, so saving the form never
/// changes it unasked.
#[component]
fn LocalModelField(selected: String, errors: Signal<Option<AppError>>) -> impl IntoView {
    // Filled in the browser once the page is live: the form itself never waits for the list
    // (a resource read here would hold the whole Setup tab until it arrived).
    let files = RwSignal::new(None::<Result<Vec<crate::shared::models::LocalModel>, AppError>>);
    #[cfg(feature = "hydrate")]
    spawn_local(async move { files.set(Some(crate::api::local_models().await)) });
    view! {
        <Field field=&LLM_LOCAL_MODEL errors>
            <select id="llm.local_model" name="llm.local_model" data-testid="llm-local-model">
                {move || {
                    // Until the list arrives (and when it cannot be read), the saved choice alone.
                    let loaded = files.get().and_then(Result::ok);
                    let listed = loaded.clone().unwrap_or_default();
                    let mut options: Vec<_> = listed
                        .iter()
                        .map(|m| view! {
                            <option value=m.file.clone() selected=m.file == selected title=m.file.clone()>{m.summary()}</option>
                        })
                        .collect();
                    if !listed.iter().any(|m| m.file == selected) {
                        let label = if loaded.is_some() {
                            format!("{selected} (not in the models folder)")
                        } else {
                            selected.clone()
                        };
                        options.insert(0, view! {
                            <option value=selected.clone() selected=true title=selected.clone()>{label}</option>
                        });
                    }
                    options.collect_view()
                }}
            </select>
        </Field>
    }
}

#[component]
fn TtsFields(cfg: TtsConfig, errors: Signal<Option<AppError>>) -> impl IntoView {
    let provider = RwSignal::new(cfg.provider);
    view! {
        <fieldset class="card" data-testid="tts-settings">
            <legend>"Voice"</legend>
            <Field field=&TTS_PROVIDER errors>
                <select
                    id="tts.provider"
                    name="tts.provider"
                    on:change=move |ev| {
                        if let Some(p) = TtsProvider::from_name(&event_target_value(&ev)) {
                            provider.set(p);
                        }
                    }
                >
                    {TtsProvider::ALL
                        .map(|p| view! { <option value=p.name() selected=p == cfg.provider>{p.label()}</option> })
                        .collect_view()}
                </select>
            </Field>
            <Field field=&TTS_FALLBACK_CHAIN errors>
                <ChainOrder chain=cfg.fallback_chain.clone()/>
            </Field>
            <div class="row">
                <Field field=&TTS_FORMAT errors>
                    <select id="tts.format" name="tts.format">
                        {AudioFormat::ALL
                            .map(|f| view! { <option value=f.name() selected=f == cfg.format>{f.name()}</option> })
                            .collect_view()}
                    </select>
                </Field>
                <Field field=&TTS_SAMPLE_RATE errors>
                    <select id="tts.sample_rate" name="tts.sample_rate">
                        {[8_000u32, 16_000, 22_050, 24_000, 32_000, 44_100, 48_000]
                            .map(|r| view! { <option value=r.to_string() selected=r == cfg.sample_rate>{r.to_string()}</option> })
                            .collect_view()}
                    </select>
                </Field>
            </div>
            <h2 class="subhead">"Provider settings"</h2>
            {TtsProvider::ALL
                .map(|p| view! { <ProviderFields provider=p settings=cfg.providers.get(p).clone() selected=provider errors/> })
                .collect_view()}
            <SpeakTest/>
        </fieldset>
    }
}

#[component]
fn MemoryFields(
    cfg: MemoryConfig,
    user_name: String,
    errors: Signal<Option<AppError>>,
) -> impl IntoView {
    view! {
        <fieldset class="card" data-testid="memory-settings">
            <legend>"Conversation"</legend>
            <TextField field=&MEMORY_MAX_HISTORY value=cfg.max_history.to_string() errors kind="number"/>
            <TextField field=&USER_NAME value=user_name errors/>
        </fieldset>
    }
}

/// Every `(name, value)` the form would submit, in document order.
fn form_entries(form: &web_sys::HtmlFormElement) -> Vec<(String, String)> {
    let Ok(data) = web_sys::FormData::new_with_form(form) else {
        return Vec::new();
    };
    let Ok(Some(iter)) = js_sys::try_iter(&data) else {
        return Vec::new();
    };
    iter.flatten()
        .filter_map(|entry| {
            let pair = js_sys::Array::from(&entry);
            Some((pair.get(0).as_string()?, pair.get(1).as_string()?))
        })
        .collect()
}
