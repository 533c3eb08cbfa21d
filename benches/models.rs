//! Model comparison: every `.gguf` in a folder (`WAIFU_MODELS_DIR`, default `data/models`) answers
//! the same 30 companion prompts through the product's own engine ([`Embedded`]) with the default
//! character's system prompt, and is scored with a simple rubric. Prints one row per model:
//! rubric score, generation and prompt-reading speed, first-token latency (a ~300-token prompt
//! read in full, and ~150 new tokens after a cached conversation, as from turn 2 on), peak RSS
//! and file size.
//!
//! Each model runs in a child process of this same binary, so the peak RSS (`VmHWM`) is that
//! model's alone. Run alone under the build lock (two cores): `make bench` or
//! `cargo bench --features ssr --bench models`.
//!
//! - `WAIFU_MODELS_TUNE=1` also runs the first model (or `WAIFU_MODELS_TUNE_FILE`) under each
//!   sampling preset and system-prompt wording, and prints that table too.
//! - `WAIFU_MODELS_VERBOSE=1` prints every reply with the checks it failed.
//!
//! Replies use a fixed seed, so a run repeats.

use futures::StreamExt;
use serde::{Deserialize, Serialize};
use std::{
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};
use waifu_rt3d::llm::{
    embedded::{Embedded, LoadState, Sampling},
    gguf, ChatEvent, ChatModel, ChatRequest, FinishReason, PromptMessage, PromptRole,
};

/// The child's environment: which file, which preset, which system prompt.
const CHILD: &str = "WAIFU_MODELS_CHILD";
const PRESET: &str = "WAIFU_MODELS_PRESET";
const SYSTEM: &str = "WAIFU_MODELS_SYSTEM";
/// A spoken reply of one to three sentences is well under this; a reply cut here fails "ends".
const MAX_TOKENS: u32 = 96;
const SEED: u32 = 1234;

/// A sampling preset: the temperature (from the request) and the engine's sampler settings.
struct Preset {
    name: &'static str,
    temperature: f32,
    sampling: Sampling,
}

fn presets() -> Vec<Preset> {
    let d = Sampling {
        seed: Some(SEED),
        ..Sampling::default()
    };
    // What the engine did before: top-k 40, top-p 0.95, no min-p, no penalty.
    let before = Sampling {
        min_p: 0.0,
        repeat_penalty: 1.0,
        ..d
    };
    vec![
        Preset {
            name: "default",
            temperature: 0.7,
            sampling: d,
        },
        Preset {
            name: "before",
            temperature: 0.7,
            sampling: before,
        },
        Preset {
            name: "t0.7-minp0.1-rep1.1",
            temperature: 0.7,
            sampling: Sampling {
                min_p: 0.1,
                repeat_penalty: 1.1,
                ..d
            },
        },
        Preset {
            name: "t0.5-minp0.1-rep1.15",
            temperature: 0.5,
            sampling: Sampling {
                min_p: 0.1,
                repeat_penalty: 1.15,
                ..d
            },
        },
        Preset {
            name: "t0.3-minp0.1-rep1.15",
            temperature: 0.3,
            sampling: Sampling {
                min_p: 0.1,
                repeat_penalty: 1.15,
                ..d
            },
        },
        Preset {
            name: "t0.7-minp0.05-rep1.3",
            temperature: 0.7,
            sampling: Sampling {
                repeat_penalty: 1.3,
                ..d
            },
        },
        Preset {
            name: "greedy-rep1.15",
            temperature: 0.0,
            sampling: d,
        },
        Preset {
            name: "greedy-norep",
            temperature: 0.0,
            sampling: Sampling {
                repeat_penalty: 1.0,
                ..d
            },
        },
    ]
}

/// Alternative system prompts, to tell which wording a tiny model follows best. `default` is the
/// default character's own prompt, read from a fresh database.
fn system_prompt(which: &str, default: &str) -> String {
    match which {
        "plain" => "You are Aiko, a friendly companion. Talk like a friend on the phone: reply in \
                    one to three short sentences of plain English. Start each reply with one \
                    emotion tag: [happy], [sad], [angry], [relaxed], [surprised] or [neutral]."
            .into(),
        "minimal" => "You are Aiko, a kind friend. Answer in English in one or two short \
                      sentences."
            .into(),
        _ => default.to_string(),
    }
}

/// One prompt, the turn before it (for follow-ups), and the words a good answer contains (any
/// one of them, in lower case).
struct Case {
    kind: &'static str,
    before: Option<(&'static str, &'static str)>,
    user: &'static str,
    expect: &'static [&'static str],
}

