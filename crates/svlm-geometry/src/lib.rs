//! svlm-geometry
