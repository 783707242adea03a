//! `lambda-img run --serve`: the invoke endpoint in front of the environments.

use std::sync::Arc;

use super::print_data;
use crate::run::report::report_lines;
use crate::run::watch::Watcher;
use crate::run::{EnvironmentSpec, LogSink, pool::Pool};

/// Serves until the process ends; with `rebuild`, also watches the sources
/// and hands each rebuilt image to the environments.
pub fn serve(
    spec: EnvironmentSpec,
    listen: &str,
    concurrency: usize,
    logs: Arc<dyn LogSink>,
    rebuild: Option<(Watcher, &mut dyn FnMut() -> anyhow::Result<EnvironmentSpec>)>,
) -> anyhow::Result<()> {
    let listener = std::net::TcpListener::bind(listen)
        .map_err(|e| anyhow::anyhow!("cannot listen on {listen}: {e} (choose another with --listen ADDR)"))?;
    let addr = listener.local_addr()?;
    let on_record = {
        let logs = logs.clone();
        Arc::new(move |r: &crate::run::InvokeRecord| {
            for line in report_lines(r) {
                logs.line(&line);
            }
        })
    };
    let pool = Arc::new(Pool::start(spec, concurrency, logs.clone(), on_record));
    logs.line(&format!(
        "serving {concurrency} environment(s); invoke with: curl -d '{{}}' http://{addr}/2015-03-31/functions/function/invocations"
    ));
    // The address on stdout (data: with --listen 127.0.0.1:0 it names the port).
    print_data(&format!("http://{addr}"))?;
    let Some((watcher, rebuild)) = rebuild else {
        crate::runtime_api::invoke::serve(listener, pool);
        return Ok(());
    };
    {
        let pool = pool.clone();
        std::thread::spawn(move || crate::runtime_api::invoke::serve(listener, pool));
    }
    watcher.watch(|| {
        logs.line("a source changed: rebuilding");
        match rebuild() {
            Ok(spec) => pool.update(spec),
            // The old image keeps serving until a build succeeds.
            Err(e) => logs.line(&format!(
                "error: the rebuild failed, the previous image keeps serving: {e:#}"
            )),
        }
    })
}
