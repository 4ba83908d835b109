//! svlm-model
