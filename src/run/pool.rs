//! Environments shared by callers: `--serve` queues invocations for N
//! environments (one by default, as Lambda gives one event at a time to an
//! environment), each driven by a worker thread of its own.

use std::collections::VecDeque;
use std::sync::mpsc::{Sender, channel};
use std::sync::{Arc, Condvar, Mutex};

use super::{Environment, EnvironmentSpec, InvokeRecord, InvokeStatus, LogSink};
use crate::runtime_api::error_body;
use crate::runtime_api::invoke::{InvokeReply, InvokeRequest, Invoker};

struct Job {
    payload: Vec<u8>,
    client_context: Option<String>,
    reply: Option<Sender<InvokeRecord>>,
}

#[derive(Default)]
struct Queue {
    jobs: Mutex<VecDeque<Job>>,
    ready: Condvar,
}

/// N environments and a queue in front of them.
pub struct Pool {
    queue: Arc<Queue>,
    /// The spec new environments start from, and its generation.
    spec: Arc<Mutex<(u64, EnvironmentSpec)>>,
}

impl Pool {
    /// Starts `size` workers; `on_record` sees every finished invocation
    /// (for the REPORT lines).
    pub fn start(
        spec: EnvironmentSpec,
        size: usize,
        logs: Arc<dyn LogSink>,
        on_record: Arc<dyn Fn(&InvokeRecord) + Send + Sync>,
    ) -> Pool {
        let queue = Arc::new(Queue::default());
        let current = Arc::new(Mutex::new((0u64, spec)));
        for _ in 0..size.max(1) {
            let queue = queue.clone();
            let current = current.clone();
            let logs = logs.clone();
            let on_record = on_record.clone();
            // The environment lives on this thread: its sandbox is spawned
            // from here and dies with the thread (a parent-death signal).
            std::thread::spawn(move || {
                let spec_now = || current.lock().unwrap_or_else(|e| e.into_inner()).clone();
                let (mut generation, spec) = spec_now();
                let mut env = Environment::new(spec, logs.clone());
                loop {
                    let job = {
                        let mut jobs = queue.jobs.lock().unwrap_or_else(|e| e.into_inner());
                        loop {
                            if let Some(job) = jobs.pop_front() {
                                break job;
                            }
                            jobs = queue.ready.wait(jobs).unwrap_or_else(|e| e.into_inner());
                        }
                    };
                    // A rebuilt image (`--watch`): the old environment is
                    // stopped and the event goes to one of the new image.
                    let (g, spec) = spec_now();
                    if g != generation {
                        generation = g;
                        env = Environment::new(spec, logs.clone());
                    }
                    let record = match env.invoke(job.payload, job.client_context) {
                        Ok(r) => r,
                        Err(e) => {
                            logs.line(&format!("error: {e}"));
                            failed_record(&e.to_string())
                        }
                    };
                    on_record(&record);
                    if let Some(reply) = job.reply {
                        let _ = reply.send(record);
                    }
                }
            });
        }
        Pool { queue, spec: current }
    }

    /// Environments started from now on (including the replacements of
    /// running ones, at their next event) use `spec`.
    pub fn update(&self, spec: EnvironmentSpec) {
        let mut current = self.spec.lock().unwrap_or_else(|e| e.into_inner());
        *current = (current.0 + 1, spec);
    }

    fn submit(&self, job: Job) {
        self.queue
            .jobs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push_back(job);
        self.queue.ready.notify_one();
    }
}

fn failed_record(message: &str) -> InvokeRecord {
    InvokeRecord {
        request_id: crate::runtime_api::ids::request_id(),
        status: InvokeStatus::Crash("Runtime.Unknown".into()),
        body: error_body("Runtime.Unknown", message),
        duration: std::time::Duration::ZERO,
        init_duration: None,
        memory_size_mb: 0,
        max_memory_used_mb: None,
    }
}

impl Invoker for Pool {
    fn invoke(&self, request: InvokeRequest) -> InvokeReply {
        if request.asynchronous {
            self.submit(Job {
                payload: request.payload,
                client_context: request.client_context,
                reply: None,
            });
            return InvokeReply::Accepted;
        }
        let (reply, answer) = channel();
        self.submit(Job {
            payload: request.payload,
            client_context: request.client_context,
            reply: Some(reply),
        });
        let record = answer
            .recv()
            .unwrap_or_else(|_| failed_record("the environment stopped"));
        InvokeReply::Done {
            function_error: (record.status != InvokeStatus::Success).then(|| "Unhandled".to_string()),
            request_id: record.request_id,
            body: record.body,
        }
    }
}
