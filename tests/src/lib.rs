//! Hermetic test context for the end-to-end suite.
