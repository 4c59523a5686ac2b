//! How the bridge starts an engine process (Tesseract today; any other program an engine needs
//! goes through here too): what is set in the child between fork and exec, so that no image or
//! recording can take more than its share of the machine.
//!
//! - **Limits**: an address-space limit (`setrlimit(RLIMIT_AS)`) and a CPU-seconds backstop
//!   (`RLIMIT_CPU`; the caller's wall-clock timer kills the process first).
//! - **Scheduling** ([`Scheduling`]): by default the idle CPU class (Linux `SCHED_IDLE`) and the
//!   idle I/O class (`ioprio_set`, `IOPRIO_CLASS_IDLE`). An idle-class process runs only on a
//!   core nothing else wants, and when the bridge or the homeserver wakes up (a webhook, a
//!   `/sync`) the kernel hands it the core at once instead of sharing it by weight, as it would
//!   with a merely nicer process. Where the kernel refuses the class, the process runs at nice 19.
//!   With `normal`, the bridge's own classes (inherited) at the configured niceness.
//!
//! Everything in the closure is a plain system call: it runs in the forked child, where only
//! async-signal-safe calls are allowed.

use crate::config::Scheduling;

/// What an engine process may use.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Address space, in megabytes.
    pub memory_mb: u64,
    /// CPU seconds before the kernel stops it (`SIGXCPU`, then `SIGKILL`).
    pub cpu_seconds: u64,
    pub scheduling: Scheduling,
    /// Niceness with [`Scheduling::Normal`].
    pub nice: i32,
}

/// `IOPRIO_WHO_PROCESS` and the class shift of `linux/ioprio.h` (not in the libc crate).
const IOPRIO_WHO_PROCESS: libc::c_int = 1;
const IOPRIO_CLASS_SHIFT: libc::c_int = 13;
/// The idle I/O class.
pub(crate) const IOPRIO_CLASS_IDLE: libc::c_int = 3;

/// Set `limits` on `command`'s child, between fork and exec.
pub fn confine(command: &mut tokio::process::Command, limits: Limits) {
    let bytes = limits.memory_mb.saturating_mul(1024 * 1024) as libc::rlim_t;
    let cpu = limits.cpu_seconds.max(1) as libc::rlim_t;
    let Limits {
        scheduling, nice, ..
    } = limits;
    // SAFETY: the closure runs in the forked child before exec and makes only system calls
    // (setrlimit, sched_setscheduler, setpriority, ioprio_set), which are async-signal-safe; it
    // allocates nothing and touches no lock of the parent's.
    unsafe {
        command.pre_exec(move || {
            let mem = libc::rlimit {
                rlim_cur: bytes,
                rlim_max: bytes,
            };
            if libc::setrlimit(libc::RLIMIT_AS, &mem) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            let cpu = libc::rlimit {
                rlim_cur: cpu,
                rlim_max: cpu + 1,
            };
            if libc::setrlimit(libc::RLIMIT_CPU, &cpu) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            let param = libc::sched_param { sched_priority: 0 };
            // Failing to change a class is harmless (the process still runs, only less
            // politely): nothing here refuses to start the engine.
            match scheduling {
                Scheduling::Idle => {
                    if libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) != 0 {
                        libc::setpriority(libc::PRIO_PROCESS, 0, 19);
                    }
                    libc::syscall(
                        libc::SYS_ioprio_set,
                        IOPRIO_WHO_PROCESS,
                        0,
                        IOPRIO_CLASS_IDLE << IOPRIO_CLASS_SHIFT,
                    );
                }
                Scheduling::Normal => {
                    libc::setpriority(libc::PRIO_PROCESS, 0, nice);
                }
            }
            Ok(())
        });
    }
}

/// The scheduling policy (`SCHED_*`) and I/O class of process `pid`, as the kernel reports them
/// (`/proc/<pid>/stat` field 41; `ioprio_get`): what a test checks an engine got.
#[cfg(test)]
pub(crate) fn observed(pid: u32) -> (i32, i32) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("the process's stat");
    // Field 2 (the command name, in parentheses) may hold spaces: count from after it.
    let after = &stat[stat.rfind(')').expect("a stat line") + 2..];
    let policy = after
        .split_whitespace()
        .nth(41 - 3)
        .and_then(|f| f.parse().ok())
        .expect("field 41, the policy");
    // SAFETY: ioprio_get only reads the priority of the process named.
    let ioprio = unsafe { libc::syscall(libc::SYS_ioprio_get, IOPRIO_WHO_PROCESS, pid as i32) };
    (policy, (ioprio as i32) >> IOPRIO_CLASS_SHIFT)
}
