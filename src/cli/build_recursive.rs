//! `lambda-img build --recursive [DIR...]`, with `--deploy`: every function
//! built, pushed and deployed in turn, one cache for all.

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::deploy::BuildDeployArgs;
use super::limits::LimitArgs;
use super::settings::Project;
use super::{ExitStatus, GlobalArgs, print_data};
use crate::build::{BuildOptions, prepare_model};
use crate::build_all::{FleetMember, plan_fleet};
use crate::build_report::metadata::{build_report, write_metadata_file};
use crate::cache::Cache;
use crate::reference::OutputTemplate;
use crate::report::Reporter;

/// What `build --recursive` was asked besides the build options.
pub struct RecursiveArgs<'a> {
    pub dirs: &'a [PathBuf],
    pub json: bool,
    pub metadata_file: Option<&'a Path>,
    pub aws: &'a BuildDeployArgs,
    pub limits: &'a LimitArgs,
    pub sbom: &'a super::build_sbom::SbomSettings,
}

/// One function in the JSON report: its build report, or why it failed.
#[derive(Serialize)]
struct FunctionReport<'a> {
    function: Option<&'a str>,
    manifest: &'a Path,
    /// What `build --json` prints for this function alone (with `deploy`).
    #[serde(skip_serializing_if = "Option::is_none")]
    report: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

/// Builds every function found under `args.dirs`; prints `function REF@digest`
/// lines (or the JSON array) on stdout and each failure on stderr. The
/// `--metadata-file` gets the JSON array.
pub fn run(
    global: &GlobalArgs,
    args: RecursiveArgs<'_>,
    template: &BuildOptions,
    outputs: &[OutputTemplate],
    cache: &Cache,
    reporter: &dyn Reporter,
) -> anyhow::Result<()> {
    if args.aws.deploy && args.aws.flags.function.is_some() {
        anyhow::bail!(
            "build --recursive --deploy deploys each image to its own function ([deploy] function or function.name); drop --function"
        );
    }
    let manifests = crate::discover::find_manifests(args.dirs)?;
    let fleet = plan_fleet(&manifests, template, outputs)?;
    args.sbom.check_recursive(fleet.len())?;
    // Every function's records and blobs, fetched while the first ones build.
    let _prefetch = prefetch_shared_layers(&manifests, template, cache);
    let mut lines = Vec::new();
    let mut reports = Vec::new();
    let mut record = |member, result| record_result(member, result, &mut lines, &mut reports, reporter);
    // What follows a function's push (its SBOM referrer, whose index update
    // on a registry without the referrers API waits a settle time; its
    // record; its deploy) runs while the next functions build, a few at a
    // time; results are recorded in the fleet's order.
    std::thread::scope(|s| {
        let join = |handle: std::thread::ScopedJoinHandle<'_, _>| match handle.join() {
            Ok(result) => result,
            Err(panic) => std::panic::resume_unwind(panic),
        };
        // Each holds its outcome and (with --deploy) an AWS client: bounded.
        const IN_FLIGHT: usize = 4;
        let mut finishing = std::collections::VecDeque::new();
        // Results by place in the fleet, recorded (and a failure warned
        // about) as soon as every function before them is.
        let mut done = std::collections::BTreeMap::new();
        let mut next = 0;
        let mut record_ready = |done: &mut std::collections::BTreeMap<usize, _>| {
            while let Some(result) = done.remove(&next) {
                record(&fleet[next], result);
                next += 1;
            }
        };
        for (n, member) in fleet.iter().enumerate() {
            let name = member.function.as_deref().unwrap_or("?");
            reporter.step(&format!("building {name} ({})", member.manifest.display()));
            match build_written(global, &args, member, cache, reporter) {
                Ok(written) => {
                    let args = &args;
                    finishing.push_back((n, s.spawn(move || finish(global, args, written, reporter))));
                }
                Err(e) => {
                    done.insert(n, Err(e));
                }
            }
            while finishing.len() >= IN_FLIGHT {
                let (n, handle) = finishing.pop_front().expect("not empty");
                done.insert(n, join(handle));
            }
            record_ready(&mut done);
        }
        for (n, handle) in finishing {
            done.insert(n, join(handle));
        }
        record_ready(&mut done);
    });
    if let Some(path) = args.metadata_file {
        write_metadata_file(path, &serde_json::to_value(&reports)?)?;
    }
    if args.json {
        print_data(&serde_json::to_string_pretty(&reports)?)?;
    } else if !lines.is_empty() {
        print_data(&lines.join("\n"))?;
    }
    let failed = reports.iter().filter(|r| r.error.is_some()).count();
    if failed > 0 {
        reporter.warn(&format!("{failed} of {} function(s) failed", reports.len()));
        return Err(ExitStatus(1).into());
    }
    Ok(())
}

/// Adds a function's result to the stdout lines and the reports (its
/// failure also as a warning).
fn record_result<'a>(
    member: &'a FleetMember,
    result: anyhow::Result<(String, serde_json::Value)>,
    lines: &mut Vec<String>,
    reports: &mut Vec<FunctionReport<'a>>,
    reporter: &dyn Reporter,
) {
    let name = member.function.as_deref().unwrap_or("?");
    match result {
        Ok((line, report)) => {
            lines.push(format!("{name} {line}"));
            reports.push(FunctionReport {
                function: member.function.as_deref(),
                manifest: &member.manifest,
                report: Some(report),
                error: None,
            });
        }
        Err(e) => {
            let message = format!("{e:#}");
            reporter.warn(&format!(
                "{name} ({}) failed: {message}",
                member.manifest.display()
            ));
            reports.push(FunctionReport {
                function: member.function.as_deref(),
                manifest: &member.manifest,
                report: None,
                error: Some(message),
            });
        }
    }
}

