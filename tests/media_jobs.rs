//! Voice messages and images → text, end to end: a customer on the Telegram fake
//! (`tests/fakes/telegram.rs`) sends a real Russian voice note (OGG/Opus) and a screenshot; the
//! real bridge relays them to the real Synapse, then transcribes the note with a real Whisper
//! model behind the OpenAI-compatible API (`scripts/whisper-server.py`, the rig's
//! `rig::whisper`) and reads the screenshot with Tesseract. Operators see the text as the
//! bot's reply to the file and find it with `!sb search`. Bad input (corrupt audio, a
//! decompression bomb, a 10-minute note), an engine that is down or not configured, and a
//! restart are covered too. Every wait is for a condition, with generous deadlines: engines
//! on a loaded machine take seconds.
//!
//! Fixtures and how they were made: `tests/data/media/README.md`.

mod fakes;
#[macro_use]
mod rig;

use std::time::Duration;

use anyhow::{ensure, Context};
use fakes::telegram::{FakeTelegram, TgUser, TOKEN};
use rig::whisper::Whisper;
use rig::{Backend, BridgeOptions, Operator, RoomMessage, TestEnv};
use serde_json::{json, Value};

on_both_stores!(a_voice_note_and_a_screenshot_become_text_that_search_finds);

/// Engines on a busy machine: a transcription or OCR run takes seconds, a queue of them more.
const ENGINE_WAIT: Duration = Duration::from_secs(180);

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(rig::repo_root().join("tests/data/media").join(name))
        .unwrap_or_else(|e| panic!("fixture {name}: {e}"))
}

/// The bridge on the Telegram fake, with `media` as its media section.
fn options(backend: Backend, fake: &FakeTelegram, media: Value) -> BridgeOptions {
    BridgeOptions::default()
        .backend(backend)
        .channel(
            "telegram",
            json!({"enabled": true, "token": TOKEN, "api_url": fake.url(), "poll_timeout_secs": 2}),
        )
        .edit_config(move |config| {
            config["media"] = serde_yaml::to_value(&media).expect("the media section as YAML")
        })
}

fn customer() -> TgUser {
    TgUser::new(5_550_077, "Olga", Some("Petrova"), Some("olga_p"))
}

/// The customer sends a voice note (`bytes`, OGG/Opus as Telegram stores it).
fn send_voice(fake: &FakeTelegram, user: &TgUser, message_id: i64, bytes: Vec<u8>) {
    let (id, _) = fake.add_file("voice", "oga", bytes, None);
    let mut meta = fake.file_meta(&id);
    meta["duration"] = 6.into();
    meta["mime_type"] = "audio/ogg".into();
    fake.push_update(fake.message_update(user, message_id, json!({"voice": meta})));
}

/// The customer sends an image as a photo.
fn send_photo(fake: &FakeTelegram, user: &TgUser, message_id: i64, bytes: Vec<u8>) {
    let (id, _) = fake.add_file("photos", "jpg", bytes, None);
    let mut meta = fake.file_meta(&id);
    meta["width"] = 900.into();
    meta["height"] = 260.into();
    fake.push_update(fake.message_update(user, message_id, json!({"photo": [meta]})));
}

/// The customer sends a file as a document.
fn send_document(
    fake: &FakeTelegram,
    user: &TgUser,
    message_id: i64,
    bytes: Vec<u8>,
    name: &str,
    mime: &str,
) {
    let ext = name.rsplit('.').next().unwrap_or("bin");
    let (id, _) = fake.add_file("documents", ext, bytes, None);
    let mut meta = fake.file_meta(&id);
    meta["file_name"] = name.into();
    meta["mime_type"] = mime.into();
    fake.push_update(fake.message_update(user, message_id, json!({"document": meta})));
}

/// The bot's notice replying to `event`, whose body passes `pred`.
async fn bot_reply_to(
    op: &Operator,
    room: &str,
    event: &str,
    pred: impl Fn(&str) -> bool,
) -> anyhow::Result<RoomMessage> {
    op.wait_for_message(room, |m| {
        m.is_notice() && m.in_reply_to() == Some(event) && pred(&m.body)
    })
    .await
}

