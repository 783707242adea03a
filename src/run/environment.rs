//! One execution environment: a sandboxed process and the Runtime API it
//! polls. Started on the first event; after a timeout, a crash or an init
//! error it is stopped and the next event starts a fresh one, as Lambda does.

use std::io::{BufRead, BufReader};
use std::os::fd::AsRawFd;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::function::{FunctionSettings, ImageRunConfig, environment, timestamp_now};
use super::{InvokeRecord, InvokeStatus, LogSink};
use crate::runtime_api::{Failure, Invocation, Outcome, RuntimeApi, error_body, ids};
use crate::sandbox::{EXEC_FAILED, Engine, Sandbox, SandboxError, SandboxSpec};

/// Lambda's limit on the init phase of an on-demand function.
const INIT_LIMIT: Duration = Duration::from_secs(10);

/// What an environment is started from.
#[derive(Clone)]
pub struct EnvironmentSpec {
    /// The sandbox without the function's environment (added per start).
    pub sandbox: SandboxSpec,
    pub image: ImageRunConfig,
    pub settings: FunctionSettings,
    pub engine: Engine,
    /// Keeps the root filesystem's snapshots from `cache prune` while any
    /// environment of this spec may start or run.
    pub rootfs_in_use: crate::rootfs::InUse,
}

struct Live {
    api: Arc<RuntimeApi>,
    sandbox: Sandbox,
    logs: Arc<std::io::PipeReader>,
    /// Set when the environment is stopped: what a killed process still
    /// writes (a runtime's complaint that its API went away) is not the function's.
    muted: Arc<std::sync::atomic::AtomicBool>,
    /// Set when the program went over the memory size and was killed.
    out_of_memory: Arc<std::sync::atomic::AtomicBool>,
    invoked: bool,
}

pub struct Environment {
    spec: EnvironmentSpec,
    logs: Arc<dyn LogSink>,
    live: Option<Live>,
}

