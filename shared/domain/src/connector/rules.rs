//! Field checks for connector settings.
//!
//! Each check returns `Err` with a short rule the customer can act on; the API shows it next to
//! the field name in a 400 response. Only the first, most useful rule is reported.

use rand::Rng;
use rand::distr::Alphanumeric;

/// Example used when a bucket name cannot be recovered from what the customer pasted.
const EXAMPLE_BUCKET: &str = "acme-exports";
const ROLE_ARN_FORM: &str = "arn:aws:iam::ACCOUNT:role/NAME";
const PARTITIONS: &[&str] = &["aws", "aws-cn", "aws-us-gov"];

// ---------------------------------------------------------------------------------------------
// Buckets

/// S3 general-purpose bucket naming rules.
pub fn check_bucket_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err(format!("is required, e.g. \"{EXAMPLE_BUCKET}\""));
    }
    // A pasted URL or ARN is the most common mistake, and its other faults are noise.
    if let Some(kind) = pasted_location_kind(name) {
        let suggestion = bucket_from_location(name)
            .filter(|b| check_plain_bucket_name(b).is_ok())
            .unwrap_or(EXAMPLE_BUCKET);
        return Err(format!(
            "give the bucket name only, e.g. \"{suggestion}\", not {kind}"
        ));
    }
    check_plain_bucket_name(name)
}

fn check_plain_bucket_name(name: &str) -> Result<(), String> {
    if name.chars().any(char::is_whitespace) {
        return Err("must not contain spaces".into());
    }
    if name.chars().any(|c| c.is_ascii_uppercase()) {
        return Err("must be lowercase".into());
    }
    if !(3..=63).contains(&name.chars().count()) {
        return Err("must be 3 to 63 characters".into());
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '.' || *c == '-'))
    {
        return Err(format!(
            "must not contain \"{bad}\"; use only lowercase letters, digits, dots (.) and hyphens (-)"
        ));
    }
    let alnum = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    if !alnum(name.chars().next()) || !alnum(name.chars().last()) {
        return Err("must begin and end with a letter or digit".into());
    }
    if name.contains("..") {
        return Err("must not contain two adjacent periods (..)".into());
    }
    if name.contains(".-") || name.contains("-.") {
        return Err("must not have a period next to a hyphen (.- or -.)".into());
    }
    if looks_like_ipv4(name) {
        return Err("must not be formatted as an IP address".into());
    }
    // Reserved by AWS for other bucket types and access points.
    for reserved in ["xn--", "sthree-", "amzn-s3-demo-"] {
        if name.starts_with(reserved) {
            return Err(format!(
                "must not start with \"{reserved}\" (reserved by AWS)"
            ));
        }
    }
    for reserved in ["-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3"] {
        if name.ends_with(reserved) {
            return Err(format!(
                "must not end with \"{reserved}\" (reserved by AWS)"
            ));
        }
    }
    Ok(())
}

/// What kind of location the customer pasted instead of a bucket name, if any.
fn pasted_location_kind(input: &str) -> Option<&'static str> {
    let lower = input.to_ascii_lowercase();
    if lower.starts_with("arn:") {
        Some("an ARN")
    } else if lower.contains("://") || is_s3_host(lower.split('/').next().unwrap_or("")) {
        Some("a URL")
    } else if input.contains('/') {
        Some("a path")
    } else {
        None
    }
}

fn is_s3_host(host: &str) -> bool {
    host.ends_with(".amazonaws.com") || host.ends_with(".amazonaws.com.cn")
}

/// Recovers the bucket from `s3://b/…`, `arn:aws:s3:::b/…`, `https://b.s3….amazonaws.com/…`,
/// `https://s3….amazonaws.com/b/…`, `b.s3.amazonaws.com` or `b/…`.
fn bucket_from_location(input: &str) -> Option<&str> {
    let non_empty = |s: &&str| !s.is_empty();
    if input.to_ascii_lowercase().starts_with("arn:") {
        let resource = input.splitn(6, ':').nth(5)?;
        return resource.split('/').next().filter(non_empty);
    }
    let (scheme, rest) = match input.split_once("://") {
        Some((scheme, rest)) => (scheme.to_ascii_lowercase(), rest),
        None => (String::new(), input),
    };
    let mut segments = rest.split('/');
    let first = segments.next().unwrap_or("");
    if scheme == "s3" {
        return Some(first).filter(non_empty);
    }
    let host = first.to_ascii_lowercase();
    if !is_s3_host(&host) {
        // A bare "bucket/folder" path names its bucket first; other web addresses name none.
        return scheme.is_empty().then_some(first).filter(non_empty);
    }
    if host.starts_with("s3.") || host.starts_with("s3-") {
        // Path-style URL: the bucket is the first path segment.
        return segments.next().filter(non_empty);
    }
    // Virtual-hosted URL: the bucket is everything before ".s3." or ".s3-".
    let end = [".s3.", ".s3-"].iter().filter_map(|m| host.find(m)).min()?;
    Some(&first[..end]).filter(non_empty)
}