/// The newest file message of a type in the room (after `mark`).
async fn wait_for_file(
    op: &Operator,
    room: &str,
    mark: u64,
    msgtype: &str,
) -> anyhow::Result<RoomMessage> {
    op.wait_for_message_after(room, mark, msgtype, |m| m.msgtype == msgtype)
        .await
}

/// A real Russian voice note and a screenshot with Cyrillic and Latin text, from a Telegram
/// customer: each is relayed as a file, then the bot replies to it with its text; search finds
/// both (with `has:voice` / `has:image`); asking again answers from the store without running
/// the engine a second time.
async fn a_voice_note_and_a_screenshot_become_text_that_search_finds(
    backend: Backend,
) -> anyhow::Result<()> {
    let mut steps = rig::Steps::new("a voice note and a screenshot become text");
    let whisper = Whisper::start(300).await?;
    let fake = FakeTelegram::start().await?;
    let mut env = TestEnv::start(options(
        backend,
        &fake,
        json!({
            "transcription": {"url": whisper.url(), "language": "ru,uk,id,en"},
            "ocr": {"enabled": true},
        }),
    ))
    .await?;
    env.alice.timeout = ENGINE_WAIT;
    let user = customer();

    steps.step("A voice note: relayed as m.audio, then transcribed in a reply to it");
    fake.push_update(fake.message_update(&user, 1, json!({"text": "Добрый день"})));
    let room = env.alice.wait_for_invite("Olga Petrova").await?;
    env.alice.join(&room).await?;
    send_voice(&fake, &user, 2, fixture("voice-ru.ogg"));
    let audio = wait_for_file(&env.alice, &room, 0, "m.audio").await?;
    let transcript = bot_reply_to(&env.alice, &room, &audio.event_id, |b| {
        b.contains("Transcript")
    })
    .await
    .with_context(|| env.bridge.log_tail())?;
    let heard = transcript.body.to_lowercase();
    ensure!(
        heard.contains("заказ") && heard.contains("доставк"),
        "the Russian words of the note: {}",
        transcript.body
    );

    steps.step("A screenshot as a photo: its Cyrillic and Latin lines in a reply to it");
    send_photo(&fake, &user, 3, fixture("screenshot.png"));
    let image = wait_for_file(&env.alice, &room, 0, "m.image").await?;
    let read = bot_reply_to(&env.alice, &room, &image.event_id, |b| {
        b.contains("Text in the image")
    })
    .await?;
    for words in ["Заказ 4521", "Київ", "Invoice", "Pembayaran"] {
        ensure!(read.body.contains(words), "{words:?} in {}", read.body);
    }

    steps.step("Search finds the note by a word it spoke (has:voice) and the image by its text");
    let pointer = rig::command(&env.alice, &room, "!sb search доставка has:voice").await?;
    ensure!(pointer.contains("1 result"), "{pointer}");
    let dm = env.alice.wait_for_invite("Switchboard direct chat").await?;
    env.alice.join(&dm).await?;
    let found = env.alice.wait_for_text(&dm, "results 1–1").await?;
    ensure!(
        found.body.to_lowercase().contains("доставк") && found.body.contains("Olga"),
        "{}",
        found.body
    );
    let pointer = rig::command(&env.alice, &room, "!sb search Хрещатик has:image").await?;
    ensure!(pointer.contains("1 result"), "{pointer}");
    let none = rig::command(&env.alice, &room, "!sb search Хрещатик has:voice").await?;
    ensure!(none.contains("No results"), "{none}");

    steps.step("`!sb transcribe` on the note: answered from the store, Whisper not run again");
    ensure!(
        whisper.transcriptions() == 1,
        "{} transcriptions",
        whisper.transcriptions()
    );
    let again = env
        .alice
        .reply(&room, &audio.event_id, "!sb transcribe")
        .await?;
    let answer = bot_reply_to(&env.alice, &room, &again, |_| true).await?;
    ensure!(
        answer.body.contains("done already") && answer.body.to_lowercase().contains("заказ"),
        "{}",
        answer.body
    );
    ensure!(
        whisper.transcriptions() == 1,
        "the engine ran again: {} transcriptions",
        whisper.transcriptions()
    );
    Ok(())
}