const fn case(kind: &'static str, user: &'static str, expect: &'static [&'static str]) -> Case {
    Case {
        kind,
        before: None,
        user,
        expect,
    }
}

const fn follow(
    before: (&'static str, &'static str),
    user: &'static str,
    expect: &'static [&'static str],
) -> Case {
    Case {
        kind: "follow-up",
        before: Some(before),
        user,
        expect,
    }
}

const CASES: [Case; 30] = [
    case("greeting", "Hi!", &[]),
    case("greeting", "Good morning, Aiko!", &[]),
    case("greeting", "Hey, I'm back from work.", &[]),
    case("greeting", "Hello! How are you today?", &[]),
    case("greeting", "Good night, I'm going to sleep now.", &[]),
    case("greeting", "Hi Aiko, nice to meet you.", &[]),
    case("small talk", "I just made pancakes for breakfast.", &[]),
    case("small talk", "It's been raining all day here.", &[]),
    case("small talk", "I'm a bit tired today.", &[]),
    case("small talk", "What do you like to do for fun?", &[]),
    case("small talk", "I watched a great movie last night.", &[]),
    case("small talk", "My cat keeps sitting on my keyboard.", &[]),
    case("small talk", "I'm nervous about my exam tomorrow.", &[]),
    case("small talk", "Do you like music?", &[]),
    case("fact", "What is the capital of France?", &["paris"]),
    case("fact", "How many days are in a week?", &["seven", "7"]),
    case("fact", "What color is the sky on a clear day?", &["blue"]),
    case("fact", "What is two plus three?", &["five", "5"]),
    case("fact", "What do bees make?", &["honey"]),
    case("fact", "Which planet do we live on?", &["earth"]),
    case("fact", "What is frozen water called?", &["ice"]),
    case("fact", "How many legs does a spider have?", &["eight", "8"]),
    follow(
        ("My name is Sam.", "[happy] Nice to meet you, Sam!"),
        "What is my name?",
        &["sam"],
    ),
    follow(
        (
            "I have a dog called Biscuit.",
            "[happy] Biscuit is a lovely name for a dog!",
        ),
        "What is my dog's name?",
        &["biscuit"],
    ),
    follow(
        (
            "My favourite colour is green.",
            "[relaxed] Green is such a calm colour.",
        ),
        "Which colour did I say I like?",
        &["green"],
    ),
    follow(
        (
            "I live in Tokyo.",
            "[surprised] Tokyo! That must be exciting.",
        ),
        "Which city do I live in?",
        &["tokyo"],
    ),
    follow(
        (
            "I'm learning to play the guitar.",
            "[happy] That's wonderful! How is it going?",
        ),
        "What instrument am I learning?",
        &["guitar"],
    ),
    follow(
        (
            "What is the capital of Italy?",
            "[neutral] The capital of Italy is Rome.",
        ),
        "And what is that city famous for?",
        &[
            "colosseum",
            "coliseum",
            "vatican",
            "pasta",
            "pizza",
            "history",
            "ancient",
            "roman",
            "art",
            "food",
            "architecture",
        ],
    ),
    follow(
        ("I'm making tea.", "[relaxed] Tea sounds cozy."),
        "What am I making?",
        &["tea"],
    ),
    follow(
        (
            "My sister's birthday is on Friday.",
            "[happy] How nice! Are you planning something?",
        ),
        "Which day is her birthday?",
        &["friday"],
    ),
];

/// Example turns for base models, which have no chat training: they learn the format from these.
const FEW_SHOT: [(&str, &str); 2] = [
    (
        "Hello!",
        "[happy] Hi there! It's so nice to see you. How was your day?",
    ),
    (
        "What is the biggest ocean?",
        "[neutral] The Pacific Ocean is the biggest one on Earth.",
    ),
];

/// What one reply scored.
#[derive(Default)]
struct Checks {
    failed: Vec<&'static str>,
    passed: u32,
    total: u32,
}

impl Checks {
    fn check(&mut self, name: &'static str, ok: bool) {
        self.total += 1;
        if ok {
            self.passed += 1;
        } else {
            self.failed.push(name);
        }
    }
}