fn looks_like_ipv4(name: &str) -> bool {
    let groups: Vec<&str> = name.split('.').collect();
    groups.len() == 4
        && groups
            .iter()
            .all(|g| (1..=3).contains(&g.len()) && g.bytes().all(|b| b.is_ascii_digit()))
}

// ---------------------------------------------------------------------------------------------
// Regions

/// Commercial regions plus GovCloud and China, as of early 2026.
pub const KNOWN_REGIONS: &[&str] = &[
    "af-south-1",
    "ap-east-1",
    "ap-east-2",
    "ap-northeast-1",
    "ap-northeast-2",
    "ap-northeast-3",
    "ap-south-1",
    "ap-south-2",
    "ap-southeast-1",
    "ap-southeast-2",
    "ap-southeast-3",
    "ap-southeast-4",
    "ap-southeast-5",
    "ap-southeast-6",
    "ap-southeast-7",
    "ca-central-1",
    "ca-west-1",
    "cn-north-1",
    "cn-northwest-1",
    "eu-central-1",
    "eu-central-2",
    "eu-north-1",
    "eu-south-1",
    "eu-south-2",
    "eu-west-1",
    "eu-west-2",
    "eu-west-3",
    "il-central-1",
    "me-central-1",
    "me-south-1",
    "mx-central-1",
    "sa-east-1",
    "us-east-1",
    "us-east-2",
    "us-gov-east-1",
    "us-gov-west-1",
    "us-west-1",
    "us-west-2",
];

pub fn check_region(region: &str) -> Result<(), String> {
    if KNOWN_REGIONS.contains(&region) {
        return Ok(());
    }
    match suggest_region(region) {
        Some(known) => Err(format!(
            "unknown region \"{region}\"; did you mean {known}?"
        )),
        None => Err(format!("unknown region \"{region}\"; use e.g. us-east-1")),
    }
}

/// Catches case, separator and availability-zone slips ("US-EAST-1", "us_east_1", "useast1",
/// "us-east-1a"); anything else is not an obvious typo.
fn suggest_region(region: &str) -> Option<&'static str> {
    let squash = |s: &str| -> String {
        s.chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .map(|c| c.to_ascii_lowercase())
            .collect()
    };
    let typed = squash(region);
    if typed.is_empty() {
        return None;
    }
    let without_zone = typed
        .strip_suffix(|c: char| c.is_ascii_lowercase())
        .unwrap_or(&typed);
    KNOWN_REGIONS
        .iter()
        .copied()
        .find(|known| squash(known) == typed)
        .or_else(|| {
            KNOWN_REGIONS
                .iter()
                .copied()
                .find(|known| squash(known) == without_zone)
        })
}

pub fn partition_for_region(region: &str) -> &'static str {
    if region.starts_with("cn-") {
        "aws-cn"
    } else if region.starts_with("us-gov-") {
        "aws-us-gov"
    } else {
        "aws"
    }
}

// ---------------------------------------------------------------------------------------------
// IAM roles

/// `arn:{partition}:iam::{account}:role/{path/}{name}`.
pub fn check_role_arn(arn: &str) -> Result<(), String> {
    parse_role_arn(arn).map(|_| ())
}

/// The account id of a valid role ARN.
pub fn role_arn_account(arn: &str) -> Option<&str> {
    parse_role_arn(arn).ok()
}

