//! svlm-answers
