//! LI091: the base an image records has moved on under its tag. Pure: the
//! caller asks the registry what the tag names now (`check` does, when the
//! registry answers) and passes the answer in.

use super::Finding;
use super::catalog::BASE_LAGS;
use crate::image::Digest;
use crate::image::base_record::BaseRecord;

/// A warning when `record`'s digest differs from `current`, what its tag names now.
pub fn base_lag_finding(record: &BaseRecord, current: &Digest) -> Option<Finding> {
    let recorded = record.digest.as_ref()?;
    (recorded != current).then(|| {
        Finding::new(
            &BASE_LAGS,
            format!(
                "built on {}@{recorded}, but {} now names {current}",
                record.name, record.name
            ),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_recorded_digest_that_differs_lags() {
        let (old, new) = (Digest::of(b"v1"), Digest::of(b"v2"));
        let record = BaseRecord {
            name: "127.0.0.1:5000/lambda/base:1".into(),
            digest: Some(old.clone()),
        };
        let f = base_lag_finding(&record, &new).unwrap();
        assert_eq!(f.rule_id, "LI091");
        assert!(f.message.contains(&old.to_string()) && f.message.contains(&new.to_string()));
        assert_eq!(base_lag_finding(&record, &old), None);
        let unpinned = BaseRecord {
            digest: None,
            ..record
        };
        assert_eq!(base_lag_finding(&unpinned, &new), None);
    }
}
