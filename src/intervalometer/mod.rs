//! The intervalometer: drift-free session machine, crash-safe journal, reports.
