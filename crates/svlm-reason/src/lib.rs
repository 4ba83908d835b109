//! svlm-reason
