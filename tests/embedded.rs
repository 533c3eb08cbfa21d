//! The built-in model, for real: SmolLM2-135M from the models folder `make setup` fills.

use futures::StreamExt;
use std::path::PathBuf;
use waifu_rt3d::llm::{
    embedded::{Embedded, LoadState, MODEL_FILE},
    ChatEvent, ChatModel, ChatRequest, FinishReason, PromptMessage, PromptRole,
};

fn model_path() -> PathBuf {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("data/models")
        .join(MODEL_FILE);
    assert!(
        path.is_file(),
        "{} is missing: run `make setup` (make test does) to install the built-in model",
        path.display()
    );
    path
}

fn ask(question: &str, max_tokens: u32) -> ChatRequest {
    ChatRequest {
        messages: vec![
            PromptMessage::new(
                PromptRole::System,
                "You are a helpful assistant. Answer briefly.",
            ),
            PromptMessage::new(PromptRole::User, question),
        ],
        model: String::new(),
        temperature: 0.0,
        max_tokens,
    }
}

async fn run(model: &Embedded, request: ChatRequest) -> (Vec<f32>, String, FinishReason) {
    let mut stream = model.chat(request).await.expect("the model starts");
    let (mut progress, mut text, mut finish) = (Vec::new(), String::new(), None);
    while let Some(event) = stream.next().await {
        match event.expect("no engine error") {
            ChatEvent::Loading(p) => progress.push(p),
            ChatEvent::Content(c) => text.push_str(&c),
            ChatEvent::Reasoning(_) => {}
            ChatEvent::Finished { reason, .. } => finish = Some(reason),
        }
    }
    (progress, text, finish.expect("a finish event"))
}

#[tokio::test(flavor = "multi_thread")]
async fn loads_lazily_answers_greedily_and_stops_at_end_of_turn() {
    let model = Embedded::new(model_path());
    assert_eq!(model.state(), LoadState::Idle);
    assert!(model
        .probe()
        .await
        .unwrap()
        .detail
        .contains("loads with the first message"));

    let (progress, first, finish) = run(&model, ask("What is the capital of France?", 64)).await;
    assert!(!progress.is_empty(), "no loading progress was reported");
    assert!(matches!(model.state(), LoadState::Ready { .. }));
    assert!(first.contains("Paris"), "unexpected answer: {first:?}");
    assert_eq!(
        finish,
        FinishReason::Stop,
        "did not stop at end of turn: {first:?}"
    );
    assert!(
        !first.contains("<|im_end|>"),
        "special tokens leaked: {first:?}"
    );

    // Greedy decoding with the cached prompt prefix reused must give the same answer.
    let (progress, again, _) = run(&model, ask("What is the capital of France?", 64)).await;
    assert!(progress.is_empty(), "the model loaded twice");
    assert_eq!(again, first);

    // max_tokens is a hard limit.
    let (_, short, finish) = run(&model, ask("Write a long story about a dragon.", 5)).await;
    assert_eq!(finish, FinishReason::Length);
    assert!(!short.is_empty());
}

#[tokio::test]
async fn a_missing_file_says_how_to_get_it() {
    let model = Embedded::new(PathBuf::from("/nonexistent/model.gguf"));
    let err = model.chat(ask("hi", 8)).await.err().expect("no file");
    assert_eq!(err.code(), "llm_model_missing");
    assert!(err.to_string().contains("make setup"));
    assert_eq!(model.probe().await.unwrap_err().code(), "llm_model_missing");
}
