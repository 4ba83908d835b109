//! svlm-report