/// With `--cache-registry`: starts pulling the records and blobs of every
/// function's layers (keyed as `lambda-img plan` keys them) in the
/// background; the builds find them there. Manifests that do not plan are
/// left to their builds to report.
fn prefetch_shared_layers(
    manifests: &[std::path::PathBuf],
    template: &BuildOptions,
    cache: &Cache,
) -> Option<crate::cache_registry::Prefetch> {
    let registry = template.cache_registry.given.as_ref()?;
    let settings = crate::layer::LayerSettings {
        mtime: template.source_date_epoch.unwrap_or(crate::layer::DEFAULT_MTIME),
        gzip_level: template.gzip_level,
        threads: template.threads,
        ..Default::default()
    };
    let mut wanted = Vec::new();
    // Reading a `[system]` base for its key: the build reads the same base.
    let bases = crate::plan_fleet::BaseReader::new(template.source_options.clone(), &crate::report::Silent);
    for manifest in manifests {
        let Ok(mut plans) =
            crate::plan_fleet::plan_functions(std::slice::from_ref(manifest), &settings, &bases, cache)
        else {
            continue;
        };
        for layer in plans.pop().map(|p| p.layers).unwrap_or_default() {
            let bucket = match layer.name.as_str() {
                crate::deps::DEPENDENCIES_LAYER => crate::cache::CacheBucket::Deps,
                // The `[system]` layer is kept in the local cache only.
                crate::system::SYSTEM_LAYER => continue,
                _ => crate::cache::CacheBucket::Layers,
            };
            wanted.push((bucket, layer.key));
        }
    }
    Some(registry.prefetch(cache, wanted))
}

/// A function built and written to its outputs; its SBOM's referrer, its
/// record and its deploy are left to [`finish`].
struct Written<'a> {
    member: &'a FleetMember,
    deploy: crate::manifest::DeploySettings,
    options: BuildOptions,
    sink_options: crate::sink::SinkOptions,
    outcome: crate::build::BuildOutcome,
    document: Option<super::build_sbom::Document>,
}

/// Reads the function's manifest (once), signs in with its `[registry]
/// aws_auth`, builds it and writes its outputs, as `build` does for one.
fn build_written<'a>(
    global: &GlobalArgs,
    args: &RecursiveArgs<'_>,
    member: &'a FleetMember,
    cache: &Cache,
    reporter: &dyn Reporter,
) -> anyhow::Result<Written<'a>> {
    let manifest = &member.manifest;
    let Project { deploy, model } = Project::read(manifest)?;
    let planned = member.options.clone()?;
    let mut options = planned.clone();
    let signin = global.ecr_signin(Some(&deploy), args.aws.flags.region.as_deref());
    options.sink_options.registry.fallback = Some(signin.clone());
    options.source_options.registry.fallback = Some(signin);
    super::deploy::before_build(global, args.aws, &options.outputs, &deploy)?;
    let ready = prepare_model(&options, model, cache, reporter)?;
    let epoch = planned.source_date_epoch.unwrap_or(crate::layer::DEFAULT_MTIME);
    let document = super::build_sbom::before_outputs(args.sbom, &ready, &member.manifest, epoch, reporter)?;
    let outcome = ready.write(reporter)?;
    Ok(Written {
        member,
        deploy,
        options,
        sink_options: planned.sink_options,
        outcome,
        document,
    })
}

/// Attaches the SBOM, records and (with --deploy) deploys a written
/// function; returns its stdout line and its report.
fn finish(
    global: &GlobalArgs,
    args: &RecursiveArgs<'_>,
    written: Written<'_>,
    reporter: &dyn Reporter,
) -> anyhow::Result<(String, serde_json::Value)> {
    let Written {
        member,
        deploy,
        options,
        sink_options,
        outcome,
        document,
    } = written;
    // The same report `build --json` prints for one function.
    let sbom = super::build_sbom::after_build(args.sbom, document, &outcome, &sink_options, reporter)?;
    let mut report = build_report(&outcome.report_facts());
    if let Some(sbom) = sbom {
        report["sbom"] = sbom;
    }
    let pushed = crate::sink::pushed_references(&outcome.outputs);
    if !pushed.is_empty() {
        // `deploy` without IMAGE in this project deploys what was pushed.
        let project_dir = member.manifest.parent().unwrap_or(Path::new(""));
        if let Err(e) =
            crate::deploy::last_build::record(project_dir, &serde_json::to_string_pretty(&report)?)
        {
            reporter.warn(&e.to_string());
        }
    }
    if args.aws.deploy {
        let deployed = super::deploy::after_build(
            global,
            args.aws,
            &super::deploy::target(&args.aws.flags, Some(&deploy)),
            &options,
            args.limits,
            pushed.first().copied().unwrap_or_default(),
        )?;
        report["deploy"] = serde_json::to_value(&deployed)?;
    }
    let line = if pushed.is_empty() {
        outcome.image.manifest_digest().to_string()
    } else {
        pushed.join(" ")
    };
    Ok((line, report))
}
