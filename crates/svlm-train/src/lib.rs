//! svlm-train
