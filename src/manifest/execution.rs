//! `[function]` keys for running the function (`lambda-img run`): memory,
//! timeout, ephemeral storage and environment, checked against Lambda's ranges.

use super::model::ExecutionSettings;
use super::schema::FunctionTable;
use super::validate::Checker;

/// Lambda's ranges: memory and /tmp in MB, timeout in seconds.
const RANGES: [(&str, u32, u32, &str); 3] = [
    ("memory", 128, 10_240, "MB"),
    ("timeout", 1, 900, "seconds"),
    ("ephemeral_storage", 512, 10_240, "MB"),
];

pub(super) fn check(c: &mut Checker, f: &FunctionTable) -> ExecutionSettings {
    let mut values = [None; 3];
    for (i, (key, value)) in [
        ("memory", &f.memory),
        ("timeout", &f.timeout),
        ("ephemeral_storage", &f.ephemeral_storage),
    ]
    .into_iter()
    .enumerate()
    {
        let Some(value) = value else { continue };
        let (_, lo, hi, unit) = RANGES[i];
        let n = *value.get_ref();
        if n < i64::from(lo) || n > i64::from(hi) {
            c.report(
                value.span(),
                format!("function.{key}"),
                format!("function.{key} = {n} is outside Lambda's range: use {lo} to {hi} ({unit})"),
            );
        } else {
            values[i] = Some(n as u32);
        }
    }
    let mut environment = Vec::new();
    for (k, v) in &f.environment.0 {
        let name = k.get_ref();
        if name.is_empty() || name.contains('=') || name.contains('\0') {
            c.report(
                k.span(),
                "function.environment",
                format!("function.environment key {name:?} is not a variable name"),
            );
        }
        environment.push((name.clone(), v.get_ref().clone()));
    }
    ExecutionSettings {
        memory: values[0],
        timeout: values[1],
        ephemeral_storage: values[2],
        environment,
    }
}
