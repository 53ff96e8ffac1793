//! Metric history: the series of a sample, the raw tier's compressed blocks, the 1-minute and
//! 1-hour rollups, retention, and the series queries.
