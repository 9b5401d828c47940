//! Built-in reasoning tasks.
