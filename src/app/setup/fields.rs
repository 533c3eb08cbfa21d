//! Form building blocks: a labelled field with its inline error, text and key inputs, and the
//! per-provider TTS settings. Each takes its setting's entry of the one table of settings
//! ([`crate::shared::config_form`]), which gives its name, label and hint.

use crate::shared::{
    config::{TtsProvider, TtsProviderSettings, XttsFlavor},
    config_form::{
        FormField, PROVIDER_API_KEY, PROVIDER_BINARY, PROVIDER_ENDPOINT, PROVIDER_FLAVOR,
        PROVIDER_LANGUAGE, PROVIDER_MODEL, PROVIDER_VOICE_ID, PROVIDER_VOICE_PATH,
    },
    AppError,
};
use leptos::prelude::*;

/// Counts successful saves. Updating the form in place after a save keeps what inputs hold, so key
/// fields watch this to empty themselves: a saved key never lingers in the page.
#[derive(Clone, Copy)]
pub struct Saves(pub RwSignal<u32>);

/// A label, the control, an optional hint and the server's message for this field, if any.
/// `provider` picks one provider's copy of a `tts.providers.*` setting.
#[component]
pub fn Field(
    field: &'static FormField,
    #[prop(optional_no_strip)] provider: Option<TtsProvider>,
    errors: Signal<Option<AppError>>,
    children: Children,
) -> impl IntoView {
    let path = field.path_for(provider);
    let label = field.label_for(provider);
    let hint = field.hint;
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
    field: &'static FormField,
    #[prop(optional_no_strip)] provider: Option<TtsProvider>,
    #[prop(into)] value: String,
    errors: Signal<Option<AppError>>,
    #[prop(default = "text")] kind: &'static str,
    #[prop(optional)] placeholder: &'static str,
    #[prop(default = "any")] step: &'static str,
) -> impl IntoView {
    let path = field.path_for(provider);
    view! {
        <Field field provider errors>
            <input id=path.clone() name=path type=kind value=value placeholder=placeholder step=step spellcheck="false"/>
        </Field>
    }
}

/// A program or model file: shown, not editable. Whoever can reach the server must not choose
/// what it runs, so these come from the config file only (the input has no `name`, so the form
/// never sends it).
#[component]
pub fn FileSetting(
    field: &'static FormField,
    #[prop(optional_no_strip)] provider: Option<TtsProvider>,
    #[prop(into)] value: String,
    errors: Signal<Option<AppError>>,
    /// What an empty value means.
    empty: &'static str,
) -> impl IntoView {
    let path = field.path_for(provider);
    view! {
        <Field field provider errors>
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
    field: &'static FormField,
    #[prop(optional_no_strip)] provider: Option<TtsProvider>,
    set: bool,
    errors: Signal<Option<AppError>>,
) -> impl IntoView {
    let path = field.path_for(provider);
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
        <Field field provider errors>
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
    let flavor_path = PROVIDER_FLAVOR.path_for(Some(provider));
    let s = settings;
    view! {
        <details class="provider" data-provider=provider.name() open=move || selected.get() == provider>
            <summary>
                {provider.label()}
                {move || (selected.get() == provider).then(|| view! { <span class="badge badge-ok">"speaks first"</span> })}
            </summary>
            <div class="provider-body">
                {provider.uses_endpoint().then(|| view! {
                    <TextField field=&PROVIDER_ENDPOINT provider=Some(provider) value=s.endpoint.clone() errors kind="url"/>
                })}
                {provider.needs_key().then(|| view! {
                    <SecretField field=&PROVIDER_API_KEY provider=Some(provider) set=s.api_key_set errors/>
                })}
                <TextField field=&PROVIDER_VOICE_ID provider=Some(provider) value=s.voice_id.clone() errors/>
                {matches!(provider, TtsProvider::FishAudio | TtsProvider::Elevenlabs).then(|| view! {
                    <TextField field=&PROVIDER_MODEL provider=Some(provider) value=s.model.clone() errors/>
                })}
                {(provider == TtsProvider::XttsServer).then(|| {
                    let flavor = s.flavor.unwrap_or(XttsFlavor::XttsApiServer);
                    view! {
                        <Field field=&PROVIDER_FLAVOR provider=Some(provider) errors>
                            <select id=flavor_path.clone() name=flavor_path.clone()>
                                <option value="xtts_api_server" selected=flavor == XttsFlavor::XttsApiServer>"xtts-api-server (port 8020)"</option>
                                <option value="coqui_server" selected=flavor == XttsFlavor::CoquiServer>"Coqui TTS server (port 5002)"</option>
                            </select>
                        </Field>
                        <TextField field=&PROVIDER_LANGUAGE provider=Some(provider) value=s.language.clone() errors/>
                    }
                })}
                {(provider == TtsProvider::PiperLocal).then(|| view! {
                    <FileSetting field=&PROVIDER_BINARY provider=Some(provider) value=s.binary.clone() errors empty="the one make setup installed"/>
                    <FileSetting field=&PROVIDER_VOICE_PATH provider=Some(provider) value=s.voice_path.clone() errors empty="the bundled voice"/>
                })}
                {(provider == TtsProvider::Espeak).then(|| view! {
                    <FileSetting field=&PROVIDER_BINARY provider=Some(provider) value=s.binary.clone() errors empty="espeak-ng"/>
                })}
            </div>
        </details>
    }
}