/// The rubric. Each check is one point:
/// - `facts`: a fact or follow-up answer names what was asked for;
/// - `english`: the reply is English (Latin letters, a common English word);
/// - `clean`: no chat-template markers or role names leak into it;
/// - `no loop`: no sentence or 4-word run repeats three times;
/// - `ends`: the model ended its turn before the token limit;
/// - `spoken`: one to three sentences and at most 60 words, not empty.
fn score(case: &Case, reply: &str, reason: FinishReason) -> Checks {
    let mut c = Checks::default();
    let text = strip_tag(reply);
    let lower = text.to_lowercase();
    if !case.expect.is_empty() {
        let words: Vec<&str> = lower
            .split(|ch: char| !ch.is_alphanumeric())
            .filter(|w| !w.is_empty())
            .collect();
        c.check("facts", case.expect.iter().any(|e| words.contains(e)));
    }
    let letters: Vec<char> = text.chars().filter(|ch| ch.is_alphabetic()).collect();
    let ascii = letters.iter().filter(|ch| ch.is_ascii()).count();
    const COMMON: [&str; 24] = [
        "the", "you", "i", "a", "an", "to", "is", "it", "and", "that", "of", "your", "my", "so",
        "are", "what", "me", "not", "in", "on", "for", "be", "with", "do",
    ];
    let english = !letters.is_empty()
        && ascii * 100 >= letters.len() * 97
        && lower
            .split(|ch: char| !ch.is_alphabetic())
            .any(|w| COMMON.contains(&w));
    c.check("english", english);
    const LEAKS: [&str; 10] = [
        "<|",
        "|>",
        "<start_of_turn",
        "<end_of_turn",
        "user:",
        "assistant:",
        "system:",
        "aiko:",
        "\nuser",
        "\nassistant",
    ];
    c.check("clean", !LEAKS.iter().any(|l| lower.contains(l)));
    c.check("no loop", !loops(&lower));
    c.check("ends", reason == FinishReason::Stop);
    let sentences = sentences(text);
    let words = text.split_whitespace().count();
    c.check("spoken", (1..=3).contains(&sentences) && words <= 60);
    c
}

/// The reply without its leading emotion tag (the product strips it before showing or speaking).
fn strip_tag(reply: &str) -> &str {
    let t = reply.trim_start();
    if let Some(rest) = t.strip_prefix('[') {
        if let Some(end) = rest.find(']') {
            if end <= 12 {
                return rest[end + 1..].trim();
            }
        }
    }
    t.trim()
}

fn sentences(text: &str) -> usize {
    let mut n = 0;
    let mut in_sentence = false;
    for ch in text.chars() {
        if matches!(ch, '.' | '!' | '?' | '…') {
            if in_sentence {
                n += 1;
            }
            in_sentence = false;
        } else if ch.is_alphanumeric() {
            in_sentence = true;
        }
    }
    n + usize::from(in_sentence)
}

fn loops(lower: &str) -> bool {
    let words: Vec<&str> = lower.split_whitespace().collect();
    let mut grams = std::collections::HashMap::new();
    for w in words.windows(4) {
        *grams.entry(w.join(" ")).or_insert(0u32) += 1;
    }
    if grams.values().any(|n| *n >= 3) {
        return true;
    }
    let mut seen = std::collections::HashMap::new();
    for s in lower.split(['.', '!', '?']) {
        let s = s.trim();
        if s.len() > 8 {
            *seen.entry(s).or_insert(0u32) += 1;
        }
    }
    seen.values().any(|n| *n >= 3)
}

/// What a child prints for its model, read back by the parent.
#[derive(Serialize, Deserialize, Default)]
struct Row {
    file: String,
    name: String,
    quant: String,
    params_m: f64,
    size_mb: f64,
    template: String,
    few_shot: bool,
    preset: String,
    system: String,
    score: f64,
    facts: String,
    by_kind: Vec<(String, f64)>,
    gen_tps: f64,
    prompt_tps: f64,
    prompt_tokens: u32,
    first_cold_ms: f64,
    turn_new_tokens: u32,
    first_turn_ms: f64,
    load_ms: u64,
    rss_mb: f64,
    error: Option<String>,
}

struct Reply {
    text: String,
    reason: FinishReason,
    first: Option<Duration>,
    total: Duration,
    prompt_tokens: u32,
    completion_tokens: u32,
}

