//! svlm-processor
