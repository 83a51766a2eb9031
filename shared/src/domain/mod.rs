//! Pure domain logic: no I/O, tested with case tables.

pub mod checks;
pub mod connector;
pub mod field;
pub mod key_template;
pub mod notification;
pub mod platform;
pub mod rules;
pub mod schedule;
pub mod setup;
pub mod spec;
#[cfg(test)]
pub mod testing;