async fn ask(
    model: &Embedded,
    messages: Vec<PromptMessage>,
    temperature: f32,
    max_tokens: u32,
) -> Result<Reply, String> {
    let request = ChatRequest {
        messages,
        model: String::new(),
        temperature,
        max_tokens,
    };
    let started = Instant::now();
    let mut stream = model.chat(request).await.map_err(|e| e.to_string())?;
    let mut reply = Reply {
        text: String::new(),
        reason: FinishReason::Other,
        first: None,
        total: Duration::ZERO,
        prompt_tokens: 0,
        completion_tokens: 0,
    };
    while let Some(event) = stream.next().await {
        match event.map_err(|e| e.to_string())? {
            ChatEvent::Content(t) => {
                reply.first.get_or_insert(started.elapsed());
                reply.text.push_str(&t);
            }
            ChatEvent::Finished { reason, usage } => {
                reply.reason = reason;
                if let Some(u) = usage {
                    reply.prompt_tokens = u.prompt_tokens;
                    reply.completion_tokens = u.completion_tokens;
                }
            }
            ChatEvent::Loading(_) | ChatEvent::Reasoning(_) => {}
        }
    }
    reply.total = started.elapsed();
    Ok(reply)
}

/// The default character's system prompt, as a new install has it.
async fn default_character_prompt() -> String {
    let dir = tempfile::tempdir().expect("temp dir");
    let pool = waifu_rt3d::store::open(&dir.path().join("app.db"))
        .await
        .expect("database");
    waifu_rt3d::store::characters::get(&pool, waifu_rt3d::store::characters::DEFAULT_ID)
        .await
        .expect("query")
        .expect("the default character")
        .system_prompt
}

fn peak_rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

/// A ~300-token conversation: the system prompt and four exchanges, then `question`.
fn long_conversation(system: &str, question: &str) -> Vec<PromptMessage> {
    let mut m = vec![PromptMessage::new(PromptRole::System, system)];
    for (u, a) in [
        ("Good morning! I slept badly, the neighbours were loud all night.", "[sad] Oh no, that sounds exhausting! Maybe a warm tea and a slow start will help today."),
        ("I have a big presentation at work this afternoon about our new product.", "[happy] You will do great! Practise the opening once more and take a deep breath before you start."),
        ("The product is a small robot that waters plants when the soil gets dry.", "[happy] That is so clever! Plants everywhere will thank you, and so will forgetful owners like me."),
        ("My boss wants me to explain the battery life and the price clearly.", "[relaxed] Then lead with the numbers: how many weeks one charge lasts and what it costs per month."),
    ] {
        m.push(PromptMessage::new(PromptRole::User, u));
        m.push(PromptMessage::new(PromptRole::Assistant, a));
    }
    m.push(PromptMessage::new(PromptRole::User, question));
    m
}

/// About 150 tokens of new user text, as a spoken turn with recalled memories brings.
const LONG_TURN: &str = "Okay, the presentation is over and I think it went well, but I am not \
    sure. At the start my hands were shaking and I forgot the name of the second slide, so I \
    just talked about the watering schedule instead. Then my boss asked about the battery and I \
    said six weeks, which is right, and the price, which I said was twelve euros a month. A \
    colleague from sales asked if the robot works outside in the rain, and I did not know what \
    to answer, so I said we would test it next month. Everyone clapped at the end, and the boss \
    said thank you. Now I am at home, on the sofa, with a cup of tea and my cat. Do you think \
    it went well, and what should I tell the colleague from sales tomorrow?";