/// Bad input never stalls anything: a corrupt voice note, a decompression bomb sent as a
/// document and a 10-minute voice note each get a note saying why there is no text, while
/// the customer's next message arrives as usual.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_files_get_a_clear_note_and_relay_goes_on() -> anyhow::Result<()> {
    let mut steps = rig::Steps::new("bad files get a clear note");
    // The server transcribes at most 5 minutes of audio.
    let whisper = Whisper::start(300).await?;
    let fake = FakeTelegram::start().await?;
    let mut env = TestEnv::start(options(
        Backend::Sqlite,
        &fake,
        json!({"transcription": {"url": whisper.url()}, "ocr": {"enabled": true}}),
    ))
    .await?;
    env.alice.timeout = ENGINE_WAIT;
    let user = customer();
    fake.push_update(fake.message_update(&user, 1, json!({"text": "Здравствуйте"})));
    let room = env.alice.wait_for_invite("Olga Petrova").await?;
    env.alice.join(&room).await?;

    steps.step("Corrupt audio: a note that it could not be decoded");
    send_voice(&fake, &user, 2, fixture("corrupt.ogg"));
    let audio = wait_for_file(&env.alice, &room, 0, "m.audio").await?;
    fake.push_update(fake.message_update(&user, 3, json!({"text": "после голосового"})));
    env.alice.wait_for_text(&room, "после голосового").await?;
    let note = bot_reply_to(&env.alice, &room, &audio.event_id, |b| {
        b.contains("not transcribed")
    })
    .await?;
    ensure!(note.body.contains("decoded"), "{}", note.body);

    steps.step("A decompression bomb sent as a document: refused from its header");
    send_document(
        &fake,
        &user,
        4,
        fixture("bomb.png"),
        "scan.png",
        "image/png",
    );
    let bomb = wait_for_file(&env.alice, &room, 0, "m.image").await?;
    fake.push_update(fake.message_update(&user, 5, json!({"text": "после картинки"})));
    env.alice.wait_for_text(&room, "после картинки").await?;
    let note = bot_reply_to(&env.alice, &room, &bomb.event_id, |b| {
        b.contains("not read")
    })
    .await?;
    ensure!(
        note.body.contains("30000×30000") && note.body.contains("megapixels"),
        "{}",
        note.body
    );

    steps.step("A 10-minute voice note: the server's limit, said in the note");
    let long = ten_minutes_of_opus()?;
    let mark = env.alice.mark();
    send_voice(&fake, &user, 6, long);
    let audio = wait_for_file(&env.alice, &room, mark, "m.audio").await?;
    fake.push_update(fake.message_update(&user, 7, json!({"text": "и ещё одно"})));
    env.alice.wait_for_text(&room, "и ещё одно").await?;
    let note = bot_reply_to(&env.alice, &room, &audio.event_id, |b| {
        b.contains("not transcribed")
    })
    .await?;
    ensure!(
        note.body.contains("600 s long") && note.body.contains("at most 300 s"),
        "{}",
        note.body
    );
    Ok(())
}

/// Ten minutes of near-silence as a messenger's OGG/Opus voice note (made with ffmpeg,
/// which scripts/install-test-deps.sh installs).
fn ten_minutes_of_opus() -> anyhow::Result<Vec<u8>> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("long.ogg");
    let out = std::process::Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-loglevel",
            "error",
            "-f",
            "lavfi",
            "-i",
            "anoisesrc=d=600:c=pink:r=48000:a=0.001",
            "-ac",
            "1",
            "-c:a",
            "libopus",
            "-b:a",
            "6k",
        ])
        .arg(&path)
        .output()
        .context("running ffmpeg (scripts/install-test-deps.sh installs it)")?;
    ensure!(
        out.status.success(),
        "ffmpeg: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(std::fs::read(&path)?)
}

