//! stub
use arrow_schema::SchemaRef;
use super::{FileError, Limits, ParseError, ParseSummary, ParsedBatch};
use crate::ingest::source::Source;

pub(super) fn parse<E>(
    _source: &dyn Source,
    _limits: Limits,
    _table: Option<&SchemaRef>,
    _on_batch: impl FnMut(ParsedBatch) -> Result<(), E>,
) -> Result<ParseSummary, ParseError<E>> {
    Err(FileError::NotParquet("todo".into()).into())
}
