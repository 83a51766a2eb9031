//! The multipart writer: a ByteSink that uploads parts as they fill, a bounded number in flight.
