//! Run ids: `run_` and a UUID v7, so they sort by creation (the runs table's listings rely on it).

/// Prefix of every run id (and so of every run's sort key).
pub const RUN_ID_PREFIX: &str = "run_";

/// A new run id: `run_` and a UUID v7 in simple form (32 lowercase hex digits). UUID v7 starts
/// with the millisecond time, so ids sort by creation and the newest run is the last key.
pub fn new_run_id() -> String {
    format!("{RUN_ID_PREFIX}{}", uuid::Uuid::now_v7().simple())
}

/// Whether `id` has the shape [`new_run_id`] produces (callers refuse anything else before a
/// lookup, so a forged id or page token cannot reach the watermarks item).
pub fn is_run_id(id: &str) -> bool {
    id.strip_prefix(RUN_ID_PREFIX).is_some_and(|hex| {
        hex.len() == 32
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}