/// Engines down or not configured: the files are relayed as always and their jobs wait. The
/// operator who asks (`!sb ocr`, `!sb transcribe`) hears why; once the Whisper server is up,
/// asking again transcribes the note; after a restart with OCR turned on, the waiting image
/// is read without anyone asking.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_wait_for_their_engine_and_run_when_asked_or_after_a_restart() -> anyhow::Result<()> {
    let mut steps = rig::Steps::new("jobs wait for their engine");
    let whisper_port = rig::free_port()?;
    let fake = FakeTelegram::start().await?;
    let mut env = TestEnv::start(options(
        Backend::Sqlite,
        &fake,
        json!({
            "transcription": {"url": format!("http://127.0.0.1:{whisper_port}/v1/audio/transcriptions")},
            "max_attempts": 2,
            "retry_base": "1s",
        }),
    ))
    .await?;
    env.alice.timeout = ENGINE_WAIT;
    let user = customer();

    steps.step("OCR off: the image is relayed; `!sb ocr` says OCR is off");
    fake.push_update(fake.message_update(&user, 1, json!({"text": "Смотрите скриншот"})));
    let room = env.alice.wait_for_invite("Olga Petrova").await?;
    env.alice.join(&room).await?;
    send_photo(&fake, &user, 2, fixture("screenshot.png"));
    let image = wait_for_file(&env.alice, &room, 0, "m.image").await?;
    let ask = env.alice.reply(&room, &image.event_id, "!sb ocr").await?;
    let answer = bot_reply_to(&env.alice, &room, &ask, |_| true).await?;
    ensure!(
        answer.body.contains("media.ocr.enabled is false") && answer.body.contains("waits"),
        "{}",
        answer.body
    );

    steps.step("Whisper down: the note is relayed; given up after 2 tries, with the reason");
    send_voice(&fake, &user, 3, fixture("voice-ru.ogg"));
    let audio = wait_for_file(&env.alice, &room, 0, "m.audio").await?;
    let note = bot_reply_to(&env.alice, &room, &audio.event_id, |b| {
        b.contains("not transcribed")
    })
    .await?;
    ensure!(
        note.body.contains("unreachable") && note.body.contains("gave up after 2 attempts"),
        "{}",
        note.body
    );

    steps.step("Asked while still down: the operator hears why at once");
    let ask = env
        .alice
        .reply(&room, &audio.event_id, "!sb transcribe")
        .await?;
    let queued = bot_reply_to(&env.alice, &room, &ask, |b| b.contains("Transcribing")).await?;
    ensure!(queued.body.contains("unreachable"), "{}", queued.body);
    let why = bot_reply_to(&env.alice, &room, &ask, |b| {
        b.contains("not transcribed yet")
    })
    .await?;
    ensure!(
        why.body.contains("@alice:localhost") && why.body.contains("unreachable"),
        "{}",
        why.body
    );
    // The round ends (given up again) before the server comes up.
    bot_reply_to(&env.alice, &room, &ask, |b| {
        b.contains("was not transcribed")
    })
    .await?;

    steps.step("Whisper up, asked again: the transcript replies to the note");
    let whisper = Whisper::start_on(whisper_port, 300).await?;
    let ask = env
        .alice
        .reply(&room, &audio.event_id, "!sb transcribe")
        .await?;
    bot_reply_to(&env.alice, &room, &ask, |b| b.contains("Transcribing")).await?;
    let transcript = bot_reply_to(&env.alice, &room, &audio.event_id, |b| {
        b.contains("Transcript")
    })
    .await?;
    ensure!(
        transcript.body.to_lowercase().contains("заказ"),
        "{}",
        transcript.body
    );
    ensure!(
        whisper.transcriptions() == 1,
        "{}",
        whisper.transcriptions()
    );

    steps.step("OCR turned on and the bridge restarted: the waiting image is read");
    env.bridge.stop(Duration::from_secs(5)).await?;
    env.bridge
        .edit_config(|c| c["media"]["ocr"]["enabled"] = serde_yaml::Value::Bool(true))?;
    env.bridge.start().await?;
    let read = bot_reply_to(&env.alice, &room, &image.event_id, |b| {
        b.contains("Text in the image")
    })
    .await?;
    ensure!(read.body.contains("Invoice"), "{}", read.body);
    Ok(())
}
