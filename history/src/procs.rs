//! Process and GPU history: the top processes and every GPU process, per host and minute, and
//! the queries on them (the processes at a minute, GPU usage by user, host or GPU).
