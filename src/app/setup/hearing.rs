//! Setup's "Speech recognition" card: who turns the microphone's audio into text, in which
//! language, and whether hands-free listening goes on while the avatar speaks (barge-in).

use super::fields::{Field, SecretField, TextField};
use crate::shared::{
    config::{AsrConfig, AsrProvider},
    config_form::{
        ASR_BARGE_IN, ASR_LANGUAGE, ASR_PROVIDER, ASR_SERVER_API_KEY, ASR_SERVER_ENDPOINT,
        ASR_SERVER_MODEL, ASR_SERVER_TIMEOUT_MS,
    },
    AppError,
};
use leptos::prelude::*;

/// The speech recognition settings.
#[component]
pub fn AsrFields(cfg: AsrConfig, errors: Signal<Option<AppError>>) -> impl IntoView {
    let provider = RwSignal::new(cfg.provider);
    let server = cfg.providers.openai_compatible;
    let barge_in_path = ASR_BARGE_IN.path;
    view! {
        <fieldset class="card" data-testid="asr-settings">
            <legend>"Speech recognition"</legend>
            <Field field=&ASR_PROVIDER errors>
                <select
                    id=ASR_PROVIDER.path
                    name=ASR_PROVIDER.path
                    on:change=move |ev| {
                        if let Some(p) = AsrProvider::from_name(&event_target_value(&ev)) {
                            provider.set(p);
                        }
                    }
                >
                    {AsrProvider::ALL
                        .map(|p| view! { <option value=p.name() selected=p == cfg.provider>{p.label()}</option> })
                        .collect_view()}
                </select>
            </Field>
            <div class="group" hidden=move || !provider.get().uses_endpoint()>
                <TextField field=&ASR_SERVER_ENDPOINT value=server.endpoint errors kind="url" placeholder="https://api.openai.com/v1"/>
                <SecretField field=&ASR_SERVER_API_KEY set=server.api_key_set errors/>
                <div class="row">
                    <TextField field=&ASR_SERVER_MODEL value=server.model errors/>
                    <TextField field=&ASR_SERVER_TIMEOUT_MS value=server.timeout_ms.to_string() errors kind="number" step="1"/>
                </div>
            </div>
            <TextField field=&ASR_LANGUAGE value=cfg.language errors placeholder="en"/>
            <Field field=&ASR_BARGE_IN errors>
                // Unticked sends the hidden "false"; ticked sends both, and the later one wins.
                <input type="hidden" name=barge_in_path value="false"/>
                <label class="check">
                    <input type="checkbox" id=barge_in_path name=barge_in_path value="true" checked=cfg.barge_in data-testid="asr-barge-in"/>
                    "Speaking interrupts the avatar in hands-free mode"
                </label>
            </Field>
        </fieldset>
    }
}
