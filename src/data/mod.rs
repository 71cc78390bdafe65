//! Datasets: ingest with polars, classification, DLP scanning, the governance policy, chat
//! formatting, tokenization with response-only labels, and the train/validation split.

pub mod classify;
pub mod dlp;
pub mod govern;
pub mod ingest;
pub mod template;
pub mod tokenize;
