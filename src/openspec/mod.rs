//! The OpenSpec change workflow, natively: parsing deltas, rebuilding specs, archiving, validating.