async fn child(path: &Path) -> Row {
    let preset_name = std::env::var(PRESET).unwrap_or_else(|_| "default".into());
    let system_name = std::env::var(SYSTEM).unwrap_or_else(|_| "default".into());
    let preset = presets()
        .into_iter()
        .find(|p| p.name == preset_name)
        .expect("a known preset");
    let default_prompt = default_character_prompt().await;
    let system = system_prompt(&system_name, &default_prompt);
    let info = gguf::read_file(path).ok();
    let has_template = info.as_ref().is_some_and(|i| i.chat_template.is_some());
    let few_shot = !has_template || std::env::var("WAIFU_MODELS_FEW_SHOT").is_ok();
    let mut row = Row {
        file: path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        name: info
            .as_ref()
            .and_then(|i| i.name.clone())
            .unwrap_or_default(),
        quant: info
            .as_ref()
            .and_then(|i| i.quantization())
            .unwrap_or("?")
            .into(),
        params_m: info
            .as_ref()
            .and_then(|i| i.parameters)
            .map_or(0.0, |p| p as f64 / 1e6),
        size_mb: std::fs::metadata(path).map_or(0.0, |m| m.len() as f64 / 1e6),
        template: if has_template {
            "own".into()
        } else {
            "built-in".into()
        },
        few_shot,
        preset: preset.name.into(),
        system: system_name.clone(),
        ..Row::default()
    };
    let model = Embedded::new(path.to_path_buf()).with_sampling(preset.sampling);
    let verbose = std::env::var("WAIFU_MODELS_VERBOSE").is_ok();

    // Speed first, on a fresh cache: a ~300-token prompt read in full (the load comes first).
    let cold = match ask(
        &model,
        long_conversation(&system, "Any last tip before I go?"),
        0.0,
        24,
    )
    .await
    {
        Ok(r) => r,
        Err(e) => {
            row.error = Some(e);
            return row;
        }
    };
    if let LoadState::Ready { load_ms } = model.state() {
        row.load_ms = load_ms;
    }
    // The load is inside the first request: time a second full read with another first token.
    let reread = ask(
        &model,
        long_conversation(&format!("Today: {system}"), "Any last tip before I go?"),
        0.0,
        24,
    )
    .await;
    if let Ok(r) = &reread {
        let first = r.first.unwrap_or(r.total);
        row.prompt_tokens = r.prompt_tokens;
        row.first_cold_ms = first.as_secs_f64() * 1000.0;
        row.prompt_tps = f64::from(r.prompt_tokens) / first.as_secs_f64().max(1e-9);
    }
    // Turn 2 on: the conversation so far is cached, ~150 new tokens arrive.
    let mut turn = long_conversation(&format!("Today: {system}"), "Any last tip before I go?");
    if let Ok(r) = &reread {
        turn.push(PromptMessage::new(PromptRole::Assistant, r.text.trim()));
    }
    turn.push(PromptMessage::new(PromptRole::User, LONG_TURN));
    if let Ok(r) = ask(&model, turn, 0.0, 24).await {
        row.turn_new_tokens = r.prompt_tokens.saturating_sub(
            reread
                .as_ref()
                .map_or(0, |c| c.prompt_tokens + c.completion_tokens),
        );
        row.first_turn_ms = r.first.unwrap_or(r.total).as_secs_f64() * 1000.0;
    }
    drop(cold);

    // The rubric.
    let (mut passed, mut total) = (0u32, 0u32);
    let (mut facts_ok, mut facts_n) = (0u32, 0u32);
    let mut kinds: Vec<(String, u32, u32)> = Vec::new();
    let (mut gen_tokens, mut gen_time) = (0u32, 0.0f64);
    for case in &CASES {
        let mut messages = vec![PromptMessage::new(PromptRole::System, system.clone())];
        if few_shot {
            for (u, a) in FEW_SHOT {
                messages.push(PromptMessage::new(PromptRole::User, u));
                messages.push(PromptMessage::new(PromptRole::Assistant, a));
            }
        }
        if let Some((u, a)) = case.before {
            messages.push(PromptMessage::new(PromptRole::User, u));
            messages.push(PromptMessage::new(PromptRole::Assistant, a));
        }
        messages.push(PromptMessage::new(PromptRole::User, case.user));
        let reply = match ask(&model, messages, preset.temperature, MAX_TOKENS).await {
            Ok(r) => r,
            Err(e) => {
                row.error = Some(e);
                return row;
            }
        };
        if let Some(first) = reply.first {
            gen_tokens += reply.completion_tokens.saturating_sub(1);
            gen_time += (reply.total - first).as_secs_f64();
        }
        let checks = score(case, &reply.text, reply.reason);
        if !case.expect.is_empty() {
            facts_n += 1;
            facts_ok += u32::from(!checks.failed.contains(&"facts"));
        }
        passed += checks.passed;
        total += checks.total;
        match kinds.iter_mut().find(|k| k.0 == case.kind) {
            Some(k) => {
                k.1 += checks.passed;
                k.2 += checks.total;
            }
            None => kinds.push((case.kind.into(), checks.passed, checks.total)),
        }
        if verbose {
            println!(
                "REPLY\t{}\t{}\t{:?}\t{}",
                case.user,
                reply.text.replace('\n', "⏎"),
                reply.reason,
                checks.failed.join(",")
            );
        }
    }
    row.score = f64::from(passed) * 100.0 / f64::from(total.max(1));
    row.facts = format!("{facts_ok}/{facts_n}");
    row.by_kind = kinds
        .into_iter()
        .map(|(k, p, t)| (k, f64::from(p) * 100.0 / f64::from(t.max(1))))
        .collect();
    row.gen_tps = f64::from(gen_tokens) / gen_time.max(1e-9);
    row.rss_mb = peak_rss_mb();
    row
}