#[derive(Debug, thiserror::Error)]
pub enum EnvironmentError {
    #[error("cannot start the Runtime API: {0}")]
    Api(#[source] std::io::Error),
    #[error(transparent)]
    Sandbox(#[from] SandboxError),
}

impl Environment {
    pub fn new(spec: EnvironmentSpec, logs: Arc<dyn LogSink>) -> Environment {
        Environment {
            spec,
            logs,
            live: None,
        }
    }

    fn start(&mut self) -> Result<&mut Live, EnvironmentError> {
        if self.live.is_none() {
            let api = Arc::new(RuntimeApi::start().map_err(EnvironmentError::Api)?);
            let mut sandbox = self.spec.sandbox.clone();
            sandbox.env = environment(&self.spec.image, &self.spec.settings, &api.addr());
            let (reader, writer) = std::io::pipe().map_err(SandboxError::Spawn)?;
            let writer2 = writer.try_clone().map_err(SandboxError::Spawn)?;
            let on_exit = {
                let api = api.clone();
                move |status: std::process::ExitStatus| api.process_exited(describe_exit(status))
            };
            let sandbox = Sandbox::spawn_in(
                &self.spec.engine,
                &sandbox,
                Stdio::null(),
                writer.into(),
                writer2.into(),
                on_exit,
            )?;
            let reader = Arc::new(reader);
            let muted = Arc::new(std::sync::atomic::AtomicBool::new(false));
            pump_logs(reader.clone(), self.logs.clone(), muted.clone());
            let out_of_memory = Arc::new(std::sync::atomic::AtomicBool::new(false));
            let limit_kib = u64::from(self.spec.settings.memory_mb) * 1024;
            watch_memory(
                sandbox.memory_probe(),
                limit_kib,
                muted.clone(),
                out_of_memory.clone(),
            );
            self.live = Some(Live {
                api,
                sandbox,
                logs: reader,
                muted,
                out_of_memory,
                invoked: false,
            });
        }
        Ok(self.live.as_mut().expect("just started"))
    }

    /// Stops the environment (the next invoke starts a new one).
    pub fn stop(&mut self) {
        if let Some(live) = self.live.take() {
            live.muted.store(true, std::sync::atomic::Ordering::SeqCst);
            live.sandbox.stop();
        }
    }

    /// Invokes the function with `payload` and waits for the end.
    pub fn invoke(
        &mut self,
        payload: Vec<u8>,
        client_context: Option<String>,
    ) -> Result<InvokeRecord, EnvironmentError> {
        let request_id = ids::request_id();
        let settings = self.spec.settings.clone();
        let logs = self.logs.clone();
        logs.line(&format!("START RequestId: {request_id} Version: $LATEST"));
        let invocation = Invocation {
            request_id: request_id.clone(),
            payload,
            timeout: Duration::from_secs(u64::from(settings.timeout_s)),
            function_arn: settings.arn(),
            trace_id: ids::trace_id(),
            client_context,
            cognito_identity: None,
        };
        let started = Instant::now();
        let (result, duration, init, memory_kib, out_of_memory) = loop {
            let live = self.start()?;
            let first = !live.invoked;
            live.invoked = true;
            let (result, duration) = live.api.invoke(invocation.clone(), INIT_LIMIT);
            let init = if first { live.api.init_duration() } else { None };
            let memory_kib = live.sandbox.peak_memory_kib();
            drain(&live.logs);
            // A warm environment whose process ended between events (a
            // runtime may exit after a failed answer) is replaced, and the
            // event goes to the fresh one, as Lambda does.
            if !first
                && matches!(
                    result,
                    Err(Failure::Exited {
                        during_invoke: false,
                        ..
                    })
                )
            {
                self.stop();
                continue;
            }
            let oom = live.out_of_memory.load(std::sync::atomic::Ordering::SeqCst);
            break (result, duration, init, memory_kib, oom);
        };
        let id = &request_id;
        let (status, body, restart) = match result {
            Ok(Outcome::Response { body, .. }) => (InvokeStatus::Success, body, false),
            Ok(Outcome::Error { error_type, body }) => {
                // The header says how it failed (`Unhandled`); the body's own type is what callers see.
                let error_type = body_error_type(&body).unwrap_or(error_type);
                (InvokeStatus::Error(error_type), body, false)
            }
            Err(Failure::Timeout { during_init }) => {
                let secs = if during_init {
                    INIT_LIMIT.as_secs()
                } else {
                    u64::from(settings.timeout_s)
                };
                let what = if during_init { "Init" } else { "Task" };
                let message = format!("{what} timed out after {secs}.00 seconds");
                logs.line(&format!("{} {id} {message}", timestamp_now()));
                let body = error_body("Sandbox.Timedout", &format!("RequestId: {id} Error: {message}"));
                (InvokeStatus::Timeout, body, true)
            }
            Err(Failure::InitError { error_type, body }) => {
                let error_type = body_error_type(&body).unwrap_or(error_type);
                (InvokeStatus::InitError(error_type), body, true)
            }
            Err(Failure::Exited {
                during_invoke,
                status,
            }) => {
                let kind = if out_of_memory {
                    "Runtime.OutOfMemory"
                } else if !during_invoke && status == format!("exit status {EXEC_FAILED}") {
                    "Runtime.InvalidEntrypoint"
                } else {
                    "Runtime.ExitError"
                };
                let message = format!("RequestId: {id} Error: Runtime exited with error: {status}");
                (
                    InvokeStatus::Crash(kind.to_string()),
                    error_body(kind, &message),
                    true,
                )
            }
        };
        // The wall time when the API could not measure it (no runtime picked the event up).
        let duration = if duration.is_zero() {
            started.elapsed()
        } else {
            duration
        };
        if restart {
            self.stop();
        }
        Ok(InvokeRecord {
            request_id,
            status,
            body,
            duration,
            init_duration: init,
            memory_size_mb: settings.memory_mb,
            max_memory_used_mb: memory_kib.map(|k| k.div_ceil(1024)),
        })
    }
}

impl Drop for Environment {
    fn drop(&mut self) {
        self.stop();
    }
}

fn body_error_type(body: &[u8]) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    v["errorType"]
        .as_str()
        .filter(|t| !t.is_empty())
        .map(String::from)
}

/// `exit status 1` or `signal: killed`, as Lambda's errors say it.
fn describe_exit(status: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    if let Some(sig) = status.signal() {
        let name = match sig {
            libc::SIGKILL => "killed",
            libc::SIGSEGV => "segmentation fault",
            libc::SIGABRT => "aborted",
            libc::SIGTERM => "terminated",
            libc::SIGBUS => "bus error",
            _ => return format!("signal: {sig}"),
        };
        return format!("signal: {name}");
    }
    format!("exit status {}", status.code().unwrap_or(-1))
}

/// Lambda stops a function that uses more than its memory size: the
/// resident memory of the program and the processes it started is read
/// every few milliseconds (no cgroup is needed, so this works unprivileged).
fn watch_memory(
    probe: crate::sandbox::MemoryProbe,
    limit_kib: u64,
    stopped: Arc<std::sync::atomic::AtomicBool>,
    out_of_memory: Arc<std::sync::atomic::AtomicBool>,
) {
    use std::sync::atomic::Ordering;
    std::thread::spawn(move || {
        while !stopped.load(Ordering::SeqCst) {
            if probe.tree_resident_kib().is_some_and(|rss| rss > limit_kib) {
                out_of_memory.store(true, Ordering::SeqCst);
                probe.kill_program();
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    });
}

/// Passes the function's output on, one line at a time, prefixed with the
/// time as CloudWatch shows it.
fn pump_logs(
    reader: Arc<std::io::PipeReader>,
    logs: Arc<dyn LogSink>,
    muted: Arc<std::sync::atomic::AtomicBool>,
) {
    std::thread::spawn(move || {
        let mut lines = BufReader::new(&*reader);
        let mut buf = Vec::new();
        while lines.read_until(b'\n', &mut buf).is_ok_and(|n| n > 0) {
            if muted.load(std::sync::atomic::Ordering::SeqCst) {
                break;
            }
            let text = String::from_utf8_lossy(&buf);
            logs.line(&format!(
                "{} {}",
                timestamp_now(),
                text.trim_end_matches(['\n', '\r'])
            ));
            buf.clear();
        }
    });
}

/// Waits briefly until the output written before the answer has been
/// passed on, so it appears before the invocation's REPORT line.
fn drain(reader: &std::io::PipeReader) {
    for _ in 0..50 {
        let mut pending: libc::c_int = 0;
        // SAFETY: FIONREAD writes one int; the fd is open while `reader` lives.
        let rc = unsafe { libc::ioctl(reader.as_raw_fd(), libc::FIONREAD, &mut pending) };
        if rc != 0 || pending == 0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    // The pump may still hold a line it read; a moment lets it print it.
    std::thread::sleep(Duration::from_micros(200));
}
