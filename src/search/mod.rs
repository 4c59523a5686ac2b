//! Search over all history: the analyzer that turns text into index terms ([`analyzer`], with
//! its Ukrainian stemmer [`ukrainian`]).

pub mod analyzer;
pub mod ukrainian;