/// Returns the account id when the ARN is valid.
fn parse_role_arn(arn: &str) -> Result<&str, String> {
    if arn.is_empty() {
        return Err(format!("is required; use {ROLE_ARN_FORM}"));
    }
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    if parts.len() != 6 || parts[0] != "arn" {
        return Err(format!("is not an ARN; use {ROLE_ARN_FORM}"));
    }
    let (partition, service, region, account, resource) =
        (parts[1], parts[2], parts[3], parts[4], parts[5]);
    if !PARTITIONS.contains(&partition) {
        return Err(format!(
            "unknown partition \"{partition}\"; use aws, aws-cn or aws-us-gov"
        ));
    }
    if service == "sts" && resource.starts_with("assumed-role/") {
        return Err(format!(
            "use the role ARN {ROLE_ARN_FORM}, not the assumed-role session ARN"
        ));
    }
    if service != "iam" || !resource.starts_with("role/") {
        return Err(format!("is not an IAM role ARN; use {ROLE_ARN_FORM}"));
    }
    if !region.is_empty() {
        return Err(format!("IAM ARNs have no region; use {ROLE_ARN_FORM}"));
    }
    if !is_account_id(account) {
        return Err(format!(
            "account id \"{account}\" must be 12 digits; use {ROLE_ARN_FORM}"
        ));
    }
    if arn.len() > 2048 {
        return Err("must be at most 2048 characters".into());
    }
    let mut segments: Vec<&str> = resource["role/".len()..].split('/').collect();
    let name = segments.pop().unwrap_or("");
    if segments
        .iter()
        .any(|seg| seg.is_empty() || !seg.chars().all(is_iam_name_char))
    {
        return Err(
            "role path must be folders of letters, digits and +=,.@_- separated by single slashes"
                .into(),
        );
    }
    if !(1..=64).contains(&name.len()) || !name.chars().all(is_iam_name_char) {
        return Err("role name must be 1 to 64 letters, digits or +=,.@_-".into());
    }
    Ok(account)
}

fn is_iam_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "+=,.@_-".contains(c)
}

fn is_account_id(s: &str) -> bool {
    s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit())
}

// ---------------------------------------------------------------------------------------------
// Key prefixes

/// A folder in the customer's bucket: `""` is the bucket root, anything else ends with one `/`.
pub fn normalize_prefix(prefix: &str) -> Result<String, String> {
    if prefix.is_empty() {
        return Ok(String::new());
    }
    if prefix == "/" {
        return Err("leave empty for the bucket root (no \"/\")".into());
    }
    if prefix.starts_with('/') {
        return Err("must not start with \"/\", e.g. \"exports/daily/\"".into());
    }
    if prefix.chars().any(char::is_control) {
        return Err(
            "must not contain control characters (tabs, line breaks, U+0080–U+009F)".into(),
        );
    }
    if let Some(c) = prefix.chars().find(|c| is_invisible(*c)) {
        return Err(format!(
            "must not contain invisible or direction-changing characters (found U+{:04X}): the key would not read as it looks",
            u32::from(c)
        ));
    }
    if let Some(c) = prefix.chars().find(|c| POLICY_SPECIAL.contains(c)) {
        return Err(format!(
            "must not contain {c:?}: IAM policies read \"*\" and \"?\" as wildcards and \"$\" as a variable, so the policy would grant more than this folder"
        ));
    }
    if prefix.contains('\\') {
        return Err("separate folders with \"/\", not \"\\\"".into());
    }
    if prefix.contains("//") {
        return Err("must not contain an empty folder (\"//\")".into());
    }
    if prefix.split('/').any(|seg| seg == "." || seg == "..") {
        return Err("must not contain \".\" or \"..\" folders".into());
    }
    let mut normalized = prefix.to_owned();
    if !normalized.ends_with('/') {
        normalized.push('/');
    }
    if normalized.len() > 1024 {
        return Err("must be at most 1024 bytes (UTF-8), including the trailing \"/\"".into());
    }
    Ok(normalized)
}

/// Characters IAM reads in a resource or `s3:prefix` value: wildcards `*` `?`, variables `${…}`.
/// A prefix holding one would grant more than its folder, so none is accepted.
const POLICY_SPECIAL: &[char] = &['*', '?', '$'];

/// Characters that render as nothing or reorder the text around them (bidi controls, zero-width
/// characters, the byte order mark, line and paragraph separators): a name or key holding one
/// does not read as what it is.
pub fn is_invisible(c: char) -> bool {
    is_bidi_control(c)
        || matches!(
            c,
            '\u{200B}'..='\u{200D}'
                | '\u{2060}'..='\u{2064}'
                | '\u{FEFF}'
                | '\u{2028}'
                | '\u{2029}'
                | '\u{00AD}'
                | '\u{034F}'
                | '\u{180E}'
                | '\u{115F}'
                | '\u{1160}'
                | '\u{3164}'
                | '\u{FFA0}'
                | '\u{FE00}'..='\u{FE0F}'
                | '\u{FFF9}'..='\u{FFFB}'
                | '\u{E0000}'..='\u{E007F}'
                | '\u{E0100}'..='\u{E01EF}'
        )
}

