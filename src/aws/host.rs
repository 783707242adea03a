//! Recognising an ECR registry host: `ACCOUNT.dkr.ecr[-fips].REGION.amazonaws.com[.cn]`
//! and the dual-stack `ACCOUNT.dkr-ecr[-fips].REGION.on.aws`.

/// The account and region an ECR host names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EcrHost {
    pub account: String,
    pub region: String,
}

/// `Some` when `registry` (host, optionally `:port`) is a private ECR registry.
pub fn parse_ecr_host(registry: &str) -> Option<EcrHost> {
    let host = registry.split(':').next()?.to_ascii_lowercase();
    let rest = host
        .strip_suffix(".amazonaws.com.cn")
        .or_else(|| host.strip_suffix(".amazonaws.com"))
        .map(|r| (r, [".dkr.ecr.", ".dkr.ecr-fips."]))
        .or_else(|| {
            host.strip_suffix(".on.aws")
                .map(|r| (r, [".dkr-ecr.", ".dkr-ecr-fips."]))
        });
    let (rest, infixes) = rest?;
    let (account, region) = infixes.iter().find_map(|infix| rest.split_once(infix))?;
    let account_ok = account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit());
    let region_ok = !region.is_empty()
        && region.contains('-')
        && region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    (account_ok && region_ok).then(|| EcrHost {
        account: account.to_string(),
        region: region.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(account: &str, region: &str) -> Option<EcrHost> {
        Some(EcrHost {
            account: account.into(),
            region: region.into(),
        })
    }

    #[test]
    fn ecr_forms_are_recognised() {
        assert_eq!(
            parse_ecr_host("123456789012.dkr.ecr.us-east-1.amazonaws.com"),
            host("123456789012", "us-east-1")
        );
        assert_eq!(
            parse_ecr_host("123456789012.dkr.ecr-fips.us-gov-west-1.amazonaws.com"),
            host("123456789012", "us-gov-west-1")
        );
        assert_eq!(
            parse_ecr_host("123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn"),
            host("123456789012", "cn-north-1")
        );
        assert_eq!(
            parse_ecr_host("123456789012.dkr-ecr.eu-west-1.on.aws"),
            host("123456789012", "eu-west-1")
        );
        assert_eq!(
            parse_ecr_host("123456789012.DKR.ECR.us-east-1.amazonaws.com:443"),
            host("123456789012", "us-east-1")
        );
    }

    #[test]
    fn other_hosts_are_not_ecr() {
        for h in [
            "public.ecr.aws",
            "127.0.0.1:5000",
            "docker.io",
            "12345678901.dkr.ecr.us-east-1.amazonaws.com",
            "123456789012.dkr.ecr..amazonaws.com",
            "123456789012.dkr.ecr.us-east-1.amazonaws.com.evil.example",
            "x123456789012.s3.us-east-1.amazonaws.com",
        ] {
            assert_eq!(parse_ecr_host(h), None, "{h}");
        }
    }
}
