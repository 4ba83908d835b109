//! svlm-world
