//! Images → text with Tesseract, run as a separate process per image: the image goes in on
//! stdin, the text comes out on stdout. The process is started through [`super::process`]
//! (an address-space limit, a CPU-seconds backstop, the idle CPU and I/O class by default, one
//! thread), is killed when it runs past `media.ocr.timeout`, and is awaited through
//! `tokio::process`, so a slow or hostile image costs a bounded slice of CPU nothing else
//! wanted and never a thread of the bridge.
//! An image larger than `media.ocr.max_pixels` is refused from its header, before any decoder
//! sees it (a decompression bomb).

use std::process::Stdio;

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::process::{confine, Limits};
use super::EngineError;
use crate::config::OcrConfig;

/// Most text kept from one image (a page of a scanned book is far below).
const MAX_OUTPUT: usize = 256 * 1024;

/// The text Tesseract finds in `image` (empty when there is none).
pub async fn read(config: &OcrConfig, image: Bytes) -> Result<String, EngineError> {
    if let Ok(size) = imagesize::blob_size(&image) {
        let pixels = (size.width as u64).saturating_mul(size.height as u64);
        if pixels > config.max_pixels {
            return Err(EngineError::BadInput(format!(
                "the image is {}×{} pixels ({} megapixels), over the {} megapixels this bridge reads (media.ocr.max_pixels); not read",
                size.width,
                size.height,
                pixels / 1_000_000,
                config.max_pixels / 1_000_000
            )));
        }
    }
    let mut command = command(config);
    let mut child = command.spawn().map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            EngineError::Unavailable {
                reason: format!(
                    "Tesseract is not installed here (media.ocr.command `{}` not found; apt install tesseract-ocr)",
                    config.command
                ),
                retry_after: None,
            }
        } else {
            EngineError::Unavailable {
                reason: format!("cannot start Tesseract ({}): {e}", config.command),
                retry_after: None,
            }
        }
    })?;
    let mut stdin = child.stdin.take();
    let mut stdout = child.stdout.take();
    let mut stderr = child.stderr.take();
    let input = image;
    let feed = async move {
        if let Some(stdin) = stdin.as_mut() {
            // Tesseract may stop reading (a bad image): a broken pipe is its exit status's
            // business, not ours.
            let _ = stdin.write_all(&input).await;
            let _ = stdin.shutdown().await;
        }
        drop(stdin);
    };
    let collect_out = async move {
        let mut out = Vec::new();
        if let Some(s) = stdout.as_mut() {
            let _ = s.take(MAX_OUTPUT as u64).read_to_end(&mut out).await;
        }
        out
    };
    let collect_err = async move {
        let mut err = Vec::new();
        if let Some(s) = stderr.as_mut() {
            let _ = s.take(16 * 1024).read_to_end(&mut err).await;
        }
        err
    };
    let run = async {
        let (_, out, err, status) = tokio::join!(feed, collect_out, collect_err, child.wait());
        (out, err, status)
    };
    let (out, err, status) = match tokio::time::timeout(config.timeout, run).await {
        Ok(done) => done,
        Err(_) => {
            let _ = child.start_kill();
            let _ = child.wait().await;
            return Err(EngineError::BadInput(format!(
                "Tesseract took longer than {} and was stopped (media.ocr.timeout)",
                humantime::format_duration(config.timeout)
            )));
        }
    };
    let status = status.map_err(|e| EngineError::Unavailable {
        reason: format!("lost the Tesseract process: {e}"),
        retry_after: None,
    })?;
    let stderr = String::from_utf8_lossy(&err);
    if !status.success() {
        return Err(EngineError::BadInput(failure(
            status,
            &stderr,
            config.max_memory_mb,
        )));
    }
    Ok(tidy(&String::from_utf8_lossy(&out)))
}

/// Why a run failed, in words an operator can act on.
fn failure(status: std::process::ExitStatus, stderr: &str, memory_mb: u64) -> String {
    use std::os::unix::process::ExitStatusExt;
    let said = stderr
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("Estimating resolution"))
        .last()
        .unwrap_or("")
        .chars()
        .take(200)
        .collect::<String>();
    let out_of_memory = stderr.contains("alloc")
        || stderr.contains("Cannot allocate")
        || stderr.contains("std::bad_alloc");
    match status.signal() {
        Some(libc::SIGXCPU) | Some(libc::SIGKILL) => {
            "Tesseract ran past its CPU time limit and was stopped".to_string()
        }
        _ if out_of_memory => format!(
            "the image needs more memory than the {memory_mb} MB Tesseract may use (media.ocr.max_memory_mb); not read"
        ),
        Some(sig) => format!("Tesseract stopped on signal {sig} ({said})"),
        None if said.is_empty() => format!(
            "Tesseract could not read the image (exit status {})",
            status.code().unwrap_or(-1)
        ),
        None => format!("Tesseract could not read the image: {said}"),
    }
}

/// Lines trimmed, runs of blank lines made one.
fn tidy(text: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    for line in text.lines().map(str::trim_end) {
        let blank = line.trim().is_empty();
        if blank && out.last().is_none_or(|l| l.is_empty()) {
            continue;
        }
        out.push(if blank { "" } else { line });
    }
    while out.last().is_some_and(|l| l.is_empty()) {
        out.pop();
    }
    out.join("\n")
}

