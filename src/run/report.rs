//! How an invocation is shown: the REPORT line Lambda logs, the response as
//! one JSON line, and the `--json` record.

use super::InvokeRecord;

fn ms(d: std::time::Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// `END RequestId: …` and `REPORT RequestId: … Duration: … ms …`, as in CloudWatch.
pub fn report_lines(r: &InvokeRecord) -> [String; 2] {
    let mut report = format!(
        "REPORT RequestId: {}\tDuration: {:.2} ms\tBilled Duration: {} ms\tMemory Size: {} MB\tMax Memory Used: {} MB",
        r.request_id,
        ms(r.duration),
        billed_ms(r),
        r.memory_size_mb,
        r.max_memory_used_mb
            .map_or_else(|| "-".to_string(), |m| m.to_string()),
    );
    if let Some(init) = r.init_duration {
        report.push_str(&format!("\tInit Duration: {:.2} ms", ms(init)));
    }
    if r.status != super::InvokeStatus::Success {
        report.push_str(&format!("\tStatus: {}", r.status.name()));
        if let Some(t) = r.status.error_type() {
            report.push_str(&format!("\tError Type: {t}"));
        }
    }
    [format!("END RequestId: {}", r.request_id), report]
}

/// Billed per started millisecond.
pub fn billed_ms(r: &InvokeRecord) -> u64 {
    (r.duration.as_micros() as u64).div_ceil(1000).max(1)
}

/// The body as one JSON line: compact JSON as it is, anything else as a string.
pub fn body_line(body: &[u8]) -> String {
    match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(v) => v.to_string(),
        Err(_) => serde_json::Value::String(String::from_utf8_lossy(body).into_owned()).to_string(),
    }
}

fn body_value(body: &[u8]) -> serde_json::Value {
    serde_json::from_slice(body)
        .unwrap_or_else(|_| serde_json::Value::String(String::from_utf8_lossy(body).into_owned()))
}

/// The `--json` record of one invocation.
pub fn json_record(r: &InvokeRecord) -> serde_json::Value {
    let mut v = serde_json::json!({
        "requestId": r.request_id,
        "status": r.status.name(),
    });
    let o = v.as_object_mut().expect("an object");
    if r.status == super::InvokeStatus::Success {
        o.insert("response".into(), body_value(&r.body));
    } else {
        o.insert("errorType".into(), r.status.error_type().into());
        o.insert("error".into(), body_value(&r.body));
    }
    o.insert(
        "durationMs".into(),
        serde_json::json!((ms(r.duration) * 100.0).round() / 100.0),
    );
    o.insert("billedDurationMs".into(), billed_ms(r).into());
    if let Some(init) = r.init_duration {
        o.insert(
            "initDurationMs".into(),
            serde_json::json!((ms(init) * 100.0).round() / 100.0),
        );
    }
    o.insert("memorySizeMb".into(), r.memory_size_mb.into());
    o.insert("maxMemoryUsedMb".into(), r.max_memory_used_mb.into());
    v
}
