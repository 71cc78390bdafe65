//! Datasets: ingest with polars, classification, DLP scanning, chat formatting, splitting.

pub mod classify;
pub mod dlp;
pub mod template;