fn run_child(exe: &Path, file: &Path, preset: &str, system: &str) -> Row {
    let out = Command::new(exe)
        .arg("--bench")
        .env(CHILD, file)
        .env(PRESET, preset)
        .env(SYSTEM, system)
        .output();
    let fail = |e: String| Row {
        file: file.display().to_string(),
        preset: preset.into(),
        system: system.into(),
        error: Some(e),
        ..Row::default()
    };
    let out = match out {
        Ok(o) => o,
        Err(e) => return fail(e.to_string()),
    };
    let stdout = String::from_utf8_lossy(&out.stdout);
    for line in stdout.lines() {
        if let Some(reply) = line.strip_prefix("REPLY\t") {
            let parts: Vec<&str> = reply.split('\t').collect();
            println!(
                "    {:<40} → {}  [{}{}]",
                parts.first().unwrap_or(&""),
                parts.get(1).unwrap_or(&""),
                parts.get(2).unwrap_or(&""),
                parts
                    .get(3)
                    .map(|f| if f.is_empty() {
                        String::new()
                    } else {
                        format!("; failed {f}")
                    })
                    .unwrap_or_default()
            );
        }
    }
    stdout
        .lines()
        .find_map(|l| l.strip_prefix("ROW\t"))
        .and_then(|j| serde_json::from_str(j).ok())
        .unwrap_or_else(|| {
            fail(format!(
                "the child failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
                    .lines()
                    .last()
                    .unwrap_or("")
            ))
        })
}

fn print_table(rows: &[Row]) {
    println!(
        "| model file | params | quant | size MB | template | preset | system | score % | facts | greet/talk/fact/follow % | gen tok/s | prompt tok/s | first token, {}-tok prompt ms | first token, +{} tok turn ms | RSS MB |",
        rows.first().map_or(0, |r| r.prompt_tokens),
        rows.first().map_or(0, |r| r.turn_new_tokens)
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for r in rows {
        if let Some(e) = &r.error {
            println!(
                "| {} | | | | | {} | {} | failed: {e} |",
                r.file, r.preset, r.system
            );
            continue;
        }
        let kinds = r
            .by_kind
            .iter()
            .map(|(_, v)| format!("{v:.0}"))
            .collect::<Vec<_>>()
            .join("/");
        println!(
            "| {} | {:.0} M | {} | {:.0} | {}{} | {} | {} | {:.1} | {} | {} | {:.1} | {:.0} | {:.0} | {:.0} | {:.0} |",
            r.file,
            r.params_m,
            r.quant,
            r.size_mb,
            r.template,
            if r.few_shot { " + few-shot" } else { "" },
            r.preset,
            r.system,
            r.score,
            r.facts,
            kinds,
            r.gen_tps,
            r.prompt_tps,
            r.first_cold_ms,
            r.first_turn_ms,
            r.rss_mb,
        );
    }
}

fn main() {
    if let Some(file) = std::env::var_os(CHILD) {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let row = rt.block_on(child(Path::new(&file)));
        println!("ROW\t{}", serde_json::to_string(&row).expect("json"));
        return;
    }
    let dir = std::env::var_os("WAIFU_MODELS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("data/models"));
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().and_then(|e| e.to_str()) == Some("gguf"))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    if files.is_empty() {
        println!("models: no .gguf in {}, run `make setup`", dir.display());
        return;
    }
    let exe = std::env::current_exe().expect("own path");
    let verbose = std::env::var("WAIFU_MODELS_VERBOSE").is_ok();
    println!(
        "models: {} file(s) in {}, {} prompts, at most {MAX_TOKENS} tokens a reply, one process per model",
        files.len(),
        dir.display(),
        CASES.len()
    );
    let mut rows = Vec::new();
    for file in &files {
        if verbose {
            println!("  {}", file.display());
        }
        rows.push(run_child(&exe, file, "default", "default"));
    }
    print_table(&rows);

    if std::env::var("WAIFU_MODELS_TUNE").is_ok() {
        let tune = std::env::var_os("WAIFU_MODELS_TUNE_FILE")
            .map(PathBuf::from)
            .unwrap_or_else(|| files[0].clone());
        println!("\ntuning on {}:", tune.display());
        let mut rows = Vec::new();
        for p in presets().iter().skip(1) {
            if verbose {
                println!("  preset {}", p.name);
            }
            rows.push(run_child(&exe, &tune, p.name, "default"));
        }
        for s in ["plain", "minimal"] {
            if verbose {
                println!("  system {s}");
            }
            rows.push(run_child(&exe, &tune, "default", s));
        }
        print_table(&rows);
    }
}