/// The Tesseract command for one image: stdin to stdout, the configured languages and
/// threads, confined ([`confine`]): its address space, its CPU seconds (twice the wall-clock
/// timeout: the timer kills it first, this is the backstop), its scheduling class.
fn command(config: &OcrConfig) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(&config.command);
    command
        .args(["stdin", "stdout", "-l", &config.languages.join("+")])
        // One thread by default (media.ocr.threads): the bridge and the homeserver keep the
        // other cores.
        .env("OMP_THREAD_LIMIT", config.threads.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    confine(
        &mut command,
        Limits {
            memory_mb: config.max_memory_mb,
            cpu_seconds: config.timeout.as_secs().saturating_mul(2),
            scheduling: config.scheduling,
            nice: config.nice,
        },
    );
    command
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Scheduling;
    use crate::media::process;

    #[test]
    fn output_is_tidied() {
        assert_eq!(
            tidy("\n\nЗаказ 4521  \n\n\n\nPaid\n\n"),
            "Заказ 4521\n\nPaid"
        );
        assert_eq!(
            tidy(" \n\u{c}\n"),
            "",
            "Tesseract ends a page with a form feed"
        );
    }

    /// A decompression bomb is refused from its header: no process is started (the command
    /// does not even exist here).
    #[tokio::test]
    async fn a_bomb_is_refused_before_any_decoder() {
        let bomb = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/data/media/bomb.png"
        ))
        .expect("fixture");
        let config = OcrConfig {
            command: "/nonexistent/tesseract".into(),
            ..OcrConfig::default()
        };
        match read(&config, bomb.into()).await {
            Err(EngineError::BadInput(reason)) => {
                assert!(reason.contains("30000×30000"), "{reason}")
            }
            other => panic!("{other:?}"),
        }
    }

    /// Tesseract runs with `media.ocr.threads` as its OpenMP thread limit, and at
    /// `media.ocr.nice` with `scheduling: normal`: a stand-in command reports what it was given.
    #[tokio::test]
    async fn the_engine_runs_with_the_configured_threads_and_niceness() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let command = dir.path().join("tesseract");
        std::fs::write(
            &command,
            "#!/bin/sh\ncat >/dev/null\necho \"threads $OMP_THREAD_LIMIT nice $(cut -d' ' -f19 /proc/self/stat)\"\n",
        )
        .expect("script");
        std::fs::set_permissions(&command, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let image = Bytes::from(
            std::fs::read(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/data/media/screenshot.png"
            ))
            .expect("fixture"),
        );
        let config = OcrConfig {
            command: command.display().to_string(),
            threads: 2,
            scheduling: Scheduling::Normal,
            nice: 15,
            ..OcrConfig::default()
        };
        let text = read(&config, image.clone())
            .await
            .expect("the stand-in runs");
        assert_eq!(text, "threads 2 nice 15");
        let text = read(
            &OcrConfig {
                command: command.display().to_string(),
                ..OcrConfig::default()
            },
            image,
        )
        .await
        .expect("the stand-in runs");
        assert!(
            text.starts_with("threads 1 "),
            "the default leaves a core to relay: {text}"
        );
    }

    /// The real Tesseract, started by the same code as every image's, runs in the idle CPU
    /// class (`SCHED_IDLE`, `/proc/<pid>/stat` field 41) and the idle I/O class by default, and
    /// in its parent's class with `scheduling: normal`, as the kernel reports them.
    ///
    /// The test's thread is put in the ordinary class while it starts them (and back after):
    /// tests run under `chrt -i 0`, and a child inherits its parent's class, which would pass
    /// the first check whatever the code did.
    #[tokio::test]
    async fn tesseract_runs_in_the_idle_class() {
        let param = libc::sched_param { sched_priority: 0 };
        // SAFETY: plain system calls on the calling thread.
        let before = unsafe { libc::sched_getscheduler(0) };
        if before != libc::SCHED_OTHER {
            assert_eq!(
                unsafe { libc::sched_setscheduler(0, libc::SCHED_OTHER, &param) },
                0,
                "the test thread cannot leave its class ({}): run it as root or with \
                 CAP_SYS_NICE, or outside chrt -i 0",
                std::io::Error::last_os_error()
            );
        }
        let observe = |scheduling| {
            let mut child = command(&OcrConfig {
                scheduling,
                ..OcrConfig::default()
            })
            .spawn()
            .expect("Tesseract starts (scripts/install-test-deps.sh installs it)");
            // It waits for the image on stdin, which stays open until it is killed.
            let seen = process::observed(child.id().expect("a pid"));
            let _ = child.start_kill();
            seen
        };
        let idle = observe(Scheduling::Idle);
        let normal = observe(Scheduling::Normal);
        // SAFETY: as above.
        unsafe { libc::sched_setscheduler(0, before, &param) };
        assert_eq!(
            idle,
            (libc::SCHED_IDLE, process::IOPRIO_CLASS_IDLE),
            "(policy, I/O class) of Tesseract by default"
        );
        assert_eq!(
            normal.0,
            libc::SCHED_OTHER,
            "with scheduling: normal, the class of whoever started it"
        );
    }
}
