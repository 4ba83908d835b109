//! svlm-eval