/// Unicode's explicit direction marks, embeddings, overrides and isolates.
pub fn is_bidi_control(c: char) -> bool {
    matches!(
        c,
        '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}'
    )
}

/// Whether two normalized prefixes share objects; the bucket root (`""`) overlaps everything.
/// Literal comparison is exact because no prefix holds a policy wildcard (`normalize_prefix`).
pub fn prefixes_overlap(a: &str, b: &str) -> bool {
    a.starts_with(b) || b.starts_with(a)
}

// ---------------------------------------------------------------------------------------------
// KMS keys

const KMS_FORMS: &str = "use a key id, key ARN, alias/NAME or alias ARN";

/// Key id, `mrk-` multi-Region key id, key ARN, `alias/NAME` or alias ARN.
pub fn check_kms_key_id(id: &str) -> Result<(), String> {
    if id.is_empty() {
        return Err(format!("is required; {KMS_FORMS}"));
    }
    if id.starts_with("alias/") {
        return check_kms_alias(id);
    }
    if !id.starts_with("arn:") {
        return if is_kms_key_id(id) {
            Ok(())
        } else {
            Err(format!(
                "is not a KMS key id like 1234abcd-12ab-34cd-56ef-1234567890ab; {KMS_FORMS}"
            ))
        };
    }
    let parts: Vec<&str> = id.splitn(6, ':').collect();
    if parts.len() != 6 || parts[2] != "kms" {
        return Err(format!("is not a KMS key ARN; {KMS_FORMS}"));
    }
    let (partition, region, account, resource) = (parts[1], parts[3], parts[4], parts[5]);
    if !PARTITIONS.contains(&partition) {
        return Err(format!(
            "unknown partition \"{partition}\"; use aws, aws-cn or aws-us-gov"
        ));
    }
    // KMS ARNs always name the key's region, and encryption must use a key in the bucket's.
    if region.is_empty() {
        return Err("the key ARN must include the key's region".into());
    }
    check_region(region)?;
    if !is_account_id(account) {
        return Err(format!("account id \"{account}\" must be 12 digits"));
    }
    if let Some(key) = resource.strip_prefix("key/") {
        if is_kms_key_id(key) {
            return Ok(());
        }
        return Err("the key ARN must end in key/ and a key id".into());
    }
    if resource.starts_with("alias/") {
        return check_kms_alias(resource);
    }
    Err(format!("is not a KMS key or alias ARN; {KMS_FORMS}"))
}

fn check_kms_alias(alias: &str) -> Result<(), String> {
    let name = &alias["alias/".len()..];
    if name.is_empty() || alias.len() > 256 {
        return Err("alias must be alias/NAME, at most 256 characters".into());
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "/_-".contains(c))
    {
        return Err("alias names may contain only letters, digits, /, _ and -".into());
    }
    Ok(())
}

/// A key id is a UUID; a multi-Region key id is `mrk-` and 32 hex digits.
fn is_kms_key_id(id: &str) -> bool {
    if let Some(hex) = id.strip_prefix("mrk-") {
        return hex.len() == 32 && hex.bytes().all(|b| b.is_ascii_hexdigit());
    }
    id.len() == 36
        && id.bytes().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => b == b'-',
            _ => b.is_ascii_hexdigit(),
        })
}

// ---------------------------------------------------------------------------------------------
// External ids and tokens

/// STS ExternalId: 2–1224 characters of `[A-Za-z0-9_+=,.@:/-]`.
pub fn check_external_id(id: &str) -> Result<(), String> {
    if let Some(bad) = id
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "_+=,.@:/-".contains(*c)))
    {
        return Err(format!(
            "must not contain \"{}\"; use letters, digits and _+=,.@:/-",
            bad.escape_debug()
        ));
    }
    if !(2..=1224).contains(&id.len()) {
        return Err("must be 2 to 1224 characters".into());
    }
    Ok(())
}

/// 48 alphanumeric characters: about 285 bits, and nothing that breaks when copied into JSON or
/// a console field.
pub fn generate_external_id() -> String {
    // `rand::rng()` is a CSPRNG seeded from the operating system.
    rand::rng()
        .sample_iter(&Alphanumeric)
        .take(48)
        .map(char::from)
        .collect()
}

