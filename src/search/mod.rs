//! Search over all history: the analyzer that turns text into index terms ([`analyzer`], with
//! its Ukrainian stemmer [`ukrainian`]), the search syntax and snippets ([`query`]), and rebuilding the index ([`reindex`]). The index
//! itself lives in the store ([`crate::store::search`]).

pub mod analyzer;
pub mod query;
pub mod reindex;
pub mod ukrainian;
