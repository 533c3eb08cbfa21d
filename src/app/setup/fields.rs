//! Form building blocks: a labelled field with its inline error, text and key inputs, and the
//! per-provider TTS settings.

use crate::shared::{
    config::{TtsProvider, TtsProviderSettings, XttsFlavor},
    AppError,
};
use leptos::prelude::*;

/// Counts successful saves. Updating the form in place after a save keeps what inputs hold, so key
/// fields watch this to empty themselves: a saved key never lingers in the page.
#[derive(Clone, Copy)]
pub struct Saves(pub RwSignal<u32>);

/// A label, the control, an optional hint and the server's message for this field, if any.
#[component]
pub fn Field(
    label: &'static str,
    #[prop(into)] path: String,
    errors: Signal<Option<AppError>>,
    #[prop(optional)] hint: &'static str,
    children: Children,
) -> impl IntoView {
    let message = {
        let path = path.clone();
        move || errors.get().and_then(|e| e.field(&path).map(str::to_owned))
    };
    let has_error = message.clone();
    view! {
        <div class="field" class:invalid=move || has_error().is_some()>
            <label for=path.clone()>{label}</label>
            {children()}
            {(!hint.is_empty()).then(|| view! { <small class="hint">{hint}</small> })}
            {move || {
                message().map(|m| view! { <p class="field-error" role="alert" data-error-for=path.clone()>{m}</p> })
            }}
        </div>
    }
}

/// A plain input.
#[component]
pub fn TextField(
    label: &'static str,
    #[prop(into)] path: String,
    #[prop(into)] value: String,
    errors: Signal<Option<AppError>>,
    #[prop(default = "text")] kind: &'static str,
    #[prop(optional)] hint: &'static str,
    #[prop(optional)] placeholder: &'static str,
    #[prop(default = "any")] step: &'static str,
) -> impl IntoView {
    view! {
        <Field label path=path.clone() errors hint>
            <input id=path.clone() name=path type=kind value=value placeholder=placeholder step=step spellcheck="false"/>
        </Field>
    }
}

/// A program or model file: shown, not editable. Whoever can reach the server must not choose
/// what it runs, so these come from the config file only (the input has no `name`, so the form
/// never sends it).
#[component]
pub fn FileSetting(
    label: &'static str,
    #[prop(into)] path: String,
    #[prop(into)] value: String,
    errors: Signal<Option<AppError>>,
    /// What an empty value means.
    empty: &'static str,
) -> impl IntoView {
    view! {
        <Field label path=path.clone() errors hint="Set in the config file (config/app.json in the data folder), then restart; it cannot be changed here.">
            <input
                id=path.clone()
                type="text"
                readonly
                aria-readonly="true"
                class="readonly"
                spellcheck="false"
                value=value
                placeholder=empty
                data-testid=format!("file-setting-{path}")
            />
        </Field>
    }
}

/// A write-only key: the input starts empty whatever is stored; leaving it empty keeps the stored
/// key, and a box removes it.
#[component]
pub fn SecretField(
    label: &'static str,
    #[prop(into)] path: String,
    set: bool,
    errors: Signal<Option<AppError>>,
) -> impl IntoView {
    let clear = format!("{path}.clear");
    let saves = use_context::<Saves>();
    let emptied = move || {
        if let Some(s) = saves {
            s.0.track();
        }
        ""
    };
    let unticked = move || {
        if let Some(s) = saves {
            s.0.track();
        }
        false
    };
    view! {
        <Field label path=path.clone() errors hint="Write-only: kept on this machine, never shown again.">
            <div class="secret">
                <input
                    id=path.clone()
                    name=path.clone()
                    type="password"
                    autocomplete="new-password"
                    spellcheck="false"
                    placeholder=if set { "saved: type a new key to replace it" } else { "not set" }
                    data-testid=format!("secret-{path}")
                    prop:value=emptied
                />
                <span class="badge" class:badge-ok=set data-testid=format!("key-state-{path}")>
                    {if set { "set" } else { "not set" }}
                </span>
            </div>
            {set.then(|| view! {
                <label class="check small">
                    <input type="checkbox" name=clear.clone() prop:checked=unticked/>
                    "Remove the saved key"
                </label>
            })}
        </Field>
    }
}

/// One TTS provider's settings, folded away unless it is the selected provider.
#[component]
pub fn ProviderFields(
    provider: TtsProvider,
    settings: TtsProviderSettings,
    selected: RwSignal<TtsProvider>,
    errors: Signal<Option<AppError>>,
) -> impl IntoView {
    let at = move |field: &str| format!("tts.providers.{}.{field}", provider.name());
    let voice_label = match provider {
        TtsProvider::FishAudio => "Voice model id (reference_id)",
        TtsProvider::Elevenlabs => "Voice id",
        TtsProvider::XttsServer => "Speaker",
        TtsProvider::PiperLocal => "Speaker (multi-speaker voices only)",
        TtsProvider::Espeak => "Voice",
    };
    let s = settings;
    view! {
        <details class="provider" data-provider=provider.name() open=move || selected.get() == provider>
            <summary>
                {provider.label()}
                {move || (selected.get() == provider).then(|| view! { <span class="badge badge-ok">"speaks first"</span> })}
            </summary>
            <div class="provider-body">
                {provider.uses_endpoint().then(|| view! {
                    <TextField label="Endpoint" path=at("endpoint") value=s.endpoint.clone() errors kind="url"/>
                })}
                {provider.needs_key().then(|| view! {
                    <SecretField label="API key" path=at("api_key") set=s.api_key_set errors/>
                })}
                <TextField label=voice_label path=at("voice_id") value=s.voice_id.clone() errors/>
                {matches!(provider, TtsProvider::FishAudio | TtsProvider::Elevenlabs).then(|| view! {
                    <TextField label="Model" path=at("model") value=s.model.clone() errors/>
                })}
                {(provider == TtsProvider::XttsServer).then(|| {
                    let flavor = s.flavor.unwrap_or(XttsFlavor::XttsApiServer);
                    view! {
                        <Field label="Server kind" path=at("flavor") errors hint="The two XTTS servers speak different protocols.">
                            <select id=at("flavor") name=at("flavor")>
                                <option value="xtts_api_server" selected=flavor == XttsFlavor::XttsApiServer>"xtts-api-server (port 8020)"</option>
                                <option value="coqui_server" selected=flavor == XttsFlavor::CoquiServer>"Coqui TTS server (port 5002)"</option>
                            </select>
                        </Field>
                        <TextField label="Language" path=at("language") value=s.language.clone() errors hint="en, de, fr, ja, zh-cn, …"/>
                    }
                })}
                {(provider == TtsProvider::PiperLocal).then(|| view! {
                    <FileSetting label="Piper program" path=at("binary") value=s.binary.clone() errors empty="the one make setup installed"/>
                    <FileSetting label="Voice file (.onnx)" path=at("voice_path") value=s.voice_path.clone() errors empty="the bundled voice"/>
                })}
                {(provider == TtsProvider::Espeak).then(|| view! {
                    <FileSetting label="eSpeak program" path=at("binary") value=s.binary.clone() errors empty="espeak-ng"/>
                })}
            </div>
        </details>
    }
}