/// `len` random lowercase hex digits, for ids and challenge file names.
pub fn generate_token(len: usize) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut rng = rand::rng();
    (0..len)
        .map(|_| char::from(HEX[rng.random_range(0..HEX.len())]))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `None`: accepted; `Some(s)`: rejected with a message containing `s`.
    type Expected = Option<&'static str>;

    fn assert_case(what: &str, input: &str, got: Result<(), String>, expected: Expected) {
        match (got, expected) {
            (Ok(()), None) => {}
            (Ok(()), Some(want)) => panic!("{what}({input:?}): accepted, want error with {want:?}"),
            (Err(e), None) => panic!("{what}({input:?}): rejected with {e:?}, want ok"),
            (Err(e), Some(want)) => assert!(
                e.contains(want),
                "{what}({input:?}): error {e:?} does not contain {want:?}"
            ),
        }
    }

    #[test]
    fn bucket_names() {
        let long63 = "a".repeat(63);
        let long64 = "a".repeat(64);
        let cases: Vec<(&str, Expected)> = vec![
            ("acme-exports", None),
            ("abc", None),
            ("my.bucket.name", None),
            ("123bucket", None),
            ("bucket-1.logs", None),
            (&long63, None),
            ("", Some("is required")),
            ("ab", Some("must be 3 to 63 characters")),
            (&long64, Some("must be 3 to 63 characters")),
            ("Acme", Some("must be lowercase")),
            ("ACME-EXPORTS", Some("must be lowercase")),
            ("my bucket", Some("must not contain spaces")),
            (" acme", Some("must not contain spaces")),
            ("my_bucket", Some("must not contain \"_\"")),
            ("café-data", Some("must not contain \"é\"")),
            ("-acme", Some("must begin and end with a letter or digit")),
            ("acme-", Some("must begin and end with a letter or digit")),
            (".acme", Some("must begin and end with a letter or digit")),
            ("my..bucket", Some("two adjacent periods")),
            ("my.-bucket", Some("period next to a hyphen")),
            ("my-.bucket", Some("period next to a hyphen")),
            ("192.168.1.1", Some("IP address")),
            ("10.0.0.1", Some("IP address")),
            ("192.168.1", None),
            ("1.2.3.4.5", None),
            ("xn--abc", Some("must not start with \"xn--\"")),
            ("sthree-bucket", Some("must not start with \"sthree-\"")),
            (
                "amzn-s3-demo-bucket",
                Some("must not start with \"amzn-s3-demo-\""),
            ),
            ("acme-s3alias", Some("must not end with \"-s3alias\"")),
            ("acme--ol-s3", Some("must not end with \"--ol-s3\"")),
            ("acme.mrap", Some("must not end with \".mrap\"")),
            ("acme--x-s3", Some("must not end with \"--x-s3\"")),
            ("acme--table-s3", Some("must not end with \"--table-s3\"")),
            ("acme-s3alias-x", None),
            (
                "s3://acme-exports/path",
                Some("give the bucket name only, e.g. \"acme-exports\", not a URL"),
            ),
            (
                "S3://acme-exports",
                Some("e.g. \"acme-exports\", not a URL"),
            ),
            (
                "https://acme.s3.amazonaws.com",
                Some("give the bucket name only, e.g. \"acme\", not a URL"),
            ),
            (
                "https://acme.data.s3.eu-west-1.amazonaws.com/exports/",
                Some("e.g. \"acme.data\", not a URL"),
            ),
            (
                "https://s3.us-west-2.amazonaws.com/acme-exports/x.csv",
                Some("e.g. \"acme-exports\", not a URL"),
            ),
            ("acme.s3.amazonaws.com", Some("e.g. \"acme\", not a URL")),
            (
                "acme.s3-website-us-east-1.amazonaws.com",
                Some("e.g. \"acme\", not a URL"),
            ),
            (
                "arn:aws:s3:::acme-exports",
                Some("give the bucket name only, e.g. \"acme-exports\", not an ARN"),
            ),
            (
                "arn:aws:s3:::acme-exports/exports/*",
                Some("e.g. \"acme-exports\", not an ARN"),
            ),
            (
                "acme-exports/daily",
                Some("e.g. \"acme-exports\", not a path"),
            ),
            (
                "http://example.com/x",
                Some("e.g. \"acme-exports\", not a URL"),
            ),
            // The recovered name is itself invalid, so the generic example is shown.
            ("s3://My_Bucket/x", Some("e.g. \"acme-exports\", not a URL")),
        ];
        for (input, expected) in cases {
            assert_case(
                "check_bucket_name",
                input,
                check_bucket_name(input),
                expected,
            );
        }
    }

    #[test]
    fn regions() {
        const CASES: &[(&str, Expected)] = &[
            ("us-east-1", None),
            ("eu-central-2", None),
            ("ap-southeast-7", None),
            ("ap-east-2", None),
            ("mx-central-1", None),
            ("us-gov-west-1", None),
            ("cn-northwest-1", None),
            (
                "US-EAST-1",
                Some("unknown region \"US-EAST-1\"; did you mean us-east-1?"),
            ),
            ("us_east_1", Some("did you mean us-east-1?")),
            ("useast1", Some("did you mean us-east-1?")),
            ("eu-west1", Some("did you mean eu-west-1?")),
            ("us-east-1a", Some("did you mean us-east-1?")),
            ("us-gov-west-1b", Some("did you mean us-gov-west-1?")),
            (
                "mars-north-1",
                Some("unknown region \"mars-north-1\"; use e.g. us-east-1"),
            ),
            ("us-east-9", Some("use e.g. us-east-1")),
            ("", Some("unknown region \"\"; use e.g. us-east-1")),
        ];
        for &(input, expected) in CASES {
            assert_case("check_region", input, check_region(input), expected);
        }
        let mut sorted = KNOWN_REGIONS.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), KNOWN_REGIONS.len(), "duplicate region");
    }

    #[test]
    fn partitions() {
        const CASES: &[(&str, &str)] = &[
            ("us-east-1", "aws"),
            ("eu-west-3", "aws"),
            ("cn-north-1", "aws-cn"),
            ("cn-northwest-1", "aws-cn"),
            ("us-gov-east-1", "aws-us-gov"),
            ("us-gov-west-1", "aws-us-gov"),
        ];
        for &(region, partition) in CASES {
            assert_eq!(partition_for_region(region), partition, "{region}");
        }
    }

    #[test]
    fn role_arns() {
        let long_name = format!("arn:aws:iam::123456789012:role/{}", "r".repeat(64));
        let too_long_name = format!("arn:aws:iam::123456789012:role/{}", "r".repeat(65));
        let too_long_arn = format!(
            "arn:aws:iam::123456789012:role/{}/name",
            vec!["p".repeat(60); 34].join("/")
        );
        let cases: Vec<(&str, Expected)> = vec![
            ("arn:aws:iam::123456789012:role/acme-export", None),
            (
                "arn:aws:iam::123456789012:role/service-role/acme-export",
                None,
            ),
            (
                "arn:aws:iam::123456789012:role/a/b.c/d@e/Acme+Export=1,x",
                None,
            ),
            ("arn:aws-us-gov:iam::123456789012:role/acme", None),
            ("arn:aws-cn:iam::123456789012:role/acme", None),
            (&long_name, None),
            ("", Some("is required")),
            ("acme-export", Some("is not an ARN")),
            ("123456789012", Some("is not an ARN")),
            ("arn:aws:iam:123456789012:role/x", Some("is not an ARN")),
            (
                "arn:aws-eu:iam::123456789012:role/x",
                Some("unknown partition \"aws-eu\""),
            ),
            (
                "arn:aws:sts::123456789012:assumed-role/acme-export/session-1",
                Some(
                    "use the role ARN arn:aws:iam::ACCOUNT:role/NAME, not the assumed-role session ARN",
                ),
            ),
            (
                "arn:aws:iam::123456789012:user/alice",
                Some("is not an IAM role ARN"),
            ),
            ("arn:aws:s3:::acme-exports", Some("is not an IAM role ARN")),
            (
                "arn:aws:iam::123456789012:policy/x",
                Some("is not an IAM role ARN"),
            ),
            (
                "arn:aws:iam:us-east-1:123456789012:role/x",
                Some("IAM ARNs have no region"),
            ),
            (
                "arn:aws:iam::12345678901:role/x",
                Some("account id \"12345678901\" must be 12 digits"),
            ),
            (
                "arn:aws:iam::12345678901a:role/x",
                Some("must be 12 digits"),
            ),
            ("arn:aws:iam:::role/x", Some("must be 12 digits")),
            (
                "arn:aws:iam::123456789012:role/",
                Some("role name must be 1 to 64"),
            ),
            (
                "arn:aws:iam::123456789012:role/path/",
                Some("role name must be 1 to 64"),
            ),
            (&too_long_name, Some("role name must be 1 to 64")),
            (
                "arn:aws:iam::123456789012:role/acme export",
                Some("role name"),
            ),
            ("arn:aws:iam::123456789012:role/acme*", Some("role name")),
            ("arn:aws:iam::123456789012:role//acme", Some("role path")),
            (
                "arn:aws:iam::123456789012:role/a//b/acme",
                Some("role path"),
            ),
            ("arn:aws:iam::123456789012:role/a b/acme", Some("role path")),
            (&too_long_arn, Some("at most 2048 characters")),
        ];
        for (input, expected) in cases {
            assert_case("check_role_arn", input, check_role_arn(input), expected);
        }
    }

    #[test]
    fn role_arn_accounts() {
        const CASES: &[(&str, Option<&str>)] = &[
            ("arn:aws:iam::123456789012:role/x", Some("123456789012")),
            (
                "arn:aws-cn:iam::210987654321:role/p/x",
                Some("210987654321"),
            ),
            ("arn:aws:iam::123456789012:user/x", None),
            ("arn:aws:iam::1234:role/x", None),
            ("nonsense", None),
        ];
        for &(arn, account) in CASES {
            assert_eq!(role_arn_account(arn), account, "{arn}");
        }
    }

    #[test]
    fn prefixes() {
        let ok_1024 = format!("{}a", "é".repeat(511)); // 1023 bytes, then "/"
        let ok_1024_slash = format!("{}/", "é".repeat(511) + "a"); // 1024 bytes as given
        let bad_1025 = "é".repeat(512); // 1024 bytes, then "/" makes 1025
        let cases: Vec<(&str, Result<String, &str>)> = vec![
            ("", Ok(String::new())),
            ("exports", Ok("exports/".into())),
            ("exports/", Ok("exports/".into())),
            ("exports/daily", Ok("exports/daily/".into())),
            ("my exports/2026 q1", Ok("my exports/2026 q1/".into())),
            ("a+b", Ok("a+b/".into())),
            ("a%2Bb", Ok("a%2Bb/".into())),
            ("données/é/", Ok("données/é/".into())),
            ("日本/データ", Ok("日本/データ/".into())),
            ("a.b/..c/", Ok("a.b/..c/".into())),
            (&ok_1024, Ok(format!("{ok_1024}/"))),
            (&ok_1024_slash, Ok(ok_1024_slash.clone())),
            (&bad_1025, Err("at most 1024 bytes")),
            ("/", Err("leave empty for the bucket root")),
            ("/exports", Err("must not start with \"/\"")),
            ("exports//daily", Err("empty folder (\"//\")")),
            ("exports//", Err("empty folder")),
            ("./exports", Err("\".\" or \"..\" folders")),
            ("exports/../secret", Err("\".\" or \"..\" folders")),
            ("exports/..", Err("\".\" or \"..\" folders")),
            ("a\\b", Err("not \"\\\"")),
            ("a\tb", Err("control characters")),
            ("a\nb", Err("control characters")),
            ("a\u{7f}b", Err("control characters")),
            ("a\u{0}b", Err("control characters")),
            ("a\u{85}b", Err("control characters")),
            ("a\u{9f}b", Err("control characters")),
            ("*", Err("must not contain '*'")),
            ("a*", Err("wildcards")),
            ("?bc", Err("must not contain '?'")),
            ("${aws:userid}", Err("must not contain '$'")),
            ("exports/$1/", Err("as a variable")),
            ("a\u{202E}b", Err("U+202E")),
            ("a\u{2066}b", Err("direction-changing")),
            ("a\u{200B}b", Err("U+200B")),
            ("a\u{200D}b", Err("invisible")),
            ("a\u{FEFF}b", Err("U+FEFF")),
            ("a\u{2028}b", Err("U+2028")),
            ("a\u{AD}b", Err("U+00AD")),
            ("a\u{E0041}b", Err("U+E0041")),
            ("a\u{FE0F}b", Err("U+FE0F")),
            ("a\u{3164}b", Err("U+3164")),
            ("a\u{34F}b", Err("U+034F")),
            ("a{b}/[c]", Ok("a{b}/[c]/".into())),
            ("emoji 📦/", Ok("emoji 📦/".into())),
        ];
        for (input, expected) in cases {
            match (normalize_prefix(input), expected) {
                (Ok(got), Ok(want)) => assert_eq!(got, want, "normalize_prefix({input:?})"),
                (Err(e), Err(want)) => assert!(
                    e.contains(want),
                    "normalize_prefix({input:?}): {e:?} does not contain {want:?}"
                ),
                (got, want) => panic!("normalize_prefix({input:?}) = {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn prefix_overlap() {
        const CASES: &[(&str, &str, bool)] = &[
            ("", "", true),
            ("", "exports/", true),
            ("exports/", "", true),
            ("exports/", "exports/", true),
            ("exports/", "exports/daily/", true),
            ("exports/daily/", "exports/", true),
            ("exports/", "exports-old/", false),
            ("exports/daily/", "exports/weekly/", false),
            ("a/", "ab/", false),
        ];
        for &(a, b, want) in CASES {
            assert_eq!(
                prefixes_overlap(a, b),
                want,
                "prefixes_overlap({a:?}, {b:?})"
            );
        }
    }

    #[test]
    fn kms_key_ids() {
        const CASES: &[(&str, Expected)] = &[
            ("1234abcd-12ab-34cd-56ef-1234567890ab", None),
            ("1234ABCD-12AB-34CD-56EF-1234567890AB", None),
            ("mrk-1234abcd12ab34cd56ef1234567890ab", None),
            (
                "arn:aws:kms:us-east-2:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab",
                None,
            ),
            (
                "arn:aws:kms:us-east-2:111122223333:key/mrk-1234abcd12ab34cd56ef1234567890ab",
                None,
            ),
            (
                "arn:aws-cn:kms:cn-north-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab",
                None,
            ),
            ("alias/acme-exports", None),
            ("alias/aws/s3", None),
            (
                "arn:aws:kms:us-east-2:111122223333:alias/acme_exports",
                None,
            ),
            ("", Some("is required")),
            (
                "1234abcd12ab34cd56ef1234567890ab",
                Some("is not a KMS key id"),
            ),
            (
                "1234abcd-12ab-34cd-56ef-1234567890zz",
                Some("is not a KMS key id"),
            ),
            ("mrk-1234", Some("is not a KMS key id")),
            ("acme-exports", Some("is not a KMS key id")),
            ("alias/", Some("alias must be alias/NAME")),
            ("alias/acme exports", Some("alias names may contain only")),
            ("alias/acme.exports", Some("alias names may contain only")),
            ("arn:aws:s3:::acme", Some("is not a KMS key ARN")),
            (
                "arn:aws:kms::111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab",
                Some("must include the key's region"),
            ),
            (
                "arn:aws:kms:us-east-9:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab",
                Some("unknown region \"us-east-9\""),
            ),
            (
                "arn:aws:kms:us-east-2:1111:key/1234abcd-12ab-34cd-56ef-1234567890ab",
                Some("must be 12 digits"),
            ),
            (
                "arn:aws:kms:us-east-2:111122223333:key/nope",
                Some("must end in key/ and a key id"),
            ),
            (
                "arn:aws:kms:us-east-2:111122223333:alias/",
                Some("alias must be alias/NAME"),
            ),
            (
                "arn:aws:kms:us-east-2:111122223333:grant/x",
                Some("is not a KMS key or alias ARN"),
            ),
        ];
        for &(input, expected) in CASES {
            assert_case("check_kms_key_id", input, check_kms_key_id(input), expected);
        }
    }

    #[test]
    fn external_ids() {
        let max = "a".repeat(1224);
        let over = "a".repeat(1225);
        let cases: Vec<(&str, Expected)> = vec![
            ("ab", None),
            ("Acme_Ext-Id+=,.@:/0", None),
            (&max, None),
            ("", Some("must be 2 to 1224 characters")),
            ("a", Some("must be 2 to 1224 characters")),
            (&over, Some("must be 2 to 1224 characters")),
            ("abc def", Some("must not contain \" \"")),
            ("abc#def", Some("must not contain \"#\"")),
            ("abc\ndef", Some("must not contain \"\\n\"")),
            ("abcé", Some("must not contain \"é\"")),
        ];
        for (input, expected) in cases {
            assert_case(
                "check_external_id",
                input,
                check_external_id(input),
                expected,
            );
        }
    }

    #[test]
    fn generated_external_ids_are_valid_and_distinct() {
        let a = generate_external_id();
        let b = generate_external_id();
        assert_eq!(a.len(), 48);
        assert!(a.chars().all(|c| c.is_ascii_alphanumeric()), "{a}");
        assert_eq!(check_external_id(&a), Ok(()));
        assert_ne!(a, b);
    }

    #[test]
    fn generated_tokens() {
        for len in [0, 1, 8, 32] {
            let t = generate_token(len);
            assert_eq!(t.len(), len);
            assert!(t.chars().all(|c| matches!(c, '0'..='9' | 'a'..='f')), "{t}");
        }
        assert_ne!(generate_token(32), generate_token(32));
    }
}
